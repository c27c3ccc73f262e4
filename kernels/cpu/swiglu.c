/* SwiGLU's gate: silu(gate) * up, silu(g) = g / (1 + e^-g). */
#include <math.h>

#include "internal.h"

void k_swiglu_forward(float *out, const float *gate, const float *up, int64_t len)
{
#pragma omp parallel for schedule(static) if (len >= K_PARALLEL_MIN_WORK)
    for (int64_t i = 0; i < len; i++)
        out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}
