/* Attention against PyTorch (softmax(q k^T / sqrt(d) + mask) v in float64
 * with repeat_interleave'd KV heads): decode, prefill, chunks after a past,
 * GQA ratios 1, 3 and 4, head_dim 32 and 64, windows shorter and longer
 * than the sequence, more keys than one chunk, and BERT's unmasked case.
 * Every kernel (portable, SIMD) on every case. Then batch invariance: a
 * prompt attended at once gives the same bits as the same prompt fed token
 * by token, as decoding does, and keys kept in scattered pages (the paged KV
 * cache) give the same bits as one matrix. */
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

/* k_attention_with over one matrix of keys and one of values. */
static void with_matrix(k_attend_fn fn, float *out, const float *q, const float *k, const float *v,
                        int n, int pos0, int nh, int nkv, int hd, int window, int causal)
{
    struct k_kv_view kv = {.base = k, .stride = (int64_t)nkv * hd};
    struct k_kv_view vv = {.base = v, .stride = (int64_t)nkv * hd};
    k_attention_with(fn, out, q, &kv, &vv, n, pos0, nh, nkv, hd, window, causal);
}

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
            with_matrix(kernels[ki - 1].fn, out, q, k, v, n, pos0, nh, nkv, hd,
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

/* ---- batch invariance ----
 *
 * A token's attention output must be the same bits whatever other tokens
 * share its call (how many, which task they share with it): n new tokens at
 * pos0 at once, cut into calls of other sizes, and one token at a time
 * against the same KV cache must agree, memcmp-equal. With a sliding window
 * the tokens of a task start at different keys (the case that once moved a
 * row's chunk grid). */

/* k_attention_forward, or k_attention_with one kernel. */
static void attend(int ki, float *out, const float *q, const float *k, const float *v, int n,
                   int pos0, int nh, int nkv, int hd, int window, int causal)
{
    if (ki < 0)
        k_attention_forward(out, q, k, v, n, pos0, nh, nkv, hd, window, causal);
    else
        with_matrix(kernels[ki].fn, out, q, k, v, n, pos0, nh, nkv, hd, window, causal);
}

static float *wave(size_t n, float a, float b, float scale)
{
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        x[i] = sinf((float)i * a + b) * scale;
    return x;
}

/* Tokens pos0..pos0+N-1 of one sequence: all at once, then in calls of
 * `cut` tokens, must equal the tokens one at a time. */
static void check_causal(int ki, int group, int hd, int window, int pos0)
{
    enum { N = 37, NKV = 2 };
    int nh = group * NKV;
    size_t row = (size_t)nh * hd, qn = (size_t)N * row, kvn = (size_t)(pos0 + N) * NKV * hd;
    float *q = wave(qn, 0.37f, 0.0f, 2.0f), *k = wave(kvn, 0.11f, 0.5f, 2.0f);
    float *v = wave(kvn, 0.23f, 1.0f, 1.0f);
    float *one = malloc(qn * sizeof(float)), *got = malloc(qn * sizeof(float));
    for (int t = 0; t < N; t++)
        attend(ki, one + t * row, q + t * row, k, v, 1, pos0 + t, nh, NKV, hd, window, 1);
    const int cuts[] = {N, 2, 3, 5, 16};
    for (int c = 0; c < 5; c++) {
        for (int t0 = 0; t0 < N; t0 += cuts[c]) {
            int n = N - t0 < cuts[c] ? N - t0 : cuts[c];
            attend(ki, got + t0 * row, q + t0 * row, k, v, n, pos0 + t0, nh, NKV, hd, window, 1);
        }
        int bad = 0;
        for (int t = 0; t < N; t++)
            bad += memcmp(got + t * row, one + t * row, row * sizeof(float)) != 0;
        CHECKF(bad == 0,
               "%s, group %d, head_dim %d, window %d, pos0 %d, calls of %d: %d tokens differ "
               "from the token alone",
               ki < 0 ? "k_attention_forward" : kernels[ki].name, group, hd, window, pos0, cuts[c],
               bad);
    }
    free(q);
    free(k);
    free(v);
    free(one);
    free(got);
}

/* Unmasked (BERT): the queries in reverse order give the same rows,
 * reversed. */
static void check_unmasked(int ki, int group, int hd)
{
    enum { N = 29, NKV = 2 };
    int nh = group * NKV;
    size_t row = (size_t)nh * hd, qn = (size_t)N * row, kvn = (size_t)N * NKV * hd;
    float *q = wave(qn, 0.41f, 0.2f, 2.0f), *k = wave(kvn, 0.13f, 0.5f, 2.0f);
    float *v = wave(kvn, 0.29f, 1.0f, 1.0f);
    float *rq = malloc(qn * sizeof(float)), *a = malloc(qn * sizeof(float));
    float *b = malloc(qn * sizeof(float));
    for (int t = 0; t < N; t++)
        memcpy(rq + t * row, q + (N - 1 - t) * row, row * sizeof(float));
    attend(ki, a, q, k, v, N, 0, nh, NKV, hd, 0, 0);
    attend(ki, b, rq, k, v, N, 0, nh, NKV, hd, 0, 0);
    int bad = 0;
    for (int t = 0; t < N; t++)
        bad += memcmp(a + t * row, b + (N - 1 - t) * row, row * sizeof(float)) != 0;
    CHECKF(bad == 0, "%s unmasked, group %d, head_dim %d: %d rows depend on the query order",
           ki < 0 ? "k_attention_forward" : kernels[ki].name, group, hd, bad);
    free(q);
    free(k);
    free(v);
    free(rq);
    free(a);
    free(b);
}

/* Every kernel and the dispatcher, GQA groups 1..8, head sizes 32, 64 and 80
 * (the SIMD kernel's specialised and generic cases), with and without a
 * window (shorter and longer than a chunk), from the start of a sequence
 * and after a past. */
static void test_batch_invariance(void)
{
    const int dims[] = {32, 64, 80}, windows[] = {0, 5, 20, 40}, pos0s[] = {0, 45};
    int nk = (int)(sizeof(kernels) / sizeof(kernels[0]));
    for (int ki = -1; ki < nk; ki++) {
        for (int group = 1; group <= 8; group++) {
            for (int di = 0; di < 3; di++) {
                for (int wi = 0; wi < 4; wi++)
                    for (int pi = 0; pi < 2; pi++)
                        check_causal(ki, group, dims[di], windows[wi], pos0s[pi]);
                check_unmasked(ki, group, dims[di]);
            }
        }
    }
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
            with_matrix(k_attend_scalar, want, q, k, v, N, POS0, NH, NKV, hd, window, 1);
            for (size_t ki = 0; ki < sizeof(kernels) / sizeof(kernels[0]); ki++) {
                with_matrix(kernels[ki].fn, got, q, k, v, N, POS0, NH, NKV, hd, window, 1);
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

/* The same keys and values in pages of K_KV_PAGE rows laid out in reverse
 * order (as a paged cache's free list may hand them out): every kernel gives
 * the same bits as over one matrix, for prefill and decode, with windows. */
static void test_paged(void)
{
    enum { N = 37, POS0 = 45, NKV = 2, GROUP = 3, NH = GROUP * NKV };
    const int dims[] = {32, 80}, windows[] = {0, 5, 20};
    int nk = (int)(sizeof(kernels) / sizeof(kernels[0]));
    for (int di = 0; di < 2; di++) {
        int hd = dims[di], len = POS0 + N;
        int n_pages = (len + K_KV_PAGE - 1) / K_KV_PAGE;
        int64_t stride = (int64_t)NKV * hd, page = K_KV_PAGE * stride;
        size_t row = (size_t)NH * hd, qn = (size_t)N * row, kvn = (size_t)len * stride;
        float *q = wave(qn, 0.37f, 0.0f, 2.0f), *k = wave(kvn, 0.11f, 0.5f, 2.0f);
        float *v = wave(kvn, 0.23f, 1.0f, 1.0f);
        float *kp = calloc((size_t)(n_pages * page), sizeof(float));
        float *vp = calloc((size_t)(n_pages * page), sizeof(float));
        const float *kpages[16], *vpages[16];
        REQUIRE(n_pages <= 16, "pages");
        for (int i = 0; i < n_pages; i++) {
            int rows = len - i * K_KV_PAGE < K_KV_PAGE ? len - i * K_KV_PAGE : K_KV_PAGE;
            float *kd = kp + (int64_t)(n_pages - 1 - i) * page;
            float *vd = vp + (int64_t)(n_pages - 1 - i) * page;
            memcpy(kd, k + i * page, (size_t)(rows * stride) * sizeof(float));
            memcpy(vd, v + i * page, (size_t)(rows * stride) * sizeof(float));
            kpages[i] = kd;
            vpages[i] = vd;
        }
        struct k_kv_view kv = {.pages = kpages, .stride = stride};
        struct k_kv_view vv = {.pages = vpages, .stride = stride};
        float *want = malloc(qn * sizeof(float)), *got = malloc(qn * sizeof(float));
        for (int ki = 0; ki < nk; ki++)
            for (int wi = 0; wi < 3; wi++)
                for (int cut = 1; cut <= N; cut += N - 1) {
                    for (int t0 = 0; t0 < N; t0 += cut) {
                        int n = N - t0 < cut ? N - t0 : cut;
                        with_matrix(kernels[ki].fn, want + t0 * row, q + t0 * row, k, v, n,
                                    POS0 + t0, NH, NKV, hd, windows[wi], 1);
                        k_attention_with(kernels[ki].fn, got + t0 * row, q + t0 * row, &kv, &vv, n,
                                         POS0 + t0, NH, NKV, hd, windows[wi], 1);
                    }
                    CHECKF(memcmp(want, got, qn * sizeof(float)) == 0,
                           "%s, head_dim %d, window %d, calls of %d: paged keys give other bits",
                           kernels[ki].name, hd, windows[wi], cut);
                }
        free(q);
        free(k);
        free(v);
        free(kp);
        free(vp);
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
    test_batch_invariance();
    test_paged();
    return check_report("test_kernels_attention");
}
