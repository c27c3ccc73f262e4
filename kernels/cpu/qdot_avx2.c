/* Quantized dot products with AVX2 (and AVX-VNNI where present): one weight
 * block (32 values) per step.
 *
 * The byte multiply takes unsigned by signed bytes. q4 weights are brought
 * to unsigned nibbles u with a per-block offset c (q4_1: c = m, q4_0:
 * c = -8 d_w) and a block contributes d_w d_a sum(u q) + c s, where
 * s = d_a sum(q). q8_0 moves the weight's sign onto the activation instead
 * (|w| times sign(w) q), because (q + 128) q overflows vpmaddubsw's 16-bit
 * sums. */
#include "internal.h"

#ifdef K_HAVE_AVX2

#define INLINE static inline __attribute__((always_inline))

INLINE __m256i unpack_q4(const uint8_t *qs)
{
    __m128i raw = _mm_loadu_si128((const __m128i *)qs);
    __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(raw), _mm_srli_epi16(raw, 4), 1);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

/* Eight 32-bit sums of products of unsigned u and signed q bytes. */
INLINE __m256i dot_bytes(__m256i u, __m256i q)
{
#ifdef __AVXVNNI__
    return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, q);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, q), _mm256_set1_epi16(1));
#endif
}

INLINE float hsum(__m256 v)
{
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

INLINE void qdot(enum mm_dtype type, int nt, const void *w, const struct k_qact *a, int t0,
                 float *res)
{
    int64_t nb = a->cols / MM_QBLOCK;
    const int8_t *q[K_QDOT_MAX_TOKENS];
    const float *d[K_QDOT_MAX_TOKENS], *s[K_QDOT_MAX_TOKENS];
    __m256 acc[K_QDOT_MAX_TOKENS];
    float off[K_QDOT_MAX_TOKENS];
    for (int j = 0; j < nt; j++) {
        q[j] = a->qs + (int64_t)(t0 + j) * a->cols;
        d[j] = a->d + (int64_t)(t0 + j) * nb;
        s[j] = a->s + (int64_t)(t0 + j) * nb;
        acc[j] = _mm256_setzero_ps();
        off[j] = 0.0f;
    }
    for (int64_t b = 0; b < nb; b++) {
        __m256i u, wq = _mm256_setzero_si256();
        float dw, c = 0.0f;
        if (type == MM_Q8_0) {
            const struct block_q8_0 *blk = (const struct block_q8_0 *)w + b;
            wq = _mm256_loadu_si256((const __m256i *)blk->qs);
            u = _mm256_sign_epi8(wq, wq);
            dw = k_f16_to_f32(blk->d);
        } else if (type == MM_Q4_0) {
            const struct block_q4_0 *blk = (const struct block_q4_0 *)w + b;
            u = unpack_q4(blk->qs);
            dw = k_f16_to_f32(blk->d);
            c = -8.0f * dw;
        } else {
            const struct block_q4_1 *blk = (const struct block_q4_1 *)w + b;
            u = unpack_q4(blk->qs);
            dw = k_f16_to_f32(blk->d);
            c = k_f16_to_f32(blk->m);
        }
        for (int j = 0; j < nt; j++) {
            __m256i qj = _mm256_loadu_si256((const __m256i *)(q[j] + b * MM_QBLOCK));
            if (type == MM_Q8_0) qj = _mm256_sign_epi8(qj, wq);
            __m256 p = _mm256_cvtepi32_ps(dot_bytes(u, qj));
            acc[j] = _mm256_fmadd_ps(p, _mm256_set1_ps(dw * d[j][b]), acc[j]);
            if (type != MM_Q8_0) off[j] += c * s[j][b];
        }
    }
    for (int j = 0; j < nt; j++)
        res[j] = hsum(acc[j]) + off[j];
}

#define QDOT_FN(fn, type)                                                                          \
    static void fn(const void *w, const struct k_qact *a, int t0, int nt, float *res)              \
    {                                                                                              \
        switch (nt) {                                                                              \
        case 1:                                                                                    \
            qdot(type, 1, w, a, t0, res);                                                          \
            break;                                                                                 \
        case 2:                                                                                    \
            qdot(type, 2, w, a, t0, res);                                                          \
            break;                                                                                 \
        case 3:                                                                                    \
            qdot(type, 3, w, a, t0, res);                                                          \
            break;                                                                                 \
        default:                                                                                   \
            qdot(type, 4, w, a, t0, res);                                                          \
            break;                                                                                 \
        }                                                                                          \
    }

QDOT_FN(qdot_q8_0, MM_Q8_0)
QDOT_FN(qdot_q4_0, MM_Q4_0)
QDOT_FN(qdot_q4_1, MM_Q4_1)

const struct k_qdot_impl k_qdot_avx2 = {"avx2", qdot_q8_0, qdot_q4_0, qdot_q4_1, NULL};

#endif
