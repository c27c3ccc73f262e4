/* Matrix multiplication out = x W^T on the device: the dispatch between the
 * dot-product kernels (dots.cu) and cuBLAS.
 *
 * Invariant numerics (the default): the dot kernels for every n and every
 * dtype. There a (row, token) output is always summed by one warp, lane l
 * taking the row's 16-byte chunks (quantized: 32-element blocks) l, l + 32,
 * ... in order, then the same butterfly over the lanes, whatever n and
 * whichever kernel (one token, many, fused), so its bits depend on that
 * token's activations and the row only. That keeps decode at the dot
 * kernels' bandwidth (batch 1 reads the weights once, at 2.6 TB/s on an
 * H100 for bf16), and costs prefill the tensor cores: f32 FMAs on the
 * CUDA cores (and dp4a on quantized weights) at a fraction of cuBLAS's
 * rate (bench_cuda's matmul_up_n2048 and prefill lines measure it).
 *
 * Why not cuBLAS(Lt) with one pinned algorithm for float weights? Pinning
 * an algorithm per (rows, cols, dtype) (split-K 1, no reduction scheme,
 * cublasLtMatmulAlgoCheck) would make a GEMM's per-element order
 * independent of n, since each output tile then runs the same K loop
 * whatever the number of column tiles, and it would keep tensor cores for
 * prefill. But it must then serve n = 1 too, where a tile of 64 or 128
 * rows without split-K gives a 4096-row matrix 32 to 64 blocks for 132
 * SMs: decode, the common case, would lose much of its bandwidth, and
 * the bf16 activations (even split in two parts) would no longer be the
 * f32 ones the dot kernels multiply. The invariance would also rest on
 * undocumented properties of the library's kernels (and their version),
 * where the dot kernels' is evident from the code. cuBLAS stays for the
 * fast numerics.
 *
 * Fast numerics: dot kernels for few tokens, cuBLAS for many.
 *
 * cuBLAS is column-major: the row-major [rows, cols] weights are, to it, a
 * cols x rows matrix, so out^T (rows x n) = op_T(W) x^T with every leading
 * dimension the row length. Accumulation is f32 (CUBLAS_COMPUTE_32F, never
 * TF32: f32 weights keep full f32 products). Half-precision weights need
 * activations of their own type: f16 ones are rounded to f16, bf16 ones are
 * split into two bf16 parts (bf16_split_gemm) unless the context asks for
 * speed; quantized weights are dequantized to bf16 a tile of rows at a
 * time, into the context's workspace.
 *
 * Backward (trainer): dx = dout W is the same call with CUBLAS_OP_N on W,
 * dW (LoRA's A and B only, base weights stay frozen) = dout^T x. */
#include <limits.h>

#include "kc_device.cuh"

/* Elements of a dequantized weight tile: 32 MB of bf16. */
#define TILE_ELEMS (16 << 20)
#define THREADS 256

template <typename H> static __device__ __forceinline__ H to_half(float v);
template <> __device__ __forceinline__ __nv_bfloat16 to_half<__nv_bfloat16>(float v)
{
    return __float2bfloat16_rn(v);
}
template <> __device__ __forceinline__ __half to_half<__half>(float v)
{
    return __float2half_rn(v);
}

template <typename H> static __global__ void convert_kernel(H *dst, const float *src, int64_t len)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < len;
         i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = to_half<H>(src[i]);
}

/* Rows [r0, r0 + gridDim.y) of a quantized matrix to bf16, one row per
 * blockIdx.y. */
template <enum mm_dtype T>
static __global__ void dequantize_tile_kernel(__nv_bfloat16 *tile, const char *w, int64_t r0,
                                              int64_t cols, size_t row_bytes)
{
    const char *row = w + (r0 + blockIdx.y) * (int64_t)row_bytes;
    __nv_bfloat16 *dst = tile + (int64_t)blockIdx.y * cols;
    for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < cols;
         c += (int64_t)gridDim.x * blockDim.x)
        dst[c] = __float2bfloat16_rn(kc_elem(T, row, c));
}

static int gemm(struct kc_ctx *c, const char *what, int64_t rows, int n, int64_t cols, float alpha,
                const void *w, cudaDataType wtype, const void *x, cudaDataType xtype, float beta,
                float *out, int64_t ldc, struct mm_err *err)
{
    return kc_blas_ok(cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)rows, n, (int)cols,
                                   &alpha, w, wtype, (int)cols, x, xtype, (int)cols, &beta, out,
                                   CUDA_R_32F, (int)ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                      what, err);
}

/* x converted to the half type H in the workspace (at its start). */
template <typename H>
static H *half_activations(struct kc_ctx *c, const float *x, int64_t len, size_t extra,
                           struct mm_err *err)
{
    size_t bytes = ((size_t)len * sizeof(H) + 255) & ~(size_t)255;
    H *xh = (H *)kc_workspace(c, bytes + extra, err);
    if (!xh) return NULL;
    convert_kernel<H><<<kc_grid(len, THREADS), THREADS, 0, c->stream>>>(xh, x, len);
    if (kc_launched("matmul: convert activations", err)) return NULL;
    return xh;
}

/* hi = bf16(x), lo = bf16(x - hi): x to about 16 significant bits as two
 * bf16 rows (hi rows first, then lo rows). */
static __global__ void split_kernel(__nv_bfloat16 *hl, const float *x, int64_t len)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < len;
         i += (int64_t)gridDim.x * blockDim.x) {
        __nv_bfloat16 hi = __float2bfloat16_rn(x[i]);
        hl[i] = hi;
        hl[len + i] = __float2bfloat16_rn(x[i] - __bfloat162float(hi));
    }
}

/* out = alpha (hi part + lo part) (+ out when accumulating). */
static __global__ void join_kernel(float *out, const float *parts, int64_t len, float alpha,
                                   int accumulate)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < len;
         i += (int64_t)gridDim.x * blockDim.x) {
        float v = alpha * (parts[i] + parts[len + i]);
        out[i] = accumulate ? out[i] + v : v;
    }
}

/* bf16 weights with the activations split in two bf16 parts: one GEMM over
 * 2n columns reads the weights once (decode batches stay bound by that
 * read), prefill does twice the tensor-core work. Rounding x to one bf16
 * (8 significant bits) moves the logits of a model by a few tenths; the
 * split keeps them within f32's reach of the CPU path. */
static int bf16_split_gemm(struct kc_ctx *c, float *out, const float *x, const struct kc_matrix *w,
                           int n, float alpha, int accumulate, struct mm_err *err)
{
    int64_t rows = w->rows, cols = w->cols, len = n * cols;
    size_t hl_bytes = ((size_t)(2 * len) * sizeof(__nv_bfloat16) + 255) & ~(size_t)255;
    size_t parts_bytes = (size_t)(2 * n * rows) * sizeof(float);
    char *ws = (char *)kc_workspace(c, hl_bytes + parts_bytes, err);
    if (!ws) return -1;
    __nv_bfloat16 *hl = (__nv_bfloat16 *)ws;
    float *parts = (float *)(ws + hl_bytes);
    split_kernel<<<kc_grid(len, THREADS), THREADS, 0, c->stream>>>(hl, x, len);
    if (kc_launched("matmul: split activations", err) ||
        gemm(c, "matmul: bf16", rows, 2 * n, cols, 1.0f, w->data, CUDA_R_16BF, hl, CUDA_R_16BF,
             0.0f, parts, rows, err))
        return -1;
    join_kernel<<<kc_grid(n * rows, THREADS), THREADS, 0, c->stream>>>(out, parts, n * rows, alpha,
                                                                       accumulate);
    return kc_launched("matmul: join the parts", err);
}

template <enum mm_dtype T>
static int quantized_gemm(struct kc_ctx *c, float *out, const float *x, const struct kc_matrix *w,
                          int n, float alpha, float beta, struct mm_err *err)
{
    int64_t rows = w->rows, cols = w->cols;
    int64_t tile_rows = TILE_ELEMS / cols;
    if (tile_rows < 1) tile_rows = 1;
    if (tile_rows > rows) tile_rows = rows;
    if (tile_rows > 65535) tile_rows = 65535; /* gridDim.y */
    size_t act_bytes = ((size_t)(n * cols) * sizeof(__nv_bfloat16) + 255) & ~(size_t)255;
    size_t tile_bytes = (size_t)(tile_rows * cols) * sizeof(__nv_bfloat16);
    __nv_bfloat16 *xh = half_activations<__nv_bfloat16>(c, x, n * cols, tile_bytes, err);
    if (!xh) return -1;
    __nv_bfloat16 *tile = (__nv_bfloat16 *)((char *)xh + act_bytes);
    unsigned col_blocks = kc_grid(cols, THREADS);
    if (col_blocks > 64) col_blocks = 64;
    for (int64_t r0 = 0; r0 < rows; r0 += tile_rows) {
        int64_t m = rows - r0 < tile_rows ? rows - r0 : tile_rows;
        dim3 grid(col_blocks, (unsigned)m);
        dequantize_tile_kernel<T>
            <<<grid, THREADS, 0, c->stream>>>(tile, (const char *)w->data, r0, cols, w->row_bytes);
        if (kc_launched("matmul: dequantize a tile", err) ||
            gemm(c, "matmul: quantized tile", m, n, cols, alpha, tile, CUDA_R_16BF, xh, CUDA_R_16BF,
                 beta, out + r0, rows, err))
            return -1;
    }
    return 0;
}

extern "C" int kc_matmul_gemm(struct kc_ctx *c, float *out, const float *x,
                              const struct kc_matrix *w, int n, float alpha, int accumulate,
                              struct mm_err *err)
{
    int64_t rows = w->rows, cols = w->cols;
    if (n <= 0 || rows <= 0) return 0;
    if (rows > INT_MAX || cols > INT_MAX || cols <= 0) {
        mm_err_set(err, "matmul: a %lld x %lld matrix is too large for cuBLAS", (long long)rows,
                   (long long)cols);
        return -1;
    }
    float beta = accumulate ? 1.0f : 0.0f;
    switch (w->dtype) {
    case MM_F32:
        return gemm(c, "matmul: f32", rows, n, cols, alpha, w->data, CUDA_R_32F, x, CUDA_R_32F,
                    beta, out, rows, err);
    case MM_F16: {
        __half *xh = half_activations<__half>(c, x, n * cols, 0, err);
        return xh ? gemm(c, "matmul: f16", rows, n, cols, alpha, w->data, CUDA_R_16F, xh,
                         CUDA_R_16F, beta, out, rows, err)
                  : -1;
    }
    case MM_BF16: {
        if (c->numerics != KC_NUMERICS_FAST_BF16)
            return bf16_split_gemm(c, out, x, w, n, alpha, accumulate, err);
        __nv_bfloat16 *xh = half_activations<__nv_bfloat16>(c, x, n * cols, 0, err);
        return xh ? gemm(c, "matmul: bf16", rows, n, cols, alpha, w->data, CUDA_R_16BF, xh,
                         CUDA_R_16BF, beta, out, rows, err)
                  : -1;
    }
    case MM_Q8_0:
        return quantized_gemm<MM_Q8_0>(c, out, x, w, n, alpha, beta, err);
    case MM_Q4_0:
        return quantized_gemm<MM_Q4_0>(c, out, x, w, n, alpha, beta, err);
    case MM_Q4_1:
        return quantized_gemm<MM_Q4_1>(c, out, x, w, n, alpha, beta, err);
    default:
        mm_err_set(err, "matmul: dtype %s has no CUDA kernel", mm_dtype_name(w->dtype));
        return -1;
    }
}

/* Invariant numerics: always (see the top of the file). Fast numerics,
 * float weights: the dot kernels for one token only. On an H100 (bf16
 * 14336 x 4096, bench_cuda's matmul_up_* lines) they read 2.6 TB/s for one
 * token against cuBLAS's 2.3, but 2.2 / 1.6 / 0.9 TB/s for 2 / 4 / 8 tokens
 * against cuBLAS's steady 2.3. Quantized weights keep the dot kernels up to
 * KC_DOTS_MAX_TOKENS: they multiply 8-bit activations as the CPU does,
 * where cuBLAS would take bf16 ones. */
extern "C" int kc_matmul_uses_dots(const struct kc_ctx *c, enum mm_dtype t, int n)
{
    if (c->numerics == KC_NUMERICS_INVARIANT) return 1;
    int quantized = t == MM_Q8_0 || t == MM_Q4_0 || t == MM_Q4_1;
    return n <= (quantized ? KC_DOTS_MAX_TOKENS : 1);
}

static int matmul(struct kc_ctx *c, float *out, const float *x, const struct kc_matrix *w, int n,
                  float alpha, int accumulate, struct mm_err *err)
{
    if (kc_matmul_uses_dots(c, w->dtype, n))
        return kc_matmul_dots(c, out, x, w, n, alpha, accumulate, err);
    return kc_matmul_gemm(c, out, x, w, n, alpha, accumulate, err);
}

extern "C" int kc_matmul_forward(struct kc_ctx *c, float *out, const float *x,
                                 const struct kc_matrix *w, int n, struct mm_err *err)
{
    return matmul(c, out, x, w, n, 1.0f, 0, err);
}

extern "C" int kc_matmul_accumulate(struct kc_ctx *c, float *out, const float *x,
                                    const struct kc_matrix *w, int n, float scale,
                                    struct mm_err *err)
{
    return matmul(c, out, x, w, n, scale, 1, err);
}
