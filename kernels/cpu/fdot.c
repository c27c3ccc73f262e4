/* Dot products of f32 / f16 / bf16 weight rows with f32 activations, the
 * weights converted to f32 on the fly, in tiles of several rows x several
 * tokens (internal.h).
 *
 * The order of a (row, token) pair's sum, the same in every tile: one
 * accumulator vector, FMAs over the row's vectors in order, a fixed
 * horizontal sum. AVX-512 takes the last partial vector with a masked load
 * (zeros past the row); AVX2 and the portable code sum the elements past the
 * last full vector one by one after the horizontal sum. Decode (one token)
 * runs tiles of several rows so that their independent accumulators hide the
 * FMA latency. */
#include "internal.h"

/* An element of a row: the tail past the last full SIMD vector, and the
 * whole row on the portable path. */
static float weight_at(enum mm_dtype type, const void *w, int64_t i)
{
    if (type == MM_F32) return ((const float *)w)[i];
    if (type == MM_F16) return k_f16_to_f32(((const uint16_t *)w)[i]);
    return mm_bf16_to_f32(((const uint16_t *)w)[i]);
}

static void fdot_scalar(enum mm_dtype type, const void *w, size_t row_bytes, int nr, const float *x,
                        int64_t cols, int nt, float *res)
{
    for (int r = 0; r < nr; r++) {
        const char *row = (const char *)w + r * row_bytes;
        for (int j = 0; j < nt; j++) {
            float sum = 0.0f;
            for (int64_t i = 0; i < cols; i++)
                sum += weight_at(type, row, i) * x[j * cols + i];
            res[r * nt + j] = sum;
        }
    }
}

const struct k_fdot_impl k_fdot_scalar = {"scalar", 4, 4, fdot_scalar};

#define INLINE static inline __attribute__((always_inline))

#ifdef K_HAVE_AVX512

/* The tile: 4 x 6 accumulators, the 4 weight vectors and a token vector
 * fill 29 of the 32 zmm registers (4 x 5, 3 x 7 and 3 x 8 run as fast). */
#define FR 4
#define FT 6
_Static_assert(FR <= K_DOT_MAX_ROWS && FT <= K_DOT_MAX_TOKENS, "fdot tile");

/* 16 weights from element i; when masked, only those in m are read (the
 * others are 0). */
INLINE __m512 load16(enum mm_dtype type, const void *w, int64_t i, int masked, __mmask16 m)
{
    if (type == MM_F32)
        return masked ? _mm512_maskz_loadu_ps(m, (const float *)w + i)
                      : _mm512_loadu_ps((const float *)w + i);
    const uint16_t *p = (const uint16_t *)w + i;
    __m256i h = masked ? _mm256_maskz_loadu_epi16(m, p) : _mm256_loadu_si256((const __m256i *)p);
    if (type == MM_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* acc[r][t] += w_r[i..i+16) * x_t[i..i+16), the vector masked to m; the
 * weights `ahead` bytes on are prefetched when few tokens share them (decode
 * streams them from memory). */
INLINE void fstep(enum mm_dtype type, int NR, int NT, const char *w, size_t row_bytes, size_t ahead,
                  const float *x, int64_t cols, int64_t i, int masked, __mmask16 m,
                  __m512 acc[][FT])
{
    int esize = type == MM_F32 ? 4 : 2;
    __m512 wv[FR];
    for (int r = 0; r < NR; r++) {
        const char *row = w + r * row_bytes;
        if (NT <= 2) k_prefetch_step(row + i * esize + ahead, 16 * esize);
        wv[r] = load16(type, row, i, masked, m);
        K_IN_REG(wv[r]);
    }
    for (int t = 0; t < NT; t++) {
        const float *xt = x + t * cols + i;
        __m512 xv = masked ? _mm512_maskz_loadu_ps(m, xt) : _mm512_loadu_ps(xt);
        K_IN_REG(xv);
        for (int r = 0; r < NR; r++)
            acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
    }
}

/* res[r * ld + t] for an NR x NT tile (constants at every call site). */
INLINE void ftile512(enum mm_dtype type, int NR, int NT, const char *w, size_t row_bytes,
                     const float *x, int64_t cols, float *res, int ld)
{
    __m512 acc[FR][FT];
    for (int r = 0; r < NR; r++)
        for (int t = 0; t < NT; t++)
            acc[r][t] = _mm512_setzero_ps();
    size_t ahead = k_prefetch_distance(row_bytes, NR);
    int64_t i = 0;
    for (; i + 16 <= cols; i += 16)
        fstep(type, NR, NT, w, row_bytes, ahead, x, cols, i, 0, 0, acc);
    if (i < cols)
        fstep(type, NR, NT, w, row_bytes, ahead, x, cols, i, 1, (__mmask16)((1u << (cols - i)) - 1),
              acc);
    for (int r = 0; r < NR; r++)
        for (int t = 0; t < NT; t++)
            res[r * ld + t] = _mm512_reduce_add_ps(acc[r][t]);
}

/* NR rows x T tokens, T cut into FT, 4, 2 and 1: the shapes instantiated. */
INLINE void ftile512_tokens(enum mm_dtype type, int NR, const char *w, size_t row_bytes,
                            const float *x, int64_t cols, int nt, float *res)
{
    for (int j = 0; j < nt;) {
        int T = nt - j >= FT ? FT : nt - j >= 4 ? 4 : nt - j >= 2 ? 2 : 1;
        if (T == FT)
            ftile512(type, NR, FT, w, row_bytes, x + j * cols, cols, res + j, nt);
        else if (T == 4)
            ftile512(type, NR, 4, w, row_bytes, x + j * cols, cols, res + j, nt);
        else if (T == 2)
            ftile512(type, NR, 2, w, row_bytes, x + j * cols, cols, res + j, nt);
        else
            ftile512(type, NR, 1, w, row_bytes, x + j * cols, cols, res + j, nt);
        j += T;
    }
}

/* Rows as FRs, the rest one at a time. */
INLINE void ftiles512(enum mm_dtype type, const char *w, size_t row_bytes, int nr, const float *x,
                      int64_t cols, int nt, float *res)
{
    int r = 0;
    for (; r + FR <= nr; r += FR)
        ftile512_tokens(type, FR, w + r * row_bytes, row_bytes, x, cols, nt, res + r * nt);
    for (; r < nr; r++)
        ftile512_tokens(type, 1, w + r * row_bytes, row_bytes, x, cols, nt, res + r * nt);
}

static void fdot_avx512(enum mm_dtype type, const void *w, size_t row_bytes, int nr, const float *x,
                        int64_t cols, int nt, float *res)
{
    if (type == MM_F32)
        ftiles512(MM_F32, w, row_bytes, nr, x, cols, nt, res);
    else if (type == MM_F16)
        ftiles512(MM_F16, w, row_bytes, nr, x, cols, nt, res);
    else
        ftiles512(MM_BF16, w, row_bytes, nr, x, cols, nt, res);
}

const struct k_fdot_impl k_fdot_avx512 = {"avx512", FR, FT, fdot_avx512};

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

/* res[r * ld + t] for an NR x NT tile: 16 ymm registers hold 4 x 2
 * accumulators with the weights and a token vector. */
INLINE void ftile256(enum mm_dtype type, int NR, int NT, const char *w, size_t row_bytes,
                     const float *x, int64_t cols, float *res, int ld)
{
    __m256 acc[4][2];
    for (int r = 0; r < NR; r++)
        for (int t = 0; t < NT; t++)
            acc[r][t] = _mm256_setzero_ps();
    int esize = type == MM_F32 ? 4 : 2;
    size_t ahead = k_prefetch_distance(row_bytes, NR);
    int64_t i = 0;
    for (; i + 8 <= cols; i += 8) {
        __m256 wv[4];
        for (int r = 0; r < NR; r++) {
            const char *row = w + r * row_bytes;
            if (NT == 1) k_prefetch_step(row + i * esize + ahead, 8 * esize);
            wv[r] = load8(type, row, i);
        }
        for (int t = 0; t < NT; t++) {
            __m256 xv = _mm256_loadu_ps(x + t * cols + i);
            for (int r = 0; r < NR; r++)
                acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
        }
    }
    for (int r = 0; r < NR; r++) {
        for (int t = 0; t < NT; t++) {
            float sum = hsum256(acc[r][t]);
            for (int64_t k = i; k < cols; k++)
                sum += weight_at(type, w + r * row_bytes, k) * x[t * cols + k];
            res[r * ld + t] = sum;
        }
    }
}

/* NR rows x nt tokens as tiles of 2 tokens and 1. */
INLINE void ftile256_tokens(enum mm_dtype type, int NR, const char *w, size_t row_bytes,
                            const float *x, int64_t cols, int nt, float *res)
{
    int j = 0;
    for (; j + 2 <= nt; j += 2)
        ftile256(type, NR, 2, w, row_bytes, x + j * cols, cols, res + j, nt);
    if (j < nt) ftile256(type, NR, 1, w, row_bytes, x + j * cols, cols, res + j, nt);
}

/* Rows as 4s, the rest one at a time. */
INLINE void ftiles256(enum mm_dtype type, const char *w, size_t row_bytes, int nr, const float *x,
                      int64_t cols, int nt, float *res)
{
    int r = 0;
    for (; r + 4 <= nr; r += 4)
        ftile256_tokens(type, 4, w + r * row_bytes, row_bytes, x, cols, nt, res + r * nt);
    for (; r < nr; r++)
        ftile256_tokens(type, 1, w + r * row_bytes, row_bytes, x, cols, nt, res + r * nt);
}

static void fdot_avx2(enum mm_dtype type, const void *w, size_t row_bytes, int nr, const float *x,
                      int64_t cols, int nt, float *res)
{
    if (type == MM_F32)
        ftiles256(MM_F32, w, row_bytes, nr, x, cols, nt, res);
    else if (type == MM_F16)
        ftiles256(MM_F16, w, row_bytes, nr, x, cols, nt, res);
    else
        ftiles256(MM_BF16, w, row_bytes, nr, x, cols, nt, res);
}

const struct k_fdot_impl k_fdot_avx2 = {"avx2", 4, 2, fdot_avx2};

#endif
