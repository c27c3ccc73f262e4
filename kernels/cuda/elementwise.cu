/* Elementwise ops: SwiGLU's gate, GELU, residual add. The formulas are the
 * CPU ops' scalar ones, with CUDA's accurate expf / erff. */
#include <math.h>

#include "kc_device.cuh"

#define THREADS 256

static __global__ void swiglu_kernel(float *out, const float *gate, const float *up, int64_t len)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < len;
         i += (int64_t)gridDim.x * blockDim.x)
        out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

/* dgate = dout * up * silu'(gate), dup = dout * silu(gate): the CPU op's
 * expressions. */
static __global__ void swiglu_backward_kernel(float *dgate, float *dup, const float *dout,
                                              const float *gate, const float *up, int64_t len)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < len;
         i += (int64_t)gridDim.x * blockDim.x) {
        float g = gate[i], s = 1.0f / (1.0f + expf(-g)), d = dout[i];
        dgate[i] = d * up[i] * (s * (1.0f + g * (1.0f - s)));
        dup[i] = d * (g * s);
    }
}

static __global__ void gelu_kernel(float *out, const float *x, int64_t len)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < len;
         i += (int64_t)gridDim.x * blockDim.x)
        out[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
}

static __global__ void add_kernel(float *x, const float *y, int64_t len)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < len;
         i += (int64_t)gridDim.x * blockDim.x)
        x[i] += y[i];
}

extern "C" int kc_swiglu_forward(struct kc_ctx *c, float *out, const float *gate, const float *up,
                                 int64_t len, struct mm_err *err)
{
    if (len <= 0) return 0;
    swiglu_kernel<<<kc_grid(len, THREADS), THREADS, 0, c->stream>>>(out, gate, up, len);
    return kc_launched("swiglu", err);
}

extern "C" int kc_swiglu_backward(struct kc_ctx *c, float *dgate, float *dup, const float *dout,
                                  const float *gate, const float *up, int64_t len,
                                  struct mm_err *err)
{
    if (len <= 0) return 0;
    swiglu_backward_kernel<<<kc_grid(len, THREADS), THREADS, 0, c->stream>>>(dgate, dup, dout, gate,
                                                                             up, len);
    return kc_launched("swiglu backward", err);
}

extern "C" int kc_gelu_forward(struct kc_ctx *c, float *out, const float *x, int64_t len,
                               struct mm_err *err)
{
    if (len <= 0) return 0;
    gelu_kernel<<<kc_grid(len, THREADS), THREADS, 0, c->stream>>>(out, x, len);
    return kc_launched("gelu", err);
}

extern "C" int kc_add_inplace(struct kc_ctx *c, float *x, const float *y, int64_t len,
                              struct mm_err *err)
{
    if (len <= 0) return 0;
    add_kernel<<<kc_grid(len, THREADS), THREADS, 0, c->stream>>>(x, y, len);
    return kc_launched("add", err);
}
