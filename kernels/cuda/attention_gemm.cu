/* Attention of a long run of tokens (prefill) through cuBLAS: the scores
 * S = scale Q K^T of every query head as f32 matrix products, a masked
 * softmax over each row in place, then P V. In f32 throughout (never TF32),
 * like the flash kernel, but on cuBLAS's tuned SGEMM: at 2048 tokens the
 * flash kernel's per-lane loops ran at a fraction of the f32 rate.
 *
 * The query heads of a group share their KV head, so for each head j of a
 * group one strided-batched product covers every KV head g (query head
 * g * group + j). Layouts are kernels_cuda.h's: q and out [n, n_heads *
 * head_dim], k and v [keys, n_kv_heads * head_dim]. cuBLAS is column-major:
 * the row-major S [n, keys] of a head is, to it, S^T = K_g Q_h^T. */
#include <math.h>

#include "kc_device.cuh"

#define THREADS 256

/* Row r = g * n + t of the scores of one group head: token t (position
 * pos0 + t) keeps keys lo .. hi, the rest weigh nothing. */
static __global__ void masked_softmax_kernel(float *s, int n, int keys, int pos0, int window,
                                             int causal)
{
    __shared__ float red[KC_WARP];
    const int t = blockIdx.x % n;
    float *row = s + (int64_t)blockIdx.x * keys;
    const int hi = causal ? pos0 + t : keys - 1;
    const int lo = window > 0 ? max(0, pos0 + t - window + 1) : 0;
    float m = -INFINITY;
    for (int i = lo + threadIdx.x; i <= hi; i += blockDim.x)
        m = fmaxf(m, row[i]);
    m = kc_block_reduce(m, red, kc_max_op());
    float sum = 0.0f;
    for (int i = lo + threadIdx.x; i <= hi; i += blockDim.x)
        sum += expf(row[i] - m);
    sum = kc_block_reduce(sum, red, kc_add_op());
    const float inv = 1.0f / sum;
    for (int i = threadIdx.x; i < keys; i += blockDim.x)
        row[i] = i >= lo && i <= hi ? expf(row[i] - m) * inv : 0.0f;
}

static int batched(struct kc_ctx *c, const char *what, cublasOperation_t ta, int m, int n, int k,
                   float alpha, const float *a, int lda, long long sa, const float *b, int ldb,
                   long long sb, float *out, int ldc, long long sc, int batch, struct mm_err *err)
{
    const float beta = 0.0f;
    return kc_blas_ok(cublasGemmStridedBatchedEx(c->blas, ta, CUBLAS_OP_N, m, n, k, &alpha, a,
                                                 CUDA_R_32F, lda, sa, b, CUDA_R_32F, ldb, sb, &beta,
                                                 out, CUDA_R_32F, ldc, sc, batch,
                                                 CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                      what, err);
}

extern "C" size_t kc_attention_gemm_bytes(int n, int pos0, int n_kv_heads)
{
    return (size_t)n_kv_heads * (size_t)n * (size_t)(pos0 + n) * sizeof(float);
}

extern "C" int kc_attention_gemm(struct kc_ctx *c, float *out, const float *q, const float *k,
                                 const float *v, int n, int pos0, int n_heads, int n_kv_heads,
                                 int head_dim, int window, int causal, struct mm_err *err)
{
    if (n <= 0) return 0;
    const int keys = pos0 + n, group = n_heads / n_kv_heads, hd = head_dim;
    const int q_dim = n_heads * hd, kv_dim = n_kv_heads * hd;
    float *s = (float *)kc_workspace(c, kc_attention_gemm_bytes(n, pos0, n_kv_heads), err);
    if (!s) return -1;
    const long long s_stride = (long long)n * keys;
    for (int j = 0; j < group; j++) {
        if (batched(c, "attention: scores", CUBLAS_OP_T, keys, n, hd, 1.0f / sqrtf((float)hd), k,
                    kv_dim, hd, q + (int64_t)j * hd, q_dim, (long long)group * hd, s, keys,
                    s_stride, n_kv_heads, err))
            return -1;
        masked_softmax_kernel<<<(unsigned)(n_kv_heads * n), THREADS, 0, c->stream>>>(
            s, n, keys, pos0, window, causal);
        if (kc_launched("attention: softmax", err) ||
            batched(c, "attention: values", CUBLAS_OP_N, hd, n, keys, 1.0f, v, kv_dim, hd, s, keys,
                    s_stride, out + (int64_t)j * hd, q_dim, (long long)group * hd, n_kv_heads, err))
            return -1;
    }
    return 0;
}
