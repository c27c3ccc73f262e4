/* RMSNorm (Llama, Mistral): x / sqrt(mean(x^2) + eps) * weight, and its backward. */
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

/* y_i = x_i r w_i with r = (mean(x^2) + eps)^-1/2, so
 * dx_i = r w_i dy_i - x_i r^3 / dim * sum_j dy_j w_j x_j. */
void k_rmsnorm_backward(float *dx, const float *dy, const float *x, const float *weight, int n,
                        int dim, float eps)
{
#pragma omp parallel for schedule(static) if ((int64_t)n * dim >= K_PARALLEL_MIN_WORK)
    for (int t = 0; t < n; t++) {
        const float *xt = x + (int64_t)t * dim, *gt = dy + (int64_t)t * dim;
        float *dt = dx + (int64_t)t * dim;
        float r = 1.0f / sqrtf(k_sum_sq(xt, dim, 0.0f) / (float)dim + eps);
        float lane[K_SUM_LANES] = {0};
        int i = 0;
        for (; i + K_SUM_LANES <= dim; i += K_SUM_LANES)
            for (int l = 0; l < K_SUM_LANES; l++)
                lane[l] += gt[i + l] * weight[i + l] * xt[i + l];
        for (int l = 0; i + l < dim; l++)
            lane[l] += gt[i + l] * weight[i + l] * xt[i + l];
        float c = k_sum_lanes(lane) * r * r * r / (float)dim;
        for (int j = 0; j < dim; j++)
            dt[j] += r * weight[j] * gt[j] - xt[j] * c;
    }
}
