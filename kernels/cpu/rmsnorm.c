/* RMSNorm (Llama, Mistral): x / sqrt(mean(x^2) + eps) * weight. */
#include <math.h>

#include "internal.h"

void k_rmsnorm_forward(float *out, const float *x, const float *weight, int n, int dim, float eps)
{
#pragma omp parallel for schedule(static) if ((int64_t)n * dim >= K_PARALLEL_MIN_WORK)
    for (int t = 0; t < n; t++) {
        const float *xt = x + (int64_t)t * dim;
        float *ot = out + (int64_t)t * dim;
        float r = 1.0f / sqrtf(k_sum_sq(xt, dim, 0.0f) / (float)dim + eps);
        for (int i = 0; i < dim; i++)
            ot[i] = xt[i] * r * weight[i];
    }
}
