/* f32 transposes for training: of the LoRA matrices, which the forward
 * multiplies as A^T and B^T through the GEMM. */
#include "internal.h"

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
