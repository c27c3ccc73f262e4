/* Dot products of f32 / f16 / bf16 weight rows with f32 activations, the
 * weights converted to f32 on the fly: the decode path of the float matmuls
 * (reading each weight once, at its stored width, is what bounds decode). */
#include "internal.h"

/* The tail of a row past the last full SIMD vector, and the whole row on the
 * portable path. */
static float weight_at(enum mm_dtype type, const void *w, int64_t i)
{
    if (type == MM_F32) return ((const float *)w)[i];
    if (type == MM_F16) return k_f16_to_f32(((const uint16_t *)w)[i]);
    return mm_bf16_to_f32(((const uint16_t *)w)[i]);
}

static void fdot_scalar(enum mm_dtype type, const void *w, const float *x, int64_t cols, int nt,
                        float *res)
{
    for (int j = 0; j < nt; j++) {
        const float *xj = x + j * cols;
        float sum = 0.0f;
        for (int64_t i = 0; i < cols; i++)
            sum += weight_at(type, w, i) * xj[i];
        res[j] = sum;
    }
}

const struct k_fdot_impl k_fdot_scalar = {"scalar", fdot_scalar};

#define INLINE static inline __attribute__((always_inline))

/* How far ahead of the vector being multiplied the weights are prefetched. */
#define PREFETCH_AHEAD 4096

#define FDOT_TYPES(body, nt)                                                                       \
    do {                                                                                           \
        if (type == MM_F32)                                                                        \
            body(MM_F32, nt, w, x, cols, res);                                                     \
        else if (type == MM_F16)                                                                   \
            body(MM_F16, nt, w, x, cols, res);                                                     \
        else                                                                                       \
            body(MM_BF16, nt, w, x, cols, res);                                                    \
    } while (0)

/* Both the dtype and nt become constants inside, so the loops specialise. */
#define FDOT_DISPATCH(body)                                                                        \
    switch (nt) {                                                                                  \
    case 1:                                                                                        \
        FDOT_TYPES(body, 1);                                                                       \
        break;                                                                                     \
    case 2:                                                                                        \
        FDOT_TYPES(body, 2);                                                                       \
        break;                                                                                     \
    case 3:                                                                                        \
        FDOT_TYPES(body, 3);                                                                       \
        break;                                                                                     \
    default:                                                                                       \
        FDOT_TYPES(body, 4);                                                                       \
        break;                                                                                     \
    }

#ifdef K_HAVE_AVX512

INLINE __m512 load16(enum mm_dtype type, const void *w, int64_t i)
{
    if (type == MM_F32) return _mm512_loadu_ps((const float *)w + i);
    __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)w + i));
    if (type == MM_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

INLINE void fdot512(enum mm_dtype type, int nt, const void *w, const float *x, int64_t cols,
                    float *res)
{
    /* four vectors a step, each with its own accumulators, so that the
     * FMA latency does not serialise a single-token row */
    __m512 acc[K_QDOT_MAX_TOKENS][4];
    for (int j = 0; j < nt; j++)
        for (int u = 0; u < 4; u++)
            acc[j][u] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 64 <= cols; i += 64) {
        /* decode streams the weights from memory once: ask for them early */
        _mm_prefetch((const char *)w + (i + 64) * (type == MM_F32 ? 4 : 2) + PREFETCH_AHEAD,
                     _MM_HINT_T0);
        for (int u = 0; u < 4; u++) {
            __m512 wv = load16(type, w, i + 16 * u);
            for (int j = 0; j < nt; j++)
                acc[j][u] =
                    _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + j * cols + i + 16 * u), acc[j][u]);
        }
    }
    for (; i + 16 <= cols; i += 16) {
        __m512 wv = load16(type, w, i);
        for (int j = 0; j < nt; j++)
            acc[j][0] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + j * cols + i), acc[j][0]);
    }
    for (int j = 0; j < nt; j++) {
        __m512 a =
            _mm512_add_ps(_mm512_add_ps(acc[j][0], acc[j][1]), _mm512_add_ps(acc[j][2], acc[j][3]));
        float sum = _mm512_reduce_add_ps(a);
        for (int64_t k = i; k < cols; k++)
            sum += weight_at(type, w, k) * x[j * cols + k];
        res[j] = sum;
    }
}

static void fdot_avx512(enum mm_dtype type, const void *w, const float *x, int64_t cols, int nt,
                        float *res)
{
    FDOT_DISPATCH(fdot512)
}

const struct k_fdot_impl k_fdot_avx512 = {"avx512", fdot_avx512};

#endif

#ifdef K_HAVE_AVX2

INLINE __m256 load8(enum mm_dtype type, const void *w, int64_t i)
{
    if (type == MM_F32) return _mm256_loadu_ps((const float *)w + i);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + i));
    if (type == MM_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

INLINE float hsum256(__m256 v)
{
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

INLINE void fdot256(enum mm_dtype type, int nt, const void *w, const float *x, int64_t cols,
                    float *res)
{
    /* two vectors a step (16 ymm registers hold no more accumulators) */
    __m256 acc[K_QDOT_MAX_TOKENS][2];
    for (int j = 0; j < nt; j++)
        acc[j][0] = acc[j][1] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= cols; i += 16) {
        __m256 w0 = load8(type, w, i), w1 = load8(type, w, i + 8);
        for (int j = 0; j < nt; j++) {
            acc[j][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + j * cols + i), acc[j][0]);
            acc[j][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + j * cols + i + 8), acc[j][1]);
        }
    }
    for (; i + 8 <= cols; i += 8) {
        __m256 wv = load8(type, w, i);
        for (int j = 0; j < nt; j++)
            acc[j][0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + j * cols + i), acc[j][0]);
    }
    for (int j = 0; j < nt; j++) {
        float sum = hsum256(_mm256_add_ps(acc[j][0], acc[j][1]));
        for (int64_t k = i; k < cols; k++)
            sum += weight_at(type, w, k) * x[j * cols + k];
        res[j] = sum;
    }
}

static void fdot_avx2(enum mm_dtype type, const void *w, const float *x, int64_t cols, int nt,
                      float *res)
{
    FDOT_DISPATCH(fdot256)
}

const struct k_fdot_impl k_fdot_avx2 = {"avx2", fdot_avx2};

#endif
