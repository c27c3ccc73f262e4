/* Elementwise addition (residual connections). */
#include "internal.h"

void k_add_inplace(float *x, const float *y, int64_t len)
{
#pragma omp simd
    for (int64_t i = 0; i < len; i++)
        x[i] += y[i];
}
