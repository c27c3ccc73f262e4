/* Cross-entropy of the next token fused with its backward (the training
 * loss), one block per row: k_cross_entropy_backward's formulas, the
 * normaliser summed in double as the CPU op does. */
#include <math.h>

#include "kc_device.cuh"

#define THREADS 256

static __global__ void cross_entropy_kernel(float *logits, float *loss, const int32_t *target,
                                            const float *weight, int vocab, float grad_scale)
{
    __shared__ float redf[KC_WARP];
    __shared__ double redd[KC_WARP];
    float *x = logits + (int64_t)blockIdx.x * vocab;
    const float w = weight[blockIdx.x];
    const int tgt = target[blockIdx.x];
    if (w == 0.0f) {
        for (int i = threadIdx.x; i < vocab; i += blockDim.x)
            x[i] = 0.0f;
        if (threadIdx.x == 0) loss[blockIdx.x] = 0.0f;
        return;
    }
    const float xt = x[tgt]; /* read before the barriers below, so before any write */
    float mx = -INFINITY;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x)
        mx = fmaxf(mx, x[i]);
    mx = kc_block_reduce(mx, redf, kc_max_op());
    double sum = 0;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x)
        sum += exp((double)x[i] - mx);
    sum = kc_block_reduce(sum, redd, kc_add_op());
    const double lse = mx + log(sum);
    const float g = grad_scale * w;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x)
        x[i] = g * (float)exp((double)x[i] - lse) - (i == tgt ? g : 0.0f);
    if (threadIdx.x == 0) loss[blockIdx.x] = (float)((double)w * (lse - xt));
}

extern "C" int kc_cross_entropy_backward(struct kc_ctx *c, float *logits, float *loss,
                                         const int32_t *target, const float *weight, int n,
                                         int vocab, float grad_scale, struct mm_err *err)
{
    if (n <= 0 || vocab <= 0) return 0;
    cross_entropy_kernel<<<n, THREADS, 0, c->stream>>>(logits, loss, target, weight, vocab,
                                                       grad_scale);
    return kc_launched("cross-entropy", err);
}
