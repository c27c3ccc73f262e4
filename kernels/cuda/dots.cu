/* The matmul path for few tokens (decode): each warp computes one output
 * row for up to KC_DOTS_MAX_TOKENS tokens, reading the weight row once at
 * its stored width. Decode is bound by reading the weights, so the loads are
 * 16 bytes wide where the rows allow it and the activations (a few KB, shared
 * by every row) come from the L1 cache.
 *
 * Float weights multiply f32 activations directly. Quantized weights take
 * the CPU's route: the activations are quantized to 8-bit blocks once per
 * call (d = amax / 127, round to nearest even), and each weight block is
 * multiplied by integer dot products (dp4a) and scaled in float. */
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
    *o = accumulate ? *o + alpha * v : alpha * v;
}

/* vec: the rows and x are 16-byte aligned, so the leading whole 16-byte
 * chunks go by vector loads; the rest (or everything) element by element.
 * A warp takes R consecutive rows: each activation load then serves R rows
 * (with several tokens the activations, not the weights, would otherwise
 * bound the loop), and R weight loads are in flight per lane. */
template <enum mm_dtype T, int MAXT, int R>
static __global__ void __launch_bounds__(KC_WARP *DOT_WARPS)
    fdot_kernel(float *out, const float *x, const char *w, int64_t rows, int64_t cols,
                size_t row_bytes, int n, float alpha, int accumulate, int vec)
{
    int64_t r0 = ((int64_t)blockIdx.x * DOT_WARPS + threadIdx.x / KC_WARP) * R;
    int lane = threadIdx.x % KC_WARP;
    if (r0 >= rows) return; /* the whole warp: r0 is per warp */
    int nr = rows - r0 < R ? (int)(rows - r0) : R;
    float acc[R][MAXT];
#pragma unroll
    for (int rr = 0; rr < R; rr++)
#pragma unroll
        for (int t = 0; t < MAXT; t++)
            acc[rr][t] = 0.0f;
    int64_t done = 0;
    if (vec) {
        constexpr int E = T == MM_F32 ? 4 : 8; /* elements per 16 bytes */
        int64_t chunks = cols / E;
#pragma unroll(R == 1 ? 4 : 1)
        for (int64_t i = lane; i < chunks; i += KC_WARP) {
            float wf[R][E];
#pragma unroll
            for (int rr = 0; rr < R; rr++) {
                uint4 raw = make_uint4(0, 0, 0, 0);
                if (rr < nr)
                    raw = __ldg(
                        reinterpret_cast<const uint4 *>(w + (r0 + rr) * (int64_t)row_bytes) + i);
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
                    for (int rr = 0; rr < R; rr++)
                        acc[rr][t] += wf[rr][4 * j] * a.x + wf[rr][4 * j + 1] * a.y +
                                      wf[rr][4 * j + 2] * a.z + wf[rr][4 * j + 3] * a.w;
                }
            }
        }
        done = chunks * E;
    }
    for (int64_t c = done + lane; c < cols; c += KC_WARP) {
        float wc[R];
#pragma unroll
        for (int rr = 0; rr < R; rr++)
            wc[rr] = rr < nr ? kc_elem(T, w + (r0 + rr) * (int64_t)row_bytes, c) : 0.0f;
#pragma unroll
        for (int t = 0; t < MAXT; t++) {
            if (t >= n) break;
            float xc = x[t * cols + c];
#pragma unroll
            for (int rr = 0; rr < R; rr++)
                acc[rr][t] += wc[rr] * xc;
        }
    }
#pragma unroll
    for (int rr = 0; rr < R; rr++)
#pragma unroll
        for (int t = 0; t < MAXT; t++)
            acc[rr][t] = kc_warp_sum(acc[rr][t]);
    if (lane == 0) {
#pragma unroll
        for (int rr = 0; rr < R; rr++)
#pragma unroll
            for (int t = 0; t < MAXT; t++)
                if (rr < nr && t < n)
                    store_out(out + t * rows + r0 + rr, acc[rr][t], alpha, accumulate);
    }
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

template <enum mm_dtype T, int MAXT>
static __global__ void __launch_bounds__(KC_WARP *DOT_WARPS)
    qdot_kernel(float *out, const int8_t *aqs, const float *ad, const int *asum, const char *w,
                int64_t rows, int64_t cols, size_t row_bytes, int n, float alpha, int accumulate)
{
    int64_t r = (int64_t)blockIdx.x * DOT_WARPS + threadIdx.x / KC_WARP;
    int lane = threadIdx.x % KC_WARP;
    if (r >= rows) return;
    const char *row = w + r * (int64_t)row_bytes;
    int64_t nb = cols / MM_QBLOCK;
    float acc[MAXT];
#pragma unroll
    for (int t = 0; t < MAXT; t++)
        acc[t] = 0.0f;
    for (int64_t b = lane; b < nb; b += KC_WARP) {
        int wq[8];
        float dw, mw;
        load_block<T>(row + b * block_size<T>::bytes, wq, &dw, &mw);
#pragma unroll
        for (int t = 0; t < MAXT; t++) {
            if (t >= n) break;
            const int4 *a = reinterpret_cast<const int4 *>(aqs + t * cols + b * MM_QBLOCK);
            int4 a0 = __ldg(a), a1 = __ldg(a + 1);
            int isum = __dp4a(wq[0], a0.x, 0);
            isum = __dp4a(wq[1], a0.y, isum);
            isum = __dp4a(wq[2], a0.z, isum);
            isum = __dp4a(wq[3], a0.w, isum);
            isum = __dp4a(wq[4], a1.x, isum);
            isum = __dp4a(wq[5], a1.y, isum);
            isum = __dp4a(wq[6], a1.z, isum);
            isum = __dp4a(wq[7], a1.w, isum);
            float da = ad[t * nb + b];
            int qsum = asum[t * nb + b];
            if (T == MM_Q8_0)
                acc[t] += dw * da * (float)isum;
            else if (T == MM_Q4_0) /* sum (n - 8) q = sum n q - 8 sum q */
                acc[t] += dw * da * (float)(isum - 8 * qsum);
            else /* sum (d n + m)(da q) = d da sum n q + m (da sum q) */
                acc[t] += dw * da * (float)isum + mw * (da * (float)qsum);
        }
    }
#pragma unroll
    for (int t = 0; t < MAXT; t++)
        acc[t] = kc_warp_sum(acc[t]);
    if (lane == 0) {
#pragma unroll
        for (int t = 0; t < MAXT; t++)
            if (t < n) store_out(out + t * rows + r, acc[t], alpha, accumulate);
    }
}

/* One token reads each weight once whatever R is: a row per warp keeps the
 * most warps in flight. Several tokens share each activation load over
 * FDOT_ROWS rows. */
#define FDOT_ROWS 4

template <enum mm_dtype T>
static void launch_fdot(cudaStream_t s, float *out, const float *x, const struct kc_matrix *w,
                        int n, float alpha, int accumulate, int vec)
{
    const char *data = (const char *)w->data;
    if (n == 1) {
        unsigned blocks = (unsigned)((w->rows + DOT_WARPS - 1) / DOT_WARPS);
        fdot_kernel<T, 1, 1><<<blocks, KC_WARP * DOT_WARPS, 0, s>>>(
            out, x, data, w->rows, w->cols, w->row_bytes, n, alpha, accumulate, vec);
    } else {
        unsigned blocks =
            (unsigned)((w->rows + DOT_WARPS * FDOT_ROWS - 1) / (DOT_WARPS * FDOT_ROWS));
        fdot_kernel<T, KC_DOTS_MAX_TOKENS, FDOT_ROWS><<<blocks, KC_WARP * DOT_WARPS, 0, s>>>(
            out, x, data, w->rows, w->cols, w->row_bytes, n, alpha, accumulate, vec);
    }
}

template <enum mm_dtype T>
static void launch_qdot(cudaStream_t s, unsigned blocks, float *out, const int8_t *qs,
                        const float *d, const int *sum, const struct kc_matrix *w, int n,
                        float alpha, int accumulate)
{
    const char *data = (const char *)w->data;
    if (n == 1)
        qdot_kernel<T, 1><<<blocks, KC_WARP * DOT_WARPS, 0, s>>>(
            out, qs, d, sum, data, w->rows, w->cols, w->row_bytes, n, alpha, accumulate);
    else
        qdot_kernel<T, KC_DOTS_MAX_TOKENS><<<blocks, KC_WARP * DOT_WARPS, 0, s>>>(
            out, qs, d, sum, data, w->rows, w->cols, w->row_bytes, n, alpha, accumulate);
}

static int aligned16(const void *p)
{
    return ((uintptr_t)p & 15u) == 0;
}

static int quantized_dots(struct kc_ctx *c, float *out, const float *x, const struct kc_matrix *w,
                          int n, float alpha, int accumulate, unsigned blocks, struct mm_err *err)
{
    int64_t cols = w->cols, nb = cols / MM_QBLOCK;
    if (cols % MM_QBLOCK || ((uintptr_t)w->data & 3u)) {
        mm_err_set(err, "matmul: %s weights need whole blocks and 4-byte aligned data",
                   mm_dtype_name(w->dtype));
        return -1;
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
    for (int t0 = 0; t0 < n; t0 += KC_DOTS_MAX_TOKENS) {
        int m = n - t0 < KC_DOTS_MAX_TOKENS ? n - t0 : KC_DOTS_MAX_TOKENS;
        float *o = out + (int64_t)t0 * w->rows;
        const int8_t *q = qs + (int64_t)t0 * cols;
        const float *dt = d + (int64_t)t0 * nb;
        const int *st = sum + (int64_t)t0 * nb;
        if (w->dtype == MM_Q8_0)
            launch_qdot<MM_Q8_0>(c->stream, blocks, o, q, dt, st, w, m, alpha, accumulate);
        else if (w->dtype == MM_Q4_0)
            launch_qdot<MM_Q4_0>(c->stream, blocks, o, q, dt, st, w, m, alpha, accumulate);
        else
            launch_qdot<MM_Q4_1>(c->stream, blocks, o, q, dt, st, w, m, alpha, accumulate);
        if (kc_launched("matmul: quantized dots", err)) return -1;
    }
    return 0;
}

extern "C" int kc_matmul_dots(struct kc_ctx *c, float *out, const float *x,
                              const struct kc_matrix *w, int n, float alpha, int accumulate,
                              struct mm_err *err)
{
    if (n <= 0 || w->rows <= 0) return 0;
    unsigned blocks = (unsigned)((w->rows + DOT_WARPS - 1) / DOT_WARPS);
    switch (w->dtype) {
    case MM_Q8_0:
    case MM_Q4_0:
    case MM_Q4_1:
        return quantized_dots(c, out, x, w, n, alpha, accumulate, blocks, err);
    case MM_F32:
    case MM_F16:
    case MM_BF16:
        break;
    default:
        mm_err_set(err, "matmul: dtype %s has no CUDA kernel", mm_dtype_name(w->dtype));
        return -1;
    }
    int vec = aligned16(w->data) && w->row_bytes % 16 == 0 && aligned16(x);
    for (int t0 = 0; t0 < n; t0 += KC_DOTS_MAX_TOKENS) {
        int m = n - t0 < KC_DOTS_MAX_TOKENS ? n - t0 : KC_DOTS_MAX_TOKENS;
        float *o = out + (int64_t)t0 * w->rows;
        const float *xt = x + (int64_t)t0 * w->cols;
        if (w->dtype == MM_F32)
            launch_fdot<MM_F32>(c->stream, o, xt, w, m, alpha, accumulate, vec);
        else if (w->dtype == MM_F16)
            launch_fdot<MM_F16>(c->stream, o, xt, w, m, alpha, accumulate, vec);
        else
            launch_fdot<MM_BF16>(c->stream, o, xt, w, m, alpha, accumulate, vec);
        if (kc_launched("matmul: dots", err)) return -1;
    }
    return 0;
}
