/* Internals of the CPU kernels, shared between their files and with the tests
 * that hold every SIMD path against the portable one. The engine includes
 * kernels.h, never this. */
#ifndef MEMLLM_KERNELS_CPU_INTERNAL_H
#define MEMLLM_KERNELS_CPU_INTERNAL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

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
 * offset terms (the plain layout, which the portable and AVX2 paths read).
 *
 * A level may want the values rearranged for its kernel (the AVX-512 one
 * takes four blocks a step, see qdot_avx512.c): it then says how many bytes a
 * token's row takes (lane_bytes) and fills them (prepare_lanes) from the
 * plain layout; lanes is NULL for the others. */
struct k_qact {
    int64_t cols;
    int n;       /* tokens */
    int8_t *qs;  /* [n, cols] */
    float *d;    /* [n, cols / MM_QBLOCK] */
    float *s;    /* [n, cols / MM_QBLOCK] */
    char *lanes; /* [n, lane_stride] bytes, or NULL */
    size_t lane_stride;
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

/* The dot-product kernels compute a tile of outputs: nr consecutive weight
 * rows (row_bytes apart) against nt consecutive tokens, nr and nt at most
 * the level's tile (rows, tokens), res[r * nt + j] = dot(row r, token j).
 * A tile loads each weight block once for all its tokens and each
 * activation block once for all its rows: prefill (many tokens) runs whole
 * tiles, decode (one token) tiles of one column.
 *
 * The rule that makes results independent of the batch: every output element
 * is computed by the same sequence of floating-point operations whatever
 * nr, nt and the element's place in the tile (each (row, token) pair has its
 * own accumulators, walked over the blocks in one fixed order and reduced in
 * one fixed order). Tiles are a schedule, not a different sum. */
#define K_DOT_MAX_ROWS 4
#define K_DOT_MAX_TOKENS 8

/* Quantized weights (q8_0 / q4_0 / q4_1) of the given type against tokens
 * t0.. of a. */
typedef void (*k_qdot_fn)(enum mm_dtype type, const void *w, size_t row_bytes, int nr,
                          const struct k_qact *a, int t0, int nt, float *res);

/* One instruction-set level's quantized dot products. */
struct k_qdot_impl {
    const char *name;
    int rows, tokens; /* the tile */
    k_qdot_fn dot;
    /* Bytes of a token's rearranged row and the function that fills token
     * t's; NULL when the level reads the plain layout. */
    size_t (*lane_bytes)(int64_t cols);
    void (*prepare_lanes)(struct k_qact *a, int t, enum mm_dtype wtype);
};

/* f32 / f16 / bf16 weight rows of any length against f32 tokens x (cols
 * apart). */
typedef void (*k_fdot_fn)(enum mm_dtype type, const void *w, size_t row_bytes, int nr,
                          const float *x, int64_t cols, int nt, float *res);

struct k_fdot_impl {
    const char *name;
    int rows, tokens; /* the tile */
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

/* A panel of the training GEMM (gemm.c): out rows t < n, columns [0, nj) of
 * alpha x P (+ out), P a packed [k_dim, K_GEMM_NR] slice of B; x's element
 * (t, k) is x[t * ldx + k], or x[k * ldx + t] when x_t. */
#define K_GEMM_NR 16
typedef void (*k_gemm_panel_fn)(float *out, int64_t ldo, const float *x, int64_t ldx, int x_t,
                                int n, int k_dim, const float *p, int nj, float alpha,
                                int accumulate);

struct k_gemm_impl {
    const char *name;
    k_gemm_panel_fn panel;
};

extern const struct k_gemm_impl k_gemm_scalar;
#ifdef K_HAVE_AVX2
extern const struct k_gemm_impl k_gemm_avx2;
#endif
extern const struct k_gemm_impl *const k_gemm_impls[];
extern const int k_gemm_impl_count;

/* Packs b ([k_dim, cols], rows ldb apart) into panels (dst): what the
 * tests hold k_panels_of_matrix and the packed product to. */
void k_panels_pack(float *dst, const float *b, int64_t k_dim, int64_t cols, int64_t ldb);

/* k_gemm_f32 (x_t 0), k_gemm_f32_xt (x_t 1) and k_gemm_panels at one level
 * (the tests run each). */
void k_gemm_f32_at(float *out, const float *x, int64_t ldx, int x_t, int n, int k_dim,
                   const float *b, int64_t cols, int64_t ldb, float alpha, int accumulate,
                   const struct k_gemm_impl *impl);
void k_gemm_panels_at(float *out, const float *x, int n, const struct k_panels *b, float alpha,
                      int accumulate, const struct k_gemm_impl *impl);

/* k_dropout_mask's portable code, which the tests hold the SIMD one to. */
void k_dropout_mask_portable(uint32_t *bits, int64_t bit0, int64_t count, uint64_t seed,
                             uint64_t module, uint64_t first, float p);

/* The levels this build can run, best first; the last is the portable C one. */
extern const struct k_qdot_impl *const k_qdot_impls[];
extern const int k_qdot_impl_count;
extern const struct k_fdot_impl *const k_fdot_impls[];
extern const int k_fdot_impl_count;

/* The paths of k_matmul_forward (accumulate = 0: out = alpha x W^T) and
 * k_matmul_accumulate (accumulate = 1: out += alpha x W^T) at one level,
 * exposed so that the tests run each level, whichever the dispatcher picks. */

/* Integer dot products against activations quantized once per call (q8_0,
 * q4_0, q4_1 weights); -1 when it cannot allocate the quantized activations
 * (a few KB a token). */
int k_matmul_qdots(float *out, const float *x, const struct k_matrix *w, int n, float alpha,
                   int accumulate, const struct k_qdot_impl *impl);
/* f32 dot products converting f32 / f16 / bf16 weights on the fly. */
void k_matmul_fdots(float *out, const float *x, const struct k_matrix *w, int n, float alpha,
                    int accumulate, const struct k_fdot_impl *impl);

/* What both paths hand the driver: the level's tile and a function that
 * computes one, res[r * nt + j] for rows r0.. and tokens t0.. */
struct k_tiler {
    int rows, tokens; /* the largest tile */
    size_t act_bytes; /* bytes of activations a token, which the kernel reads */
    void (*tile)(const void *ctx, int64_t r0, int nr, int t0, int nt, float *res);
    const void *ctx;
};

/* Runs a matmul of n tokens through tl's tiles, threaded, and stores
 * alpha * result into out ([n, w->rows]), or adds it with accumulate. A tile
 * computes whole output elements (the sum over cols is never split), so how
 * the work is cut, and over how many threads, never changes a result. */
void k_matmul_run(float *out, const struct k_matrix *w, int n, float alpha, int accumulate,
                  const struct k_tiler *tl);

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

#if defined(K_HAVE_AVX2) || defined(K_HAVE_AVX512)
/* Software prefetch of weights that stream from memory (decode reads each
 * once). A tile reads its nr rows side by side, so a row's prefetch must
 * reach past the tile: for rows shorter than K_PREFETCH_AHEAD bytes, a whole
 * number of tiles ahead (the same place in a later tile's row); longer rows,
 * K_PREFETCH_AHEAD ahead in the row. */
#define K_PREFETCH_AHEAD 4096

static inline size_t k_prefetch_distance(size_t row_bytes, int nr)
{
    size_t tile = row_bytes * (size_t)nr;
    if (row_bytes >= K_PREFETCH_AHEAD) return K_PREFETCH_AHEAD;
    return (K_PREFETCH_AHEAD + tile - 1) / tile * tile;
}

/* Prefetches a step of `bytes` at p: one prefetch per 64 bytes, so that
 * consecutive steps touch every cache line. Into L2: with a tile's several
 * rows streaming at once, prefetches into L1 held its miss buffers and
 * halved the bandwidth of a one-token matmul from memory. Always inlined:
 * GCC finds a function of prefetches alone free of side effects and drops
 * calls to it that it has not inlined early. */
static inline __attribute__((always_inline)) void k_prefetch_step(const char *p, int bytes)
{
    for (int o = 0; o < bytes; o += 64)
        _mm_prefetch(p + o, _MM_HINT_T1);
}
#endif

/* Keeps the vector variable v in a register from here on. A tile loads each
 * vector once for several FMAs; GCC otherwise folds the load into every
 * instruction that uses it (a load per FMA), and the loads, not the
 * arithmetic, then bound the loop. */
#define K_IN_REG(v) __asm__("" : "+v"(v))

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
 * the KV head's elements start `col` floats into each row of k and v. */
typedef void (*k_attend_fn)(const struct k_att_rows *rows, const struct k_kv_view *k,
                            const struct k_kv_view *v, int64_t col, int head_dim, float scale);
void k_attend_scalar(const struct k_att_rows *rows, const struct k_kv_view *k,
                     const struct k_kv_view *v, int64_t col, int head_dim, float scale);
#ifdef K_HAVE_AVX512
/* head_dim a multiple of 16; K_KV_PAGE a multiple of its chunk of 16 keys */
void k_attend_avx512(const struct k_att_rows *rows, const struct k_kv_view *k,
                     const struct k_kv_view *v, int64_t col, int head_dim, float scale);
#endif

/* k_attention_view with the given per-task kernel (the tests run each). */
void k_attention_with(k_attend_fn attend, float *out, const float *q, const struct k_kv_view *k,
                      const struct k_kv_view *v, int n, int pos0, int n_heads, int n_kv_heads,
                      int head_dim, int window, int causal);

/* Row sums of the norms in a fixed order: element i goes to lane i % 16,
 * the lanes are added pairwise at the end. `omp simd reduction` would leave
 * the order to the compiler, which may peel a different number of leading
 * elements for differently aligned rows, so a row's sum would depend on its
 * place in the batch. Written in C: the compiler may vectorize the lanes,
 * but not reorder them. */
#define K_SUM_LANES 16

static inline float k_sum_lanes(float *lane)
{
    for (int w = K_SUM_LANES / 2; w > 0; w /= 2)
        for (int l = 0; l < w; l++)
            lane[l] += lane[l + w];
    return lane[0];
}

/* sum of x[i] */
static inline float k_sum(const float *x, int n)
{
    float lane[K_SUM_LANES] = {0};
    int i = 0;
    for (; i + K_SUM_LANES <= n; i += K_SUM_LANES)
        for (int l = 0; l < K_SUM_LANES; l++)
            lane[l] += x[i + l];
    for (int l = 0; i + l < n; l++)
        lane[l] += x[i + l];
    return k_sum_lanes(lane);
}

/* sum of (x[i] - c)^2 */
static inline float k_sum_sq(const float *x, int n, float c)
{
    float lane[K_SUM_LANES] = {0};
    int i = 0;
    for (; i + K_SUM_LANES <= n; i += K_SUM_LANES)
        for (int l = 0; l < K_SUM_LANES; l++)
            lane[l] += (x[i + l] - c) * (x[i + l] - c);
    for (int l = 0; i + l < n; l++)
        lane[l] += (x[i + l] - c) * (x[i + l] - c);
    return k_sum_lanes(lane);
}

/* exp(x) without a branch or a call, so that a block's lanes vectorize:
 * x = k ln 2 + r with |r| <= ln 2 / 2 (ln 2 in two parts, so r is exact),
 * e^r = 1 + r + r^2 P(r) with Cephes' degree-5 minimax P (about 1 ulp),
 * 2^k put into the exponent bits. Below -88 (k = -127) the result is 0 (a
 * softmax weight that small is zero in float anyway); above 88 it is e^88. */
static inline float k_exp_lane(float x)
{
    x = x > 88.0f ? 88.0f : x;
    x = x < -88.0f ? -88.0f : x;
    float k = floorf(fmaf(x, 1.44269504088896341f, 0.5f));
    float r = fmaf(k, -0.693359375f, x);
    r = fmaf(k, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = fmaf(p, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    float e = fmaf(p, r * r, r) + 1.0f;
    int32_t bits = ((int32_t)k + 127) * (1 << 23);
    float scale;
    memcpy(&scale, &bits, sizeof(scale));
    return e * scale;
}

#ifdef K_HAVE_AVX2
/* k_exp_lane for 8 floats, the same operations in the same order, so the
 * same bits (test_kernels_backward): for loops GCC does not vectorize. */
static inline __m256 k_exp8(__m256 x)
{
    /* operands in this order: min/max return the second on NaN, as the
     * scalar ternaries keep x */
    x = _mm256_min_ps(_mm256_set1_ps(88.0f), x);
    x = _mm256_max_ps(_mm256_set1_ps(-88.0f), x);
    __m256 k = _mm256_floor_ps(
        _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    __m256 r = _mm256_fmadd_ps(k, _mm256_set1_ps(-0.693359375f), x);
    r = _mm256_fmadd_ps(k, _mm256_set1_ps(2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    __m256 e = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
    __m256i bits =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(e, _mm256_castsi256_ps(bits));
}
#endif

/* Enough multiply-adds to be worth waking the OpenMP threads for. */
#define K_PARALLEL_MIN_WORK (1 << 15)

static inline void k_store(float *o, float v, float alpha, int accumulate)
{
    *o = accumulate ? *o + alpha * v : alpha * v;
}

#endif
