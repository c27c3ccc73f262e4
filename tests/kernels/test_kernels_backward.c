/* The backward of every training op against central finite differences of
 * a double-precision reference forward written here: for a fixed random R,
 * L(x) = sum(forward(x) * R), and each analytic gradient element is held to
 * (L(x + h) - L(x - h)) / 2h. Also: a token's gradients do not depend on the
 * other tokens of the call or on the thread count (kernels.h), nor a
 * query's attention outputs and dq on the tokens after it; the attention's
 * training forward equals the inference one (head_dim 16 and 64);
 * cross-entropy rows of weight 0 are zero and grad_scale scales only the
 * gradient; LoRA's dW = dy^T x through the GEMM is right (test_kernels_gemm
 * holds the GEMM itself); the dropout masks are train_rng_uniform's draws. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cpu/internal.h"
#include "train_rng.h"

static uint64_t rng = 88172645463325252ULL;

static double uniform(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static float *randf(size_t n, double scale)
{
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(uniform() * scale);
    return x;
}

/* Each analytic gradient element against the central difference of loss
 * in double at x (x[i] moved by +-h). */
static void check_fd(const char *what, float *x, size_t n, const float *grad,
                     double (*loss)(const float *x, void *ctx), void *ctx, double h, double tol)
{
    double worst = 0, scale = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        float keep = x[i];
        x[i] = (float)(keep + h);
        double up = loss(x, ctx);
        x[i] = (float)(keep - h);
        double down = loss(x, ctx);
        double step = (double)(float)(keep + h) - (double)(float)(keep - h);
        x[i] = keep;
        double fd = (up - down) / step, d = fabs(fd - grad[i]);
        scale = fabs(fd) > scale ? fabs(fd) : scale;
        if (d > worst) worst = d, at = i;
    }
    CHECKF(worst <= tol * (scale > 1 ? scale : 1), "%s: element %zu off by %g (largest %g)", what,
           at, worst, scale);
}

/* ---- RMSNorm ---- */
struct norm_ctx {
    int n, dim;
    const float *w, *r;
};

static double norm_loss(const float *x, void *c)
{
    const struct norm_ctx *k = c;
    double l = 0;
    for (int t = 0; t < k->n; t++) {
        double ss = 0;
        for (int i = 0; i < k->dim; i++)
            ss += (double)x[t * k->dim + i] * x[t * k->dim + i];
        double r = 1.0 / sqrt(ss / k->dim + 1e-5);
        for (int i = 0; i < k->dim; i++)
            l += x[t * k->dim + i] * r * k->w[i] * k->r[t * k->dim + i];
    }
    return l;
}

static void rmsnorm(void)
{
    int n = 5, dim = 37;
    float *x = randf((size_t)n * dim, 1.0), *w = randf(dim, 1.0), *r = randf((size_t)n * dim, 1.0);
    float *dx = calloc((size_t)n * dim, sizeof(float));
    k_rmsnorm_backward(dx, r, x, w, n, dim, 1e-5f);
    struct norm_ctx c = {n, dim, w, r};
    check_fd("rmsnorm", x, (size_t)n * dim, dx, norm_loss, &c, 1e-2, 1e-3);
    /* accumulates, and token 3 alone gives the same bits */
    float *again = malloc((size_t)n * dim * sizeof(float)), *one = calloc(dim, sizeof(float));
    for (int i = 0; i < n * dim; i++)
        again[i] = 1.0f;
    k_rmsnorm_backward(again, r, x, w, n, dim, 1e-5f);
    k_rmsnorm_backward(one, r + 3 * dim, x + 3 * dim, w, 1, dim, 1e-5f);
    CHECK(again[0] == 1.0f + dx[0]);
    CHECK(memcmp(one, dx + 3 * dim, dim * sizeof(float)) == 0);
    free(x), free(w), free(r), free(dx), free(again), free(one);
}

/* ---- RoPE ---- */
struct rope_ctx {
    int n, heads, hd;
    const int32_t *pos;
    const float *r;
    enum k_rope_style style;
};

static double rope_loss(const float *x, void *c)
{
    const struct rope_ctx *k = c;
    double l = 0;
    int half = k->hd / 2;
    for (int t = 0; t < k->n; t++)
        for (int h = 0; h < k->heads; h++)
            for (int i = 0; i < half; i++) {
                double f = pow(10000.0, -(double)(2 * i) / k->hd), a = k->pos[t] * f;
                int i0 = k->style == K_ROPE_NEOX ? i : 2 * i;
                int i1 = k->style == K_ROPE_NEOX ? i + half : 2 * i + 1;
                size_t b = ((size_t)t * k->heads + h) * k->hd;
                double x0 = x[b + i0], x1 = x[b + i1];
                l += (x0 * cos(a) - x1 * sin(a)) * k->r[b + i0] +
                     (x1 * cos(a) + x0 * sin(a)) * k->r[b + i1];
            }
    return l;
}

static void rope(void)
{
    int n = 4, heads = 3, hd = 16;
    int32_t pos[4] = {0, 5, 17, 200};
    for (int s = 0; s < 2; s++) {
        enum k_rope_style style = s ? K_ROPE_NORM : K_ROPE_NEOX;
        size_t len = (size_t)n * heads * hd;
        float *x = randf(len, 1.0), *r = randf(len, 1.0), *d = malloc(len * sizeof(float));
        memcpy(d, r, len * sizeof(float));
        k_rope_backward(d, pos, n, heads, hd, 10000.0f, style);
        struct rope_ctx c = {n, heads, hd, pos, r, style};
        check_fd(s ? "rope (norm)" : "rope (neox)", x, len, d, rope_loss, &c, 1e-2, 1e-3);
        free(x), free(r), free(d);
    }
}

/* ---- SwiGLU ---- */
struct swiglu_ctx {
    size_t n;
    const float *up, *r;
};

static double swiglu_loss(const float *g, void *c)
{
    const struct swiglu_ctx *k = c;
    double l = 0;
    for (size_t i = 0; i < k->n; i++)
        l += g[i] / (1.0 + exp(-(double)g[i])) * k->up[i] * k->r[i];
    return l;
}

static double swiglu_loss_up(const float *up, void *c)
{
    const struct swiglu_ctx *k = c;
    struct swiglu_ctx other = {k->n, up, k->r};
    return swiglu_loss(k->up, &other);
}

static void swiglu(void)
{
    size_t n = 45;
    float *g = randf(n, 4.0), *up = randf(n, 1.0), *r = randf(n, 1.0);
    float *dg = malloc(n * sizeof(float)), *du = malloc(n * sizeof(float));
    k_swiglu_backward(dg, du, r, g, up, (int64_t)n);
    struct swiglu_ctx c = {n, up, r};
    check_fd("swiglu (gate)", g, n, dg, swiglu_loss, &c, 1e-2, 1e-3);
    struct swiglu_ctx cu = {n, g, r};
    check_fd("swiglu (up)", up, n, du, swiglu_loss_up, &cu, 1e-2, 1e-3);
    free(g), free(up), free(r), free(dg), free(du);
}

/* ---- attention ---- */
struct att_ctx {
    int n, heads, kvh, hd, window, which; /* which: 0 q, 1 k, 2 v */
    float *q, *k, *v;
    const float *r;
};

static double att_loss(const float *x, void *c)
{
    const struct att_ctx *a = c;
    const float *q = a->which == 0 ? x : a->q, *k = a->which == 1 ? x : a->k;
    const float *v = a->which == 2 ? x : a->v;
    int qw = a->heads * a->hd, kw = a->kvh * a->hd, group = a->heads / a->kvh;
    double l = 0, s[64];
    for (int h = 0; h < a->heads; h++)
        for (int t = 0; t < a->n; t++) {
            int p0 = a->window > 0 && t - a->window + 1 > 0 ? t - a->window + 1 : 0;
            double mx = -INFINITY, sum = 0;
            for (int p = p0; p <= t; p++) {
                double d = 0;
                for (int i = 0; i < a->hd; i++)
                    d += (double)q[t * qw + h * a->hd + i] * k[p * kw + (h / group) * a->hd + i];
                s[p] = d / sqrt((double)a->hd);
                mx = s[p] > mx ? s[p] : mx;
            }
            for (int p = p0; p <= t; p++)
                sum += (s[p] = exp(s[p] - mx));
            for (int i = 0; i < a->hd; i++) {
                double o = 0;
                for (int p = p0; p <= t; p++)
                    o += s[p] / sum * v[p * kw + (h / group) * a->hd + i];
                l += o * a->r[t * qw + h * a->hd + i];
            }
        }
    return l;
}

/* One sequence's attention: training forward vs inference, each gradient
 * against finite differences, the same bits on 1 thread as on 2, and a
 * query's outputs and dq the same bits in a prefix of the sequence (what it
 * reads, keys at or before it, is the same there). */
static void attention(int n, int heads, int kvh, int hd, int window)
{
    size_t qn = (size_t)n * heads * hd, kn = (size_t)n * kvh * hd;
    float *q = randf(qn, 1.0), *k = randf(kn, 1.0), *v = randf(kn, 1.0), *r = randf(qn, 1.0);
    float *out = malloc(qn * sizeof(float)), *lse = malloc((size_t)heads * n * sizeof(float));
    float *dq = malloc(qn * sizeof(float)), *dk = malloc(kn * sizeof(float));
    float *dv = malloc(kn * sizeof(float));
    float *scratch = malloc(k_attention_backward_scratch(n, heads, kvh, hd) * sizeof(float));
    k_attention_train_forward(out, lse, q, k, v, n, heads, kvh, hd, window);
    /* the inference kernel on the same sequence */
    float *ref = malloc(qn * sizeof(float));
    k_attention_forward(ref, q, k, v, n, 0, heads, kvh, hd, window, 1);
    double worst = max_abs_diff(ref, out, qn);
    CHECKF(worst < 1e-5, "training attention vs inference (head_dim %d): %g", hd, worst);
    k_attention_backward(dq, dk, dv, r, out, lse, q, k, v, n, heads, kvh, hd, window, scratch);
    struct att_ctx c = {n, heads, kvh, hd, window, 0, q, k, v, r};
    check_fd("attention dq", q, qn, dq, att_loss, &c, 1e-2, 2e-3);
    c.which = 1;
    check_fd("attention dk", k, kn, dk, att_loss, &c, 1e-2, 2e-3);
    c.which = 2;
    check_fd("attention dv", v, kn, dv, att_loss, &c, 1e-2, 2e-3);
    /* the same bits on 1 thread as on 2 */
    float *out1 = malloc(qn * sizeof(float)), *lse1 = malloc((size_t)heads * n * sizeof(float));
    float *dq1 = malloc(qn * sizeof(float)), *dk1 = malloc(kn * sizeof(float));
    float *dv1 = malloc(kn * sizeof(float));
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    k_attention_train_forward(out1, lse1, q, k, v, n, heads, kvh, hd, window);
    k_attention_backward(dq1, dk1, dv1, r, out, lse, q, k, v, n, heads, kvh, hd, window, scratch);
    omp_set_num_threads(threads > 1 ? threads : 2);
    k_attention_backward(dq, dk, dv, r, out, lse, q, k, v, n, heads, kvh, hd, window, scratch);
    omp_set_num_threads(threads);
    CHECK(!memcmp(out, out1, qn * sizeof(float)) &&
          !memcmp(lse, lse1, (size_t)heads * n * sizeof(float)));
    CHECK(!memcmp(dq, dq1, qn * sizeof(float)) && !memcmp(dk, dk1, kn * sizeof(float)) &&
          !memcmp(dv, dv1, kn * sizeof(float)));
    /* the first m tokens alone (q, k, v, dout: the leading rows; lse: [heads, m]) */
    int m = n / 2 + 1;
    size_t qm = (size_t)m * heads * hd;
    k_attention_train_forward(out1, lse1, q, k, v, m, heads, kvh, hd, window);
    k_attention_backward(dq1, dk1, dv1, r, out1, lse1, q, k, v, m, heads, kvh, hd, window, scratch);
    int same_lse = 1;
    for (int h = 0; h < heads; h++)
        same_lse &= !memcmp(lse + (size_t)h * n, lse1 + (size_t)h * m, m * sizeof(float));
    CHECK(same_lse && !memcmp(out, out1, qm * sizeof(float)));
    CHECK(!memcmp(dq, dq1, qm * sizeof(float)));
    free(q), free(k), free(v), free(r), free(out), free(lse), free(dq), free(dk), free(dv);
    free(scratch), free(ref), free(out1), free(lse1), free(dq1), free(dk1), free(dv1);
}

/* ---- cross-entropy ---- */
struct ce_ctx {
    int n, vocab;
    const int32_t *target;
    const float *w;
};

static double ce_loss(const float *x, void *c)
{
    const struct ce_ctx *k = c;
    double l = 0;
    for (int t = 0; t < k->n; t++) {
        double mx = -INFINITY, s = 0;
        for (int i = 0; i < k->vocab; i++)
            mx = fmax(mx, x[t * k->vocab + i]);
        for (int i = 0; i < k->vocab; i++)
            s += exp(x[t * k->vocab + i] - mx);
        l += k->w[t] * (mx + log(s) - x[t * k->vocab + k->target[t]]);
    }
    return l;
}

static void cross_entropy(void)
{
    int n = 3, vocab = 29;
    int32_t target[3] = {4, 28, 0};
    float w[3] = {1.5f, 0.0f, 0.5f}, loss[3], scaled_loss[3];
    size_t len = (size_t)n * vocab;
    float *x = randf(len, 3.0), *g = malloc(len * sizeof(float));
    float *scaled = malloc(len * sizeof(float));
    memcpy(g, x, len * sizeof(float));
    k_cross_entropy_backward(g, loss, target, w, n, vocab, 1.0f);
    struct ce_ctx c = {n, vocab, target, w};
    check_fd("cross-entropy", x, len, g, ce_loss, &c, 1e-2, 1e-3);
    int zero = 1;
    for (int i = 0; i < vocab; i++)
        zero &= g[vocab + i] == 0.0f;
    CHECK(zero && loss[1] == 0.0f);
    CHECK(fabs(loss[0] + loss[2] - ce_loss(x, &c)) < 1e-4);
    /* grad_scale (a power of two here, so exactly) scales the gradient, not the loss */
    memcpy(scaled, x, len * sizeof(float));
    k_cross_entropy_backward(scaled, scaled_loss, target, w, n, vocab, 0.25f);
    int quarter = 1;
    for (size_t i = 0; i < len; i++)
        quarter &= scaled[i] == 0.25f * g[i];
    CHECK(quarter && !memcmp(loss, scaled_loss, sizeof(loss)));
    free(x), free(g), free(scaled);
}

/* ---- batch and thread-count invariance of the row ops ----
 * At sizes past K_PARALLEL_MIN_WORK, so that 2 threads do split the rows:
 * every token's result the same bits on 1 thread as on 2, and alone. */
static void row_ops_invariance(void)
{
    int n = 64, dim = 577, heads = 9, hd = 64, vocab = 4099, ce_n = 9, t = 37;
    size_t len = (size_t)n * dim, rlen = (size_t)n * heads * hd, clen = (size_t)ce_n * vocab;
    float *x = randf(len, 1.0), *w = randf(dim, 1.0), *dy = randf(len, 1.0);
    float *rot = randf(rlen, 1.0), *gate = randf(rlen, 4.0), *up = randf(rlen, 1.0);
    float *logits = randf(clen, 3.0), *cw = randf(ce_n, 1.0);
    int32_t *pos = malloc(n * sizeof(int32_t)), target[9];
    for (int i = 0; i < n; i++)
        pos[i] = 3 * i + 1;
    for (int i = 0; i < ce_n; i++)
        target[i] = (int32_t)(i * 977 % vocab);
    cw[4] = 0.0f;
    int threads = omp_get_max_threads();
    /* [0]: 1 thread, [1]: 2 threads; each output set in turn */
    float *dx[2], *drot[2], *dg[2], *du[2], *ce[2], cl[2][9];
    for (int run = 0; run < 2; run++) {
        omp_set_num_threads(run + 1);
        dx[run] = calloc(len, sizeof(float));
        k_rmsnorm_backward(dx[run], dy, x, w, n, dim, 1e-5f);
        drot[run] = malloc(rlen * sizeof(float));
        memcpy(drot[run], rot, rlen * sizeof(float));
        k_rope_backward(drot[run], pos, n, heads, hd, 10000.0f, K_ROPE_NEOX);
        dg[run] = malloc(rlen * sizeof(float)), du[run] = malloc(rlen * sizeof(float));
        k_swiglu_backward(dg[run], du[run], rot, gate, up, (int64_t)rlen);
        ce[run] = malloc(clen * sizeof(float));
        memcpy(ce[run], logits, clen * sizeof(float));
        k_cross_entropy_backward(ce[run], cl[run], target, cw, ce_n, vocab, 0.5f);
    }
    omp_set_num_threads(threads);
    CHECK(!memcmp(dx[0], dx[1], len * sizeof(float)));
    CHECK(!memcmp(drot[0], drot[1], rlen * sizeof(float)));
    CHECK(!memcmp(dg[0], dg[1], rlen * sizeof(float)) &&
          !memcmp(du[0], du[1], rlen * sizeof(float)));
    CHECK(!memcmp(ce[0], ce[1], clen * sizeof(float)) && !memcmp(cl[0], cl[1], sizeof(cl[0])));
    /* token t alone (row 3 for cross-entropy) */
    float *one = calloc(dim, sizeof(float)), *one_rot = malloc((size_t)heads * hd * sizeof(float));
    float *one_ce = malloc(vocab * sizeof(float)), one_loss;
    k_rmsnorm_backward(one, dy + (size_t)t * dim, x + (size_t)t * dim, w, 1, dim, 1e-5f);
    memcpy(one_rot, rot + (size_t)t * heads * hd, (size_t)heads * hd * sizeof(float));
    k_rope_backward(one_rot, pos + t, 1, heads, hd, 10000.0f, K_ROPE_NEOX);
    memcpy(one_ce, logits + (size_t)3 * vocab, vocab * sizeof(float));
    k_cross_entropy_backward(one_ce, &one_loss, target + 3, cw + 3, 1, vocab, 0.5f);
    CHECK(!memcmp(one, dx[1] + (size_t)t * dim, dim * sizeof(float)));
    CHECK(!memcmp(one_rot, drot[1] + (size_t)t * heads * hd, (size_t)heads * hd * sizeof(float)));
    CHECK(!memcmp(one_ce, ce[1] + (size_t)3 * vocab, vocab * sizeof(float)) &&
          one_loss == cl[1][3]);
    for (int run = 0; run < 2; run++)
        free(dx[run]), free(drot[run]), free(dg[run]), free(du[run]), free(ce[run]);
    free(x), free(w), free(dy), free(rot), free(gate), free(up), free(logits), free(cw), free(pos);
    free(one), free(one_rot), free(one_ce);
}

/* ---- LoRA's weight gradient dW = dy^T x through the GEMM ---- */
static void weight_gradient(void)
{
    /* dW[r, c] = sum_t dy[t, r] x[t, c]: dy read as the transpose of dW's
     * left factor, as linear_bwd does */
    int n = 7, out = 5, in = 13;
    float *dy = randf((size_t)n * out, 1.0), *x = randf((size_t)n * in, 1.0);
    float *dw = malloc((size_t)out * in * sizeof(float));
    k_gemm_f32_xt(dw, dy, out, out, n, x, in, in, 1.0f, 0);
    double worst = 0;
    for (int r = 0; r < out; r++)
        for (int c = 0; c < in; c++) {
            double s = 0;
            for (int t = 0; t < n; t++)
                s += (double)dy[t * out + r] * x[t * in + c];
            worst = fmax(worst, fabs(s - dw[r * in + c]));
        }
    CHECKF(worst < 1e-5, "dW through the GEMM off by %g", worst);
    free(dy), free(x), free(dw);
}

/* ---- dropout masks: the SIMD draw against train_rng_uniform itself ---- */
static void dropout_masks(void)
{
    float ps[] = {0.1f, 0.5f, 0.999f};
    int64_t counts[] = {0, 1, 31, 32, 33, 100, 1000};
    int64_t offsets[] = {0, 5, 31, 64};
    for (size_t a = 0; a < sizeof(ps) / sizeof(ps[0]); a++)
        for (size_t b = 0; b < sizeof(counts) / sizeof(counts[0]); b++)
            for (size_t c = 0; c < sizeof(offsets) / sizeof(offsets[0]); c++) {
                int64_t n = counts[b], at = offsets[c], words = (at + n + 31) / 32 + 1;
                uint32_t *got = calloc((size_t)words, 4), *ref = calloc((size_t)words, 4);
                /* a bit set before the run must survive: the mask is ORed in */
                got[0] |= 1u, ref[0] |= 1u;
                k_dropout_mask(got, at, n, 77, 13, 1000 + (uint64_t)at, ps[a]);
                for (int64_t i = 0; i < n; i++)
                    if (train_rng_uniform(77, 13, 1000 + (uint64_t)at + (uint64_t)i) >= ps[a])
                        ref[(at + i) / 32] |= 1u << ((at + i) % 32);
                CHECKF(!memcmp(got, ref, (size_t)words * 4),
                       "dropout mask p %g, %lld elements at bit %lld", (double)ps[a], (long long)n,
                       (long long)at);
                memset(got, 0, (size_t)words * 4);
                k_dropout_mask_portable(got, at, n, 77, 13, 1000 + (uint64_t)at, ps[a]);
                got[0] |= 1u;
                CHECK(!memcmp(got, ref, (size_t)words * 4));
                free(got), free(ref);
            }
    /* about 1 - p kept */
    int64_t n = 100000;
    uint32_t *bits = calloc((size_t)(n + 31) / 32, 4);
    k_dropout_mask(bits, 0, n, 5, 3, 0, 0.1f);
    int64_t kept = 0;
    for (int64_t i = 0; i < n; i++)
        kept += bits[i / 32] >> (i % 32) & 1u;
    CHECKF(fabs((double)kept / (double)n - 0.9) < 0.01, "kept %lld of %lld", (long long)kept,
           (long long)n);
    /* apply and accumulate, in the SIMD part (20 elements: two vectors of 8
     * and a tail): dropped elements 0, and untouched (a -0 stays -0) */
    enum { N = 20 };
    float x[N], out[N], dx[N], keep = 1.25f;
    uint32_t m = 0xA5C3Fu;
    for (int i = 0; i < N; i++)
        x[i] = (float)(i - 7) * 0.375f, dx[i] = i % 3 ? -0.0f : (float)i;
    k_dropout_apply(out, x, &m, N, keep);
    k_dropout_accumulate(dx, x, &m, N, keep);
    int ok_apply = 1, ok_acc = 1;
    for (int i = 0; i < N; i++) {
        int k = (int)(m >> i & 1u);
        float want = k ? x[i] * keep : 0.0f, d0 = i % 3 ? -0.0f : (float)i;
        float want_dx = k ? d0 + x[i] * keep : d0;
        ok_apply &= !memcmp(&out[i], &want, sizeof(float));
        ok_acc &= !memcmp(&dx[i], &want_dx, sizeof(float));
    }
    CHECK(ok_apply);
    CHECK(ok_acc);
    free(bits);
}

/* ---- the AVX2 exp of the attention's softmax: k_exp_lane's bits ---- */
static void exp_lanes(void)
{
#ifdef K_HAVE_AVX2
    float x[8 * 4096], got[8];
    int n = 0;
    for (int i = 0; i < 8 * 4000; i++)
        x[n++] = -100.0f + 200.0f * (float)i / (8 * 4000);
    /* no NaN: k_exp_lane converts floor(NaN) to an integer, undefined */
    float edges[] = {88.0f, -88.0f, 87.9999f, -87.9999f, 88.0001f, -88.0001f,
                     0.0f,  -0.0f,  INFINITY, -INFINITY, 1e-30f,   -1e-30f,
                     0.5f,  -0.5f,  3.4e38f,  -3.4e38f};
    for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
        x[n++] = edges[i];
    while (n % 8)
        x[n++] = 1.0f;
    int same = 1;
    for (int i = 0; i < n; i += 8) {
        _mm256_storeu_ps(got, k_exp8(_mm256_loadu_ps(x + i)));
        for (int l = 0; l < 8; l++) {
            float want = k_exp_lane(x[i + l]);
            same &= !memcmp(&want, &got[l], sizeof(float));
        }
    }
    CHECK(same);
#endif
}

int main(void)
{
    rmsnorm();
    rope();
    swiglu();
    attention(11, 4, 2, 16, 5); /* GQA, a window shorter than the sequence */
    attention(10, 4, 2, 64, 3);
    attention(7, 2, 2, 64, 0);   /* no grouping, no window */
    attention(37, 4, 2, 16, 0);  /* several blocks of keys, the last partial */
    attention(40, 3, 1, 32, 20); /* a window that starts inside a block */
    cross_entropy();
    row_ops_invariance();
    weight_gradient();
    dropout_masks();
    exp_lanes();
    return check_report("test_kernels_backward");
}
