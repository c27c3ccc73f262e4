/* The CUDA trainer's ops (kernels_cuda.h, "Training") against the CPU ops
 * of the same names, on random inputs: the f32 GEMM in its four transpose
 * forms, RMSNorm, RoPE (both layouts), SwiGLU and cross-entropy backward,
 * training attention forward and backward (GQA, a sliding window, one
 * token), LoRA dropout's mask (the CPU trainer's hash), the rows and
 * columns the trainer moves. Without a device it prints SKIP. */
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "test_kernels_cuda.h"
#include "train_rng.h"

#define TOL 2e-5

static uint32_t seed = 11;

static float *rnd(size_t n, float scale)
{
    float *x = malloc(n * sizeof(float));
    REQUIRE(x, "out of memory");
    cuda_test_fill(x, n, scale, &seed);
    return x;
}

static float *download(struct kc_ctx *c, const float *dev, size_t n)
{
    float *h = malloc(n * sizeof(float));
    REQUIRE(h, "out of memory");
    dev_to(c, h, dev, n * sizeof(float));
    return h;
}

static void test_gemm(struct kc_ctx *c)
{
    const int m = 37, n = 29, k = 53;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            float *a = rnd((size_t)m * k, 1), *b = rnd((size_t)k * n, 1),
                  *o = rnd((size_t)m * n, 1);
            float *da = dev_from(c, a, (size_t)m * k * 4), *db = dev_from(c, b, (size_t)k * n * 4);
            float *dout = dev_from(c, o, (size_t)m * n * 4);
            KC_OK(kc_gemm_f32(c, ta, tb, m, n, k, 0.5f, da, ta ? m : k, db, tb ? k : n, 2.0f, dout,
                              n, &cuda_err));
            float *got = download(c, dout, (size_t)m * n), *want = malloc((size_t)m * n * 4);
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    double s = 0;
                    for (int l = 0; l < k; l++)
                        s += (double)(ta ? a[l * m + i] : a[i * k + l]) *
                             (tb ? b[j * k + l] : b[l * n + j]);
                    want[i * n + j] = (float)(0.5 * s + 2.0 * o[i * n + j]);
                }
            char what[64];
            snprintf(what, sizeof(what), "gemm trans_a %d trans_b %d", ta, tb);
            cuda_check_close(what, got, want, (size_t)m * n, 1e-5);
            free(a), free(b), free(o), free(got), free(want);
            kc_free(da), kc_free(db), kc_free(dout);
        }
}

static void test_rmsnorm_rope_swiglu(struct kc_ctx *c)
{
    const int n = 7, dim = 300, heads = 3, hd = 64;
    float *x = rnd((size_t)n * dim, 2), *dy = rnd((size_t)n * dim, 1), *w = rnd(dim, 1);
    float *dx = rnd((size_t)n * dim, 1);
    float *dx_dev = dev_from(c, dx, (size_t)n * dim * 4),
          *x_dev = dev_from(c, x, (size_t)n * dim * 4);
    float *dy_dev = dev_from(c, dy, (size_t)n * dim * 4), *w_dev = dev_from(c, w, dim * 4);
    KC_OK(kc_rmsnorm_backward(c, dx_dev, dy_dev, x_dev, w_dev, n, dim, 1e-5f, &cuda_err));
    k_rmsnorm_backward(dx, dy, x, w, n, dim, 1e-5f);
    float *got = download(c, dx_dev, (size_t)n * dim);
    cuda_check_close("rmsnorm backward (accumulating)", got, dx, (size_t)n * dim, TOL);
    free(got);

    int32_t pos[7] = {0, 1, 5, 9, 100, 1000, 4095};
    int32_t *pos_dev = dev_from(c, pos, sizeof(pos));
    for (int style = 0; style < 2; style++) {
        float *r = rnd((size_t)n * heads * hd, 1);
        float *r_dev = dev_from(c, r, (size_t)n * heads * hd * 4);
        KC_OK(kc_rope_backward(c, r_dev, pos_dev, n, heads, hd, 10000.0f, (enum k_rope_style)style,
                               &cuda_err));
        k_rope_backward(r, pos, n, heads, hd, 10000.0f, (enum k_rope_style)style);
        got = download(c, r_dev, (size_t)n * heads * hd);
        cuda_check_close(style ? "rope backward (norm)" : "rope backward (neox)", got, r,
                         (size_t)n * heads * hd, TOL);
        free(got), free(r), kc_free(r_dev);
    }

    const int64_t len = 5000;
    float *gate = rnd(len, 6), *up = rnd(len, 2), *dout = rnd(len, 1);
    float *wg = malloc(len * 4), *wu = malloc(len * 4);
    float *g_dev = dev_from(c, gate, len * 4), *u_dev = dev_from(c, up, len * 4);
    float *o_dev = dev_from(c, dout, len * 4);
    float *dg_dev = kc_alloc(len * 4, &cuda_err), *du_dev = kc_alloc(len * 4, &cuda_err);
    KC_OK(kc_swiglu_backward(c, dg_dev, du_dev, o_dev, g_dev, u_dev, len, &cuda_err));
    k_swiglu_backward(wg, wu, dout, gate, up, len);
    got = download(c, dg_dev, len);
    cuda_check_close("swiglu backward: dgate", got, wg, len, TOL);
    free(got);
    got = download(c, du_dev, len);
    cuda_check_close("swiglu backward: dup", got, wu, len, TOL);
    free(got);
    free(gate), free(up), free(dout), free(wg), free(wu), free(x), free(dy), free(w), free(dx);
    kc_free(g_dev), kc_free(u_dev), kc_free(o_dev), kc_free(dg_dev), kc_free(du_dev);
    kc_free(dx_dev), kc_free(x_dev), kc_free(dy_dev), kc_free(w_dev), kc_free(pos_dev);
}

static void test_cross_entropy(struct kc_ctx *c)
{
    const int n = 5, vocab = 3001;
    float *logits = rnd((size_t)n * vocab, 8);
    int32_t target[5] = {0, 17, 3000, 1500, 2};
    float weight[5] = {1, 0.5f, 0, 2, 1}, loss[5];
    float *l_dev = dev_from(c, logits, (size_t)n * vocab * 4);
    int32_t *t_dev = dev_from(c, target, sizeof(target));
    float *w_dev = dev_from(c, weight, sizeof(weight)),
          *loss_dev = kc_alloc(sizeof(loss), &cuda_err);
    KC_OK(kc_cross_entropy_backward(c, l_dev, loss_dev, t_dev, w_dev, n, vocab, 0.25f, &cuda_err));
    k_cross_entropy_backward(logits, loss, target, weight, n, vocab, 0.25f);
    float *got = download(c, l_dev, (size_t)n * vocab), *gl = download(c, loss_dev, n);
    cuda_check_close("cross-entropy gradient", got, logits, (size_t)n * vocab, TOL);
    cuda_check_close("cross-entropy loss", gl, loss, n, 1e-6);
    free(got), free(gl), free(logits);
    kc_free(l_dev), kc_free(t_dev), kc_free(w_dev), kc_free(loss_dev);
}

static void test_attention(struct kc_ctx *c, int n, int heads, int kv_heads, int hd, int window)
{
    size_t qn = (size_t)n * heads * hd, kn = (size_t)n * kv_heads * hd;
    float *q = rnd(qn, 1), *k = rnd(kn, 1), *v = rnd(kn, 1), *dout = rnd(qn, 1);
    float *out = malloc(qn * 4), *lse = malloc((size_t)heads * n * 4);
    float *dq = malloc(qn * 4), *dk = malloc(kn * 4), *dv = malloc(kn * 4);
    float *scratch = malloc(k_attention_backward_scratch(n, heads, kv_heads, hd) * sizeof(float));
    k_attention_train_forward(out, lse, q, k, v, n, heads, kv_heads, hd, window);
    k_attention_backward(dq, dk, dv, dout, out, lse, q, k, v, n, heads, kv_heads, hd, window,
                         scratch);
    float *q_d = dev_from(c, q, qn * 4), *k_d = dev_from(c, k, kn * 4),
          *v_d = dev_from(c, v, kn * 4);
    float *do_d = dev_from(c, dout, qn * 4), *o_d = kc_alloc(qn * 4, &cuda_err);
    float *p_d = kc_alloc((size_t)heads * n * n * 4, &cuda_err),
          *s_d = kc_alloc((size_t)n * n * 4, &cuda_err);
    float *dq_d = kc_alloc(qn * 4, &cuda_err), *dk_d = kc_alloc(kn * 4, &cuda_err);
    float *dv_d = kc_alloc(kn * 4, &cuda_err);
    KC_OK(kc_attention_train_forward(c, o_d, p_d, q_d, k_d, v_d, n, heads, kv_heads, hd, window,
                                     &cuda_err));
    KC_OK(kc_attention_backward(c, dq_d, dk_d, dv_d, do_d, p_d, q_d, k_d, v_d, n, heads, kv_heads,
                                hd, s_d, &cuda_err));
    char what[128];
    float *got = download(c, o_d, qn);
    snprintf(what, sizeof(what), "attention n %d heads %d/%d window %d: out", n, heads, kv_heads,
             window);
    cuda_check_close(what, got, out, qn, TOL);
    free(got);
    got = download(c, dq_d, qn);
    snprintf(what, sizeof(what), "attention n %d heads %d/%d window %d: dq", n, heads, kv_heads,
             window);
    cuda_check_close(what, got, dq, qn, TOL);
    free(got);
    got = download(c, dk_d, kn);
    snprintf(what, sizeof(what), "attention n %d heads %d/%d window %d: dk", n, heads, kv_heads,
             window);
    cuda_check_close(what, got, dk, kn, TOL);
    free(got);
    got = download(c, dv_d, kn);
    snprintf(what, sizeof(what), "attention n %d heads %d/%d window %d: dv", n, heads, kv_heads,
             window);
    cuda_check_close(what, got, dv, kn, TOL);
    free(got);
    free(q), free(k), free(v), free(dout), free(out), free(lse), free(dq), free(dk), free(dv);
    free(scratch);
    kc_free(q_d), kc_free(k_d), kc_free(v_d), kc_free(do_d), kc_free(o_d), kc_free(p_d);
    kc_free(s_d), kc_free(dq_d), kc_free(dk_d), kc_free(dv_d);
}

static void test_dropout_rows_columns(struct kc_ctx *c)
{
    const int n = 6, in = 77;
    int32_t pos[6] = {0, 3, 4, 10, 11, 200};
    float *x = rnd((size_t)n * in, 1), *acc = rnd((size_t)n * in, 1);
    float *x_d = dev_from(c, x, (size_t)n * in * 4), *o_d = kc_alloc((size_t)n * in * 4, &cuda_err);
    float *a_d = dev_from(c, acc, (size_t)n * in * 4);
    int32_t *pos_d = dev_from(c, pos, sizeof(pos));
    const float p = 0.3f, keep = 1.0f / (1.0f - p);
    KC_OK(kc_dropout(c, o_d, x_d, pos_d, n, in, 99, 42, p, 0, &cuda_err));
    KC_OK(kc_dropout(c, a_d, x_d, pos_d, n, in, 99, 42, p, 1, &cuda_err));
    float *got = download(c, o_d, (size_t)n * in), *got_acc = download(c, a_d, (size_t)n * in);
    int wrong = 0, dropped = 0;
    for (int t = 0; t < n; t++)
        for (int i = 0; i < in; i++) {
            size_t j = (size_t)t * in + i;
            int drop = train_rng_uniform(99, 42, (uint64_t)pos[t] * in + i) < p;
            float want = drop ? 0.0f : x[j] * keep;
            dropped += drop;
            wrong += got[j] != want || got_acc[j] != acc[j] + want;
        }
    CHECKF(wrong == 0, "dropout: %d elements differ from the CPU trainer's mask", wrong);
    CHECKF(dropped > 0 && dropped < n * in, "dropout: %d of %d dropped", dropped, n * in);
    free(got);

    /* rows: gather, scatter, token rows forward and backward */
    int32_t rows[3] = {5, 0, 3};
    int32_t *rows_d = dev_from(c, rows, sizeof(rows));
    float *g_d = kc_alloc((size_t)3 * in * 4, &cuda_err);
    KC_OK(kc_gather_rows(c, g_d, x_d, rows_d, 3, in, &cuda_err));
    KC_OK(kc_zero(c, o_d, (size_t)n * in * 4, &cuda_err));
    KC_OK(kc_scatter_rows(c, o_d, g_d, rows_d, 3, in, &cuda_err));
    got = download(c, o_d, (size_t)n * in);
    for (int t = 0; t < n; t++) {
        int kept = t == 5 || t == 0 || t == 3;
        for (int i = 0; i < in; i++)
            wrong += got[(size_t)t * in + i] != (kept ? x[(size_t)t * in + i] : 0.0f);
    }
    CHECKF(wrong == 0, "gather then scatter: %d elements wrong", wrong);
    free(got);

    int32_t map[6] = {-1, 1, -1, 0, 1, -1};
    int32_t *map_d = dev_from(c, map, sizeof(map));
    float *tr = rnd((size_t)2 * in, 1), *tr_d = dev_from(c, tr, (size_t)2 * in * 4);
    KC_OK(kc_token_rows_forward(c, x_d, map_d, tr_d, n, in, &cuda_err));
    got = download(c, x_d, (size_t)n * in);
    for (int t = 0; t < n; t++)
        for (int i = 0; i < in; i++)
            wrong += got[(size_t)t * in + i] !=
                     (map[t] >= 0 ? tr[(size_t)map[t] * in + i] : x[(size_t)t * in + i]);
    CHECKF(wrong == 0, "token rows forward: %d elements wrong", wrong);
    KC_OK(kc_token_rows_backward(c, tr_d, a_d, map_d, n, 2, in, &cuda_err));
    float *gr = download(c, tr_d, (size_t)2 * in);
    double worst = 0;
    for (int i = 0; i < in; i++) {
        float w0 = tr[i] + got_acc[3 * in + i];
        float w1 = tr[in + i] + got_acc[in + i] + got_acc[4 * in + i];
        worst = fmax(worst, fmax(fabs(gr[i] - w0), fabs(gr[in + i] - w1)));
    }
    CHECKF(worst <= 1e-6, "token rows backward: off by %g", worst);
    free(got), free(gr), free(tr);

    /* columns of [n, in] logits */
    int32_t ids[2] = {76, 4};
    int32_t *ids_d = dev_from(c, ids, sizeof(ids));
    float *cols = rnd((size_t)n * 2, 1), *cols_d = dev_from(c, cols, (size_t)n * 2 * 4);
    KC_OK(kc_columns_set(c, a_d, cols_d, ids_d, n, 2, in, &cuda_err));
    KC_OK(kc_zero(c, cols_d, (size_t)n * 2 * 4, &cuda_err));
    KC_OK(kc_columns_take(c, cols_d, a_d, ids_d, n, 2, in, 1, &cuda_err));
    float *back = download(c, cols_d, (size_t)n * 2), *zeroed = download(c, a_d, (size_t)n * in);
    for (int t = 0; t < n; t++)
        for (int j = 0; j < 2; j++)
            wrong += back[t * 2 + j] != cols[t * 2 + j] || zeroed[(size_t)t * in + ids[j]] != 0.0f;
    CHECKF(wrong == 0, "columns set, take and zero: %d wrong", wrong);
    free(back), free(zeroed), free(cols), free(x), free(acc), free(got_acc);
    kc_free(x_d), kc_free(o_d), kc_free(a_d), kc_free(pos_d), kc_free(rows_d), kc_free(g_d);
    kc_free(map_d), kc_free(tr_d), kc_free(ids_d), kc_free(cols_d);
}

int main(void)
{
    struct kc_ctx *c = cuda_test_ctx("test_kernels_cuda_train");
    test_gemm(c);
    test_rmsnorm_rope_swiglu(c);
    test_cross_entropy(c);
    test_attention(c, 1, 4, 2, 64, 0);
    test_attention(c, 37, 4, 4, 32, 0);
    test_attention(c, 61, 6, 2, 64, 0);
    test_attention(c, 61, 6, 2, 64, 16);
    test_attention(c, 300, 9, 3, 64, 0);
    test_dropout_rows_columns(c);
    KC_OK(kc_sync(c, &cuda_err));
    kc_ctx_free(c);
    return check_report("test_kernels_cuda_train");
}
