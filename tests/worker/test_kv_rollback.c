/* KV-cache truncation and slot isolation on the tiny fixture model.
 *
 * Rolling a sequence back and feeding other tokens must leave exactly the
 * state of a fresh run on the truncated prefix: with the same batches, the
 * next-token logits are bitwise identical. Sequences in other slots must not
 * see each other. A rejected batch must leave the cache untouched. A prefix
 * shared between slots gives the same logits as one computed. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "forward.h"
#include "model.h"

#define VOCAB_MAX 1024

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

/* Prefix sharing (stage_kv_share): a slot that takes another's first
 * positions and computes only the rest gives the logits of a slot that
 * computed everything, bit for bit; the donor rolling back into the shared
 * page does not change the sharer's next logits. */
static void check_shared_prefix(struct model *m)
{
    struct mm_err err = {{0}};
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
    free(scratch);
    free(shared);
    free(fresh);
    free(after);
    free(want);
}

int main(void)
{
    char dir[1024];
    test_path("MEMLLM_FIXTURES", "models/tiny-mistral", dir, sizeof(dir));
    struct mm_err err = {{0}};
    struct model *m = model_load(dir, 0, -1, &err);
    REQUIRE(m, "%s", err.msg);
    const int V = m->cfg.vocab_size;
    REQUIRE(V <= VOCAB_MAX, "fixture vocab too large");
    int32_t prefix[20], x[10], y[10];
    for (int i = 0; i < 20; i++)
        prefix[i] = (int32_t)((i * 37 + 5) % V);
    for (int i = 0; i < 10; i++) {
        x[i] = (int32_t)((i * 11 + 300) % V);
        y[i] = (int32_t)((i * 13 + 100) % V);
    }
    float *rolled = malloc((size_t)10 * V * sizeof(float));
    float *fresh = malloc((size_t)10 * V * sizeof(float));
    float *scratch = malloc((size_t)20 * V * sizeof(float));

    /* Rolled back: prefix, x, then y written over x's positions. */
    struct stage a;
    REQUIRE(stage_init(&a, m, 2, 64, &err) == 0, "%s", err.msg);
    feed(&a, 0, prefix, 20, 0, scratch);
    feed(&a, 0, x, 10, 20, scratch);
    CHECK(a.kv.len[0] == 30);
    kv_cache_truncate(&a.kv, 0, 20);
    CHECK(a.kv.len[0] == 20);
    feed(&a, 0, y, 10, 20, rolled);

    /* Fresh: prefix, then y. */
    struct stage b;
    REQUIRE(stage_init(&b, m, 2, 64, &err) == 0, "%s", err.msg);
    feed(&b, 0, prefix, 20, 0, scratch);
    feed(&b, 0, y, 10, 20, fresh);
    CHECKF(memcmp(rolled, fresh, (size_t)10 * V * sizeof(float)) == 0,
           "rollback then refill differs from a fresh run");

    /* A batch may also roll back implicitly by starting below the length. */
    feed(&a, 0, x, 10, 20, scratch);
    feed(&a, 0, y, 10, 20, rolled);
    CHECKF(memcmp(rolled, fresh, (size_t)10 * V * sizeof(float)) == 0,
           "implicit rollback differs from a fresh run");

    /* Slot isolation: filling slot 1 does not change slot 0's next logits. */
    float one[VOCAB_MAX], two[VOCAB_MAX];
    feed(&b, 1, x, 10, 0, scratch);
    int32_t next = 7;
    feed(&b, 0, &next, 1, 30, one);
    kv_cache_truncate(&b.kv, 0, 30);
    struct stage c;
    REQUIRE(stage_init(&c, m, 2, 64, &err) == 0, "%s", err.msg);
    feed(&c, 0, prefix, 20, 0, scratch);
    feed(&c, 0, y, 10, 20, scratch);
    feed(&c, 0, &next, 1, 30, two);
    CHECKF(memcmp(one, two, (size_t)V * sizeof(float)) == 0, "slot 1 leaked into slot 0");

    /* Two sequences in one batch match each run alone (within float
     * reassociation: the batched products have other shapes). */
    int32_t tokens[2] = {next, 9}, pos[2] = {30, 10}, slots[2] = {0, 1};
    float both[2 * VOCAB_MAX], alone[VOCAB_MAX];
    struct stage_batch bb = {.n = 2, .tokens = tokens, .pos = pos, .slot = slots};
    REQUIRE(stage_forward(&b, &bb, NULL, both, &err) == 0, "%s", err.msg);
    double d = 0.0;
    for (int i = 0; i < V; i++)
        d = fmax(d, fabs(both[i] - one[i]));
    CHECKF(d < 1e-5, "batched slot 0 differs by %g", d);
    feed(&c, 1, x, 10, 0, scratch);
    feed(&c, 1, &tokens[1], 1, 10, alone);
    d = 0.0;
    for (int i = 0; i < V; i++)
        d = fmax(d, fabs(both[V + i] - alone[i]));
    CHECKF(d < 1e-5, "batched slot 1 differs by %g", d);

    /* Rejected batches leave the cache as it was. */
    int len0 = c.kv.len[0];
    int32_t bad_pos = 64, bad_tok = V, zero = 0, gap = 40;
    struct stage_batch over = {.n = 1, .tokens = &zero, .pos = &bad_pos, .slot = &zero};
    CHECK(stage_forward(&c, &over, NULL, one, &err) != 0 && strstr(err.msg, "context"));
    struct stage_batch badtok = {.n = 1, .tokens = &bad_tok, .pos = &gap, .slot = &zero};
    gap = len0;
    CHECK(stage_forward(&c, &badtok, NULL, one, &err) != 0 && strstr(err.msg, "out of range"));
    struct stage_batch hole = {.n = 1, .tokens = &zero, .pos = &bad_pos, .slot = &zero};
    bad_pos = len0 + 1;
    CHECK(stage_forward(&c, &hole, NULL, one, &err) != 0 && strstr(err.msg, "holds"));
    CHECK(c.kv.len[0] == len0);

    stage_free(&a);
    stage_free(&b);
    stage_free(&c);
    check_shared_prefix(m);
    model_free(m);
    free(rolled);
    free(fresh);
    free(scratch);
    return check_report("test_kv_rollback");
}
