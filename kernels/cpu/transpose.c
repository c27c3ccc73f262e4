/* f32 transposes for training: W^T of a weight in any dtype (so dx = dy W
 * runs as a forward product on the tiled dot kernels), and of activations
 * (so LoRA's weight gradients, sums over tokens, do too). */
#include "internal.h"

void k_matrix_transpose_f32(float *out, const struct k_matrix *w)
{
    enum { CHUNK = 256 }; /* a multiple of every block size */
    int64_t rows = w->rows, cols = w->cols;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *src = (const uint8_t *)w->data + (size_t)r * w->row_bytes;
        float buf[CHUNK];
        for (int64_t c0 = 0; c0 < cols; c0 += CHUNK) {
            int64_t k = cols - c0 < CHUNK ? cols - c0 : CHUNK;
            mm_dequantize_row(w->dtype, src + mm_dtype_row_bytes(w->dtype, c0), buf, k);
            for (int64_t c = 0; c < k; c++)
                out[(c0 + c) * rows + r] = buf[c];
        }
    }
}

/* In 32 x 32 blocks, so both sides stream through the cache. */
void k_transpose_f32(float *out, const float *x, int n, int dim)
{
    enum { B = 32 };
#pragma omp parallel for schedule(static) if ((int64_t)n * dim >= K_PARALLEL_MIN_WORK)
    for (int t0 = 0; t0 < n; t0 += B)
        for (int c0 = 0; c0 < dim; c0 += B)
            for (int t = t0; t < t0 + B && t < n; t++)
                for (int c = c0; c < c0 + B && c < dim; c++)
                    out[(int64_t)c * n + t] = x[(int64_t)t * dim + c];
}
