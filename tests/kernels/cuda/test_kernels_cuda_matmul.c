/* The CUDA matmul against the CPU one (itself held to PyTorch by
 * test_kernels_matmul) on random weights of every dtype: each path (the
 * dispatcher's choice, the dot-product kernels, cuBLAS), forward and
 * accumulate, and the fused projections (several matrices over one input,
 * gate and up with SwiGLU) against the unfused kernels and the CPU ops, on
 * shapes with one row, one block, rows that fill no warp
 * evenly, float rows too short or odd for vector loads, and token counts
 * around the dispatch threshold; in the fast numerics and in the invariant
 * ones (where the dispatcher always takes the dot kernels).
 *
 * Batch invariance (the invariant numerics), bit for bit: each token's
 * outputs computed alone (n = 1) against the same token inside batches of
 * 2 to 64 tokens at several offsets, for kc_matmul_forward, accumulate,
 * forward_multi and the fused SwiGLU, on every dtype; and x off 16-byte
 * alignment against aligned x.
 *
 * Tolerances, against a float64 product of the weights as stored:
 *   f32 weights, and f16/bf16 weights on the dot kernels (f32 activations):
 *     1e-5 of sum |x w| (the CPU test's f32 bound);
 *   f16 weights through cuBLAS: plus the activations' rounding to f16,
 *     2^-11 of sum |x w|; bf16 weights: the activations split in two bf16
 *     parts, 2^-16, or in the context's fast mode one bf16, 2^-8;
 *   quantized weights on the dot kernels: the CPU test's bound for the
 *     activations' 8-bit quantization; and against the CPU's own integer
 *     dot products, which quantize the activations identically, 1e-5;
 *   quantized weights through cuBLAS: both operands rounded to bf16,
 *     2^-7 of sum |x w|. */
#include <math.h>
#include <string.h>

#include "cpu/internal.h"
#include "kc_internal.h"
#include "test_kernels_cuda.h"

#define F32_TOL 1e-5

enum path { PATH_DISPATCH, PATH_DOTS, PATH_GEMM };
static const char *const path_names[] = {"dispatch", "dots", "gemm"};

static int is_quant(enum mm_dtype t)
{
    return t == MM_Q8_0 || t == MM_Q4_0 || t == MM_Q4_1;
}

/* Host weights, their device copy, and the reference bounds for x. */
struct mm_case {
    struct k_matrix w;
    struct kc_matrix dw;
    float *wf; /* dequantized [rows, cols] */
    int n;
    float *x;
    double *ref, *mag, *qerr; /* [n, rows] */
};

/* x_in: the activations [n, cols], or NULL for random ones. */
static void make_case_x(struct kc_ctx *c, struct mm_case *mc, enum mm_dtype t, int64_t rows,
                        int64_t cols, int n, const float *x_in, uint32_t *seed)
{
    memset(mc, 0, sizeof(*mc));
    mc->n = n;
    mc->w = (struct k_matrix){.dtype = t, .rows = rows, .cols = cols};
    mc->w.row_bytes = mm_dtype_row_bytes(t, cols);
    float *raw = malloc((size_t)(rows * cols) * sizeof(float));
    /* an offset so that q4_1's minimum is not always about -max */
    cuda_test_fill(raw, (size_t)(rows * cols), 1.0f, seed);
    for (int64_t i = 0; i < rows * cols; i++)
        raw[i] += 0.1f;
    char *data = malloc(mc->w.row_bytes * (size_t)rows);
    mc->wf = malloc((size_t)(rows * cols) * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        mm_quantize_row(t, raw + r * cols, data + r * mc->w.row_bytes, cols);
        mm_dequantize_row(t, data + r * mc->w.row_bytes, mc->wf + r * cols, cols);
    }
    free(raw);
    mc->w.data = data;
    KC_OK(kc_matrix_upload(c, &mc->dw, &mc->w, &cuda_err));

    mc->x = malloc((size_t)(n * cols) * sizeof(float));
    if (x_in)
        memcpy(mc->x, x_in, (size_t)(n * cols) * sizeof(float));
    else
        cuda_test_fill(mc->x, (size_t)(n * cols), 2.0f, seed);
    size_t outs = (size_t)n * (size_t)rows;
    mc->ref = malloc(outs * sizeof(double));
    mc->mag = malloc(outs * sizeof(double));
    mc->qerr = malloc(outs * sizeof(double));
    for (int t0 = 0; t0 < n; t0++) {
        const float *xt = mc->x + t0 * cols;
        for (int64_t r = 0; r < rows; r++) {
            const float *wr = mc->wf + r * cols;
            double ref = 0, mag = 0, qerr = 0;
            for (int64_t b = 0; b < cols; b += MM_QBLOCK) {
                double amax = 0, wabs = 0;
                for (int64_t i = b; i < b + MM_QBLOCK && i < cols; i++) {
                    ref += (double)xt[i] * wr[i];
                    mag += fabs((double)xt[i] * wr[i]);
                    amax = fmax(amax, fabs(xt[i]));
                    wabs += fabs(wr[i]);
                }
                qerr += amax / 127.0 / 2.0 * wabs;
            }
            mc->ref[t0 * rows + r] = ref;
            mc->mag[t0 * rows + r] = mag;
            mc->qerr[t0 * rows + r] = qerr;
        }
    }
}

static void make_case(struct kc_ctx *c, struct mm_case *mc, enum mm_dtype t, int64_t rows,
                      int64_t cols, int n, uint32_t *seed)
{
    make_case_x(c, mc, t, rows, cols, n, NULL, seed);
}

static void free_case(struct mm_case *mc)
{
    kc_matrix_free(&mc->dw);
    free((void *)mc->w.data);
    free(mc->wf);
    free(mc->x);
    free(mc->ref);
    free(mc->mag);
    free(mc->qerr);
}

/* The context's numerics, which the tolerance follows (bf16 GEMMs on one
 * bf16 of the activations in KC_NUMERICS_FAST_BF16). */
static enum kc_numerics numerics;

/* The tolerance of output i of a path (see the top of the file). */
static double tolerance(const struct mm_case *mc, int64_t i, int gemm, double want)
{
    enum mm_dtype t = mc->w.dtype;
    double tol = F32_TOL * (mc->mag[i] + fabs(want)) + 1e-6;
    if (gemm && t == MM_F16) tol += 0x1p-11 * mc->mag[i];
    if (gemm && t == MM_BF16)
        tol += (numerics == KC_NUMERICS_FAST_BF16 ? 0x1p-8 : 0x1p-16) * mc->mag[i];
    if (gemm && is_quant(t)) tol += 0x1p-7 * mc->mag[i];
    if (!gemm && is_quant(t)) tol += 1.01 * mc->qerr[i];
    return tol;
}

static int run_path(struct kc_ctx *c, enum path p, float *out, const float *x,
                    const struct kc_matrix *w, int n, float alpha, int accumulate)
{
    switch (p) {
    case PATH_DOTS:
        return kc_matmul_dots(c, out, x, w, n, alpha, accumulate, &cuda_err);
    case PATH_GEMM:
        return kc_matmul_gemm(c, out, x, w, n, alpha, accumulate, &cuda_err);
    default:
        return accumulate ? kc_matmul_accumulate(c, out, x, w, n, alpha, &cuda_err)
                          : kc_matmul_forward(c, out, x, w, n, &cuda_err);
    }
}

static void test_shape(struct kc_ctx *c, enum mm_dtype t, int64_t rows, int64_t cols, int n,
                       uint32_t *seed)
{
    struct mm_case mc;
    make_case(c, &mc, t, rows, cols, n, seed);
    size_t outs = (size_t)n * (size_t)rows;
    float *out = malloc(outs * sizeof(float)), *out0 = malloc(outs * sizeof(float));
    for (size_t i = 0; i < outs; i++)
        out0[i] = (float)((int)(i % 7) - 3) * 0.25f;
    float *dx = dev_from(c, mc.x, (size_t)(n * cols) * sizeof(float));
    float *dout = dev_from(c, out0, outs * sizeof(float));

    for (int p = PATH_DISPATCH; p <= PATH_GEMM; p++) {
        int gemm = p == PATH_GEMM || (p == PATH_DISPATCH && !kc_matmul_uses_dots(c, t, n));
        for (int accumulate = 0; accumulate <= 1; accumulate++) {
            float alpha = accumulate ? -0.5f : 1.0f;
            KC_OK(kc_upload(c, dout, out0, outs * sizeof(float), &cuda_err));
            KC_OK(run_path(c, (enum path)p, dout, dx, &mc.dw, n, alpha, accumulate));
            dev_to(c, out, dout, outs * sizeof(float));
            int bad = 0;
            double worst = 0;
            for (size_t i = 0; i < outs; i++) {
                double want = (accumulate ? out0[i] : 0.0) + alpha * mc.ref[i];
                double tol = fabs(alpha) * tolerance(&mc, (int64_t)i, gemm, mc.ref[i]) +
                             (accumulate ? 1e-6 : 0.0);
                double e = fabs(out[i] - want);
                bad += !(e <= tol);
                worst = e / tol > worst ? e / tol : worst;
            }
            CHECKF(bad == 0, "%s %lld x %lld, %d tokens, %s%s: %d of %zu off (worst %.2f x tol)",
                   mm_dtype_name(t), (long long)rows, (long long)cols, n, path_names[p],
                   accumulate ? " accumulate" : "", bad, outs, worst);
        }
    }

    /* the quantized dot kernels quantize the activations as the CPU does:
     * then only f32 summation order separates them from its integer dots */
    if (is_quant(t)) {
        float *cpu = malloc(outs * sizeof(float));
        REQUIRE(k_matmul_qdots(cpu, mc.x, &mc.w, n, 1.0f, 0, &k_qdot_scalar) == 0, "qdots");
        KC_OK(kc_matmul_dots(c, dout, dx, &mc.dw, n, 1.0f, 0, &cuda_err));
        dev_to(c, out, dout, outs * sizeof(float));
        int bad = 0;
        for (size_t i = 0; i < outs; i++)
            bad += !(fabs(out[i] - cpu[i]) <= F32_TOL * (mc.mag[i] + fabs(cpu[i])) + 1e-6);
        CHECKF(bad == 0, "%s %lld x %lld, %d tokens: %d outputs differ from the CPU's integer dots",
               mm_dtype_name(t), (long long)rows, (long long)cols, n, bad);
        free(cpu);
    }

    /* and the dispatcher against the CPU op itself */
    float *cpu = malloc(outs * sizeof(float));
    k_matmul_forward(cpu, mc.x, &mc.w, n);
    KC_OK(kc_matmul_forward(c, dout, dx, &mc.dw, n, &cuda_err));
    dev_to(c, out, dout, outs * sizeof(float));
    int bad = 0;
    for (size_t i = 0; i < outs; i++) {
        /* both within their bound of the float64 product */
        double tol = tolerance(&mc, (int64_t)i, !kc_matmul_uses_dots(c, t, n), mc.ref[i]) +
                     tolerance(&mc, (int64_t)i, 0, mc.ref[i]);
        bad += !(fabs(out[i] - cpu[i]) <= tol);
    }
    CHECKF(bad == 0, "%s %lld x %lld, %d tokens: %d outputs differ from k_matmul_forward",
           mm_dtype_name(t), (long long)rows, (long long)cols, n, bad);
    free(cpu);

    kc_free(dx);
    kc_free(dout);
    free(out);
    free(out0);
    free_case(&mc);
}

/* A misaligned activation pointer takes the element-wise loads. */
static void test_unaligned_x(struct kc_ctx *c, uint32_t *seed)
{
    struct mm_case mc;
    make_case(c, &mc, MM_BF16, 40, 64, 2, seed);
    float *dx = kc_alloc((size_t)(2 * 64 + 1) * sizeof(float), &cuda_err);
    float *dout = kc_alloc(2 * 40 * sizeof(float), &cuda_err);
    REQUIRE(dx && dout, "%s", cuda_err.msg);
    KC_OK(kc_upload(c, dx + 1, mc.x, 2 * 64 * sizeof(float), &cuda_err));
    KC_OK(kc_matmul_dots(c, dout, dx + 1, &mc.dw, 2, 1.0f, 0, &cuda_err));
    float out[80];
    dev_to(c, out, dout, sizeof(out));
    int bad = 0;
    for (int i = 0; i < 80; i++)
        bad += !(fabs(out[i] - mc.ref[i]) <= tolerance(&mc, i, 0, mc.ref[i]));
    CHECKF(bad == 0, "bf16 dots with x off 16-byte alignment: %d outputs off", bad);
    kc_free(dx);
    kc_free(dout);
    free_case(&mc);
}

/* Outputs that differ in any bit; the fused kernels promise the unfused
 * ones' results (each row summed in the same order, same epilogue). */
static int bits_differ(const float *a, const float *b, size_t n)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += memcmp(&a[i], &b[i], sizeof(float)) != 0;
    return bad;
}

/* kc_matmul_forward_multi over `count` matrices of rows[] rows sharing x:
 * against kc_matmul_forward of each bit for bit, and against the CPU op
 * (k_matmul_forward) within the dispatcher test's bounds (f32 summation
 * order only where the dot kernels run). Not fusable shapes (float weights
 * past one token, quantized past KC_DOTS_MAX_TOKENS) take the fallback. */
static void test_multi(struct kc_ctx *c, enum mm_dtype t, const int64_t *rows, int count,
                       int64_t cols, int n, uint32_t *seed)
{
    struct mm_case mc[KC_MULTI_MAX];
    const struct kc_matrix *dw[KC_MULTI_MAX];
    float *dout[KC_MULTI_MAX], *dsep[KC_MULTI_MAX];
    for (int m = 0; m < count; m++) {
        make_case_x(c, &mc[m], t, rows[m], cols, n, m ? mc[0].x : NULL, seed);
        dw[m] = &mc[m].dw;
        size_t bytes = (size_t)n * (size_t)rows[m] * sizeof(float);
        dout[m] = kc_alloc(bytes, &cuda_err);
        dsep[m] = kc_alloc(bytes, &cuda_err);
        REQUIRE(dout[m] && dsep[m], "%s", cuda_err.msg);
    }
    int fused = kc_matmul_fusable(c, dw, count, n);
    CHECKF(fused == kc_matmul_uses_dots(c, t, n), "%s, %d tokens: fusable %d, dots %d",
           mm_dtype_name(t), n, fused, kc_matmul_uses_dots(c, t, n));
    float *dx = dev_from(c, mc[0].x, (size_t)(n * cols) * sizeof(float));
    KC_OK(kc_matmul_forward_multi(c, dout, dx, dw, count, n, &cuda_err));
    for (int m = 0; m < count; m++)
        KC_OK(kc_matmul_forward(c, dsep[m], dx, dw[m], n, &cuda_err));
    for (int m = 0; m < count; m++) {
        size_t outs = (size_t)n * (size_t)rows[m];
        float *got = malloc(outs * sizeof(float)), *sep = malloc(outs * sizeof(float));
        float *cpu = malloc(outs * sizeof(float));
        dev_to(c, got, dout[m], outs * sizeof(float));
        dev_to(c, sep, dsep[m], outs * sizeof(float));
        k_matmul_forward(cpu, mc[m].x, &mc[m].w, n);
        int bad = 0;
        for (size_t i = 0; i < outs; i++) {
            double tol = fused ? F32_TOL * (mc[m].mag[i] + fabs(cpu[i])) + 1e-6
                               : tolerance(&mc[m], (int64_t)i, 1, mc[m].ref[i]) +
                                     tolerance(&mc[m], (int64_t)i, 0, mc[m].ref[i]);
            bad += !(fabs(got[i] - cpu[i]) <= tol);
        }
        CHECKF(bad == 0,
               "multi %s matrix %d of %d (%lld x %lld), %d tokens: %d of %zu off the CPU's",
               mm_dtype_name(t), m, count, (long long)rows[m], (long long)cols, n, bad, outs);
        bad = bits_differ(got, sep, outs);
        CHECKF(bad == 0,
               "multi %s matrix %d of %d (%lld x %lld), %d tokens: %d of %zu differ from "
               "kc_matmul_forward's",
               mm_dtype_name(t), m, count, (long long)rows[m], (long long)cols, n, bad, outs);
        free(got);
        free(sep);
        free(cpu);
    }
    kc_free(dx);
    for (int m = 0; m < count; m++) {
        kc_free(dout[m]);
        kc_free(dsep[m]);
        free_case(&mc[m]);
    }
}

/* kc_matmul_swiglu_forward against kc_matmul_forward of gate and up then
 * kc_swiglu_forward, bit for bit, and against the CPU ops (k_matmul_forward,
 * k_swiglu_forward): silu(g) u moves by at most about 1.1 |u| e_g +
 * |silu(g)| e_u for errors e_g, e_u of the products (silu' is within
 * [-0.1, 1.1]), plus f32 rounding. Shapes it does not take are refused. */
static void test_swiglu(struct kc_ctx *c, enum mm_dtype t, int64_t rows, int64_t cols, int n,
                        uint32_t *seed)
{
    struct mm_case g, u;
    make_case(c, &g, t, rows, cols, n, seed);
    make_case_x(c, &u, t, rows, cols, n, g.x, seed);
    size_t outs = (size_t)n * (size_t)rows, bytes = outs * sizeof(float);
    float *dx = dev_from(c, g.x, (size_t)(n * cols) * sizeof(float));
    float *dout = kc_alloc(bytes, &cuda_err), *dg = kc_alloc(bytes, &cuda_err);
    float *du = kc_alloc(bytes, &cuda_err);
    REQUIRE(dout && dg && du, "%s", cuda_err.msg);
    if (!kc_matmul_swiglu_supported(c, &g.dw, &u.dw, n)) {
        struct mm_err err = {{0}};
        CHECKF(!kc_matmul_uses_dots(c, t, n), "%s, %d tokens: dots but no fused SwiGLU",
               mm_dtype_name(t), n);
        CHECKF(kc_matmul_swiglu_forward(c, dout, dx, &g.dw, &u.dw, n, &err) == -1 &&
                   strstr(err.msg, "no fused kernel"),
               "%s, %d tokens: not refused (\"%s\")", mm_dtype_name(t), n, err.msg);
    } else {
        KC_OK(kc_matmul_swiglu_forward(c, dout, dx, &g.dw, &u.dw, n, &cuda_err));
        KC_OK(kc_matmul_forward(c, dg, dx, &g.dw, n, &cuda_err));
        KC_OK(kc_matmul_forward(c, du, dx, &u.dw, n, &cuda_err));
        KC_OK(kc_swiglu_forward(c, dg, dg, du, (int64_t)outs, &cuda_err));
        float *got = malloc(bytes), *sep = malloc(bytes), *cg = malloc(bytes), *cu = malloc(bytes),
              *want = malloc(bytes);
        dev_to(c, got, dout, bytes);
        dev_to(c, sep, dg, bytes);
        k_matmul_forward(cg, g.x, &g.w, n);
        k_matmul_forward(cu, u.x, &u.w, n);
        k_swiglu_forward(want, cg, cu, (int64_t)outs);
        int bad = 0;
        for (size_t i = 0; i < outs; i++) {
            double eg = F32_TOL * (g.mag[i] + fabs(cg[i])) + 1e-6;
            double eu = F32_TOL * (u.mag[i] + fabs(cu[i])) + 1e-6;
            double silu = cg[i] / (1.0 + exp(-(double)cg[i]));
            double tol =
                1.1 * fabs(cu[i]) * eg + fabs(silu) * eu + eg * eu + F32_TOL * fabs(want[i]) + 1e-6;
            bad += !(fabs(got[i] - want[i]) <= tol);
        }
        CHECKF(bad == 0, "swiglu %s %lld x %lld, %d tokens: %d of %zu off the CPU's",
               mm_dtype_name(t), (long long)rows, (long long)cols, n, bad, outs);
        bad = bits_differ(got, sep, outs);
        CHECKF(bad == 0,
               "swiglu %s %lld x %lld, %d tokens: %d of %zu differ from the unfused "
               "kernels'",
               mm_dtype_name(t), (long long)rows, (long long)cols, n, bad, outs);
        free(got);
        free(sep);
        free(cg);
        free(cu);
        free(want);
    }
    kc_free(dx);
    kc_free(dout);
    kc_free(dg);
    kc_free(du);
    free_case(&g);
    free_case(&u);
}

/* The fused projections on every dtype: Q/K/V-like row counts that fill
 * no block evenly (and one row each), rows too short or odd for vector
 * loads, token counts around the dispatch thresholds. */
static void test_fused(struct kc_ctx *c, uint32_t *seed)
{
    static const struct {
        int64_t rows[KC_MULTI_MAX], cols;
        int quant_ok;
    } shapes[] = {
        {{64, 17, 33}, 64, 1},
        {{1, 1, 1}, 32, 1},
        {{40, 8, 8}, 576, 1},
        {{9, 31, 5}, 100, 0},
    };
    static const int tokens[] = {1, 2, 8, 9};
    for (int t = 0; t < MM_DTYPE_COUNT; t++) {
        for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
            if (is_quant((enum mm_dtype)t) && !shapes[s].quant_ok) continue;
            for (size_t k = 0; k < sizeof(tokens) / sizeof(tokens[0]); k++) {
                int n = tokens[k];
                for (int count = 1; count <= KC_MULTI_MAX; count++)
                    test_multi(c, (enum mm_dtype)t, shapes[s].rows, count, shapes[s].cols, n, seed);
                test_swiglu(c, (enum mm_dtype)t, shapes[s].rows[0], shapes[s].cols, n, seed);
            }
        }
    }
    /* matrices that do not share a dtype or row length are not fused */
    struct mm_case a, b, d;
    make_case(c, &a, MM_BF16, 8, 64, 1, seed);
    make_case(c, &b, MM_F16, 8, 64, 1, seed);
    make_case(c, &d, MM_BF16, 8, 96, 1, seed);
    const struct kc_matrix *mixed[] = {&a.dw, &b.dw}, *widths[] = {&a.dw, &d.dw};
    CHECK(!kc_matmul_fusable(c, mixed, 2, 1) && !kc_matmul_fusable(c, widths, 2, 1));
    CHECK(!kc_matmul_swiglu_supported(c, &a.dw, &b.dw, 1) &&
          !kc_matmul_swiglu_supported(c, &a.dw, &d.dw, 1));
    free_case(&a);
    free_case(&b);
    free_case(&d);
}

/* Rows of out (n tokens of `rows` floats) that differ in any bit from
 * want's rows first.. first + n - 1. */
static int rows_differ(const float *out, const float *want, int first, int n, int64_t rows)
{
    return bits_differ(out, want + (int64_t)first * rows, (size_t)n * (size_t)rows);
}

/* Invariant numerics: every token's outputs alone (n = 1) against the same
 * token inside batches, bit for bit (see the top of the file). */
enum { INV_TOKENS = 64 };

static void test_invariance(struct kc_ctx *c, enum mm_dtype t, const int64_t *rows, int64_t cols,
                            uint32_t *seed)
{
    enum { M = 3 }; /* matrices for forward_multi; 0 and 1 (same rows) for SwiGLU */
    struct mm_case mc[M];
    const struct kc_matrix *dw[M];
    for (int m = 0; m < M; m++) {
        make_case_x(c, &mc[m], t, rows[m], cols, INV_TOKENS, m ? mc[0].x : NULL, seed);
        dw[m] = &mc[m].dw;
    }
    const int n_all = INV_TOKENS;
    float *dx = dev_from(c, mc[0].x, (size_t)(n_all * cols) * sizeof(float));
    /* x one float off 16-byte alignment */
    float *dxu = kc_alloc((size_t)(n_all * cols + 1) * sizeof(float), &cuda_err);
    REQUIRE(dxu, "%s", cuda_err.msg);
    KC_OK(kc_upload(c, dxu + 1, mc[0].x, (size_t)(n_all * cols) * sizeof(float), &cuda_err));
    size_t most = (size_t)n_all * (size_t)rows[0];
    for (int m = 1; m < M; m++)
        if ((size_t)n_all * (size_t)rows[m] > most) most = (size_t)n_all * (size_t)rows[m];
    float *out0 = malloc(most * sizeof(float)), *got = malloc(most * sizeof(float));
    for (size_t i = 0; i < most; i++)
        out0[i] = (float)((int)(i % 7) - 3) * 0.25f;
    float *alone[M], *alone_acc, *alone_swiglu;
    float *dout[M], *dacc = dev_from(c, out0, most * sizeof(float));
    for (int m = 0; m < M; m++) {
        alone[m] = malloc((size_t)n_all * (size_t)rows[m] * sizeof(float));
        dout[m] = kc_alloc((size_t)n_all * (size_t)rows[m] * sizeof(float), &cuda_err);
        REQUIRE(dout[m], "%s", cuda_err.msg);
    }
    alone_acc = malloc((size_t)n_all * (size_t)rows[0] * sizeof(float));
    alone_swiglu = malloc((size_t)n_all * (size_t)rows[0] * sizeof(float));
    const int64_t r0 = rows[0];
    const int swiglu = rows[1] == rows[0];

    /* each token alone: forward of every matrix, accumulate, SwiGLU */
    for (int k = 0; k < n_all; k++) {
        const float *xk = dx + (int64_t)k * cols;
        for (int m = 0; m < M; m++)
            KC_OK(kc_matmul_forward(c, dout[m] + (int64_t)k * rows[m], xk, dw[m], 1, &cuda_err));
        KC_OK(kc_matmul_accumulate(c, dacc + (int64_t)k * r0, xk, dw[0], 1, -0.5f, &cuda_err));
    }
    for (int m = 0; m < M; m++)
        dev_to(c, alone[m], dout[m], (size_t)n_all * (size_t)rows[m] * sizeof(float));
    dev_to(c, alone_acc, dacc, (size_t)n_all * (size_t)r0 * sizeof(float));
    if (swiglu) {
        for (int k = 0; k < n_all; k++)
            KC_OK(kc_matmul_swiglu_forward(c, dout[0] + (int64_t)k * r0, dx + (int64_t)k * cols,
                                           dw[0], dw[1], 1, &cuda_err));
        dev_to(c, alone_swiglu, dout[0], (size_t)n_all * (size_t)r0 * sizeof(float));
    }
    /* and against the CPU, to know the alone results are right at all */
    float *cpu = malloc((size_t)n_all * (size_t)r0 * sizeof(float));
    k_matmul_forward(cpu, mc[0].x, &mc[0].w, n_all);
    int bad = 0;
    for (size_t i = 0; i < (size_t)n_all * (size_t)r0; i++)
        bad += !(fabs(alone[0][i] - cpu[i]) <= 2 * tolerance(&mc[0], (int64_t)i, 0, mc[0].ref[i]));
    CHECKF(bad == 0, "invariant %s %lld x %lld: %d one-token outputs off the CPU's",
           mm_dtype_name(t), (long long)r0, (long long)cols, bad);
    free(cpu);

    static const int sizes[] = {2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 33, 40, 63, 64};
    for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
        int n = sizes[si];
        int starts[3] = {0, (n_all - n) / 2, n_all - n};
        for (int st = 0; st < 3; st++) {
            int first = starts[st];
            if (st > 0 && first == starts[st - 1]) continue;
            const float *xb = dx + (int64_t)first * cols;
            char what[160];
            snprintf(what, sizeof(what), "invariant %s %lld x %lld, tokens %d..%d of a batch of %d",
                     mm_dtype_name(t), (long long)r0, (long long)cols, first, first + n - 1, n);

            KC_OK(kc_matmul_forward(c, dout[0], xb, dw[0], n, &cuda_err));
            dev_to(c, got, dout[0], (size_t)n * (size_t)r0 * sizeof(float));
            bad = rows_differ(got, alone[0], first, n, r0);
            CHECKF(bad == 0, "%s: forward: %d outputs differ from the tokens alone", what, bad);

            KC_OK(kc_upload(c, dacc, out0 + (int64_t)first * r0,
                            (size_t)n * (size_t)r0 * sizeof(float), &cuda_err));
            KC_OK(kc_matmul_accumulate(c, dacc, xb, dw[0], n, -0.5f, &cuda_err));
            dev_to(c, got, dacc, (size_t)n * (size_t)r0 * sizeof(float));
            bad = rows_differ(got, alone_acc, first, n, r0);
            CHECKF(bad == 0, "%s: accumulate: %d outputs differ", what, bad);

            float *outs[M] = {dout[0], dout[1], dout[2]};
            KC_OK(kc_matmul_forward_multi(c, outs, xb, dw, M, n, &cuda_err));
            for (int m = 0; m < M; m++) {
                dev_to(c, got, dout[m], (size_t)n * (size_t)rows[m] * sizeof(float));
                bad = rows_differ(got, alone[m], first, n, rows[m]);
                CHECKF(bad == 0, "%s: forward_multi matrix %d: %d outputs differ", what, m, bad);
            }
            if (swiglu) {
                KC_OK(kc_matmul_swiglu_forward(c, dout[0], xb, dw[0], dw[1], n, &cuda_err));
                dev_to(c, got, dout[0], (size_t)n * (size_t)r0 * sizeof(float));
                bad = rows_differ(got, alone_swiglu, first, n, r0);
                CHECKF(bad == 0, "%s: SwiGLU: %d outputs differ", what, bad);
            }
            /* x off 16-byte alignment */
            KC_OK(kc_matmul_forward(c, dout[0], dxu + 1 + (int64_t)first * cols, dw[0], n,
                                    &cuda_err));
            dev_to(c, got, dout[0], (size_t)n * (size_t)r0 * sizeof(float));
            bad = rows_differ(got, alone[0], first, n, r0);
            CHECKF(bad == 0, "%s: unaligned x: %d outputs differ", what, bad);
        }
    }
    kc_free(dx);
    kc_free(dxu);
    kc_free(dacc);
    for (int m = 0; m < M; m++) {
        kc_free(dout[m]);
        free(alone[m]);
        free_case(&mc[m]);
    }
    free(alone_acc);
    free(alone_swiglu);
    free(out0);
    free(got);
}

int main(void)
{
    struct kc_ctx *c = cuda_test_ctx("test_kernels_cuda_matmul");
    uint32_t seed = 2024;
    static const struct {
        int64_t rows, cols;
        int quant_ok; /* cols a whole number of blocks */
    } shapes[] = {
        {1, 32, 1},     {33, 64, 1}, {1001, 576, 1}, {64, 160, 1},
        {257, 4096, 1}, {17, 36, 0}, {40, 100, 0},   {5, 3, 0},
    };
    static const int tokens[] = {1, 2, 8, 9, 33};
    /* the invariant numerics (the default) and the fast ones: every path
     * against the CPU, and the fused kernels */
    static const enum kc_numerics modes[] = {KC_NUMERICS_INVARIANT, KC_NUMERICS_FAST};
    for (size_t mo = 0; mo < sizeof(modes) / sizeof(modes[0]); mo++) {
        numerics = modes[mo];
        kc_ctx_set_numerics(c, numerics);
        for (int t = 0; t < MM_DTYPE_COUNT; t++) {
            for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
                if (is_quant((enum mm_dtype)t) && !shapes[s].quant_ok) continue;
                for (size_t k = 0; k < sizeof(tokens) / sizeof(tokens[0]); k++)
                    test_shape(c, (enum mm_dtype)t, shapes[s].rows, shapes[s].cols, tokens[k],
                               &seed);
            }
        }
        test_unaligned_x(c, &seed);
        test_fused(c, &seed);
    }
    /* batch invariance, bit for bit: Q/K/V-like rows (the first two equal,
     * for SwiGLU), vector and element loads, quantized and float */
    numerics = KC_NUMERICS_INVARIANT;
    kc_ctx_set_numerics(c, numerics);
    static const struct {
        int64_t rows[3], cols;
        int quant_ok;
    } inv_shapes[] = {
        {{33, 33, 7}, 64, 1},      {{1001, 1001, 64}, 576, 1}, {{129, 129, 9}, 4096, 1},
        {{17, 17, 40}, 36, 0},     {{40, 40, 3}, 100, 0},      {{5, 5, 1}, 3, 0},
        {{300, 300, 300}, 160, 1},
    };
    for (int t = 0; t < MM_DTYPE_COUNT; t++)
        for (size_t s = 0; s < sizeof(inv_shapes) / sizeof(inv_shapes[0]); s++)
            if (!is_quant((enum mm_dtype)t) || inv_shapes[s].quant_ok)
                test_invariance(c, (enum mm_dtype)t, inv_shapes[s].rows, inv_shapes[s].cols, &seed);
    /* bf16 weights, activations rounded to one bf16 */
    numerics = KC_NUMERICS_FAST_BF16;
    kc_ctx_set_numerics(c, numerics);
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
        test_shape(c, MM_BF16, shapes[s].rows, shapes[s].cols, 33, &seed);
    kc_ctx_free(c);
    return check_report("test_kernels_cuda_matmul");
}
