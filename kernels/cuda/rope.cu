/* Rotary position embedding in place, one block per token. The inverse
 * frequencies are computed on the host by the CPU op's expression (double
 * pow, one rounding to f32) and passed by value, so both backends rotate by
 * the same f32 angles; cosf and sinf are CUDA's accurate ones. */
#include <math.h>

#include "kc_device.cuh"

#define THREADS 256

struct rope_freqs {
    float inv[K_MAX_HEAD_DIM / 2];
};

static __global__ void rope_kernel(float *x, const int32_t *pos, int n_heads, int head_dim,
                                   enum k_rope_style style, const struct rope_freqs f)
{
    __shared__ float cs[K_MAX_HEAD_DIM / 2], sn[K_MAX_HEAD_DIM / 2];
    int half = head_dim / 2;
    int t = blockIdx.x;
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        float angle = (float)pos[t] * f.inv[i];
        cs[i] = cosf(angle);
        sn[i] = sinf(angle);
    }
    __syncthreads();
    float *xt = x + (int64_t)t * n_heads * head_dim;
    for (int p = threadIdx.x; p < n_heads * half; p += blockDim.x) {
        int h = p / half, i = p % half;
        float *v = xt + (int64_t)h * head_dim;
        int ia = style == K_ROPE_NEOX ? i : 2 * i;
        int ib = style == K_ROPE_NEOX ? i + half : 2 * i + 1;
        float a = v[ia], b = v[ib];
        /* the CPU's products, each rounded: no fused multiply-add */
        v[ia] = __fsub_rn(__fmul_rn(a, cs[i]), __fmul_rn(b, sn[i]));
        v[ib] = __fadd_rn(__fmul_rn(b, cs[i]), __fmul_rn(a, sn[i]));
    }
}

extern "C" int kc_rope_forward(struct kc_ctx *c, float *x, const int32_t *pos, int n, int n_heads,
                               int head_dim, float theta, enum k_rope_style style,
                               struct mm_err *err)
{
    if (head_dim <= 0 || head_dim % 2 || head_dim > K_MAX_HEAD_DIM) {
        mm_err_set(err, "rope: head_dim %d is not even in [2, %d]", head_dim, K_MAX_HEAD_DIM);
        return -1;
    }
    if (n <= 0 || n_heads <= 0) return 0;
    struct rope_freqs f = {{0}};
    for (int i = 0; i < head_dim / 2; i++) {
        float e = (float)(2 * i) / (float)head_dim;
        f.inv[i] = (float)(1.0 / pow((double)theta, (double)e));
    }
    rope_kernel<<<n, THREADS, 0, c->stream>>>(x, pos, n_heads, head_dim, style, f);
    return kc_launched("rope", err);
}
