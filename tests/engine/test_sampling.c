/* Sampling: greedy and bans, top-k / top-p filtering, seeded repeatability,
 * and that temperature-1 sampling follows the softmax distribution. */
#include <math.h>
#include <string.h>

#include "check.h"
#include "sampling.h"

#define V 5

static struct sampler make(int greedy, float t, int k, float p, uint64_t seed)
{
    struct sampler_params sp = {
        .greedy = greedy, .temperature = t, .top_k = k, .top_p = p, .seed = seed};
    struct sampler s;
    struct mm_err err = {{0}};
    REQUIRE(sampler_init(&s, &sp, V, &err) == 0, "%s", err.msg);
    return s;
}

int main(void)
{
    /* probabilities 0.5, 0.3, 0.15, 0.05, 0 (almost) */
    const float logits[V] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f), -1e30f};
    float lp;

    struct sampler g = make(1, 1.0f, 0, 1.0f, 1);
    CHECK(sampler_sample(&g, logits, NULL, 0, &lp) == 0);
    CHECK_NEAR(lp, logf(0.5f), 1e-5);
    int32_t ban[2] = {0, 2};
    CHECK(sampler_sample(&g, logits, ban, 2, &lp) == 1);
    CHECK_NEAR(lp, logf(0.3f), 1e-5);
    sampler_free(&g);

    /* top-k 1 is greedy whatever the temperature. */
    struct sampler k1 = make(0, 5.0f, 1, 1.0f, 7);
    for (int i = 0; i < 100; i++)
        CHECK(sampler_sample(&k1, logits, NULL, 0, NULL) == 0);
    sampler_free(&k1);

    /* top-p 0.6 keeps the two most likely (0.5 < 0.6 <= 0.8). */
    struct sampler tp = make(0, 1.0f, 0, 0.6f, 3);
    int seen[V] = {0};
    for (int i = 0; i < 2000; i++)
        seen[sampler_sample(&tp, logits, NULL, 0, NULL)]++;
    CHECK(seen[0] > 0 && seen[1] > 0 && seen[2] == 0 && seen[3] == 0 && seen[4] == 0);
    CHECK_NEAR((double)seen[0] / 2000.0, 0.5 / 0.8, 0.04);
    sampler_free(&tp);

    /* Temperature 1, no filtering: frequencies follow the softmax. */
    struct sampler full = make(0, 1.0f, 0, 1.0f, 11);
    int counts[V] = {0};
    const int N = 40000;
    for (int i = 0; i < N; i++)
        counts[sampler_sample(&full, logits, NULL, 0, NULL)]++;
    const double want[V] = {0.5, 0.3, 0.15, 0.05, 0.0};
    for (int i = 0; i < V; i++)
        CHECK_NEAR((double)counts[i] / N, want[i], 0.01);
    sampler_free(&full);

    /* Same seed, same draws; another seed, other draws. */
    struct sampler a = make(0, 1.0f, 0, 1.0f, 99), b = make(0, 1.0f, 0, 1.0f, 99),
                   c = make(0, 1.0f, 0, 1.0f, 100);
    int same_ab = 1, same_ac = 1;
    for (int i = 0; i < 200; i++) {
        int32_t x = sampler_sample(&a, logits, NULL, 0, NULL);
        same_ab &= x == sampler_sample(&b, logits, NULL, 0, NULL);
        same_ac &= x == sampler_sample(&c, logits, NULL, 0, NULL);
    }
    CHECK(same_ab);
    CHECK(!same_ac);
    sampler_free(&a);
    sampler_free(&b);
    sampler_free(&c);

    /* Bad parameters are refused. */
    struct sampler_params bad = {.temperature = 0.0f, .top_p = 1.0f};
    struct sampler s;
    struct mm_err err = {{0}};
    CHECK(sampler_init(&s, &bad, V, &err) != 0 && strstr(err.msg, "temperature"));
    bad.temperature = 1.0f;
    bad.top_p = 1.5f;
    CHECK(sampler_init(&s, &bad, V, &err) != 0 && strstr(err.msg, "top-p"));
    return check_report("test_sampling");
}
