/* Row-wise softmax and log-softmax, shifted by the row maximum so that no
 * exponential overflows; the normaliser is summed in double because rows can
 * be a whole vocabulary long. */
#include <math.h>

#include "internal.h"

static float row_max(const float *x, int dim)
{
    float m = x[0];
    for (int i = 1; i < dim; i++)
        m = x[i] > m ? x[i] : m;
    return m;
}

void k_softmax_forward(float *x, int n, int dim)
{
#pragma omp parallel for schedule(static) if ((int64_t)n * dim >= K_PARALLEL_MIN_WORK)
    for (int t = 0; t < n; t++) {
        float *xt = x + (int64_t)t * dim;
        float m = row_max(xt, dim);
        double sum = 0.0;
        for (int i = 0; i < dim; i++) {
            xt[i] = expf(xt[i] - m);
            sum += xt[i];
        }
        float r = (float)(1.0 / sum);
        for (int i = 0; i < dim; i++)
            xt[i] *= r;
    }
}

void k_log_softmax_forward(float *x, int n, int dim)
{
#pragma omp parallel for schedule(static) if ((int64_t)n * dim >= K_PARALLEL_MIN_WORK)
    for (int t = 0; t < n; t++) {
        float *xt = x + (int64_t)t * dim;
        float m = row_max(xt, dim);
        double sum = 0.0;
        for (int i = 0; i < dim; i++)
            sum += expf(xt[i] - m);
        /* (x - m) - log(sum): subtracting m first keeps the small values exact */
        float log_sum = (float)log(sum);
        for (int i = 0; i < dim; i++)
            xt[i] = (xt[i] - m) - log_sum;
    }
}
