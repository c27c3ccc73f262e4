/* Matmul with q8_0 / q4_0 / q4_1 weights by integer dot products, as
 * llama.cpp does it: the activations are quantized to 8-bit blocks once per
 * call, then every weight row is multiplied block by block in integers and
 * scaled in float. Each weight row is unpacked once for up to
 * K_QDOT_MAX_TOKENS tokens.
 *
 * Many tokens (prefill) are cut into chunks whose quantized activations stay
 * in the L1 cache while all weight rows (in L2) pass over them: the dot
 * products load as many activation bytes as weight bytes, and L2 could not
 * feed them. This beats dequantizing weight tiles for sgemm at every token
 * count here (bench_matmul's crossover table). */
#include <stdlib.h>

#include "internal.h"

/* Bytes of quantized activations (with their per-lane scales, 3 bytes a
 * value) a token chunk may take: most of a 48 KB L1 data cache. Rows per
 * task: enough work to amortise the scheduling. */
#define CHUNK_BYTES (32 << 10)
#define ROW_CHUNK 16

int k_qact_init(struct k_qact *a, const float *x, int n, int64_t cols, enum mm_dtype wtype,
                const struct k_qdot_impl *impl)
{
    int64_t nb = cols / MM_QBLOCK;
    int lanes = impl->prepare_lanes != NULL;
    /* one allocation, the float arrays first so they stay aligned */
    size_t floats = (size_t)(n * nb) * (2 + (lanes ? 16 : 0));
    float *buf = malloc(floats * sizeof(float) + (size_t)(n * cols));
    if (!buf) return -1;
    *a = (struct k_qact){.cols = cols, .n = n, .d = buf, .s = buf + n * nb};
    if (lanes) {
        a->d8 = buf + 2 * n * nb;
        a->aux8 = buf + 10 * n * nb;
    }
    a->qs = (int8_t *)(buf + floats);
#pragma omp parallel for schedule(static) if (n > 1)
    for (int t = 0; t < n; t++) {
        k_quantize_act_row(x + t * cols, cols, a->qs + t * cols, a->d + t * nb, a->s + t * nb);
        if (lanes) impl->prepare_lanes(a, t, wtype);
    }
    return 0;
}

void k_qact_free(struct k_qact *a)
{
    free(a->d);
}

static k_qdot_fn pick(const struct k_qdot_impl *impl, enum mm_dtype t)
{
    if (t == MM_Q8_0) return impl->q8_0;
    if (t == MM_Q4_0) return impl->q4_0;
    return impl->q4_1;
}

int k_matmul_qdots(float *out, const float *x, const struct k_matrix *w, int n, float alpha,
                   int accumulate, const struct k_qdot_impl *impl)
{
    int64_t rows = w->rows, cols = w->cols;
    struct k_qact a;
    if (k_qact_init(&a, x, n, cols, w->dtype, impl) != 0) return -1;
    k_qdot_fn dot = pick(impl, w->dtype);
    const char *data = w->data;
    int chunk = (int)(CHUNK_BYTES / (3 * cols));
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
                    dot(data + r * (int64_t)w->row_bytes, &a, t0, nt, res);
                    for (int j = 0; j < nt; j++)
                        k_store(out + (t0 + j) * rows + r, res[j], alpha, accumulate);
                }
            }
        }
    }
    k_qact_free(&a);
    return 0;
}
