/* Attention against PyTorch (softmax(q k^T / sqrt(d) + mask) v in float64
 * with repeat_interleave'd KV heads): decode, prefill, chunks after a past,
 * GQA ratios 1, 3 and 4, head_dim 32 and 64, windows shorter and longer
 * than the sequence, more keys than one chunk, and BERT's unmasked case.
 * Every kernel (portable, SIMD) on every case. Then: a prompt attended at
 * once equals the same prompt fed token by token, as decoding does. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cpu/internal.h"
#include "test_kernels_fixture.h"

static const struct {
    const char *name;
    k_attend_fn fn;
} kernels[] = {
#ifdef K_HAVE_AVX512
    {"avx512", k_attend_avx512},
#endif
    {"scalar", k_attend_scalar},
};

static void test_case(struct fx *f, const char *c)
{
    int n = fx_int(f, c, "n"), pos0 = fx_int(f, c, "pos0"), nh = fx_int(f, c, "n_heads");
    int nkv = fx_int(f, c, "n_kv_heads"), hd = fx_int(f, c, "head_dim");
    float *q = fx_tensor(f, c, "q", NULL), *k = fx_tensor(f, c, "k", NULL);
    float *v = fx_tensor(f, c, "v", NULL), *want = fx_tensor(f, c, "out", NULL);
    size_t len = (size_t)n * nh * hd;
    float *out = malloc(len * sizeof(float));
    for (size_t ki = 0; ki <= sizeof(kernels) / sizeof(kernels[0]); ki++) {
        const char *kname = "k_attention_forward";
        if (ki == 0) {
            k_attention_forward(out, q, k, v, n, pos0, nh, nkv, hd, fx_int(f, c, "window"),
                                fx_int(f, c, "causal"));
        } else {
            kname = kernels[ki - 1].name;
            k_attention_with(kernels[ki - 1].fn, out, q, k, v, n, pos0, nh, nkv, hd,
                             fx_int(f, c, "window"), fx_int(f, c, "causal"));
        }
        int bad = 0;
        for (size_t i = 0; i < len; i++)
            bad += !(fabs(out[i] - want[i]) <= 1e-5 * (1 + fabs(want[i])));
        CHECKF(bad == 0, "%s via %s: %d of %zu outputs off", c, kname, bad, len);
    }
    free(q);
    free(k);
    free(v);
    free(want);
    free(out);
}

static void test_incremental(int window)
{
    enum { N = 70, NH = 8, NKV = 2, HD = 32 };
    size_t qn = (size_t)N * NH * HD, kvn = (size_t)N * NKV * HD;
    float *q = malloc(qn * sizeof(float)), *k = malloc(kvn * sizeof(float));
    float *v = malloc(kvn * sizeof(float));
    float *all = malloc(qn * sizeof(float)), *step = malloc(qn * sizeof(float));
    for (size_t i = 0; i < qn; i++)
        q[i] = sinf((float)i * 0.37f) * 2.0f;
    for (size_t i = 0; i < kvn; i++) {
        k[i] = cosf((float)i * 0.11f) * 2.0f;
        v[i] = sinf((float)i * 0.23f + 1.0f);
    }
    k_attention_forward(all, q, k, v, N, 0, NH, NKV, HD, window, 1);
    /* the cache grows one row per step: token t sees rows 0..t only */
    for (int t = 0; t < N; t++)
        k_attention_forward(step + (size_t)t * NH * HD, q + (size_t)t * NH * HD, k, v, 1, t, NH,
                            NKV, HD, window, 1);
    int bad = 0;
    for (size_t i = 0; i < qn; i++)
        bad += !(fabsf(all[i] - step[i]) <= 1e-6f * (1 + fabsf(all[i])));
    CHECKF(bad == 0, "window %d: %d outputs of the prompt differ from token-by-token", window, bad);
    free(q);
    free(k);
    free(v);
    free(all);
    free(step);
}

/* Head sizes the fixtures do not have (the SIMD kernel specialises 32, 64
 * and 128 and takes any other multiple of 16 generically): every kernel
 * against the portable one, which the fixtures check against PyTorch. */
static void test_kernels_agree(void)
{
    enum { N = 5, POS0 = 70, NH = 4, NKV = 2 };
    const int dims[] = {16, 48, 80, 128};
    for (int di = 0; di < 4; di++) {
        int hd = dims[di];
        size_t qn = (size_t)N * NH * hd, kvn = (size_t)(POS0 + N) * NKV * hd;
        float *q = malloc(qn * sizeof(float)), *k = malloc(kvn * sizeof(float));
        float *v = malloc(kvn * sizeof(float));
        float *want = malloc(qn * sizeof(float)), *got = malloc(qn * sizeof(float));
        for (size_t i = 0; i < qn; i++)
            q[i] = sinf((float)i * 0.71f) * 1.5f;
        for (size_t i = 0; i < kvn; i++) {
            k[i] = cosf((float)i * 0.13f) * 1.5f;
            v[i] = sinf((float)i * 0.29f + 0.5f);
        }
        for (int window = 0; window <= 20; window += 20) {
            k_attention_with(k_attend_scalar, want, q, k, v, N, POS0, NH, NKV, hd, window, 1);
            for (size_t ki = 0; ki < sizeof(kernels) / sizeof(kernels[0]); ki++) {
                k_attention_with(kernels[ki].fn, got, q, k, v, N, POS0, NH, NKV, hd, window, 1);
                int bad = 0;
                for (size_t i = 0; i < qn; i++)
                    bad += !(fabsf(got[i] - want[i]) <= 1e-5f * (1 + fabsf(want[i])));
                CHECKF(bad == 0, "%s, head_dim %d, window %d: %d outputs off", kernels[ki].name, hd,
                       window, bad);
            }
        }
        free(q);
        free(k);
        free(v);
        free(want);
        free(got);
    }
}

int main(void)
{
    struct fx *f = fx_open();
    int cases = 0;
    for (int i = 0; i < fx_case_count(f); i++) {
        const char *name = fx_case_name(f, i);
        if (strncmp(name, "attention_", 10) != 0) continue;
        test_case(f, name);
        cases++;
    }
    CHECKF(cases == 8, "%d attention fixture cases", cases);
    fx_close(f);
    test_kernels_agree();
    test_incremental(0);
    test_incremental(5);
    return check_report("test_kernels_attention");
}
