#include "sampling.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void sampler_params_default(struct sampler_params *p)
{
    p->greedy = 0;
    p->temperature = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->seed = 42;
}

/* xoshiro256** seeded through splitmix64: small, fast, and the same stream
 * on every platform, so a seed reproduces a run. */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t next_u64(uint64_t s[4])
{
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

static double next_unit(uint64_t s[4])
{
    return (double)(next_u64(s) >> 11) * (1.0 / 9007199254740992.0);
}

int sampler_init(struct sampler *s, const struct sampler_params *p, int vocab, struct mm_err *err)
{
    memset(s, 0, sizeof(*s));
    if (!p->greedy && !(p->temperature > 0.0f)) {
        mm_err_set(err, "sampling: temperature must be > 0 (use greedy for 0)");
        return -1;
    }
    if (!p->greedy && (p->top_k < 0 || !(p->top_p > 0.0f && p->top_p <= 1.0f))) {
        mm_err_set(err, "sampling: top-k must be >= 0 and top-p in (0, 1]");
        return -1;
    }
    s->p = *p;
    s->vocab = vocab;
    uint64_t x = p->seed;
    for (int i = 0; i < 4; i++)
        s->rng[i] = splitmix64(&x);
    s->order = malloc((size_t)vocab * sizeof(*s->order));
    s->probs = malloc((size_t)vocab * sizeof(*s->probs));
    if (!s->order || !s->probs) {
        sampler_free(s);
        mm_err_set(err, "sampling: out of memory");
        return -1;
    }
    return 0;
}

void sampler_free(struct sampler *s)
{
    free(s->order);
    free(s->probs);
    s->order = NULL;
    s->probs = NULL;
}

float logits_logprob(const float *logits, int vocab, int32_t id)
{
    float max = -INFINITY;
    for (int i = 0; i < vocab; i++)
        if (logits[i] > max) max = logits[i];
    double sum = 0.0;
    for (int i = 0; i < vocab; i++)
        sum += exp((double)(logits[i] - max));
    return (float)((double)(logits[id] - max) - log(sum));
}

static int is_banned(int32_t id, const int32_t *banned, int n_banned)
{
    for (int i = 0; i < n_banned; i++)
        if (banned[i] == id) return 1;
    return 0;
}

static int by_logit_desc(const void *a, const void *b, void *logits)
{
    const float *key = logits;
    float x = key[*(const int32_t *)a], y = key[*(const int32_t *)b];
    if (x != y) return x < y ? 1 : -1;
    return *(const int32_t *)a - *(const int32_t *)b; /* ties: lower id first, stable */
}

int32_t sampler_sample(struct sampler *s, const float *logits, const int32_t *banned, int n_banned,
                       float *logprob)
{
    int32_t best = -1;
    if (s->p.greedy) {
        for (int i = 0; i < s->vocab; i++)
            if (!is_banned(i, banned, n_banned) && (best < 0 || logits[i] > logits[best])) best = i;
    } else {
        int n = 0;
        for (int i = 0; i < s->vocab; i++)
            if (!is_banned(i, banned, n_banned)) s->order[n++] = i;
        qsort_r(s->order, (size_t)n, sizeof(*s->order), by_logit_desc, (void *)logits);
        if (s->p.top_k > 0 && n > s->p.top_k) n = s->p.top_k;
        float inv_t = 1.0f / s->p.temperature, max = logits[s->order[0]];
        double sum = 0.0;
        for (int i = 0; i < n; i++)
            sum += s->probs[i] = expf((logits[s->order[i]] - max) * inv_t);
        /* Nucleus: the smallest prefix whose mass reaches top_p. */
        double cum = 0.0;
        int keep = n;
        for (int i = 0; i < n; i++) {
            cum += s->probs[i] / sum;
            if (cum >= s->p.top_p) {
                keep = i + 1;
                break;
            }
        }
        double kept = 0.0;
        for (int i = 0; i < keep; i++)
            kept += s->probs[i];
        double u = next_unit(s->rng) * kept;
        best = s->order[keep - 1];
        for (int i = 0; i < keep; i++) {
            u -= s->probs[i];
            if (u < 0.0) {
                best = s->order[i];
                break;
            }
        }
    }
    if (logprob) *logprob = logits_logprob(logits, s->vocab, best);
    return best;
}
