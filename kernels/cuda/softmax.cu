/* Row-wise softmax and log-softmax in place, one block per row: shifted by
 * the row maximum, the normaliser summed in double as the CPU does (rows can
 * be a whole vocabulary long). */
#include <math.h>

#include "kc_device.cuh"

#define THREADS 256

template <int LOG> static __global__ void softmax_kernel(float *x, int dim)
{
    __shared__ float red[KC_WARP];
    __shared__ double red_d[KC_WARP];
    float *xt = x + (int64_t)blockIdx.x * dim;
    float m = -INFINITY;
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        m = fmaxf(m, xt[i]);
    m = kc_block_reduce(m, red, kc_max_op());
    double sum = 0.0;
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        sum += expf(xt[i] - m);
    sum = kc_block_reduce(sum, red_d, kc_add_op());
    if (LOG) {
        /* (x - m) - log(sum): subtracting m first keeps the small values exact */
        float log_sum = (float)log(sum);
        for (int i = threadIdx.x; i < dim; i += blockDim.x)
            xt[i] = (xt[i] - m) - log_sum;
    } else {
        float r = (float)(1.0 / sum);
        for (int i = threadIdx.x; i < dim; i += blockDim.x)
            xt[i] = expf(xt[i] - m) * r;
    }
}

extern "C" int kc_softmax_forward(struct kc_ctx *c, float *x, int n, int dim, struct mm_err *err)
{
    if (n <= 0 || dim <= 0) return 0;
    softmax_kernel<0><<<n, THREADS, 0, c->stream>>>(x, dim);
    return kc_launched("softmax", err);
}

extern "C" int kc_log_softmax_forward(struct kc_ctx *c, float *x, int n, int dim,
                                      struct mm_err *err)
{
    if (n <= 0 || dim <= 0) return 0;
    softmax_kernel<1><<<n, THREADS, 0, c->stream>>>(x, dim);
    return kc_launched("log_softmax", err);
}
