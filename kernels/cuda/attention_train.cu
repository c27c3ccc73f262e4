/* Attention of one whole training sequence, forward and backward, for the
 * trainer: per query head, the scores through cuBLAS (n x n, f32), a
 * masked softmax kernel, the values through cuBLAS; the probabilities are
 * kept for the backward (n_heads x n x n floats per layer: a training
 * sequence of the models memllm trains fits many times over in a GPU's
 * memory), which is four more products per head and one kernel:
 *   dP = dO V^T, dS = P (dP - rowsum(P dP)), dQ = scale dS K,
 *   dK += scale dS^T Q, dV += P^T dO.
 * The heads of a KV group add their dK and dV in head order, each product
 * one cuBLAS call on one stream: the same bits on every run. Query t sees
 * keys max(0, t - window + 1) .. t (window 0: all earlier ones), as
 * k_attention_train_forward. */
#include <math.h>

#include "kc_device.cuh"

#define THREADS 256

/* Row (blockIdx.y, blockIdx.x) of the scaled scores becomes its
 * probabilities, 0 outside the token's keys. */
static __global__ void masked_softmax_kernel(float *probs, int n, int window)
{
    __shared__ float red[KC_WARP];
    const int t = blockIdx.x;
    float *row = probs + ((int64_t)blockIdx.y * n + t) * n;
    const int p0 = window > 0 && t - window + 1 > 0 ? t - window + 1 : 0;
    float mx = -INFINITY;
    for (int p = p0 + threadIdx.x; p <= t; p += blockDim.x)
        mx = fmaxf(mx, row[p]);
    mx = kc_block_reduce(mx, red, kc_max_op());
    float sum = 0.0f;
    for (int p = p0 + threadIdx.x; p <= t; p += blockDim.x)
        sum += expf(row[p] - mx);
    sum = kc_block_reduce(sum, red, kc_add_op());
    for (int p = threadIdx.x; p < n; p += blockDim.x)
        row[p] = p >= p0 && p <= t ? expf(row[p] - mx) / sum : 0.0f;
}

/* ds = p (dp - sum(p dp)) for row blockIdx.x of one head, in place in dp. */
static __global__ void softmax_backward_kernel(float *dp, const float *p, int n)
{
    __shared__ float red[KC_WARP];
    float *d = dp + (int64_t)blockIdx.x * n;
    const float *pr = p + (int64_t)blockIdx.x * n;
    float dot = 0.0f;
    for (int j = threadIdx.x; j < n; j += blockDim.x)
        dot += pr[j] * d[j];
    dot = kc_block_reduce(dot, red, kc_add_op());
    for (int j = threadIdx.x; j < n; j += blockDim.x)
        d[j] = pr[j] * (d[j] - dot);
}

static int check_shape(int n, int n_heads, int n_kv_heads, struct mm_err *err)
{
    if (n_heads <= 0 || n_kv_heads <= 0 || n_heads % n_kv_heads || n > 65535) {
        mm_err_set(err, "training attention: %d heads over %d KV heads, %d tokens: unsupported",
                   n_heads, n_kv_heads, n);
        return -1;
    }
    return 0;
}

extern "C" int kc_attention_train_forward(struct kc_ctx *c, float *out, float *probs,
                                          const float *q, const float *k, const float *v, int n,
                                          int n_heads, int n_kv_heads, int head_dim, int window,
                                          struct mm_err *err)
{
    if (check_shape(n, n_heads, n_kv_heads, err)) return -1;
    if (n <= 0) return 0;
    const int group = n_heads / n_kv_heads;
    const int qw = n_heads * head_dim, kw = n_kv_heads * head_dim;
    const float scale = 1.0f / sqrtf((float)head_dim);
    const int64_t nn = (int64_t)n * n;
    for (int h = 0; h < n_heads; h++)
        if (kc_gemm_f32(c, 0, 1, n, n, head_dim, scale, q + h * head_dim, qw,
                        k + (h / group) * head_dim, kw, 0.0f, probs + h * nn, n, err))
            return -1;
    masked_softmax_kernel<<<dim3(n, n_heads), THREADS, 0, c->stream>>>(probs, n, window);
    if (kc_launched("training attention softmax", err)) return -1;
    for (int h = 0; h < n_heads; h++)
        if (kc_gemm_f32(c, 0, 0, n, head_dim, n, 1.0f, probs + h * nn, n,
                        v + (h / group) * head_dim, kw, 0.0f, out + h * head_dim, qw, err))
            return -1;
    return 0;
}

extern "C" int kc_attention_backward(struct kc_ctx *c, float *dq, float *dk, float *dv,
                                     const float *dout, const float *probs, const float *q,
                                     const float *k, const float *v, int n, int n_heads,
                                     int n_kv_heads, int head_dim, float *scratch,
                                     struct mm_err *err)
{
    if (check_shape(n, n_heads, n_kv_heads, err)) return -1;
    if (n <= 0) return 0;
    const int group = n_heads / n_kv_heads;
    const int qw = n_heads * head_dim, kw = n_kv_heads * head_dim;
    const float scale = 1.0f / sqrtf((float)head_dim);
    const int64_t nn = (int64_t)n * n;
    for (int h = 0; h < n_heads; h++) {
        const int64_t qo = (int64_t)h * head_dim, ko = (int64_t)(h / group) * head_dim;
        const float *p = probs + h * nn;
        const float beta = h % group == 0 ? 0.0f : 1.0f;
        if (kc_gemm_f32(c, 0, 1, n, n, head_dim, 1.0f, dout + qo, qw, v + ko, kw, 0.0f, scratch, n,
                        err))
            return -1;
        softmax_backward_kernel<<<n, THREADS, 0, c->stream>>>(scratch, p, n);
        if (kc_launched("training attention softmax backward", err) ||
            kc_gemm_f32(c, 0, 0, n, head_dim, n, scale, scratch, n, k + ko, kw, 0.0f, dq + qo, qw,
                        err) ||
            kc_gemm_f32(c, 1, 0, n, head_dim, n, scale, scratch, n, q + qo, qw, beta, dk + ko, kw,
                        err) ||
            kc_gemm_f32(c, 1, 0, n, head_dim, n, 1.0f, p, n, dout + qo, qw, beta, dv + ko, kw, err))
            return -1;
    }
    return 0;
}
