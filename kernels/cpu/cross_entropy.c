/* Cross-entropy of the next token, fused with its backward: the training
 * loss. Each row's sums run in one order (lane i % K_SUM_LANES, double
 * accumulators, the lanes pairwise at the end), so a row's loss and
 * gradient do not depend on the other rows. One exponential an element
 * (k_exp_lane, or its AVX2 twin k_exp8), kept in the row until the sum is
 * known. */
#include <math.h>

#include "internal.h"

/* x[i] = e^(x[i] - mx); returns the sum of them. */
static double exp_sum(float *x, int vocab, float mx)
{
    double lane[K_SUM_LANES] = {0};
    int i = 0;
#ifdef K_HAVE_AVX2
    /* GCC leaves the loop below scalar on AVX2: the same lanes, by hand */
    _Static_assert(K_SUM_LANES == 16, "four vectors of double lanes");
    __m256d acc[4] = {_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(),
                      _mm256_setzero_pd()};
    for (; i + K_SUM_LANES <= vocab; i += K_SUM_LANES)
        for (int h = 0; h < 2; h++) {
            __m256 e = k_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8 * h), _mm256_set1_ps(mx)));
            _mm256_storeu_ps(x + i + 8 * h, e);
            acc[2 * h] = _mm256_add_pd(acc[2 * h], _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
            acc[2 * h + 1] =
                _mm256_add_pd(acc[2 * h + 1], _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
        }
    for (int v = 0; v < 4; v++)
        _mm256_storeu_pd(lane + 4 * v, acc[v]);
#endif
    for (; i + K_SUM_LANES <= vocab; i += K_SUM_LANES) {
#pragma omp simd
        for (int l = 0; l < K_SUM_LANES; l++) {
            x[i + l] = k_exp_lane(x[i + l] - mx);
            lane[l] += (double)x[i + l];
        }
    }
    for (int l = 0; i + l < vocab; l++) {
        x[i + l] = k_exp_lane(x[i + l] - mx);
        lane[l] += (double)x[i + l];
    }
    for (int w = K_SUM_LANES / 2; w > 0; w /= 2)
        for (int l = 0; l < w; l++)
            lane[l] += lane[l + w];
    return lane[0];
}

void k_cross_entropy_backward(float *logits, float *loss, const int32_t *target,
                              const float *weight, int n, int vocab, float grad_scale)
{
#pragma omp parallel for schedule(static) if ((int64_t)n * vocab >= K_PARALLEL_MIN_WORK)
    for (int t = 0; t < n; t++) {
        float *x = logits + (int64_t)t * vocab;
        if (weight[t] == 0.0f) {
            for (int i = 0; i < vocab; i++)
                x[i] = 0.0f;
            loss[t] = 0.0f;
            continue;
        }
        float mx = x[0], xt = x[target[t]];
        for (int i = 1; i < vocab; i++)
            mx = x[i] > mx ? x[i] : mx;
        double sum = exp_sum(x, vocab, mx);
        double lse = mx + log(sum);
        loss[t] = (float)((double)weight[t] * (lse - xt));
        float g = (float)((double)grad_scale * weight[t] / sum);
        for (int i = 0; i < vocab; i++)
            x[i] *= g;
        x[target[t]] -= grad_scale * weight[t];
    }
}
