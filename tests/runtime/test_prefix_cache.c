/* The prefix cache (coordinator/runtime/prefix_cache.h) on an engine over
 * the tiny Mistral fixture: parked prefixes are found by their tokens and
 * adapter, one already covered is not parked twice, the least recently used
 * goes when the budget is full, one larger than the budget is not kept, and
 * an evicted prefix's pages go back to the stage's pool. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "engine.h"

enum { RUN_SLOTS = 4, LEN = 40 };

static struct engine e;

/* Feeds tokens into run slot 0 from position 0, as a new sequence. */
static void feed(const int32_t *tokens, int n)
{
    int32_t pos[160], slot[160];
    for (int i = 0; i < n; i++) {
        pos[i] = i;
        slot[i] = 0;
    }
    uint8_t want[160] = {0};
    want[n - 1] = 1;
    float *logits = malloc((size_t)e.vocab * sizeof(float));
    struct stage_batch b = {.n = n, .tokens = tokens, .pos = pos, .slot = slot, .logits = want};
    struct mm_err err = {{0}};
    REQUIRE(engine_forward(&e, &b, logits, &err) == 0, "%s", err.msg);
    free(logits);
}

static void park(const int32_t *tokens, int n, int adapter)
{
    struct mm_err err = {{0}};
    feed(tokens, n);
    REQUIRE(prefix_cache_park(&e.prefix, &e, 0, tokens, n, adapter, &e.prefix_stats, &err) == 0,
            "%s", err.msg);
}

/* How much of tokens (all but the last) a parked prefix covers. */
static int best(const int32_t *tokens, int n, int adapter)
{
    int slot = -1;
    int m = prefix_cache_best(&e.prefix, tokens, n - 1, adapter, &slot);
    CHECK(m == 0 || (slot >= RUN_SLOTS && slot < RUN_SLOTS + e.cache_slots));
    return m;
}

int main(void)
{
    char dir[1024];
    test_path("MEMLLM_FIXTURES", "models/tiny-mistral", dir, sizeof(dir));
    /* 512 bytes a token (2 layers, K and V of 32 floats): about 100 tokens */
    struct engine_options o = {.model_path = dir, .n_slots = RUN_SLOTS, .kv_cache_mb = 0.05f};
    struct mm_err err = {{0}};
    REQUIRE(engine_open(&e, &o, &err) == 0, "%s", err.msg);
    CHECK(e.cache_slots == RUN_SLOTS && e.prefix.budget == 102);

    int32_t a[LEN], b[LEN], c[LEN], big[150];
    for (int i = 0; i < LEN; i++) {
        a[i] = (int32_t)(10 + i);
        b[i] = (int32_t)(100 + i);
        c[i] = (int32_t)(200 + i);
    }
    for (int i = 0; i < 150; i++)
        big[i] = (int32_t)(300 + i);

    park(a, LEN, -1);
    CHECK(e.prefix_stats.parked == 1 && e.prefix.held == LEN);
    int32_t q[LEN + 5];
    memcpy(q, a, 30 * sizeof(int32_t));
    for (int i = 30; i < LEN + 5; i++)
        q[i] = 7;
    CHECKF(best(q, LEN + 5, -1) == 30, "a prompt sharing 30 tokens finds %d", best(q, LEN + 5, -1));
    CHECK(best(q, LEN + 5, 0) == 0); /* another adapter: other keys */
    CHECK(best(a, 1, -1) == 0);      /* the last prompt token is always computed */

    /* Covered by what is parked: not parked again. */
    park(a, 30, -1);
    CHECK(e.prefix_stats.parked == 1 && e.prefix.held == LEN);

    /* The budget holds two prefixes of 40: a third evicts the least
     * recently used, b (a is found again after b is parked). */
    park(b, LEN, -1);
    CHECK(best(a, LEN, -1) == LEN - 1); /* a is now the most recently used */
    int pages_before = e.local[0].stage.kv.n_pages - e.local[0].stage.kv.n_free;
    park(c, LEN, -1);
    CHECKF(e.prefix_stats.evicted == 1, "%lld evicted", (long long)e.prefix_stats.evicted);
    CHECKF(best(b, LEN, -1) == 0, "b, the least recently used, is still found");
    CHECK(best(a, LEN, -1) == LEN - 1 && best(c, LEN, -1) == LEN - 1);
    CHECK(e.prefix.held == 2 * LEN);
    /* c's pages came from the pool, b's went back: as many in use (slot 0
     * was fed c instead of b in between: the same count of pages too) */
    int pages_after = e.local[0].stage.kv.n_pages - e.local[0].stage.kv.n_free;
    CHECKF(pages_after == pages_before, "pages in use %d, were %d", pages_after, pages_before);

    /* Larger than the whole budget: not kept, nothing evicted for it. */
    park(big, 150, -1);
    CHECK(e.prefix_stats.parked == 3 && e.prefix_stats.evicted == 1);
    CHECK(best(big, 150, -1) == 0);

    /* Under an adapter (the cache's bookkeeping only: no adapter is loaded
     * here): a separate entry. */
    park(a, LEN, 0);
    CHECK(best(a, LEN, 0) == LEN - 1);

    engine_close(&e);
    return check_report("test_prefix_cache");
}
