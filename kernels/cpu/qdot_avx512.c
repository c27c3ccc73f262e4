/* Quantized dot products with AVX-512 VNNI: two weight blocks (64 values)
 * per vpdpbusd.
 *
 * vpdpbusd multiplies unsigned by signed bytes, so every weight type is
 * brought to unsigned values u with a per-block offset c, w = d_w u + c:
 *   q4_1: u = nibble, c = m;   q4_0: u = nibble, c = -8 d_w;
 *   q8_0: u = q xor 0x80 (= q + 128), c = -128 d_w.
 * With activations d_a q, a block contributes d_w d_a sum(u q) + c s, where
 * s = d_a sum(q) comes with the activations. */
#include "internal.h"

#ifdef K_HAVE_AVX512

#define INLINE static inline __attribute__((always_inline))

/* Unsigned values of one q4 block in element order: low nibbles are
 * elements 0..15, high nibbles 16..31. */
INLINE __m256i unpack_q4(const uint8_t *qs)
{
    __m128i raw = _mm_loadu_si128((const __m128i *)qs);
    __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(raw), _mm_srli_epi16(raw, 4), 1);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

/* Two q4 blocks: [low 0, low 1, high 0, high 1] reordered to element order
 * [low 0, high 0, low 1, high 1] by one lane shuffle. */
INLINE __m512i unpack_q4_pair(const uint8_t *qs0, const uint8_t *qs1)
{
    __m256i raw =
        _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)qs0)),
                                _mm_loadu_si128((const __m128i *)qs1), 1);
    __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(raw), _mm256_srli_epi16(raw, 4), 1);
    both = _mm512_and_si512(both, _mm512_set1_epi8(0x0f));
    return _mm512_shuffle_i64x2(both, both, _MM_SHUFFLE(3, 1, 2, 0));
}

/* Scale d_w and offset c of block i (see the top of the file). */
INLINE void block_scale(enum mm_dtype type, const void *w, int64_t i, float *dw, float *c)
{
    if (type == MM_Q8_0) {
        *dw = k_f16_to_f32(((const struct block_q8_0 *)w)[i].d);
        *c = -128.0f * *dw;
    } else if (type == MM_Q4_0) {
        *dw = k_f16_to_f32(((const struct block_q4_0 *)w)[i].d);
        *c = -8.0f * *dw;
    } else {
        const struct block_q4_1 *b = (const struct block_q4_1 *)w + i;
        *dw = k_f16_to_f32(b->d);
        *c = k_f16_to_f32(b->m);
    }
}

INLINE __m256i block_values(enum mm_dtype type, const void *w, int64_t i)
{
    if (type == MM_Q8_0) {
        __m256i q = _mm256_loadu_si256((const __m256i *)((const struct block_q8_0 *)w)[i].qs);
        return _mm256_xor_si256(q, _mm256_set1_epi8((char)0x80));
    }
    if (type == MM_Q4_0) return unpack_q4(((const struct block_q4_0 *)w)[i].qs);
    return unpack_q4(((const struct block_q4_1 *)w)[i].qs);
}

INLINE __m512i pair_values(enum mm_dtype type, const void *w, int64_t i)
{
    if (type == MM_Q8_0) {
        const struct block_q8_0 *b = (const struct block_q8_0 *)w + i;
        __m512i q =
            _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)b[0].qs)),
                               _mm256_loadu_si256((const __m256i *)b[1].qs), 1);
        return _mm512_xor_si512(q, _mm512_set1_epi8((char)0x80));
    }
    if (type == MM_Q4_0) {
        const struct block_q4_0 *b = (const struct block_q4_0 *)w + i;
        return unpack_q4_pair(b[0].qs, b[1].qs);
    }
    const struct block_q4_1 *b = (const struct block_q4_1 *)w + i;
    return unpack_q4_pair(b[0].qs, b[1].qs);
}

/* nt is a constant at every call site, so the token loops unroll and the
 * accumulators stay in registers. */
INLINE void qdot(enum mm_dtype type, int nt, const void *w, const struct k_qact *a, int t0,
                 float *res)
{
    int64_t nb = a->cols / MM_QBLOCK;
    const int8_t *q[K_QDOT_MAX_TOKENS];
    const float *d[K_QDOT_MAX_TOKENS], *s[K_QDOT_MAX_TOKENS];
    __m512 acc[K_QDOT_MAX_TOKENS];
    float off[K_QDOT_MAX_TOKENS];
    for (int j = 0; j < nt; j++) {
        q[j] = a->qs + (int64_t)(t0 + j) * a->cols;
        d[j] = a->d + (int64_t)(t0 + j) * nb;
        s[j] = a->s + (int64_t)(t0 + j) * nb;
        acc[j] = _mm512_setzero_ps();
        off[j] = 0.0f;
    }
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        __m512i u = pair_values(type, w, b);
        float dw0, c0, dw1, c1;
        block_scale(type, w, b, &dw0, &c0);
        block_scale(type, w, b + 1, &dw1, &c1);
        for (int j = 0; j < nt; j++) {
            __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u,
                                            _mm512_loadu_si512(q[j] + b * MM_QBLOCK));
            __m512 sc = _mm512_insertf32x8(_mm512_set1_ps(dw0 * d[j][b]),
                                           _mm256_set1_ps(dw1 * d[j][b + 1]), 1);
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), sc, acc[j]);
            off[j] += c0 * s[j][b] + c1 * s[j][b + 1];
        }
    }
    if (b < nb) { /* an odd block count leaves one block */
        __m256i u = block_values(type, w, b);
        float dw, c;
        block_scale(type, w, b, &dw, &c);
        for (int j = 0; j < nt; j++) {
            __m256i p =
                _mm256_dpbusd_epi32(_mm256_setzero_si256(), u,
                                    _mm256_loadu_si256((const __m256i *)(q[j] + b * MM_QBLOCK)));
            __m512 pf = _mm512_castps256_ps512(_mm256_cvtepi32_ps(p));
            pf = _mm512_maskz_mov_ps(0x00ff, pf);
            acc[j] = _mm512_fmadd_ps(pf, _mm512_set1_ps(dw * d[j][b]), acc[j]);
            off[j] += c * s[j][b];
        }
    }
    for (int j = 0; j < nt; j++)
        res[j] = _mm512_reduce_add_ps(acc[j]) + off[j];
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

const struct k_qdot_impl k_qdot_avx512 = {"avx512vnni", qdot_q8_0, qdot_q4_0, qdot_q4_1};

#endif
