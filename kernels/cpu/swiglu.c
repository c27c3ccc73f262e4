/* SwiGLU's gate: silu(gate) * up, silu(g) = g / (1 + e^-g), and its
 * backward. */
#include <math.h>

#include "internal.h"

#ifdef K_HAVE_AVX512
/* Elements [i, i + 16) under mask m. */
static inline void swiglu16(float *out, const float *gate, const float *up, int64_t i, __mmask16 m)
{
    __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
    __m512 e = k_exp512(_mm512_sub_ps(_mm512_setzero_ps(), g));
    __m512 silu = _mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(silu, _mm512_maskz_loadu_ps(m, up + i)));
}
#endif

/* Every element by the same function (the vector exp where there is one, a
 * masked vector for the last few), so a token's values do not depend on
 * where its row falls in the flat n x ffn array. */
void k_swiglu_forward(float *out, const float *gate, const float *up, int64_t len)
{
#pragma omp parallel for schedule(static) if (len >= K_PARALLEL_MIN_WORK)
    for (int64_t i0 = 0; i0 < len; i0 += 256) {
        int64_t end = i0 + 256 < len ? i0 + 256 : len;
#ifdef K_HAVE_AVX512
        /* expf per element costs as much as the FFN's down projection at
         * decode; the vector exp is 16 at a time */
        for (int64_t i = i0; i < end; i += 16)
            swiglu16(out, gate, up, i,
                     end - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (end - i)) - 1));
#else
        for (int64_t i = i0; i < end; i++)
            out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
#endif
    }
}

/* One element of the backward, with s = sigmoid(g): d silu / dg =
 * s (1 + g (1 - s)). */
static inline void swiglu_grad(float *dgate, float *dup, float d, float g, float u, float s)
{
    *dgate = d * u * (s * (1.0f + g * (1.0f - s)));
    *dup = d * (g * s);
}

/* Training only: e^-g by k_exp_lane (k_exp8 on AVX2, the same bits), so an
 * element's gradient is the same on either path and wherever it falls. */
void k_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                       const float *up, int64_t len)
{
#pragma omp parallel for schedule(static) if (len >= K_PARALLEL_MIN_WORK)
    for (int64_t i0 = 0; i0 < len; i0 += 256) {
        int64_t end = i0 + 256 < len ? i0 + 256 : len, i = i0;
#ifdef K_HAVE_AVX2
        for (; i + 8 <= end; i += 8) {
            __m256 g = _mm256_loadu_ps(gate + i), one = _mm256_set1_ps(1.0f);
            __m256 s = _mm256_div_ps(
                one, _mm256_add_ps(one, k_exp8(_mm256_sub_ps(_mm256_setzero_ps(), g))));
            __m256 d = _mm256_loadu_ps(dout + i);
            __m256 ds =
                _mm256_mul_ps(s, _mm256_add_ps(one, _mm256_mul_ps(g, _mm256_sub_ps(one, s))));
            _mm256_storeu_ps(dgate + i,
                             _mm256_mul_ps(_mm256_mul_ps(d, _mm256_loadu_ps(up + i)), ds));
            _mm256_storeu_ps(dup + i, _mm256_mul_ps(d, _mm256_mul_ps(g, s)));
        }
#endif
        for (; i < end; i++)
            swiglu_grad(dgate + i, dup + i, dout[i], gate[i], up[i],
                        1.0f / (1.0f + k_exp_lane(-gate[i])));
    }
}
