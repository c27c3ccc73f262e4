/* Cross-entropy of the next token, fused with its backward: the training
 * loss. Each row's sums run in one order (double accumulators, left to
 * right), so a row's loss and gradient do not depend on the other rows. */
#include <math.h>

#include "internal.h"

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
        float mx = x[0];
        for (int i = 1; i < vocab; i++)
            mx = x[i] > mx ? x[i] : mx;
        double sum = 0;
        for (int i = 0; i < vocab; i++)
            sum += exp((double)x[i] - mx);
        double lse = mx + log(sum);
        loss[t] = (float)((double)weight[t] * (lse - x[target[t]]));
        float g = grad_scale * weight[t];
        for (int i = 0; i < vocab; i++)
            x[i] = g * (float)exp((double)x[i] - lse);
        x[target[t]] -= g;
    }
}
