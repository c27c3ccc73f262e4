/* Rotary position embedding in place, one block per token; at decode
 * also fused with the KV cache write (kc_rope_kv_store). The inverse
 * frequencies are computed on the host by the CPU op's expression (double
 * pow, one rounding to f32) and passed by value, so both backends rotate by
 * the same f32 angles; cosf and sinf are CUDA's accurate ones. */
#include <math.h>
#include <string.h>

#include "kc_device.cuh"

#define THREADS 256

struct rope_freqs {
    float inv[K_MAX_HEAD_DIM / 2];
};

/* cos and sin of token t's angles into shared memory, then a barrier.
 * sign -1 gives the inverse rotation (the backward), as the CPU op. */
static __device__ __forceinline__ void rope_angles(float *cs, float *sn, int32_t pos, int half,
                                                   const struct rope_freqs &f, float sign = 1.0f)
{
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        float angle = (float)pos * f.inv[i];
        cs[i] = cosf(angle);
        sn[i] = sign * sinf(angle);
    }
    __syncthreads();
}

/* Rotates one token's n_heads heads xt in place; copy, when not null, gets
 * the rotated values too (the KV cache row of a key). */
static __device__ __forceinline__ void rope_rotate(float *xt, float *copy, int n_heads,
                                                   int head_dim, enum k_rope_style style,
                                                   const float *cs, const float *sn)
{
    int half = head_dim / 2;
    for (int p = threadIdx.x; p < n_heads * half; p += blockDim.x) {
        int h = p / half, i = p % half;
        int64_t base = (int64_t)h * head_dim;
        int ia = style == K_ROPE_NEOX ? i : 2 * i;
        int ib = style == K_ROPE_NEOX ? i + half : 2 * i + 1;
        float a = xt[base + ia], b = xt[base + ib];
        /* the CPU's products, each rounded: no fused multiply-add */
        float ra = __fsub_rn(__fmul_rn(a, cs[i]), __fmul_rn(b, sn[i]));
        float rb = __fadd_rn(__fmul_rn(b, cs[i]), __fmul_rn(a, sn[i]));
        xt[base + ia] = ra;
        xt[base + ib] = rb;
        if (copy) {
            copy[base + ia] = ra;
            copy[base + ib] = rb;
        }
    }
}

static __global__ void rope_kernel(float *x, const int32_t *pos, int n_heads, int head_dim,
                                   enum k_rope_style style, const struct rope_freqs f, float sign)
{
    __shared__ float cs[K_MAX_HEAD_DIM / 2], sn[K_MAX_HEAD_DIM / 2];
    int t = blockIdx.x;
    rope_angles(cs, sn, pos[t], head_dim / 2, f, sign);
    rope_rotate(x + (int64_t)t * n_heads * head_dim, nullptr, n_heads, head_dim, style, cs, sn);
}

/* One block per token: its q and k heads rotated by the same angles, the
 * rotated k row and the v row into the token's slot at its position (as
 * kv_cache.cu's kv_store_kernel). */
static __global__ void rope_kv_store_kernel(float *q, float *k, const float *v, float *k_cache,
                                            float *v_cache, const int32_t *slot, const int32_t *pos,
                                            int n_heads, int n_kv_heads, int head_dim,
                                            enum k_rope_style style, int64_t slot_stride,
                                            const struct rope_freqs f)
{
    __shared__ float cs[K_MAX_HEAD_DIM / 2], sn[K_MAX_HEAD_DIM / 2];
    const int64_t t = blockIdx.x;
    const int kv_dim = n_kv_heads * head_dim;
    const int64_t dst = (int64_t)slot[t] * slot_stride + (int64_t)pos[t] * kv_dim;
    rope_angles(cs, sn, pos[t], head_dim / 2, f);
    rope_rotate(q + t * n_heads * head_dim, nullptr, n_heads, head_dim, style, cs, sn);
    rope_rotate(k + t * kv_dim, k_cache + dst, n_kv_heads, head_dim, style, cs, sn);
    for (int i = threadIdx.x; i < kv_dim; i += blockDim.x)
        v_cache[dst + i] = v[t * kv_dim + i];
}

/* The CPU op's inverse frequencies, or -1 for a head_dim it refuses. */
static int rope_freqs_of(struct rope_freqs *f, int head_dim, float theta, struct mm_err *err)
{
    if (head_dim <= 0 || head_dim % 2 || head_dim > K_MAX_HEAD_DIM) {
        mm_err_set(err, "rope: head_dim %d is not even in [2, %d]", head_dim, K_MAX_HEAD_DIM);
        return -1;
    }
    memset(f, 0, sizeof(*f));
    for (int i = 0; i < head_dim / 2; i++) {
        float e = (float)(2 * i) / (float)head_dim;
        f->inv[i] = (float)(1.0 / pow((double)theta, (double)e));
    }
    return 0;
}

extern "C" int kc_rope_forward(struct kc_ctx *c, float *x, const int32_t *pos, int n, int n_heads,
                               int head_dim, float theta, enum k_rope_style style,
                               struct mm_err *err)
{
    struct rope_freqs f;
    if (rope_freqs_of(&f, head_dim, theta, err)) return -1;
    if (n <= 0 || n_heads <= 0) return 0;
    rope_kernel<<<n, THREADS, 0, c->stream>>>(x, pos, n_heads, head_dim, style, f, 1.0f);
    return kc_launched("rope", err);
}

extern "C" int kc_rope_backward(struct kc_ctx *c, float *dx, const int32_t *pos, int n, int n_heads,
                                int head_dim, float theta, enum k_rope_style style,
                                struct mm_err *err)
{
    struct rope_freqs f;
    if (rope_freqs_of(&f, head_dim, theta, err)) return -1;
    if (n <= 0 || n_heads <= 0) return 0;
    rope_kernel<<<n, THREADS, 0, c->stream>>>(dx, pos, n_heads, head_dim, style, f, -1.0f);
    return kc_launched("rope backward", err);
}

extern "C" int kc_rope_kv_store(struct kc_ctx *c, float *q, float *k, const float *v,
                                float *k_cache, float *v_cache, const int32_t *slot,
                                const int32_t *pos, int n, int n_heads, int n_kv_heads,
                                int head_dim, float theta, enum k_rope_style style,
                                int64_t slot_stride, struct mm_err *err)
{
    struct rope_freqs f;
    if (rope_freqs_of(&f, head_dim, theta, err)) return -1;
    if (n <= 0) return 0;
    rope_kv_store_kernel<<<(unsigned)n, THREADS, 0, c->stream>>>(
        q, k, v, k_cache, v_cache, slot, pos, n_heads, n_kv_heads, head_dim, style, slot_stride, f);
    return kc_launched("rope and KV cache store", err);
}
