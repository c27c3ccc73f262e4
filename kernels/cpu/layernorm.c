/* LayerNorm (BERT-family encoders): (x - mean) / sqrt(var + eps) * w + b,
 * with the biased variance, as torch.nn.LayerNorm. */
#include <math.h>

#include "internal.h"

void k_layernorm_forward(float *out, const float *x, const float *weight, const float *bias, int n,
                         int dim, float eps)
{
#pragma omp parallel for schedule(static) if ((int64_t)n * dim >= K_PARALLEL_MIN_WORK)
    for (int t = 0; t < n; t++) {
        const float *xt = x + (int64_t)t * dim;
        float *ot = out + (int64_t)t * dim;
        float mean = k_sum(xt, dim) / (float)dim;
        /* two passes: the variance of the centred values does not cancel */
        float var = k_sum_sq(xt, dim, mean);
        float r = 1.0f / sqrtf(var / (float)dim + eps);
        for (int i = 0; i < dim; i++)
            ot[i] = (xt[i] - mean) * r * weight[i] + bias[i];
    }
}
