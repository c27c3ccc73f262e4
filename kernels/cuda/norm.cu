/* RMSNorm and LayerNorm: one block per token row, the row's sums reduced
 * over the block. The formulas and their order are the CPU ops'. A row's
 * result depends on that row only (a fixed 256-thread block, thread i
 * summing elements i, i + 256, ... in order, then kc_block_reduce's fixed
 * tree): batch-invariant. RMSNorm's sum of squares is rounded explicitly
 * (__fmaf_rn) in both kernels that compute it, so a stage's first layer
 * (rmsnorm of the hidden state received) and the same layer inside a
 * longer stage (the fused add and norm) give the same bits. */
#include "kc_device.cuh"

#define THREADS 256

static __global__ void rmsnorm_kernel(float *out, const float *x, const float *weight, int dim,
                                      float eps)
{
    __shared__ float red[KC_WARP];
    const float *xt = x + (int64_t)blockIdx.x * dim;
    float *ot = out + (int64_t)blockIdx.x * dim;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        ss = __fmaf_rn(xt[i], xt[i], ss);
    ss = kc_block_reduce(ss, red, kc_add_op());
    float r = 1.0f / sqrtf(ss / (float)dim + eps);
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        ot[i] = __fmul_rn(__fmul_rn(xt[i], r), weight[i]);
}

/* x += y, then out = rmsnorm(x) (out may be y): the residual add and the
 * next norm in one pass over the row. The same operations in the same
 * order as the two kernels, so the same results. */
static __global__ void add_rmsnorm_kernel(float *x, const float *y, float *out, const float *weight,
                                          int dim, float eps)
{
    __shared__ float red[KC_WARP];
    float *xt = x + (int64_t)blockIdx.x * dim;
    const float *yt = y + (int64_t)blockIdx.x * dim;
    float *ot = out + (int64_t)blockIdx.x * dim;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        float v = __fadd_rn(xt[i], yt[i]);
        xt[i] = v;
        ss = __fmaf_rn(v, v, ss);
    }
    ss = kc_block_reduce(ss, red,
                         kc_add_op()); /* its barrier orders y's reads before out's writes */
    float r = 1.0f / sqrtf(ss / (float)dim + eps);
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        ot[i] = __fmul_rn(__fmul_rn(xt[i], r), weight[i]);
}

/* dx += d rmsnorm(x) * weight / dx given dy: the CPU op's formula,
 * r = 1 / sqrt(mean(x^2) + eps), dx += r w dy - x r^3 sum(dy w x) / dim. */
static __global__ void rmsnorm_backward_kernel(float *dx, const float *dy, const float *x,
                                               const float *weight, int dim, float eps)
{
    __shared__ float red[KC_WARP];
    const int64_t off = (int64_t)blockIdx.x * dim;
    const float *xt = x + off, *gt = dy + off;
    float *dt = dx + off;
    float ss = 0.0f, gwx = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        ss = __fmaf_rn(xt[i], xt[i], ss);
        gwx += gt[i] * weight[i] * xt[i];
    }
    ss = kc_block_reduce(ss, red, kc_add_op());
    gwx = kc_block_reduce(gwx, red, kc_add_op());
    float r = 1.0f / sqrtf(ss / (float)dim + eps);
    float c = gwx * r * r * r / (float)dim;
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        dt[i] += r * weight[i] * gt[i] - xt[i] * c;
}

static __global__ void layernorm_kernel(float *out, const float *x, const float *weight,
                                        const float *bias, int dim, float eps)
{
    __shared__ float red[KC_WARP];
    const float *xt = x + (int64_t)blockIdx.x * dim;
    float *ot = out + (int64_t)blockIdx.x * dim;
    float sum = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        sum += xt[i];
    float mean = kc_block_reduce(sum, red, kc_add_op()) / (float)dim;
    /* two passes: the variance of the centred values does not cancel */
    float var = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        var += (xt[i] - mean) * (xt[i] - mean);
    var = kc_block_reduce(var, red, kc_add_op());
    float r = 1.0f / sqrtf(var / (float)dim + eps);
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        ot[i] = (xt[i] - mean) * r * weight[i] + bias[i];
}

extern "C" int kc_rmsnorm_forward(struct kc_ctx *c, float *out, const float *x, const float *weight,
                                  int n, int dim, float eps, struct mm_err *err)
{
    if (n <= 0 || dim <= 0) return 0;
    rmsnorm_kernel<<<n, THREADS, 0, c->stream>>>(out, x, weight, dim, eps);
    return kc_launched("rmsnorm", err);
}

extern "C" int kc_add_rmsnorm_forward(struct kc_ctx *c, float *x, const float *y, float *out,
                                      const float *weight, int n, int dim, float eps,
                                      struct mm_err *err)
{
    if (n <= 0 || dim <= 0) return 0;
    add_rmsnorm_kernel<<<n, THREADS, 0, c->stream>>>(x, y, out, weight, dim, eps);
    return kc_launched("add and rmsnorm", err);
}

extern "C" int kc_layernorm_forward(struct kc_ctx *c, float *out, const float *x,
                                    const float *weight, const float *bias, int n, int dim,
                                    float eps, struct mm_err *err)
{
    if (n <= 0 || dim <= 0) return 0;
    layernorm_kernel<<<n, THREADS, 0, c->stream>>>(out, x, weight, bias, dim, eps);
    return kc_launched("layernorm", err);
}

extern "C" int kc_rmsnorm_backward(struct kc_ctx *c, float *dx, const float *dy, const float *x,
                                   const float *weight, int n, int dim, float eps,
                                   struct mm_err *err)
{
    if (n <= 0 || dim <= 0) return 0;
    rmsnorm_backward_kernel<<<n, THREADS, 0, c->stream>>>(dx, dy, x, weight, dim, eps);
    return kc_launched("rmsnorm backward", err);
}
