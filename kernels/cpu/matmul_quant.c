/* Matmul with q8_0 / q4_0 / q4_1 weights by integer dot products, as
 * llama.cpp does it: the activations are quantized to 8-bit blocks once per
 * call, then every weight row is multiplied block by block in integers and
 * scaled in float. Each weight row is unpacked once for up to
 * K_QDOT_MAX_TOKENS tokens. */
#include <stdlib.h>

#include "internal.h"

static k_qdot_fn pick(const struct k_qdot_impl *impl, enum mm_dtype t)
{
    if (t == MM_Q8_0) return impl->q8_0;
    if (t == MM_Q4_0) return impl->q4_0;
    return impl->q4_1;
}

int k_matmul_qdots(float *out, const float *x, const struct k_matrix *w, int n, float alpha,
                   int accumulate, const struct k_qdot_impl *impl)
{
    int64_t rows = w->rows, cols = w->cols, nb = cols / MM_QBLOCK;
    /* one allocation: the scales first, so they stay aligned */
    float *scales = malloc((size_t)(2 * n * nb) * sizeof(float) + (size_t)(n * cols));
    if (!scales) return -1;
    struct k_qact a = {.cols = cols,
                       .n = n,
                       .d = scales,
                       .s = scales + n * nb,
                       .qs = (int8_t *)(scales + 2 * n * nb)};
#pragma omp parallel for schedule(static) if (n > 1)
    for (int t = 0; t < n; t++)
        k_quantize_act_row(x + t * cols, cols, a.qs + t * cols, a.d + t * nb, a.s + t * nb);

    k_qdot_fn dot = pick(impl, w->dtype);
    const char *data = w->data;
#pragma omp parallel for schedule(static) if (rows * cols * n >= K_PARALLEL_MIN_WORK)
    for (int64_t r = 0; r < rows; r++) {
        for (int t0 = 0; t0 < n; t0 += K_QDOT_MAX_TOKENS) {
            int nt = n - t0 < K_QDOT_MAX_TOKENS ? n - t0 : K_QDOT_MAX_TOKENS;
            float res[K_QDOT_MAX_TOKENS];
            dot(data + r * (int64_t)w->row_bytes, &a, t0, nt, res);
            for (int j = 0; j < nt; j++)
                k_store(out + (t0 + j) * rows + r, res[j], alpha, accumulate);
        }
    }
    free(scales);
    return 0;
}
