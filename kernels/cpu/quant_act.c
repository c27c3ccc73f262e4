/* Quantization of f32 activations to 8-bit blocks for the quantized
 * matmuls (the role of llama.cpp's quantize_row_q8_0 / q8_1), done once per
 * token and matmul call, before the integer dot products. */
#include <math.h>

#include "internal.h"

void k_quantize_act_row(const float *x, int64_t cols, int8_t *qs, float *d, float *s)
{
    for (int64_t b = 0; b < cols / MM_QBLOCK; b++) {
        const float *xb = x + b * MM_QBLOCK;
        int8_t *qb = qs + b * MM_QBLOCK;
#ifdef __AVX512F__
        __m512 v0 = _mm512_loadu_ps(xb), v1 = _mm512_loadu_ps(xb + 16);
        float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        float db = amax / 127.0f;
        __m512 id = _mm512_set1_ps(db != 0.0f ? 1.0f / db : 0.0f);
        /* cvtps rounds to nearest even under the default rounding mode */
        __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, id));
        __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, id));
        _mm_storeu_si128((__m128i *)qb, _mm512_cvtepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(qb + 16), _mm512_cvtepi32_epi8(q1));
        int sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
#else
        float amax = 0.0f;
        for (int j = 0; j < MM_QBLOCK; j++)
            amax = fmaxf(amax, fabsf(xb[j]));
        float db = amax / 127.0f;
        float id = db != 0.0f ? 1.0f / db : 0.0f;
        int sum = 0;
        for (int j = 0; j < MM_QBLOCK; j++) {
            qb[j] = (int8_t)nearbyintf(xb[j] * id);
            sum += qb[j];
        }
#endif
        d[b] = db;
        s[b] = db * (float)sum;
    }
}
