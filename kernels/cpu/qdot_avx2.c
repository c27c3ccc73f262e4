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

/* res[j * ld] = dot(row w, token t0 + j) for j < NT <= 4 (a constant at
 * every call site). Each token has its own accumulators: the same sum
 * whatever NT. */
INLINE void qdot(enum mm_dtype type, int NT, const void *w, const struct k_qact *a, int t0,
                 float *res, int ld)
{
    int64_t nb = a->cols / MM_QBLOCK;
    const int8_t *q[4];
    const float *d[4], *s[4];
    __m256 acc[4];
    float off[4];
    for (int j = 0; j < NT; j++) {
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
        for (int j = 0; j < NT; j++) {
            __m256i qj = _mm256_loadu_si256((const __m256i *)(q[j] + b * MM_QBLOCK));
            if (type == MM_Q8_0) qj = _mm256_sign_epi8(qj, wq);
            __m256 p = _mm256_cvtepi32_ps(dot_bytes(u, qj));
            acc[j] = _mm256_fmadd_ps(p, _mm256_set1_ps(dw * d[j][b]), acc[j]);
            if (type != MM_Q8_0) off[j] += c * s[j][b];
        }
    }
    for (int j = 0; j < NT; j++)
        res[j * ld] = hsum(acc[j]) + off[j];
}

/* Row by row, tokens as 4s, then 2 and 1: res[r * nt + j]. */
INLINE void tiles(enum mm_dtype type, const void *w, size_t row_bytes, int nr,
                  const struct k_qact *a, int t0, int nt, float *res)
{
    for (int r = 0; r < nr; r++) {
        const char *row = (const char *)w + r * row_bytes;
        for (int j = 0; j < nt;) {
            int m = nt - j >= 4 ? 4 : nt - j >= 2 ? 2 : 1;
            float *o = res + r * nt + j;
            if (m == 4)
                qdot(type, 4, row, a, t0 + j, o, 1);
            else if (m == 2)
                qdot(type, 2, row, a, t0 + j, o, 1);
            else
                qdot(type, 1, row, a, t0 + j, o, 1);
            j += m;
        }
    }
}

/* The weight type becomes a constant inside, so the loops specialise. */
static void dot_tiles(enum mm_dtype type, const void *w, size_t row_bytes, int nr,
                      const struct k_qact *a, int t0, int nt, float *res)
{
    if (type == MM_Q8_0)
        tiles(MM_Q8_0, w, row_bytes, nr, a, t0, nt, res);
    else if (type == MM_Q4_0)
        tiles(MM_Q4_0, w, row_bytes, nr, a, t0, nt, res);
    else
        tiles(MM_Q4_1, w, row_bytes, nr, a, t0, nt, res);
}

const struct k_qdot_impl k_qdot_avx2 = {
    .name = "avx2",
    .rows = 4,
    .tokens = 4,
    .dot = dot_tiles,
};

#endif
