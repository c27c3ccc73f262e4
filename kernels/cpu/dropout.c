/* Dropout masks for training: drawing the keep-bits of a run of elements
 * from the counter-based hash (common/train_rng.h: element b of stream
 * (seed, module) kept when train_rng_uniform(seed, module, b) >= p), and
 * applying them. Bit for bit the draws of train_rng_uniform, which the CUDA
 * trainer makes too: the AVX2 path computes the same 64-bit hash four lanes
 * at a time and compares its top 24 bits against p scaled to an integer
 * (exact: the draw is that integer times 2^-24, and p times 2^24 is exact in
 * a float). */
#include <math.h>

#include "internal.h"
#include "train_rng.h"

static void mask_scalar(uint32_t *bits, int64_t bit0, int64_t count, uint64_t seed, uint64_t module,
                        uint64_t first, float p)
{
    for (int64_t i = 0; i < count; i++)
        if (train_rng_uniform(seed, module, first + (uint64_t)i) >= p)
            bits[(bit0 + i) / 32] |= 1u << ((bit0 + i) % 32);
}

#ifdef K_HAVE_AVX2

/* w's low n bits into bits at bit position at (bits already zero there). */
static void or_bits(uint32_t *bits, int64_t at, uint32_t w, int n)
{
    int shift = (int)(at % 32);
    bits[at / 32] |= w << shift;
    if (shift && n > 32 - shift) bits[at / 32 + 1] |= w >> (32 - shift);
}

/* a * c mod 2^64 in each 64-bit lane, from 32 x 32 -> 64-bit products. */
static inline __m256i mul64(__m256i a, __m256i c_lo, __m256i c_hi)
{
    __m256i lo = _mm256_mul_epu32(a, c_lo);
    __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a, 32), c_lo),
                                     _mm256_mul_epu32(a, c_hi));
    return _mm256_add_epi64(lo, _mm256_slli_epi64(cross, 32));
}

#define SET64(c) _mm256_set1_epi64x((long long)(c))

/* train_rng_mix in four lanes. */
static inline __m256i mix4(__m256i z)
{
    const uint64_t c1 = 0xbf58476d1ce4e5b9ULL, c2 = 0x94d049bb133111ebULL;
    z = _mm256_add_epi64(z, SET64(0x9e3779b97f4a7c15ULL));
    z = mul64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 30)), SET64(c1 & 0xffffffffu),
              SET64(c1 >> 32));
    z = mul64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 27)), SET64(c2 & 0xffffffffu),
              SET64(c2 >> 32));
    return _mm256_xor_si256(z, _mm256_srli_epi64(z, 31));
}

static void mask_avx2(uint32_t *bits, int64_t bit0, int64_t count, uint64_t seed, uint64_t module,
                      uint64_t first, float p)
{
    /* train_rng_u64(seed, module, b) = mix(inner ^ b) */
    uint64_t inner = train_rng_mix(train_rng_mix(seed) ^ module);
    __m256i below = SET64((int64_t)ceilf(p * 16777216.0f) - 1);
    __m256i step = SET64(4), b = _mm256_add_epi64(SET64(first), _mm256_set_epi64x(3, 2, 1, 0));
    __m256i vin = SET64(inner);
    int64_t i = 0;
    for (; i + 32 <= count; i += 32) {
        uint32_t w = 0;
        for (int j = 0; j < 32; j += 4) {
            __m256i v = _mm256_srli_epi64(mix4(_mm256_xor_si256(vin, b)), 40);
            __m256i keep = _mm256_cmpgt_epi64(v, below);
            w |= (uint32_t)_mm256_movemask_pd(_mm256_castsi256_pd(keep)) << j;
            b = _mm256_add_epi64(b, step);
        }
        or_bits(bits, bit0 + i, w, 32);
    }
    mask_scalar(bits, bit0 + i, count - i, seed, module, first + (uint64_t)i, p);
}

#endif

void k_dropout_mask(uint32_t *bits, int64_t bit0, int64_t count, uint64_t seed, uint64_t module,
                    uint64_t first, float p)
{
#ifdef K_HAVE_AVX2
    mask_avx2(bits, bit0, count, seed, module, first, p);
#else
    mask_scalar(bits, bit0, count, seed, module, first, p);
#endif
}

void k_dropout_mask_portable(uint32_t *bits, int64_t bit0, int64_t count, uint64_t seed,
                             uint64_t module, uint64_t first, float p)
{
    mask_scalar(bits, bit0, count, seed, module, first, p);
}

static inline int kept(const uint32_t *bits, int64_t i)
{
    return (int)(bits[i / 32] >> (i % 32) & 1u);
}

#ifdef K_HAVE_AVX2
/* The eight bits from bit i (a multiple of 8) as a lane mask. */
static inline __m256 lanes(const uint32_t *bits, int64_t i)
{
    const __m256i one_each = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    __m256i b = _mm256_set1_epi32((int)(bits[i / 32] >> (i % 32) & 0xffu));
    return _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(b, one_each), one_each));
}
#endif

void k_dropout_apply(float *out, const float *x, const uint32_t *bits, int64_t count, float keep)
{
    int64_t i = 0;
#ifdef K_HAVE_AVX2
    __m256 vk = _mm256_set1_ps(keep);
    for (; i + 8 <= count; i += 8)
        _mm256_storeu_ps(out + i,
                         _mm256_and_ps(lanes(bits, i), _mm256_mul_ps(_mm256_loadu_ps(x + i), vk)));
#endif
    for (; i < count; i++)
        out[i] = kept(bits, i) ? x[i] * keep : 0.0f;
}

void k_dropout_accumulate(float *dx, const float *g, const uint32_t *bits, int64_t count,
                          float keep)
{
    int64_t i = 0;
#ifdef K_HAVE_AVX2
    __m256 vk = _mm256_set1_ps(keep);
    for (; i + 8 <= count; i += 8) {
        __m256 d = _mm256_loadu_ps(dx + i);
        __m256 sum = _mm256_add_ps(d, _mm256_mul_ps(_mm256_loadu_ps(g + i), vk));
        _mm256_storeu_ps(dx + i, _mm256_blendv_ps(d, sum, lanes(bits, i)));
    }
#endif
    for (; i < count; i++)
        if (kept(bits, i)) dx[i] += g[i] * keep;
}
