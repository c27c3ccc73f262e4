/* The KV cache write of a batch: each token's new key and value rows into
 * its slot at its position, all tokens in one launch (a copy per sequence
 * would cost a launch per sequence and layer). */
#include "kc_device.cuh"

#define THREADS 128

/* One block per token. */
static __global__ void kv_store_kernel(float *k_cache, float *v_cache, const float *k,
                                       const float *v, const int32_t *slot, const int32_t *pos,
                                       int kv_dim, int64_t slot_stride)
{
    const int64_t t = blockIdx.x;
    const int64_t dst = (int64_t)slot[t] * slot_stride + (int64_t)pos[t] * kv_dim;
    for (int i = threadIdx.x; i < kv_dim; i += blockDim.x) {
        k_cache[dst + i] = k[t * kv_dim + i];
        v_cache[dst + i] = v[t * kv_dim + i];
    }
}

extern "C" int kc_kv_store(struct kc_ctx *c, float *k_cache, float *v_cache, const float *k,
                           const float *v, const int32_t *slot, const int32_t *pos, int n,
                           int kv_dim, int64_t slot_stride, struct mm_err *err)
{
    if (n <= 0) return 0;
    kv_store_kernel<<<(unsigned)n, THREADS, 0, c->stream>>>(k_cache, v_cache, k, v, slot, pos,
                                                            kv_dim, slot_stride);
    return kc_launched("KV cache store", err);
}
