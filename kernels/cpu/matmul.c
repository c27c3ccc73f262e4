/* Matrix multiplication out = x W^T for weights in any mm_dtype: the
 * dispatch between the paths, and the float-weight paths.
 *
 * Decode (few tokens) is bound by reading the weights once, so it runs dot
 * products over the weights at their stored width (fdot, qdot). Prefill
 * (many tokens) is bound by arithmetic; there sgemm on weight tiles turned
 * into f32 wins, but only with OpenBLAS's AVX-512 kernels (see
 * gemm_min_tokens). */
#include <cblas.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Bytes of the f32 weight tile each sgemm call gets: large enough for sgemm
 * to run at full speed, small enough to stay in the last-level cache. */
#define K_GEMM_TILE_BYTES (8u << 20)

static int blas_avx512;
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

/* OpenBLAS picks its kernels by CPU model at load time; versions older than
 * the CPU (0.3.21 on Emerald Rapids, say) fall back to its SSE3 "Prescott"
 * kernels, 3-5x slower, unless OPENBLAS_CORETYPE names a known core. */
static void detect_blas(void)
{
    const char *core = openblas_get_corename();
    blas_avx512 = core && (strstr(core, "SkylakeX") || strstr(core, "Cooperlake") ||
                           strstr(core, "SapphireRapids"));
}

/* The token count from which sgemm beats the dot products, measured with
 * bench_matmul's crossover table on SmolLM2-135M shapes (one core): with
 * AVX-512 sgemm, from 32 tokens for every dtype (at 512 tokens sgemm runs
 * 90-150 GFLOP/s, the dot products 50-90); the SSE3 kernels (~35 GFLOP/s)
 * never beat them. */
static int gemm_min_tokens(void)
{
    pthread_once(&blas_once, detect_blas);
    return blas_avx512 ? 32 : INT_MAX;
}

static void matmul(float *out, const float *x, const struct k_matrix *w, int n, float alpha,
                   int accumulate)
{
    if (n >= gemm_min_tokens() && k_matmul_gemm(out, x, w, n, alpha, accumulate) == 0) return;
    if (w->dtype == MM_F32 || w->dtype == MM_F16 || w->dtype == MM_BF16) {
        k_matmul_fdots(out, x, w, n, alpha, accumulate, k_fdot_impls[0]);
        return;
    }
    if (k_matmul_qdots(out, x, w, n, alpha, accumulate, k_qdot_impls[0]) == 0) return;
    k_matmul_unbuffered(out, x, w, n, alpha, accumulate);
}

void k_matmul_forward(float *out, const float *x, const struct k_matrix *w, int n)
{
    matmul(out, x, w, n, 1.0f, 0);
}

void k_matmul_accumulate(float *out, const float *x, const struct k_matrix *w, int n, float scale)
{
    matmul(out, x, w, n, scale, 1);
}

/* Tokens are taken in chunks whose activations stay in L1 (32 KB of the
 * 48 KB) while all weight rows pass over them; rows in tasks of ROW_CHUNK. */
#define CHUNK_BYTES (32 << 10)
#define ROW_CHUNK 16

void k_matmul_fdots(float *out, const float *x, const struct k_matrix *w, int n, float alpha,
                    int accumulate, const struct k_fdot_impl *impl)
{
    int64_t rows = w->rows, cols = w->cols;
    const char *data = w->data;
    int chunk = (int)(CHUNK_BYTES / (4 * cols));
    chunk = chunk < K_QDOT_MAX_TOKENS ? K_QDOT_MAX_TOKENS : chunk - chunk % K_QDOT_MAX_TOKENS;
    int token_chunks = (n + chunk - 1) / chunk;
    int64_t row_chunks = (rows + ROW_CHUNK - 1) / ROW_CHUNK;
#pragma omp parallel for collapse(2) schedule(static) if (rows * cols * n >= K_PARALLEL_MIN_WORK)
    for (int tc = 0; tc < token_chunks; tc++) {
        for (int64_t rc = 0; rc < row_chunks; rc++) {
            int t_end = (tc + 1) * chunk < n ? (tc + 1) * chunk : n;
            int64_t r_end = (rc + 1) * ROW_CHUNK < rows ? (rc + 1) * ROW_CHUNK : rows;
            for (int64_t r = rc * ROW_CHUNK; r < r_end; r++) {
                for (int t0 = tc * chunk; t0 < t_end; t0 += K_QDOT_MAX_TOKENS) {
                    int nt = t_end - t0 < K_QDOT_MAX_TOKENS ? t_end - t0 : K_QDOT_MAX_TOKENS;
                    float res[K_QDOT_MAX_TOKENS];
                    impl->dot(w->dtype, data + r * (int64_t)w->row_bytes, x + t0 * cols, cols, nt,
                              res);
                    for (int j = 0; j < nt; j++)
                        k_store(out + (t0 + j) * rows + r, res[j], alpha, accumulate);
                }
            }
        }
    }
}

int k_matmul_gemm(float *out, const float *x, const struct k_matrix *w, int n, float alpha,
                  int accumulate)
{
    int64_t rows = w->rows, cols = w->cols;
    float beta = accumulate ? 1.0f : 0.0f;
    if (w->dtype == MM_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, (int)rows, (int)cols, alpha, x,
                    (int)cols, w->data, (int)cols, beta, out, (int)rows);
        return 0;
    }
    int64_t tile = (int64_t)(K_GEMM_TILE_BYTES / sizeof(float)) / cols;
    tile = tile < 16 ? 16 : tile - tile % 16;
    if (tile > rows) tile = rows;
    float *buf = malloc((size_t)(tile * cols) * sizeof(float));
    if (!buf) return -1;
    const char *data = w->data;
    for (int64_t r0 = 0; r0 < rows; r0 += tile) {
        int64_t m = rows - r0 < tile ? rows - r0 : tile;
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < m; r++)
            mm_dequantize_row(w->dtype, data + (r0 + r) * (int64_t)w->row_bytes, buf + r * cols,
                              cols);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, (int)m, (int)cols, alpha, x,
                    (int)cols, buf, (int)cols, beta, out + r0, (int)rows);
    }
    free(buf);
    return 0;
}

void k_matmul_unbuffered(float *out, const float *x, const struct k_matrix *w, int n, float alpha,
                         int accumulate)
{
    int64_t rows = w->rows, cols = w->cols;
    const char *data = w->data;
    size_t block_bytes = mm_dtype_block_bytes(w->dtype);
    int block_elems = mm_dtype_block_elems(w->dtype);
#pragma omp parallel for schedule(static) if (rows * cols * n >= K_PARALLEL_MIN_WORK)
    for (int64_t r = 0; r < rows; r++) {
        const char *row = data + r * (int64_t)w->row_bytes;
        for (int t = 0; t < n; t++) {
            const float *xt = x + t * cols;
            float sum = 0.0f;
            for (int64_t c0 = 0; c0 < cols; c0 += MM_QBLOCK) {
                float wv[MM_QBLOCK];
                int64_t len = cols - c0 < MM_QBLOCK ? cols - c0 : MM_QBLOCK;
                mm_dequantize_row(w->dtype, row + (size_t)(c0 / block_elems) * block_bytes, wv,
                                  len);
                for (int64_t i = 0; i < len; i++)
                    sum += wv[i] * xt[c0 + i];
            }
            k_store(out + t * rows + r, sum, alpha, accumulate);
        }
    }
}
