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

/* sum of e^(x[i] - m), with y[i] = e^(x[i] - m) when y is not NULL */
static double sum_exp(float *y, const float *x, int dim, float m)
{
    double sum = 0.0;
    int i = 0;
#ifdef K_HAVE_AVX512
    __m512d acc = _mm512_setzero_pd();
    for (; i + 16 <= dim; i += 16) {
        __m512 e = k_exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), _mm512_set1_ps(m)));
        if (y) _mm512_storeu_ps(y + i, e);
        acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 1)));
    }
    sum = _mm512_reduce_add_pd(acc);
#endif
    for (; i < dim; i++) {
        float e = expf(x[i] - m);
        if (y) y[i] = e;
        sum += e;
    }
    return sum;
}

void k_softmax_forward(float *x, int n, int dim)
{
#pragma omp parallel for schedule(static) if ((int64_t)n * dim >= K_PARALLEL_MIN_WORK)
    for (int t = 0; t < n; t++) {
        float *xt = x + (int64_t)t * dim;
        float r = (float)(1.0 / sum_exp(xt, xt, dim, row_max(xt, dim)));
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
        /* (x - m) - log(sum): subtracting m first keeps the small values exact */
        float log_sum = (float)log(sum_exp(NULL, xt, dim, m));
        for (int i = 0; i < dim; i++)
            xt[i] = (xt[i] - m) - log_sum;
    }
}
