/* Quantized dot products with AVX-512 VNNI: two weight blocks (64 values)
 * per vpdpbusd.
 *
 * vpdpbusd multiplies unsigned by signed bytes, so every weight type is
 * brought to unsigned values u:
 *   q4_1: u = nibble, w = d_w u + m;
 *   q4_0: u = nibble, w = d_w (u - 8);
 *   q8_0: u = q xor 0x80 = q + 128, w = d_w (u - 128).
 * A block's 32 products land in 8 int32 lanes. For q4_0 and q8_0 the
 * offset's share, -8 sum(q_a) or -128 sum(q_a) spread over the 8 lanes, is
 * the accumulator vpdpbusd starts from (aux8 holds it per lane), so the
 * integer sums come out exact; q4_1 adds m * s / 8 per lane in float (aux8
 * holds s / 8). Each lane is then scaled by d_w d_a.
 *
 * A pair of weight blocks is read with one masked load (it never touches
 * bytes past the pair), the nibbles put in element order with vpermb and a
 * per-lane shift, the two f16 scales spread over their lanes with vpermw.
 * An odd last block is the same code with the second block masked to zero. */
#include "internal.h"

#ifdef K_HAVE_AVX512

#define INLINE static inline __attribute__((always_inline))

/* How far ahead of the pair being multiplied its row's (and the next
 * rows') bytes are prefetched. */
#define PREFETCH_AHEAD 4096

/* Byte offsets inside a pair of blocks. */
#define Q40_BYTES 18
#define Q41_BYTES 20
#define Q80_BYTES 34

static void prepare_lanes(struct k_qact *a, int t, enum mm_dtype wtype)
{
    int64_t nb = a->cols / MM_QBLOCK;
    const int8_t *q = a->qs + (int64_t)t * a->cols;
    float *d8 = a->d8 + (int64_t)t * nb * 8;
    for (int64_t b = 0; b < nb; b++) {
        float d = a->d[(int64_t)t * nb + b];
        _mm256_storeu_ps(d8 + b * 8, _mm256_set1_ps(d));
        if (wtype == MM_Q4_1) {
            float *s8 = (float *)a->aux8 + (int64_t)t * nb * 8;
            _mm256_storeu_ps(s8 + b * 8, _mm256_set1_ps(a->s[(int64_t)t * nb + b] * 0.125f));
        } else {
            int32_t *bias = (int32_t *)a->aux8 + (int64_t)t * nb * 8;
            int sum = 0;
            for (int i = 0; i < MM_QBLOCK; i++)
                sum += q[b * MM_QBLOCK + i];
            /* the offset (8 or 128) times sum(q), an eighth per lane */
            int32_t per_lane = wtype == MM_Q4_0 ? -sum : -16 * sum;
            _mm256_storeu_si256((__m256i *)(bias + b * 8), _mm256_set1_epi32(per_lane));
        }
    }
}

/* The unsigned values u of a pair (or, with one = 1, of a single block and
 * zeros), the scales d_w of each block's 8 lanes, and for q4_1 the mins. */
INLINE __m512i load_pair(enum mm_dtype type, const uint8_t *p, int one, __m512 *dw, __m512 *mw)
{
    if (type == MM_Q8_0) {
        __m512i raw = _mm512_maskz_loadu_epi8(one ? (1ull << Q80_BYTES) - 1 : ~0ull, p);
        /* d_0 is word 0, d_1 word 17 */
        const __m512i widx = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 17,
                                              17, 17, 17, 17, 17, 17, 17, 0, 0, 0, 0, 0, 0, 0, 0);
        *dw = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(widx, raw)));
        __m256i q0 = _mm256_loadu_si256((const __m256i *)(p + 2));
        __m256i q1 =
            one ? _mm256_setzero_si256() : _mm256_loadu_si256((const __m256i *)(p + Q80_BYTES + 2));
        __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(q0), q1, 1);
        /* the masked-out block gets u = 128 against activations masked to 0 */
        return _mm512_xor_si512(q, _mm512_set1_epi8((char)0x80));
    }
    int bytes = type == MM_Q4_0 ? Q40_BYTES : Q41_BYTES;
    __m512i raw = _mm512_maskz_loadu_epi8(one ? (1ull << bytes) - 1 : (1ull << (2 * bytes)) - 1, p);
    /* lanes: [qs_0, qs_0, qs_1, qs_1], the second of each shifted by 4 */
    __m512i bidx;
    if (type == MM_Q4_0) {
        bidx = _mm512_set_epi8(35, 34, 33, 32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 35,
                               34, 33, 32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 17, 16,
                               15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 17, 16, 15, 14, 13,
                               12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2);
    } else {
        bidx = _mm512_set_epi8(39, 38, 37, 36, 35, 34, 33, 32, 31, 30, 29, 28, 27, 26, 25, 24, 39,
                               38, 37, 36, 35, 34, 33, 32, 31, 30, 29, 28, 27, 26, 25, 24, 19, 18,
                               17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 19, 18, 17, 16, 15,
                               14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4);
    }
    const __m512i shift = _mm512_set_epi16(4, 4, 4, 4, 4, 4, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4,
                                           4, 4, 4, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0);
    __m512i u = _mm512_srlv_epi16(_mm512_permutexvar_epi8(bidx, raw), shift);
    u = _mm512_and_si512(u, _mm512_set1_epi8(0x0f));
    if (type == MM_Q4_0) {
        const __m512i widx = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 9,
                                              9, 9, 9, 9, 9, 9, 0, 0, 0, 0, 0, 0, 0, 0);
        *dw = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(widx, raw)));
    } else {
        /* low half d_0 d_1, high half m_0 m_1 */
        const __m512i widx =
            _mm512_set_epi16(11, 11, 11, 11, 11, 11, 11, 11, 1, 1, 1, 1, 1, 1, 1, 1, 10, 10, 10, 10,
                             10, 10, 10, 10, 0, 0, 0, 0, 0, 0, 0, 0);
        __m512i h = _mm512_permutexvar_epi16(widx, raw);
        *dw = _mm512_cvtph_ps(_mm512_castsi512_si256(h));
        *mw = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1));
    }
    return u;
}

/* nt is a constant at every call site, so the token loops unroll and the
 * accumulators stay in registers. */
INLINE void qdot(enum mm_dtype type, int nt, const void *w, const struct k_qact *a, int t0,
                 float *res)
{
    int64_t nb = a->cols / MM_QBLOCK;
    size_t bsz = type == MM_Q8_0 ? Q80_BYTES : type == MM_Q4_0 ? Q40_BYTES : Q41_BYTES;
    const int8_t *q[K_QDOT_MAX_TOKENS];
    const float *d8[K_QDOT_MAX_TOKENS];
    const char *aux8[K_QDOT_MAX_TOKENS];
    __m512 acc[K_QDOT_MAX_TOKENS];
    for (int j = 0; j < nt; j++) {
        q[j] = a->qs + (int64_t)(t0 + j) * a->cols;
        d8[j] = a->d8 + (int64_t)(t0 + j) * nb * 8;
        aux8[j] = (const char *)a->aux8 + (int64_t)(t0 + j) * nb * 8 * 4;
        acc[j] = _mm512_setzero_ps();
    }
    const uint8_t *p = w;
    for (int64_t b = 0; b < nb; b += 2, p += 2 * bsz) {
        int one = b + 1 == nb;
        __mmask16 lanes = one ? 0x00ff : 0xffff;
        __m512 dw, mw = _mm512_setzero_ps();
        /* decode streams the weights from memory once: ask for them early */
        _mm_prefetch((const char *)p + PREFETCH_AHEAD, _MM_HINT_T0);
        __m512i u = load_pair(type, p, one, &dw, &mw);
        for (int j = 0; j < nt; j++) {
            __m512i qa = _mm512_maskz_loadu_epi8(one ? 0xffffffffull : ~0ull, q[j] + b * MM_QBLOCK);
            __m512 da = _mm512_maskz_loadu_ps(lanes, d8[j] + b * 8);
            __m512i start = type == MM_Q4_1 ? _mm512_setzero_si512()
                                            : _mm512_maskz_loadu_epi32(lanes, aux8[j] + b * 32);
            __m512i isum = _mm512_dpbusd_epi32(start, u, qa);
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dw, da), acc[j]);
            if (type == MM_Q4_1)
                acc[j] =
                    _mm512_fmadd_ps(mw, _mm512_maskz_loadu_ps(lanes, aux8[j] + b * 32), acc[j]);
        }
    }
    for (int j = 0; j < nt; j++)
        res[j] = _mm512_reduce_add_ps(acc[j]);
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

const struct k_qdot_impl k_qdot_avx512 = {"avx512vnni", qdot_q8_0, qdot_q4_0, qdot_q4_1,
                                          prepare_lanes};

#endif
