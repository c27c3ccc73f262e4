/* The paged KV cache (worker/kv_cache.h): pages shared between slots by
 * reference count, copied when a slot writes into a shared page, released
 * on rollback, never lost or leaked.
 *
 * Without a model: rows written through the cache's own calls, read back
 * per slot after sharing, copy on write, a rollback inside a shared page
 * and emptying; the count of pages in use after each step; every page back
 * in the pool at the end; the attention views point at the same rows.
 *
 * With the tiny Mistral fixture (sliding window, GQA): a slot that shares
 * another's prefix and computes only the rest gives the logits, bit for
 * bit, of a slot that computed everything; and the donor rolling back into
 * the shared page does not change the sharer's next logits. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "forward.h"
#include "kv_cache.h"
#include "model.h"

enum { LAYERS = 2, SLOTS = 3, CAPACITY = 64, DIM = 4 };

/* The value of row `pos` of layer l, K (kv 0) or V (kv 1), element i, as
 * written by stamp `tag`. */
static float val(int tag, int l, int kv, int pos, int i)
{
    return (float)(tag * 100000 + l * 10000 + kv * 1000 + pos * 10 + i);
}

static void fill(struct kv_cache *c, int slot, int pos0, int n, int tag)
{
    kv_cache_prepare(c, slot, pos0, n);
    for (int l = 0; l < LAYERS; l++)
        for (int p = pos0; p < pos0 + n; p++)
            for (int i = 0; i < DIM; i++) {
                kv_cache_row(c, c->k, l, slot, p)[i] = val(tag, l, 0, p, i);
                kv_cache_row(c, c->v, l, slot, p)[i] = val(tag, l, 1, p, i);
            }
    c->len[slot] = pos0 + n;
}

/* Rows [from, to) of slot hold stamp `tag` in every layer; also through
 * the attention views. */
static int holds(struct kv_cache *c, int slot, int from, int to, int tag)
{
    int bad = 0;
    for (int l = 0; l < LAYERS; l++) {
        struct k_kv_view kv, vv;
        kv_cache_view(c, l, slot, to, &kv, &vv);
        for (int p = from; p < to; p++)
            for (int i = 0; i < DIM; i++) {
                bad += kv_cache_row(c, c->k, l, slot, p)[i] != val(tag, l, 0, p, i);
                bad += kv_cache_row(c, c->v, l, slot, p)[i] != val(tag, l, 1, p, i);
                bad += k_kv_row(&kv, p)[i] != val(tag, l, 0, p, i);
                bad += k_kv_row(&vv, p)[i] != val(tag, l, 1, p, i);
            }
    }
    return bad == 0;
}

static void test_pages(void)
{
    struct kv_cache c;
    struct mm_err err = {{0}};
    REQUIRE(kv_cache_init(&c, LAYERS, SLOTS, CAPACITY, DIM, &err) == 0, "%s", err.msg);
    CHECK(c.n_pages == SLOTS * (CAPACITY / K_KV_PAGE));

    fill(&c, 0, 0, 41, 1); /* pages of 16, 16 and 9 rows */
    CHECKF(kv_cache_pages_in_use(&c) == 3, "%d pages for 41 rows", kv_cache_pages_in_use(&c));

    /* Share: slot 1 gets slot 0's first 21 rows, no page is copied. */
    CHECK(kv_cache_share(&c, 1, 0, 21, &err) == 0);
    CHECK(c.len[1] == 21);
    CHECKF(kv_cache_pages_in_use(&c) == 3, "sharing took %d pages", kv_cache_pages_in_use(&c));
    CHECK(holds(&c, 1, 0, 21, 1));

    /* Copy on write: slot 1 writes inside the shared second page. */
    fill(&c, 1, 21, 10, 2);
    CHECKF(kv_cache_pages_in_use(&c) == 4, "copy on write: %d pages", kv_cache_pages_in_use(&c));
    CHECKF(holds(&c, 0, 0, 41, 1), "slot 1's write reached slot 0");
    CHECK(holds(&c, 1, 0, 21, 1) && holds(&c, 1, 21, 31, 2));

    /* Rollback inside the shared first page: slot 0 keeps 5 rows and
     * writes 3; slot 1 still reads its own. Slot 0's later pages go back. */
    fill(&c, 0, 5, 3, 3);
    CHECK(c.len[0] == 8);
    CHECK(holds(&c, 0, 0, 5, 1) && holds(&c, 0, 5, 8, 3));
    CHECKF(holds(&c, 1, 0, 21, 1) && holds(&c, 1, 21, 31, 2), "slot 0's rollback reached slot 1");
    CHECKF(kv_cache_pages_in_use(&c) == 3, "after the rollback: %d pages",
           kv_cache_pages_in_use(&c));

    /* Bad shares change nothing. */
    CHECK(kv_cache_share(&c, 2, 0, 9, &err) != 0 && strstr(err.msg, "holds 8"));
    CHECK(kv_cache_share(&c, 1, 1, 4, &err) != 0);
    CHECK(kv_cache_share(&c, 3, 0, 4, &err) != 0);
    CHECK(holds(&c, 1, 0, 21, 1) && kv_cache_pages_in_use(&c) == 3);

    /* Sharing into a slot releases what it held. */
    CHECK(kv_cache_share(&c, 1, 0, 8, &err) == 0);
    CHECK(holds(&c, 1, 0, 5, 1) && holds(&c, 1, 5, 8, 3));
    CHECKF(kv_cache_pages_in_use(&c) == 1, "after re-sharing: %d pages", kv_cache_pages_in_use(&c));

    /* Every slot full, shared and written over: the pool never runs dry,
     * and when all are emptied every page is back. */
    for (int round = 0; round < 3; round++)
        for (int s = 0; s < SLOTS; s++) {
            int src = (s + 1) % SLOTS, keep = c.len[src] / 2;
            CHECK(kv_cache_share(&c, s, src, keep, &err) == 0);
            fill(&c, s, keep, CAPACITY - keep, 10 + round);
            CHECK(holds(&c, s, keep, CAPACITY, 10 + round));
        }
    CHECK(kv_cache_pages_in_use(&c) <= c.n_pages);
    for (int s = 0; s < SLOTS; s++)
        kv_cache_truncate(&c, s, 0);
    CHECKF(kv_cache_pages_in_use(&c) == 0 && c.n_free == c.n_pages, "%d pages leaked",
           kv_cache_pages_in_use(&c));
    for (int p = 0; p < c.n_pages; p++)
        CHECKF(c.ref[p] == 0, "page %d keeps %d references", p, c.ref[p]);
    kv_cache_free(&c);
}

/* ---- with a model ---- */

static void feed(struct stage *s, int slot, const int32_t *ids, int n, int pos0, float *logits)
{
    int32_t pos[64], sl[64];
    for (int i = 0; i < n; i++) {
        pos[i] = pos0 + i;
        sl[i] = slot;
    }
    struct stage_batch b = {.n = n, .tokens = ids, .pos = pos, .slot = sl};
    struct mm_err err = {{0}};
    REQUIRE(stage_forward(s, &b, NULL, logits, &err) == 0, "%s", err.msg);
}

static void test_stage(void)
{
    char dir[1024];
    test_path("MEMLLM_FIXTURES", "models/tiny-mistral", dir, sizeof(dir));
    struct mm_err err = {{0}};
    struct model *m = model_load(dir, 0, -1, &err);
    REQUIRE(m, "%s", err.msg);
    const int V = m->cfg.vocab_size;
    int32_t prefix[37], x[10], y[6], next = 7;
    for (int i = 0; i < 37; i++)
        prefix[i] = (int32_t)((i * 37 + 5) % V);
    for (int i = 0; i < 10; i++)
        x[i] = (int32_t)((i * 11 + 300) % V);
    for (int i = 0; i < 6; i++)
        y[i] = (int32_t)((i * 13 + 100) % V);
    size_t row = (size_t)V * sizeof(float);
    float *scratch = malloc(40 * row), *shared = malloc(10 * row), *fresh = malloc(10 * row);
    float *after = malloc(row), *want = malloc(row);

    /* Shared: slot 0 reads the whole prefix, slot 1 takes its first 21
     * positions and computes only x. */
    struct stage a;
    REQUIRE(stage_init(&a, m, 2, 64, &err) == 0, "%s", err.msg);
    feed(&a, 0, prefix, 37, 0, scratch);
    REQUIRE(stage_kv_share(&a, 1, 0, 21, &err) == 0, "%s", err.msg);
    feed(&a, 1, x, 10, 21, shared);

    /* Fresh: the same 21 tokens computed, then x. */
    struct stage b;
    REQUIRE(stage_init(&b, m, 2, 64, &err) == 0, "%s", err.msg);
    feed(&b, 0, prefix, 21, 0, scratch);
    feed(&b, 0, x, 10, 21, fresh);
    CHECKF(memcmp(shared, fresh, 10 * row) == 0, "a shared prefix gives other logits");

    /* The donor rolls back into the shared first page and writes y. */
    feed(&a, 0, y, 6, 10, scratch);
    feed(&a, 1, &next, 1, 31, after);
    feed(&b, 0, &next, 1, 31, want);
    CHECKF(memcmp(after, want, row) == 0, "the donor's rollback changed the sharer's logits");
    CHECK(stage_kv_share(&a, 1, 0, 17, &err) != 0 && strstr(err.msg, "holds 16"));

    stage_free(&a);
    stage_free(&b);
    model_free(m);
    free(scratch);
    free(shared);
    free(fresh);
    free(after);
    free(want);
}

int main(void)
{
    test_pages();
    test_stage();
    return check_report("test_kv_pages");
}
