/* The training matmuls: out = alpha x B (+ out) with B an f32 matrix stored
 * k-major ([k_dim, cols], a row per step of the sum), as an outer-product
 * GEMM: a register tile of MR tokens x 16 columns takes, at each k, one
 * broadcast of each token's x[t, k] and the 16 values of B's row k, so the
 * sum needs no horizontal reduction at the end (the dot-product kernels of
 * fdot.c pay one per output, which at the training shapes costs a fifth of
 * their time).
 *
 * The order of an output's sum, the same in every tile and on every level:
 * one f32 accumulator, starting at 0, a fused multiply-add for each k in
 * order; then alpha * sum, added to out when accumulating. The portable
 * code does exactly that with fmaf, so the SIMD path equals it bit for bit.
 *
 * B's 16 columns of a panel are copied into a contiguous buffer first (rows
 * of B lie ldb floats apart, and strides such as 1536 floats map a column's
 * rows onto a few cache sets); the buffer stays in L2 while every token tile
 * passes over it. */
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

/* Element (t, k) of x: x[t * ld + k], or x[k * ld + t] when x_t (x given
 * as its transpose). */
static inline int64_t x_at(int64_t t, int64_t k, int64_t ld, int x_t)
{
    return x_t ? k * ld + t : t * ld + k;
}

/* out rows t < n, columns [0, nj) of the panel p ([k_dim, K_GEMM_NR]). */
static void gemm_panel_scalar(float *out, int64_t ldo, const float *x, int64_t ldx, int x_t, int n,
                              int k_dim, const float *p, int nj, float alpha, int accumulate)
{
    for (int t = 0; t < n; t++)
        for (int j = 0; j < nj; j++) {
            float sum = 0.0f;
            for (int k = 0; k < k_dim; k++)
                sum = fmaf(x[x_at(t, k, ldx, x_t)], p[(int64_t)k * K_GEMM_NR + j], sum);
            k_store(out + (int64_t)t * ldo + j, sum, alpha, accumulate);
        }
}

const struct k_gemm_impl k_gemm_scalar = {"scalar", gemm_panel_scalar};

#ifdef K_HAVE_AVX2

#define INLINE static inline __attribute__((always_inline))
/* Six tokens x two vectors: 12 accumulators, the panel's two vectors and a
 * broadcast take 15 of the 16 ymm registers. AVX-512 machines run this one
 * too: the Zen 4 cores of these machines split a 512-bit FMA in two, so the
 * wider registers would not multiply faster. */
#define MR 6

/* alpha * (a0, a1) into out's 16 columns (nj of them), or added to them. */
INLINE void store_row(float *o, __m256 a0, __m256 a1, int nj, __m256 va, int accumulate)
{
    __m256 r0 = _mm256_mul_ps(va, a0), r1 = _mm256_mul_ps(va, a1);
    if (nj == K_GEMM_NR) {
        if (accumulate) {
            r0 = _mm256_add_ps(_mm256_loadu_ps(o), r0);
            r1 = _mm256_add_ps(_mm256_loadu_ps(o + 8), r1);
        }
        _mm256_storeu_ps(o, r0);
        _mm256_storeu_ps(o + 8, r1);
        return;
    }
    float res[K_GEMM_NR];
    _mm256_storeu_ps(res, r0);
    _mm256_storeu_ps(res + 8, r1);
    for (int j = 0; j < nj; j++)
        o[j] = accumulate ? o[j] + res[j] : res[j];
}

/* One token's step: its broadcast x[t, k] times the panel's row k. */
#define ROW_STEP(i)                                                                                \
    if (NR > i) {                                                                                  \
        __m256 a = _mm256_broadcast_ss(x + x_at(i, k, ldx, XT));                                   \
        c##i##0 = _mm256_fmadd_ps(a, b0, c##i##0);                                                 \
        c##i##1 = _mm256_fmadd_ps(a, b1, c##i##1);                                                 \
    }

/* Tokens [0, NR) of the tile starting at x. The accumulators are named
 * variables: as an array GCC keeps a copy in memory and stores every one of
 * them at every k. */
INLINE void tile(int NR, int XT, float *out, int64_t ldo, const float *x, int64_t ldx, int k_dim,
                 const float *p, int nj, float alpha, int accumulate)
{
    __m256 z = _mm256_setzero_ps();
    __m256 c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z, c40 = z, c41 = z,
           c50 = z, c51 = z;
    for (int k = 0; k < k_dim; k++) {
        __m256 b0 = _mm256_loadu_ps(p + (int64_t)k * K_GEMM_NR);
        __m256 b1 = _mm256_loadu_ps(p + (int64_t)k * K_GEMM_NR + 8);
        ROW_STEP(0) ROW_STEP(1) ROW_STEP(2) ROW_STEP(3) ROW_STEP(4) ROW_STEP(5)
    }
    __m256 va = _mm256_set1_ps(alpha);
    store_row(out, c00, c01, nj, va, accumulate);
    if (NR > 1) store_row(out + ldo, c10, c11, nj, va, accumulate);
    if (NR > 2) store_row(out + 2 * ldo, c20, c21, nj, va, accumulate);
    if (NR > 3) store_row(out + 3 * ldo, c30, c31, nj, va, accumulate);
    if (NR > 4) store_row(out + 4 * ldo, c40, c41, nj, va, accumulate);
    if (NR > 5) store_row(out + 5 * ldo, c50, c51, nj, va, accumulate);
}
#undef ROW_STEP

/* All n tokens, as tiles of MR and one of the rest. */
INLINE void tiles(int XT, float *out, int64_t ldo, const float *x, int64_t ldx, int n, int k_dim,
                  const float *p, int nj, float alpha, int accumulate)
{
    int t = 0;
    for (; t + MR <= n; t += MR)
        tile(MR, XT, out + (int64_t)t * ldo, ldo, x + x_at(t, 0, ldx, XT), ldx, k_dim, p, nj, alpha,
             accumulate);
    float *o = out + (int64_t)t * ldo;
    const float *xt = x + x_at(t, 0, ldx, XT);
    switch (n - t) {
    case 5:
        tile(5, XT, o, ldo, xt, ldx, k_dim, p, nj, alpha, accumulate);
        break;
    case 4:
        tile(4, XT, o, ldo, xt, ldx, k_dim, p, nj, alpha, accumulate);
        break;
    case 3:
        tile(3, XT, o, ldo, xt, ldx, k_dim, p, nj, alpha, accumulate);
        break;
    case 2:
        tile(2, XT, o, ldo, xt, ldx, k_dim, p, nj, alpha, accumulate);
        break;
    case 1:
        tile(1, XT, o, ldo, xt, ldx, k_dim, p, nj, alpha, accumulate);
        break;
    default:
        break;
    }
}

static void gemm_panel_avx2(float *out, int64_t ldo, const float *x, int64_t ldx, int x_t, int n,
                            int k_dim, const float *p, int nj, float alpha, int accumulate)
{
    if (x_t)
        tiles(1, out, ldo, x, ldx, n, k_dim, p, nj, alpha, accumulate);
    else
        tiles(0, out, ldo, x, ldx, n, k_dim, p, nj, alpha, accumulate);
}

const struct k_gemm_impl k_gemm_avx2 = {"avx2", gemm_panel_avx2};

#endif

const struct k_gemm_impl *const k_gemm_impls[] = {
#ifdef K_HAVE_AVX2
    &k_gemm_avx2,
#endif
    &k_gemm_scalar,
};
const int k_gemm_impl_count = (int)(sizeof(k_gemm_impls) / sizeof(k_gemm_impls[0]));

/* Columns [j0, j0 + nj) of b into p[k * K_GEMM_NR + c], zeros past nj. */
static void pack_panel(float *p, const float *b, int64_t ldb, int64_t k_dim, int64_t j0, int nj)
{
    for (int64_t k = 0; k < k_dim; k++) {
        const float *row = b + k * ldb + j0;
        float *dst = p + k * K_GEMM_NR;
        memcpy(dst, row, (size_t)nj * sizeof(float));
        memset(dst + nj, 0, (size_t)(K_GEMM_NR - nj) * sizeof(float));
    }
}

static int panel_width(int64_t cols, int64_t panel)
{
    int64_t left = cols - panel * K_GEMM_NR;
    return left < K_GEMM_NR ? (int)left : K_GEMM_NR;
}

size_t k_panels_floats(int64_t k_dim, int64_t cols)
{
    return (size_t)((cols + K_GEMM_NR - 1) / K_GEMM_NR) * K_GEMM_NR * (size_t)k_dim;
}

void k_panels_pack(float *dst, const float *b, int64_t k_dim, int64_t cols, int64_t ldb)
{
    int64_t panels = (cols + K_GEMM_NR - 1) / K_GEMM_NR;
#pragma omp parallel for schedule(static)
    for (int64_t panel = 0; panel < panels; panel++)
        pack_panel(dst + panel * K_GEMM_NR * k_dim, b, ldb, k_dim, panel * K_GEMM_NR,
                   panel_width(cols, panel));
}

void k_panels_set_row(float *dst, int64_t k_dim, int64_t cols, int64_t k, const float *values)
{
    for (int64_t c0 = 0; c0 < cols; c0 += K_GEMM_NR)
        memcpy(dst + c0 * k_dim + k * K_GEMM_NR, values + c0,
               (size_t)panel_width(cols, c0 / K_GEMM_NR) * sizeof(float));
}

void k_panels_of_matrix(float *dst, const struct k_matrix *w, int transposed)
{
    int64_t rows = w->rows, cols = w->cols;
    int64_t width = transposed ? rows : cols; /* B's columns */
    int64_t k_dim = transposed ? cols : rows;
    memset(dst, 0, k_panels_floats(k_dim, width) * sizeof(float));
#pragma omp parallel
    {
        float *row = malloc((size_t)cols * sizeof(float));
        if (!row) {
            fprintf(stderr, "memllm: out of memory dequantizing a row of %lld\n", (long long)cols);
            abort();
        }
        /* W^T: panel p holds W's rows 16p.., row r's values down column
         * r - 16p. W: row k of W spreads over every panel's row k. */
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            mm_dequantize_row(w->dtype, (const uint8_t *)w->data + (size_t)r * w->row_bytes, row,
                              cols);
            if (transposed) {
                float *panel = dst + r / K_GEMM_NR * K_GEMM_NR * k_dim + r % K_GEMM_NR;
                for (int64_t c = 0; c < cols; c++)
                    panel[c * K_GEMM_NR] = row[c];
            } else {
                k_panels_set_row(dst, k_dim, cols, r, row);
            }
        }
        free(row);
    }
}

/* Whether a product is worth waking the OpenMP threads for. */
static int parallel_worth(int n, int64_t k_dim, int64_t cols)
{
    return (int64_t)n * k_dim * cols >= K_PARALLEL_MIN_WORK && cols > K_GEMM_NR;
}

void k_gemm_panels_at(float *out, const float *x, int n, const struct k_panels *b, float alpha,
                      int accumulate, const struct k_gemm_impl *impl)
{
    int64_t panels = (b->cols + K_GEMM_NR - 1) / K_GEMM_NR;
    /* Each thread takes whole panels: a column's sum is never split, so the
     * thread count changes no result. */
#pragma omp parallel for schedule(static) if (parallel_worth(n, b->k_dim, b->cols))
    for (int64_t panel = 0; panel < panels; panel++)
        impl->panel(out + panel * K_GEMM_NR, b->cols, x, b->k_dim, 0, n, (int)b->k_dim,
                    b->data + panel * K_GEMM_NR * b->k_dim, panel_width(b->cols, panel), alpha,
                    accumulate);
}

void k_gemm_f32_at(float *out, const float *x, int64_t ldx, int x_t, int n, int k_dim,
                   const float *b, int64_t cols, int64_t ldb, float alpha, int accumulate,
                   const struct k_gemm_impl *impl)
{
    if (n <= 0 || cols <= 0) return;
    int64_t panels = (cols + K_GEMM_NR - 1) / K_GEMM_NR;
    size_t buf_bytes = (size_t)(k_dim > 0 ? k_dim : 1) * K_GEMM_NR * sizeof(float);
#pragma omp parallel if (parallel_worth(n, k_dim, cols))
    {
        float *p = malloc(buf_bytes);
        if (!p) {
            fprintf(stderr, "memllm: out of memory for a matmul's panel (%zu bytes)\n", buf_bytes);
            abort();
        }
#pragma omp for schedule(static)
        for (int64_t panel = 0; panel < panels; panel++) {
            int nj = panel_width(cols, panel);
            pack_panel(p, b, ldb, k_dim, panel * K_GEMM_NR, nj);
            impl->panel(out + panel * K_GEMM_NR, cols, x, ldx, x_t, n, k_dim, p, nj, alpha,
                        accumulate);
        }
        free(p);
    }
}

void k_gemm_f32(float *out, const float *x, int n, int k_dim, const float *b, int64_t cols,
                int64_t ldb, float alpha, int accumulate)
{
    k_gemm_f32_at(out, x, k_dim, 0, n, k_dim, b, cols, ldb, alpha, accumulate, k_gemm_impls[0]);
}

void k_gemm_f32_xt(float *out, const float *xt, int64_t ldx, int n, int k_dim, const float *b,
                   int64_t cols, int64_t ldb, float alpha, int accumulate)
{
    k_gemm_f32_at(out, xt, ldx, 1, n, k_dim, b, cols, ldb, alpha, accumulate, k_gemm_impls[0]);
}

void k_gemm_panels(float *out, const float *x, int n, const struct k_panels *b, float alpha,
                   int accumulate)
{
    k_gemm_panels_at(out, x, n, b, alpha, accumulate, k_gemm_impls[0]);
}
