/* SwiGLU's gate: silu(gate) * up, silu(g) = g / (1 + e^-g). */
#include <math.h>

#include "internal.h"

void k_swiglu_forward(float *out, const float *gate, const float *up, int64_t len)
{
#pragma omp parallel for schedule(static) if (len >= K_PARALLEL_MIN_WORK)
    for (int64_t i0 = 0; i0 < len; i0 += 256) {
        int64_t end = i0 + 256 < len ? i0 + 256 : len, i = i0;
#ifdef K_HAVE_AVX512
        /* expf per element costs as much as the FFN's down projection at
         * decode; the vector exp is 16 at a time */
        for (; i + 16 <= end; i += 16) {
            __m512 g = _mm512_loadu_ps(gate + i);
            __m512 e = k_exp512(_mm512_sub_ps(_mm512_setzero_ps(), g));
            __m512 silu = _mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
            _mm512_storeu_ps(out + i, _mm512_mul_ps(silu, _mm512_loadu_ps(up + i)));
        }
#endif
        for (; i < end; i++)
            out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
    }
}
