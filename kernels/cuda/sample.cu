/* Sampling helpers on the device: row-wise argmax and top-k, so that only
 * token ids (and a few values) cross to the host.
 *
 * Top-k takes k passes over the row, each finding the largest value that
 * comes after the previous pick in the order (value descending, index
 * ascending). k is small next to a vocabulary, the row stays in L2, and
 * no per-thread candidate lists are needed. */
#include <math.h>

#include "kc_device.cuh"

#define THREADS 256

/* A candidate; better() is the order: larger value, then lower index.
 * id -1 is "none" and loses to everything. */
struct cand {
    float v;
    int id;
};

static __device__ __forceinline__ int better(struct cand a, struct cand b)
{
    if (b.id < 0) return a.id >= 0;
    if (a.id < 0) return 0;
    return a.v > b.v || (a.v == b.v && a.id < b.id);
}

static __device__ struct cand block_best(struct cand c, struct cand *shared)
{
    int lane = threadIdx.x % KC_WARP, warp = threadIdx.x / KC_WARP;
    for (int o = KC_WARP / 2; o > 0; o /= 2) {
        struct cand other;
        other.v = __shfl_xor_sync(KC_FULL_MASK, c.v, o);
        other.id = __shfl_xor_sync(KC_FULL_MASK, c.id, o);
        if (better(other, c)) c = other;
    }
    __syncthreads();
    if (lane == 0) shared[warp] = c;
    __syncthreads();
    c = shared[0];
    for (int i = 1; i < (int)(blockDim.x / KC_WARP); i++)
        if (better(shared[i], c)) c = shared[i];
    return c;
}

/* Row t's best value strictly after `prev` in the order (prev.id < 0: the
 * best of all). NaN compares false both ways, so it is never taken. */
static __device__ struct cand best_after(const float *xt, int dim, struct cand prev,
                                         struct cand *shared)
{
    struct cand c = {0.0f, -1};
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        float v = xt[i];
        int after = prev.id < 0 || v < prev.v || (v == prev.v && i > prev.id);
        if (after && v == v && (c.id < 0 || v > c.v)) {
            c.v = v;
            c.id = i;
        }
    }
    return block_best(c, shared);
}

static __global__ void argmax_kernel(int32_t *ids, const float *x, int dim)
{
    __shared__ struct cand shared[KC_WARP];
    struct cand none = {0.0f, -1};
    struct cand best = best_after(x + (int64_t)blockIdx.x * dim, dim, none, shared);
    if (threadIdx.x == 0) ids[blockIdx.x] = best.id < 0 ? 0 : best.id;
}

static __global__ void topk_kernel(int32_t *ids, float *vals, const float *x, int dim, int k)
{
    __shared__ struct cand shared[KC_WARP];
    const float *xt = x + (int64_t)blockIdx.x * dim;
    struct cand prev = {0.0f, -1};
    for (int j = 0; j < k; j++) {
        struct cand best = prev.id < 0 && j > 0 ? prev : best_after(xt, dim, prev, shared);
        if (threadIdx.x == 0) {
            ids[(int64_t)blockIdx.x * k + j] = best.id;
            vals[(int64_t)blockIdx.x * k + j] = best.id < 0 ? -INFINITY : best.v;
        }
        prev = best;
    }
}

extern "C" int kc_argmax(struct kc_ctx *c, int32_t *ids, const float *x, int n, int dim,
                         struct mm_err *err)
{
    if (dim <= 0) {
        mm_err_set(err, "argmax: empty rows");
        return -1;
    }
    if (n <= 0) return 0;
    argmax_kernel<<<n, THREADS, 0, c->stream>>>(ids, x, dim);
    return kc_launched("argmax", err);
}

extern "C" int kc_topk(struct kc_ctx *c, int32_t *ids, float *vals, const float *x, int n, int dim,
                       int k, struct mm_err *err)
{
    if (k < 1 || k > dim) {
        mm_err_set(err, "topk: k = %d is not in [1, %d]", k, dim);
        return -1;
    }
    if (n <= 0) return 0;
    topk_kernel<<<n, THREADS, 0, c->stream>>>(ids, vals, x, dim, k);
    return kc_launched("topk", err);
}
