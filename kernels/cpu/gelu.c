/* GELU, erf form (BERT): x/2 (1 + erf(x / sqrt 2)). */
#include <math.h>

#include "internal.h"

void k_gelu_forward(float *out, const float *x, int64_t len)
{
#pragma omp parallel for schedule(static) if (len >= K_PARALLEL_MIN_WORK)
    for (int64_t i = 0; i < len; i++)
        out[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
}
