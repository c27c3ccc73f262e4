/* The paged KV cache (worker/kv_cache.h): pages shared between slots by
 * reference count, copied when a slot writes into a shared page, released
 * on rollback, never lost or leaked.
 *
 * Without a model: rows written through the cache's own calls, read back
 * per slot after sharing, copy on write, a rollback inside a shared page
 * and emptying; the count of pages in use after each step; every page back
 * in the pool at the end; the attention views point at the same rows.
 * What sharing does to a model's logits: test_kv_rollback. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kv_cache.h"

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

int main(void)
{
    test_pages();
    return check_report("test_kv_pages");
}
