/* The dot-product matmul: each warp computes output rows for up to
 * KC_DOTS_MAX_TOKENS tokens, reading the weight rows once at their stored
 * width. Decode is bound by reading the weights, so the loads are 16 bytes
 * wide where the rows allow it and the activations (a few KB, shared by
 * every row) come from the L1 cache. A launch covers any number of tokens:
 * with more than one, blockIdx.x takes chunks of KC_DOTS_MAX_TOKENS tokens
 * and blockIdx.y the rows, so the blocks that run together read the same
 * weight rows (the later chunks find them in L2).
 *
 * Batch invariance (the invariant numerics take these kernels for every n;
 * kernels_cuda.h): output (row r, token t) is summed by one warp whatever
 * n, R (rows per warp), the chunk t falls in, or the kernel (one matrix,
 * several, gate and up): lane l takes the chunks (float: 16 bytes; quantized:
 * blocks of 32) l, l + 32, l + 64, ... of row r in order, each added to its
 * own f32 accumulator by the same explicitly rounded operations (__fmul_rn,
 * __fmaf_rn, __fadd_rn: nothing left to the compiler's contraction, which
 * could differ between template instances), then kc_warp_sum's butterfly
 * and lane 0's store. The activations' 8-bit quantization is per token and
 * 32-block, and x is copied to an aligned buffer when it is not 16-byte
 * aligned, so the vector-load choice (and with it the chunking) depends on
 * the weights only.
 *
 * Float weights multiply f32 activations directly. Quantized weights take
 * the CPU's route: the activations are quantized to 8-bit blocks once per
 * call (d = amax / 127, round to nearest even), and each weight block is
 * multiplied by integer dot products (dp4a) and scaled in float.
 *
 * At decode a layer's matmuls are short kernels and their launches bound
 * it, so the projections that share an input take one launch: Q, K and V
 * (kc_matmul_forward_multi: the grid covers the rows of all of them), and
 * gate and up with SwiGLU's gate as epilogue (kc_matmul_swiglu_forward:
 * each warp computes matching rows of both). Every kernel sums a row
 * through the same device function, so fused and unfused results agree
 * bit for bit. */
#include "kc_device.cuh"

#define DOT_WARPS 8 /* rows per block */

static __device__ __forceinline__ void unpack16(enum mm_dtype t, uint4 raw, float *f)
{
    uint32_t u[4] = {raw.x, raw.y, raw.z, raw.w};
    for (int i = 0; i < 4; i++) {
        if (t == MM_F32) {
            f[i] = __uint_as_float(u[i]);
        } else if (t == MM_F16) {
            float2 h = __half22float2(*reinterpret_cast<const __half2 *>(&u[i]));
            f[2 * i] = h.x;
            f[2 * i + 1] = h.y;
        } else {
            f[2 * i] = __uint_as_float(u[i] << 16);
            f[2 * i + 1] = __uint_as_float(u[i] & 0xffff0000u);
        }
    }
}

static __device__ __forceinline__ void store_out(float *o, float v, float alpha, int accumulate)
{
    float s = __fmul_rn(alpha, v);
    *o = accumulate ? __fadd_rn(*o, s) : s;
}

/* The block's first token and row block: one token (MAXT 1) has the row
 * blocks along x; more have chunks of MAXT tokens along x and the row
 * blocks along y (see the top of the file). */
template <int MAXT> static __device__ __forceinline__ int64_t block_place(int *t0)
{
    if (MAXT == 1) {
        *t0 = 0;
        return blockIdx.x;
    }
    *t0 = (int)blockIdx.x * MAXT;
    return blockIdx.y;
}

/* The dots of R weight rows with up to MAXT tokens of x (the first n of
 * them; n may exceed MAXT), summed over the warp (every lane gets the
 * totals): acc[rr][t] = sum_c rp[rr][c] x[t, c]. A null rp[rr] (rows past a
 * matrix's end) reads nothing and sums to 0. Each (row, token) sum goes in
 * the same order whatever MAXT, R, n and whichever kernel calls this (see
 * the top of the file), so the fused kernels below give the plain one's
 * results and a token its results of any batch.
 *
 * vec: the rows and x are 16-byte aligned, so the leading whole 16-byte
 * chunks go by vector loads; the rest (or everything) element by element.
 * A warp takes R rows: each activation load then serves R rows (with
 * several tokens the activations, not the weights, would otherwise bound
 * the loop), and R weight loads are in flight per lane (one token: the
 * loop unrolled 4 times puts more in flight). */
template <enum mm_dtype T, int MAXT, int R>
static __device__ __forceinline__ void fdot_rows(float (&acc)[R][MAXT], const float *x,
                                                 const char *const (&rp)[R], int64_t cols, int n,
                                                 int vec, int lane)
{
#pragma unroll
    for (int rr = 0; rr < R; rr++)
#pragma unroll
        for (int t = 0; t < MAXT; t++)
            acc[rr][t] = 0.0f;
    int64_t done = 0;
    if (vec) {
        constexpr int E = T == MM_F32 ? 4 : 8; /* elements per 16 bytes */
        int64_t chunks = cols / E;
#pragma unroll(MAXT == 1 ? 4 : 1)
        for (int64_t i = lane; i < chunks; i += KC_WARP) {
            float wf[R][E];
#pragma unroll
            for (int rr = 0; rr < R; rr++) {
                uint4 raw = make_uint4(0, 0, 0, 0);
                if (rp[rr]) raw = __ldg(reinterpret_cast<const uint4 *>(rp[rr]) + i);
                unpack16(T, raw, wf[rr]);
            }
#pragma unroll
            for (int t = 0; t < MAXT; t++) {
                if (t >= n) break;
                const float4 *xv = reinterpret_cast<const float4 *>(x + t * cols + i * E);
#pragma unroll
                for (int j = 0; j < E / 4; j++) {
                    float4 a = __ldg(xv + j);
#pragma unroll
                    for (int rr = 0; rr < R; rr++) {
                        float s = __fmul_rn(wf[rr][4 * j], a.x);
                        s = __fmaf_rn(wf[rr][4 * j + 1], a.y, s);
                        s = __fmaf_rn(wf[rr][4 * j + 2], a.z, s);
                        s = __fmaf_rn(wf[rr][4 * j + 3], a.w, s);
                        acc[rr][t] = __fadd_rn(acc[rr][t], s);
                    }
                }
            }
        }
        done = chunks * E;
    }
    for (int64_t c = done + lane; c < cols; c += KC_WARP) {
        float wc[R];
#pragma unroll
        for (int rr = 0; rr < R; rr++)
            wc[rr] = rp[rr] ? kc_elem(T, rp[rr], c) : 0.0f;
#pragma unroll
        for (int t = 0; t < MAXT; t++) {
            if (t >= n) break;
            float xc = x[t * cols + c];
#pragma unroll
            for (int rr = 0; rr < R; rr++)
                acc[rr][t] = __fmaf_rn(wc[rr], xc, acc[rr][t]);
        }
    }
#pragma unroll
    for (int rr = 0; rr < R; rr++)
#pragma unroll
        for (int t = 0; t < MAXT; t++)
            acc[rr][t] = kc_warp_sum(acc[rr][t]);
}

/* Rows r0 .. r0 + R - 1 of w, those below `rows`; null for the rest. */
template <int R>
static __device__ __forceinline__ void row_ptrs(const char *(&rp)[R], const char *w, int64_t r0,
                                                int64_t rows, size_t row_bytes)
{
#pragma unroll
    for (int rr = 0; rr < R; rr++)
        rp[rr] = r0 + rr < rows ? w + (r0 + rr) * (int64_t)row_bytes : nullptr;
}

/* out[t, r0 + rr] (out: [n, rows]) for the rows and tokens that exist;
 * lane 0 stores. */
template <int MAXT, int R>
static __device__ __forceinline__ void store_rows(float *out, const float (&acc)[R][MAXT],
                                                  int64_t r0, int64_t rows, int n, float alpha,
                                                  int accumulate, int lane)
{
    if (lane != 0) return;
#pragma unroll
    for (int rr = 0; rr < R; rr++)
#pragma unroll
        for (int t = 0; t < MAXT; t++)
            if (r0 + rr < rows && t < n)
                store_out(out + t * rows + r0 + rr, acc[rr][t], alpha, accumulate);
}

/* One matrix: a warp takes rows r0 .. r0 + R - 1 of its block's tokens
 * (n: the call's tokens). */
template <enum mm_dtype T, int MAXT, int R>
static __global__ void __launch_bounds__(KC_WARP *DOT_WARPS)
    fdot_kernel(float *out, const float *x, const char *w, int64_t rows, int64_t cols,
                size_t row_bytes, int n, float alpha, int accumulate, int vec)
{
    int t0;
    int64_t r0 = (block_place<MAXT>(&t0) * DOT_WARPS + threadIdx.x / KC_WARP) * R;
    int lane = threadIdx.x % KC_WARP;
    if (r0 >= rows) return; /* the whole warp: r0 is per warp */
    x += (int64_t)t0 * cols;
    out += (int64_t)t0 * rows;
    n -= t0;
    const char *rp[R];
    row_ptrs<R>(rp, w, r0, rows, row_bytes);
    float acc[R][MAXT];
    fdot_rows<T, MAXT, R>(acc, x, rp, cols, n, vec, lane);
    store_rows<MAXT, R>(out, acc, r0, rows, n, alpha, accumulate, lane);
}

/* Up to KC_MULTI_MAX matrices of one dtype and row length over the same x,
 * by value: matrix m's rows go to warps first_warp[m] .. first_warp[m + 1]
 * - 1 of the launch (R rows each), so one launch covers them all; the
 * entries past the last matrix have first_warp[KC_MULTI_MAX], the end. */
struct dots_set {
    float *out[KC_MULTI_MAX];
    const char *w[KC_MULTI_MAX];
    int64_t rows[KC_MULTI_MAX];
    int64_t first_warp[KC_MULTI_MAX + 1];
};

/* The matrix of global warp gw, gw below the last matrix's end
 * (first_warp[KC_MULTI_MAX]). Constant indices only: an index computed at
 * run time would copy the set to local memory. */
struct set_entry {
    float *out;
    const char *w;
    int64_t rows, first_warp;
};
static_assert(KC_MULTI_MAX == 3, "set_entry_of tests each matrix's first warp");
static __device__ __forceinline__ struct set_entry set_entry_of(const struct dots_set &s,
                                                                int64_t gw)
{
    if (gw >= s.first_warp[2]) return {s.out[2], s.w[2], s.rows[2], s.first_warp[2]};
    if (gw >= s.first_warp[1]) return {s.out[1], s.w[1], s.rows[1], s.first_warp[1]};
    return {s.out[0], s.w[0], s.rows[0], s.first_warp[0]};
}

template <enum mm_dtype T, int MAXT, int R>
static __global__ void __launch_bounds__(KC_WARP *DOT_WARPS)
    fdot_multi_kernel(const struct dots_set s, const float *x, int64_t cols, size_t row_bytes,
                      int n, int vec)
{
    int t0;
    int64_t gw = block_place<MAXT>(&t0) * DOT_WARPS + threadIdx.x / KC_WARP;
    int lane = threadIdx.x % KC_WARP;
    if (gw >= s.first_warp[KC_MULTI_MAX]) return; /* the whole warp */
    struct set_entry e = set_entry_of(s, gw);
    int64_t r0 = (gw - e.first_warp) * R;
    const char *rp[R];
    row_ptrs<R>(rp, e.w, r0, e.rows, row_bytes);
    float acc[R][MAXT];
    fdot_rows<T, MAXT, R>(acc, x + (int64_t)t0 * cols, rp, cols, n - t0, vec, lane);
    store_rows<MAXT, R>(e.out + (int64_t)t0 * e.rows, acc, r0, e.rows, n - t0, 1.0f, 0, lane);
}

/* SwiGLU's gate as the CPU computes it from the two products. */
static __device__ __forceinline__ float silu_mul(float gate, float up)
{
    return gate / (1.0f + expf(-gate)) * up;
}

/* gate and up together: a warp takes the same R rows of both (2R rows
 * through fdot_rows) and stores silu(gate) * up, so neither product is
 * written to memory and the elementwise launch goes away. */
template <enum mm_dtype T, int MAXT, int R>
static __global__ void __launch_bounds__(KC_WARP *DOT_WARPS)
    fdot_swiglu_kernel(float *out, const float *x, const char *gate, const char *up, int64_t rows,
                       int64_t cols, size_t row_bytes, int n, int vec)
{
    int t0;
    int64_t r0 = (block_place<MAXT>(&t0) * DOT_WARPS + threadIdx.x / KC_WARP) * R;
    int lane = threadIdx.x % KC_WARP;
    if (r0 >= rows) return;
    x += (int64_t)t0 * cols;
    out += (int64_t)t0 * rows;
    n -= t0;
    const char *rp[2 * R];
#pragma unroll
    for (int rr = 0; rr < R; rr++) {
        int ok = r0 + rr < rows;
        rp[rr] = ok ? gate + (r0 + rr) * (int64_t)row_bytes : nullptr;
        rp[R + rr] = ok ? up + (r0 + rr) * (int64_t)row_bytes : nullptr;
    }
    float acc[2 * R][MAXT];
    fdot_rows<T, MAXT, 2 * R>(acc, x, rp, cols, n, vec, lane);
    if (lane != 0) return;
#pragma unroll
    for (int rr = 0; rr < R; rr++)
#pragma unroll
        for (int t = 0; t < MAXT; t++)
            if (r0 + rr < rows && t < n)
                out[t * rows + r0 + rr] = silu_mul(acc[rr][t], acc[R + rr][t]);
}

/* One warp per block of 32 activations: qs [blocks * 32], d and the integer
 * sum of each block. As k_quantize_act_row. */
static __global__ void quantize_act_kernel(int8_t *qs, float *d, int *sum, const float *x,
                                           int64_t blocks)
{
    int64_t b = (int64_t)blockIdx.x * (blockDim.x / KC_WARP) + threadIdx.x / KC_WARP;
    int lane = threadIdx.x % KC_WARP;
    if (b >= blocks) return;
    float v = x[b * MM_QBLOCK + lane];
    float amax = kc_warp_max(fabsf(v));
    float db = amax / 127.0f;
    float id = db != 0.0f ? 1.0f / db : 0.0f;
    int q = __float2int_rn(v * id);
    qs[b * MM_QBLOCK + lane] = (int8_t)q;
    for (int o = KC_WARP / 2; o > 0; o /= 2)
        q += __shfl_xor_sync(KC_FULL_MASK, q, o);
    if (lane == 0) {
        d[b] = db;
        sum[b] = q;
    }
}

/* The 32 weights of a block as 8 ints of 4 bytes, in element order (so the
 * k-th int pairs with activation bytes 4k..4k+3), and its scales. Nibbles
 * go unsigned (0..15); the offsets are applied in float by the caller. */
template <enum mm_dtype T>
static __device__ __forceinline__ void load_block(const char *blk, int *wq, float *dw, float *mw)
{
    *dw = kc_f16(kc_u16(blk));
    *mw = 0.0f;
    if (T == MM_Q8_0) {
#pragma unroll
        for (int k = 0; k < 8; k++)
            wq[k] = kc_int_at2(blk + 2 + 4 * k);
    } else {
        /* q4_0: qs at byte 2 (2-byte aligned); q4_1: after m, at byte 4 */
        const char *qs = blk + (T == MM_Q4_0 ? 2 : 4);
        if (T == MM_Q4_1) *mw = kc_f16(kc_u16(blk + 2));
#pragma unroll
        for (int k = 0; k < 4; k++) {
            uint32_t v = T == MM_Q4_1 ? (uint32_t)__ldg(reinterpret_cast<const int *>(qs) + k)
                                      : (uint32_t)kc_int_at2(qs + 4 * k);
            wq[k] = (int)(v & 0x0f0f0f0fu);            /* elements 4k .. 4k+3 */
            wq[4 + k] = (int)((v >> 4) & 0x0f0f0f0fu); /* elements 16+4k .. */
        }
    }
}

template <enum mm_dtype T> struct block_size;
template <> struct block_size<MM_Q8_0> {
    static constexpr int bytes = sizeof(struct block_q8_0);
};
template <> struct block_size<MM_Q4_0> {
    static constexpr int bytes = sizeof(struct block_q4_0);
};
template <> struct block_size<MM_Q4_1> {
    static constexpr int bytes = sizeof(struct block_q4_1);
};

/* The dots of R quantized rows (warp-summed, as fdot_rows; a null rp[rr]
 * sums to 0) with up to MAXT tokens (the first n) of quantized activations:
 * aqs [n, cols], their scales ad and integer sums asum [n, cols / 32]. A
 * lane takes every 32nd block of each row; the R rows' blocks are loaded
 * before any is multiplied, so R loads are in flight, and each (row,
 * token) sum goes in the same order whatever MAXT, R and n are. */
template <enum mm_dtype T, int MAXT, int R>
static __device__ __forceinline__ void
qdot_rows(float (&acc)[R][MAXT], const int8_t *aqs, const float *ad, const int *asum,
          const char *const (&rp)[R], int64_t cols, int n, int lane)
{
    int64_t nb = cols / MM_QBLOCK;
#pragma unroll
    for (int rr = 0; rr < R; rr++)
#pragma unroll
        for (int t = 0; t < MAXT; t++)
            acc[rr][t] = 0.0f;
    for (int64_t b = lane; b < nb; b += KC_WARP) {
        int wq[R][8];
        float dw[R], mw[R];
#pragma unroll
        for (int rr = 0; rr < R; rr++) {
            if (rp[rr]) {
                load_block<T>(rp[rr] + b * block_size<T>::bytes, wq[rr], &dw[rr], &mw[rr]);
            } else {
                for (int k = 0; k < 8; k++)
                    wq[rr][k] = 0;
                dw[rr] = mw[rr] = 0.0f;
            }
        }
#pragma unroll
        for (int t = 0; t < MAXT; t++) {
            if (t >= n) break;
            const int4 *a = reinterpret_cast<const int4 *>(aqs + t * cols + b * MM_QBLOCK);
            int4 a0 = __ldg(a), a1 = __ldg(a + 1);
            float da = ad[t * nb + b];
            int qsum = asum[t * nb + b];
#pragma unroll
            for (int rr = 0; rr < R; rr++) {
                const int *q = wq[rr];
                int isum = __dp4a(q[0], a0.x, 0);
                isum = __dp4a(q[1], a0.y, isum);
                isum = __dp4a(q[2], a0.z, isum);
                isum = __dp4a(q[3], a0.w, isum);
                isum = __dp4a(q[4], a1.x, isum);
                isum = __dp4a(q[5], a1.y, isum);
                isum = __dp4a(q[6], a1.z, isum);
                isum = __dp4a(q[7], a1.w, isum);
                float dd = __fmul_rn(dw[rr], da);
                if (T == MM_Q8_0)
                    acc[rr][t] = __fmaf_rn(dd, (float)isum, acc[rr][t]);
                else if (T == MM_Q4_0) /* sum (n - 8) q = sum n q - 8 sum q */
                    acc[rr][t] = __fmaf_rn(dd, (float)(isum - 8 * qsum), acc[rr][t]);
                else /* sum (d n + m)(da q) = d da sum n q + m (da sum q) */
                    acc[rr][t] = __fadd_rn(
                        acc[rr][t],
                        __fmaf_rn(dd, (float)isum, __fmul_rn(mw[rr], __fmul_rn(da, (float)qsum))));
            }
        }
    }
#pragma unroll
    for (int rr = 0; rr < R; rr++)
#pragma unroll
        for (int t = 0; t < MAXT; t++)
            acc[rr][t] = kc_warp_sum(acc[rr][t]);
}

/* The quantized activations of a call (quantize_act_kernel's output). */
struct qact {
    const int8_t *qs;
    const float *d;
    const int *sum;
};

/* a's tokens from t0 on (nb: blocks per row). */
static __device__ __forceinline__ struct qact qact_from(const struct qact &a, int t0, int64_t cols,
                                                        int64_t nb)
{
    return {a.qs + (int64_t)t0 * cols, a.d + (int64_t)t0 * nb, a.sum + (int64_t)t0 * nb};
}

/* One matrix, a row per warp. */
template <enum mm_dtype T, int MAXT>
static __global__ void __launch_bounds__(KC_WARP *DOT_WARPS)
    qdot_kernel(float *out, const struct qact a, const char *w, int64_t rows, int64_t cols,
                size_t row_bytes, int n, float alpha, int accumulate)
{
    int t0;
    int64_t r = block_place<MAXT>(&t0) * DOT_WARPS + threadIdx.x / KC_WARP;
    int lane = threadIdx.x % KC_WARP;
    if (r >= rows) return;
    const struct qact at = qact_from(a, t0, cols, cols / MM_QBLOCK);
    const char *rp[1] = {w + r * (int64_t)row_bytes};
    float acc[1][MAXT];
    qdot_rows<T, MAXT, 1>(acc, at.qs, at.d, at.sum, rp, cols, n - t0, lane);
    store_rows<MAXT, 1>(out + (int64_t)t0 * rows, acc, r, rows, n - t0, alpha, accumulate, lane);
}

/* Several matrices over the same activations, a row per warp (dots_set's
 * first_warp counts rows here). */
template <enum mm_dtype T, int MAXT>
static __global__ void __launch_bounds__(KC_WARP *DOT_WARPS)
    qdot_multi_kernel(const struct dots_set s, const struct qact a, int64_t cols, size_t row_bytes,
                      int n)
{
    int t0;
    int64_t gw = block_place<MAXT>(&t0) * DOT_WARPS + threadIdx.x / KC_WARP;
    int lane = threadIdx.x % KC_WARP;
    if (gw >= s.first_warp[KC_MULTI_MAX]) return;
    struct set_entry e = set_entry_of(s, gw);
    int64_t r = gw - e.first_warp;
    const struct qact at = qact_from(a, t0, cols, cols / MM_QBLOCK);
    const char *rp[1] = {e.w + r * (int64_t)row_bytes};
    float acc[1][MAXT];
    qdot_rows<T, MAXT, 1>(acc, at.qs, at.d, at.sum, rp, cols, n - t0, lane);
    store_rows<MAXT, 1>(e.out + (int64_t)t0 * e.rows, acc, r, e.rows, n - t0, 1.0f, 0, lane);
}

/* gate and up, row r of both per warp, storing silu(gate) * up. */
template <enum mm_dtype T, int MAXT>
static __global__ void __launch_bounds__(KC_WARP *DOT_WARPS)
    qdot_swiglu_kernel(float *out, const struct qact a, const char *gate, const char *up,
                       int64_t rows, int64_t cols, size_t row_bytes, int n)
{
    int t0;
    int64_t r = block_place<MAXT>(&t0) * DOT_WARPS + threadIdx.x / KC_WARP;
    int lane = threadIdx.x % KC_WARP;
    if (r >= rows) return;
    const struct qact at = qact_from(a, t0, cols, cols / MM_QBLOCK);
    out += (int64_t)t0 * rows;
    n -= t0;
    const char *rp[2] = {gate + r * (int64_t)row_bytes, up + r * (int64_t)row_bytes};
    float acc[2][MAXT];
    qdot_rows<T, MAXT, 2>(acc, at.qs, at.d, at.sum, rp, cols, n, lane);
    if (lane != 0) return;
#pragma unroll
    for (int t = 0; t < MAXT; t++)
        if (t < n) out[t * rows + r] = silu_mul(acc[0][t], acc[1][t]);
}

/* One token reads each weight once whatever R is: a row per warp keeps the
 * most warps in flight. Several tokens share each activation load over
 * FDOT_ROWS rows; with gate and up, FSWIGLU_ROWS of each (as many rows per
 * warp in all, so as many registers). */
#define FDOT_ROWS 4
#define FSWIGLU_ROWS 2

/* Blocks along y: CUDA's limit, which bounds the rows of a call of many
 * tokens (dots() checks it). */
#define MAX_ROW_BLOCKS 65535

static unsigned blocks_of(int64_t warps)
{
    return (unsigned)((warps + DOT_WARPS - 1) / DOT_WARPS);
}

/* The grid of a launch over `warps` warps of rows and n tokens (see
 * block_place): one token, the row blocks along x; more, the token chunks
 * along x and the row blocks along y. */
static dim3 dots_grid(int64_t warps, int n)
{
    if (n == 1) return dim3(blocks_of(warps));
    return dim3((unsigned)((n + KC_DOTS_MAX_TOKENS - 1) / KC_DOTS_MAX_TOKENS), blocks_of(warps));
}

template <enum mm_dtype T>
static void launch_fdot(cudaStream_t s, float *out, const float *x, const struct kc_matrix *w,
                        int n, float alpha, int accumulate, int vec)
{
    const char *data = (const char *)w->data;
    if (n == 1)
        fdot_kernel<T, 1, 1><<<dots_grid(w->rows, n), KC_WARP * DOT_WARPS, 0, s>>>(
            out, x, data, w->rows, w->cols, w->row_bytes, n, alpha, accumulate, vec);
    else
        fdot_kernel<T, KC_DOTS_MAX_TOKENS, FDOT_ROWS>
            <<<dots_grid((w->rows + FDOT_ROWS - 1) / FDOT_ROWS, n), KC_WARP * DOT_WARPS, 0, s>>>(
                out, x, data, w->rows, w->cols, w->row_bytes, n, alpha, accumulate, vec);
}

/* Fills set.first_warp for R rows per warp; returns the warps in all. */
static int64_t set_warps(struct dots_set *set, int count, int R)
{
    set->first_warp[0] = 0;
    for (int m = 0; m < KC_MULTI_MAX; m++)
        set->first_warp[m + 1] = set->first_warp[m] + (m < count ? (set->rows[m] + R - 1) / R : 0);
    return set->first_warp[count];
}

template <enum mm_dtype T>
static void launch_fdot_multi(cudaStream_t s, struct dots_set set, int count, const float *x,
                              int64_t cols, size_t row_bytes, int n, int vec)
{
    if (n == 1) {
        dim3 grid = dots_grid(set_warps(&set, count, 1), n);
        fdot_multi_kernel<T, 1, 1>
            <<<grid, KC_WARP * DOT_WARPS, 0, s>>>(set, x, cols, row_bytes, n, vec);
    } else {
        dim3 grid = dots_grid(set_warps(&set, count, FDOT_ROWS), n);
        fdot_multi_kernel<T, KC_DOTS_MAX_TOKENS, FDOT_ROWS>
            <<<grid, KC_WARP * DOT_WARPS, 0, s>>>(set, x, cols, row_bytes, n, vec);
    }
}

template <enum mm_dtype T>
static void launch_fdot_swiglu(cudaStream_t s, float *out, const float *x,
                               const struct kc_matrix *gate, const struct kc_matrix *up, int n,
                               int vec)
{
    const char *g = (const char *)gate->data, *u = (const char *)up->data;
    if (n == 1)
        fdot_swiglu_kernel<T, 1, 1><<<dots_grid(gate->rows, n), KC_WARP * DOT_WARPS, 0, s>>>(
            out, x, g, u, gate->rows, gate->cols, gate->row_bytes, n, vec);
    else
        fdot_swiglu_kernel<T, KC_DOTS_MAX_TOKENS, FSWIGLU_ROWS>
            <<<dots_grid((gate->rows + FSWIGLU_ROWS - 1) / FSWIGLU_ROWS, n), KC_WARP * DOT_WARPS, 0,
               s>>>(out, x, g, u, gate->rows, gate->cols, gate->row_bytes, n, vec);
}

/* What one launch of the dot kernels computes, whatever the dtype: one
 * matrix (w[0] into out[0], scaled by alpha, maybe accumulated), several
 * (the set), or gate w[0] and up w[1] into silu(gate) * up (out[0]), for
 * all the call's tokens. */
enum dots_kind { DOTS_ONE, DOTS_MULTI, DOTS_SWIGLU };

struct dots_call {
    enum dots_kind kind;
    int count; /* matrices */
    const struct kc_matrix *w[KC_MULTI_MAX];
    float *out[KC_MULTI_MAX];
    float alpha;
    int accumulate;
};

/* The set of a DOTS_MULTI call (the kernels move to each block's tokens). */
static struct dots_set call_set(const struct dots_call *k)
{
    struct dots_set set = {};
    for (int m = 0; m < k->count; m++) {
        set.out[m] = k->out[m];
        set.w[m] = (const char *)k->w[m]->data;
        set.rows[m] = k->w[m]->rows;
    }
    return set;
}

template <enum mm_dtype T>
static void launch_float(cudaStream_t s, const struct dots_call *k, const float *x, int n, int vec)
{
    const struct kc_matrix *w = k->w[0];
    if (k->kind == DOTS_ONE)
        launch_fdot<T>(s, k->out[0], x, w, n, k->alpha, k->accumulate, vec);
    else if (k->kind == DOTS_MULTI)
        launch_fdot_multi<T>(s, call_set(k), k->count, x, w->cols, w->row_bytes, n, vec);
    else
        launch_fdot_swiglu<T>(s, k->out[0], x, w, k->w[1], n, vec);
}

template <enum mm_dtype T, int MAXT>
static void launch_qdot_t(cudaStream_t s, const struct dots_call *k, const struct qact &a, int n)
{
    const struct kc_matrix *w = k->w[0];
    float *out = k->out[0];
    const char *data = (const char *)w->data;
    if (k->kind == DOTS_ONE) {
        qdot_kernel<T, MAXT><<<dots_grid(w->rows, n), KC_WARP * DOT_WARPS, 0, s>>>(
            out, a, data, w->rows, w->cols, w->row_bytes, n, k->alpha, k->accumulate);
    } else if (k->kind == DOTS_MULTI) {
        struct dots_set set = call_set(k);
        dim3 grid = dots_grid(set_warps(&set, k->count, 1), n);
        qdot_multi_kernel<T, MAXT>
            <<<grid, KC_WARP * DOT_WARPS, 0, s>>>(set, a, w->cols, w->row_bytes, n);
    } else {
        qdot_swiglu_kernel<T, MAXT><<<dots_grid(w->rows, n), KC_WARP * DOT_WARPS, 0, s>>>(
            out, a, data, (const char *)k->w[1]->data, w->rows, w->cols, w->row_bytes, n);
    }
}

template <enum mm_dtype T>
static void launch_qdot(cudaStream_t s, const struct dots_call *k, const struct qact &a, int n)
{
    if (n == 1)
        launch_qdot_t<T, 1>(s, k, a, n);
    else
        launch_qdot_t<T, KC_DOTS_MAX_TOKENS>(s, k, a, n);
}

static int aligned16(const void *p)
{
    return ((uintptr_t)p & 15u) == 0;
}

static int is_quantized(enum mm_dtype t)
{
    return t == MM_Q8_0 || t == MM_Q4_0 || t == MM_Q4_1;
}

/* Quantized weights: x quantized once (one launch, whatever the number of
 * matrices), then one launch of the dots for every token. */
static int quantized_dots(struct kc_ctx *c, const struct dots_call *k, const float *x, int n,
                          struct mm_err *err)
{
    const struct kc_matrix *w = k->w[0];
    int64_t cols = w->cols, nb = cols / MM_QBLOCK;
    for (int m = 0; m < k->count; m++) {
        if (cols % MM_QBLOCK || ((uintptr_t)k->w[m]->data & 3u)) {
            mm_err_set(err, "matmul: %s weights need whole blocks and 4-byte aligned data",
                       mm_dtype_name(w->dtype));
            return -1;
        }
    }
    size_t qs_bytes = ((size_t)(n * cols) + 255) & ~(size_t)255;
    size_t d_bytes = (((size_t)(n * nb) * sizeof(float)) + 255) & ~(size_t)255;
    char *ws = (char *)kc_workspace(c, qs_bytes + 2 * d_bytes, err);
    if (!ws) return -1;
    int8_t *qs = (int8_t *)ws;
    float *d = (float *)(ws + qs_bytes);
    int *sum = (int *)(ws + qs_bytes + d_bytes);
    int64_t blocks_act = n * nb;
    const int warps = 8;
    quantize_act_kernel<<<(unsigned)((blocks_act + warps - 1) / warps), KC_WARP * warps, 0,
                          c->stream>>>(qs, d, sum, x, blocks_act);
    if (kc_launched("matmul: quantize activations", err)) return -1;
    struct qact a = {qs, d, sum};
    if (w->dtype == MM_Q8_0)
        launch_qdot<MM_Q8_0>(c->stream, k, a, n);
    else if (w->dtype == MM_Q4_0)
        launch_qdot<MM_Q4_0>(c->stream, k, a, n);
    else
        launch_qdot<MM_Q4_1>(c->stream, k, a, n);
    return kc_launched("matmul: quantized dots", err);
}

/* Runs a call of the dot kernels: every matrix of it has w[0]'s dtype and
 * row length (the callers check). */
static int dots(struct kc_ctx *c, const struct dots_call *k, const float *x, int n,
                struct mm_err *err)
{
    const struct kc_matrix *w = k->w[0];
    if (n <= 0) return 0;
    /* more than one token puts the row blocks along y (at most R = 1 row
     * per warp, so the rows bound the blocks) */
    int64_t rows = 0;
    for (int m = 0; m < k->count; m++)
        rows += k->w[m]->rows;
    if (n > 1 && (rows + DOT_WARPS - 1) / DOT_WARPS > MAX_ROW_BLOCKS) {
        mm_err_set(err, "matmul: %lld rows are more than the dot kernels take for %d tokens",
                   (long long)rows, n);
        return -1;
    }
    if (is_quantized(w->dtype)) return quantized_dots(c, k, x, n, err);
    if (w->dtype != MM_F32 && w->dtype != MM_F16 && w->dtype != MM_BF16) {
        mm_err_set(err, "matmul: dtype %s has no CUDA kernel", mm_dtype_name(w->dtype));
        return -1;
    }
    /* Vector loads where the weights allow them; an x off 16-byte alignment
     * is copied to an aligned buffer first, so the choice (and with it each
     * sum's order) depends on the weights only, never on where x sits. */
    int vec = w->row_bytes % 16 == 0;
    for (int m = 0; m < k->count; m++)
        vec = vec && aligned16(k->w[m]->data);
    if (vec && !aligned16(x)) {
        size_t bytes = (size_t)n * (size_t)w->cols * sizeof(float);
        float *xa = (float *)kc_workspace(c, bytes, err);
        if (!xa || kc_copy(c, xa, x, bytes, err)) return -1;
        x = xa;
    }
    if (w->dtype == MM_F32)
        launch_float<MM_F32>(c->stream, k, x, n, vec);
    else if (w->dtype == MM_F16)
        launch_float<MM_F16>(c->stream, k, x, n, vec);
    else
        launch_float<MM_BF16>(c->stream, k, x, n, vec);
    return kc_launched("matmul: dots", err);
}

extern "C" int kc_matmul_dots(struct kc_ctx *c, float *out, const float *x,
                              const struct kc_matrix *w, int n, float alpha, int accumulate,
                              struct mm_err *err)
{
    if (w->rows <= 0) return 0;
    struct dots_call k = {DOTS_ONE, 1, {w}, {out}, alpha, accumulate};
    return dots(c, &k, x, n, err);
}

extern "C" int kc_matmul_fusable(const struct kc_ctx *c, const struct kc_matrix *const *w,
                                 int count, int n)
{
    if (count < 1 || count > KC_MULTI_MAX || !kc_matmul_uses_dots(c, w[0]->dtype, n)) return 0;
    for (int m = 0; m < count; m++)
        if (w[m]->dtype != w[0]->dtype || w[m]->cols != w[0]->cols || w[m]->rows <= 0) return 0;
    return 1;
}

extern "C" int kc_matmul_forward_multi(struct kc_ctx *c, float *const *out, const float *x,
                                       const struct kc_matrix *const *w, int count, int n,
                                       struct mm_err *err)
{
    if (!kc_matmul_fusable(c, w, count, n)) {
        for (int m = 0; m < count; m++)
            if (kc_matmul_forward(c, out[m], x, w[m], n, err)) return -1;
        return 0;
    }
    struct dots_call k = {DOTS_MULTI, count, {NULL}, {NULL}, 1.0f, 0};
    for (int m = 0; m < count; m++) {
        k.w[m] = w[m];
        k.out[m] = out[m];
    }
    return dots(c, &k, x, n, err);
}

extern "C" int kc_matmul_swiglu_supported(const struct kc_ctx *c, const struct kc_matrix *gate,
                                          const struct kc_matrix *up, int n)
{
    const struct kc_matrix *w[2] = {gate, up};
    return kc_matmul_fusable(c, w, 2, n) && gate->rows == up->rows;
}

extern "C" int kc_matmul_swiglu_forward(struct kc_ctx *c, float *out, const float *x,
                                        const struct kc_matrix *gate, const struct kc_matrix *up,
                                        int n, struct mm_err *err)
{
    if (!kc_matmul_swiglu_supported(c, gate, up, n)) {
        mm_err_set(err,
                   "matmul with SwiGLU: %s %lld x %lld and %s %lld x %lld for %d tokens "
                   "take no fused kernel",
                   mm_dtype_name(gate->dtype), (long long)gate->rows, (long long)gate->cols,
                   mm_dtype_name(up->dtype), (long long)up->rows, (long long)up->cols, n);
        return -1;
    }
    struct dots_call k = {DOTS_SWIGLU, 2, {gate, up}, {out}, 1.0f, 0};
    return dots(c, &k, x, n, err);
}
