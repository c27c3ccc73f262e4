/* Internals of the CPU kernels, shared between their files and with the tests
 * that hold every SIMD path against the portable one. The engine includes
 * kernels.h, never this. */
#ifndef MEMLLM_KERNELS_CPU_INTERNAL_H
#define MEMLLM_KERNELS_CPU_INTERNAL_H

#include <stdint.h>

#include "dtype.h"
#include "kernels.h"

/* The instruction-set levels that have SIMD paths. Each is compiled when the
 * build targets a CPU that has it (the build uses -march=native). */
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) &&                      \
    defined(__AVX512VNNI__)
#define K_HAVE_AVX512 1
#endif
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define K_HAVE_AVX2 1
#endif

#if defined(__F16C__) || defined(K_HAVE_AVX2) || defined(K_HAVE_AVX512)
#include <immintrin.h>
#endif

/* IEEE half <-> single by bit manipulation: the reference for the F16C
 * instructions, and the conversion on CPUs without them. */
float k_f16_to_f32_portable(uint16_t h);
uint16_t k_f32_to_f16_portable(float f);

/* Inline so that dequantizing loops do not pay a call per block. */
static inline float k_f16_to_f32(uint16_t h)
{
#ifdef __F16C__
    return _cvtsh_ss(h);
#else
    return k_f16_to_f32_portable(h);
#endif
}

/* Activations quantized to 8 bits for the integer dot products of the
 * quantized matmuls, one row of `cols` values per token: per block of
 * MM_QBLOCK values a scale d (f32, so no precision is lost to an f16 scale)
 * and s = d * sum(qs), which the q4_0, q4_1 and q8_0 products need for their
 * offset terms. The layout is plain (qs contiguous, scales apart) so that a
 * SIMD loop loads 64 values of two blocks at once.
 *
 * The AVX-512 loop also wants each block's scalars spread over the 8 lanes
 * that hold its partial sums (d8, and aux8: see qdot_avx512.c), so that a
 * pair of blocks takes one load, not a broadcast per block; those are filled
 * only for it (NULL otherwise). */
struct k_qact {
    int64_t cols;
    int n;      /* tokens */
    int8_t *qs; /* [n, cols] */
    float *d;   /* [n, cols / MM_QBLOCK] */
    float *s;   /* [n, cols / MM_QBLOCK] */
    float *d8;  /* [n, cols / MM_QBLOCK, 8] */
    void *aux8; /* [n, cols / MM_QBLOCK, 8], 32-bit values */
};

struct k_qdot_impl;

/* Quantizes n tokens of x for weights of type wtype and the dot products of
 * impl, into buffers it allocates (k_qact_free releases them); -1 when it
 * cannot allocate. */
int k_qact_init(struct k_qact *a, const float *x, int n, int64_t cols, enum mm_dtype wtype,
                const struct k_qdot_impl *impl);
void k_qact_free(struct k_qact *a);

/* Quantizes one row: d = amax / 127, q = round-to-nearest-even(x / d), the
 * rounding the SIMD conversion instructions do. */
void k_quantize_act_row(const float *x, int64_t cols, int8_t *qs, float *d, float *s);

/* res[j] = dot(weight row w, token t0 + j of a) for j < nt, nt <= K_QDOT_MAX_TOKENS:
 * one weight row against up to four tokens, so that a weight block is loaded
 * and unpacked once for all of them. */
#define K_QDOT_MAX_TOKENS 4
typedef void (*k_qdot_fn)(const void *w, const struct k_qact *a, int t0, int nt, float *res);

/* One instruction-set level's dot products, indexed by weight dtype. */
struct k_qdot_impl {
    const char *name;
    k_qdot_fn q8_0, q4_0, q4_1;
    /* Fills d8 and aux8 of token t for weights of type wtype; NULL when the
     * level does not use them. */
    void (*prepare_lanes)(struct k_qact *a, int t, enum mm_dtype wtype);
};

/* res[j] = dot(weight row w, x[j * cols ...]) for j < nt <= K_QDOT_MAX_TOKENS,
 * for f32 / f16 / bf16 weight rows of any length. */
typedef void (*k_fdot_fn)(enum mm_dtype type, const void *w, const float *x, int64_t cols, int nt,
                          float *res);

struct k_fdot_impl {
    const char *name;
    k_fdot_fn dot;
};

extern const struct k_qdot_impl k_qdot_scalar;
extern const struct k_fdot_impl k_fdot_scalar;
#ifdef K_HAVE_AVX2
extern const struct k_qdot_impl k_qdot_avx2;
extern const struct k_fdot_impl k_fdot_avx2;
#endif
#ifdef K_HAVE_AVX512
extern const struct k_qdot_impl k_qdot_avx512;
extern const struct k_fdot_impl k_fdot_avx512;
#endif

/* The levels this build can run, best first; the last is the portable C one. */
extern const struct k_qdot_impl *const k_qdot_impls[];
extern const int k_qdot_impl_count;
extern const struct k_fdot_impl *const k_fdot_impls[];
extern const int k_fdot_impl_count;

/* The paths of k_matmul_forward (accumulate = 0: out = x W^T) and
 * k_matmul_accumulate (accumulate = 1: out += alpha x W^T), exposed so that
 * the tests run each one, whichever the dispatcher would pick.
 * Those that need a workspace return -1 when they cannot allocate it; the
 * dispatcher then falls back to one that needs none. */

/* Integer dot products against activations quantized once per call (q8_0,
 * q4_0, q4_1 weights). */
int k_matmul_qdots(float *out, const float *x, const struct k_matrix *w, int n, float alpha,
                   int accumulate, const struct k_qdot_impl *impl);
/* f32 dot products converting f32 / f16 / bf16 weights on the fly. */
void k_matmul_fdots(float *out, const float *x, const struct k_matrix *w, int n, float alpha,
                    int accumulate, const struct k_fdot_impl *impl);
/* Tiles of weight rows dequantized to f32, multiplied by cblas_sgemm. */
int k_matmul_gemm(float *out, const float *x, const struct k_matrix *w, int n, float alpha,
                  int accumulate);
/* One block at a time through a stack buffer: slow, needs no memory. */
void k_matmul_unbuffered(float *out, const float *x, const struct k_matrix *w, int n, float alpha,
                         int accumulate);

#ifdef K_HAVE_AVX512
/* e^x for 16 floats: x = n ln2 + r with |r| <= ln2/2, Cephes' degree-6
 * polynomial for e^r (about 1 ulp), 2^n applied by vscalefps, which gives 0
 * and inf past the float range. x is clamped first so that n stays finite
 * (e^-104 is below the smallest subnormal, e^89 past the largest float). */
static inline __m512 k_exp512(__m512 x)
{
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)), _mm512_set1_ps(89.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}
#endif

/* Query rows of one attention task: they share a KV head (the query heads
 * of a GQA group, for one or more tokens); row i attends to keys
 * lo[i]..hi[i]. */
#define K_ATT_MAX_ROWS 16
struct k_att_rows {
    int n;
    const float *q[K_ATT_MAX_ROWS];
    float *out[K_ATT_MAX_ROWS];
    int lo[K_ATT_MAX_ROWS], hi[K_ATT_MAX_ROWS];
};

/* out_i = softmax(q_i K[lo_i..hi_i]^T * scale) V[lo_i..hi_i] for the rows;
 * k and v point at the KV head's first element, rows kv_stride apart. */
typedef void (*k_attend_fn)(const struct k_att_rows *rows, const float *k, const float *v,
                            int64_t kv_stride, int head_dim, float scale);
void k_attend_scalar(const struct k_att_rows *rows, const float *k, const float *v,
                     int64_t kv_stride, int head_dim, float scale);
#ifdef K_HAVE_AVX512
/* head_dim a multiple of 16 */
void k_attend_avx512(const struct k_att_rows *rows, const float *k, const float *v,
                     int64_t kv_stride, int head_dim, float scale);
#endif

/* k_attention_forward with the given per-task kernel (the tests run each). */
void k_attention_with(k_attend_fn attend, float *out, const float *q, const float *k,
                      const float *v, int n, int pos0, int n_heads, int n_kv_heads, int head_dim,
                      int window, int causal);

/* Enough multiply-adds to be worth waking the OpenMP threads for. */
#define K_PARALLEL_MIN_WORK (1 << 15)

static inline void k_store(float *o, float v, float alpha, int accumulate)
{
    *o = accumulate ? *o + alpha * v : alpha * v;
}

#endif
