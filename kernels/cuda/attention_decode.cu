/* Attention of a batch of tokens, any mix of sequences, in one launch:
 * token t attends to the cache of its slot, keys max(0, pos - window + 1)
 * .. pos (kernels_cuda.h). Made for decode; in the invariant numerics it
 * serves prefill too (below).
 *
 * A block takes one (token, KV head) pair and a split of its keys, and
 * serves the query heads of that KV head's group (up to
 * KC_DECODE_MAX_GROUP; a wider group takes several blocks), so each key and
 * value row is read once per token (and group chunk). Reading the cache is
 * the cost, so a key row goes to a sub-warp of W lanes as 16-byte loads
 * (W = 8, 16 or 32, the row's float4 count rounded up), and the block's
 * sub-warps take keys in turn: scores into shared memory, a plain softmax
 * over them per head (the split's keys all fit), then the value rows the
 * same way with each sub-warp's partial output summed through shared
 * memory. Splits write (max, sum, output) partials that attention.cu's
 * merge combines, as the prefill kernel's do. All arithmetic is f32.
 *
 * Batch invariance: a query row's arithmetic depends only on its token's
 * position (its keys), the split length S and head_dim, never on n, the
 * other tokens, max_keys or which block or warp does the work. Split z
 * holds keys lo + z S .. lo + (z + 1) S - 1 (lo: the token's first key);
 * within a split, sub-warp s takes keys s, s + SUBS, ... for the values and
 * lane l keys l, l + 32, ... for the softmax sums, each in order, then
 * fixed trees; a head's sums do not see the other heads of the block. The
 * invariant dispatcher fixes S = KC_DECODE_SPLIT_KEYS. Splits past the
 * token's last key (there when another token of the batch has more keys)
 * hold no key, and the merge adds exact zeros for them (l = 0 weighted by
 * e^-inf = 0, an output of 0), so their number does not matter either; a
 * single split stores o * (1 / l), the merge's arithmetic for one split.
 *
 * Cost in prefill: each token reads its keys itself, so a run of n tokens
 * reads about n^2 / 2 key and value rows per KV head (n times what the
 * flash kernel's shared tiles read), mostly from L2 while a sequence's
 * cache per layer fits there. Mistral-7B's shape at 2048 tokens: about
 * 17 GB per layer, 0.5 TB per forward, tens of ms at L2 bandwidth, in the
 * range of the flash kernel's time; longer prompts grow as n^2. */
#include <math.h>

#include "kc_device.cuh"

#define WARPS 4
#define THREADS (WARPS * KC_WARP)
#define MIN_SPLIT_KEYS 32 /* fewer keys per block do not pay for a block */

struct decode_args {
    float *out;      /* [n, n_heads * head_dim]; NULL when writing partials */
    float *part_acc; /* [splits, n * n_heads, head_dim] */
    float *part_ml;  /* [splits, n * n_heads, 2]: max, sum */
    const float *q, *k, *v;
    const int32_t *slot, *pos;
    int n, n_heads, group, head_dim, window, split_keys;
    int group_chunks; /* blocks per KV head: group / KC_DECODE_MAX_GROUP rounded up */
    int64_t kv_stride, slot_stride;
    float scale;
};

static __device__ __forceinline__ float4 load4(const float *p, bool valid)
{
    return valid ? *reinterpret_cast<const float4 *>(p) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
}

static __device__ __forceinline__ float dot4(float4 a, float4 b)
{
    return a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
}

/* Floats of the scores in shared memory, rounded up to whole float4s so
 * that the partial outputs after them take 16-byte stores. */
static __host__ __device__ __forceinline__ int scores_floats(int group, int split_keys)
{
    return (group * split_keys + 3) & ~3;
}

/* W lanes per key row, CH float4 chunks per lane: head_dim <= 4 * W * CH. */
template <int W, int CH>
static __global__ void __launch_bounds__(THREADS) decode_kernel(const struct decode_args a)
{
    extern __shared__ __align__(16) float smem[];
    constexpr int SUBS = THREADS / W; /* keys in flight per block */
    const int t = blockIdx.z, z = blockIdx.x;
    const int g = blockIdx.y / a.group_chunks;                               /* the KV head */
    const int h0 = (int)(blockIdx.y % a.group_chunks) * KC_DECODE_MAX_GROUP; /* first head here */
    const int hd = a.head_dim, hd4 = hd / 4, S = a.split_keys;
    const int G = min(KC_DECODE_MAX_GROUP, a.group - h0); /* this block's heads */
    const int sub = threadIdx.x / W, sl = threadIdx.x % W;
    const int lane = threadIdx.x % KC_WARP, warp = threadIdx.x / KC_WARP;
    float *sc = smem;                      /* [G][S]: scores, then probabilities */
    float *red = sc + scores_floats(G, S); /* [SUBS][G][hd]: partial outputs */
    float *ml = red + SUBS * G * hd;       /* [G][2]: max, sum */

    const int pos = a.pos[t];
    const int lo = a.window > 0 ? max(0, pos - a.window + 1) : 0;
    const int k0 = lo + z * S;
    const int nk = max(0, min(pos + 1, k0 + S) - k0);
    const int64_t base = (int64_t)a.slot[t] * a.slot_stride + (int64_t)g * hd;
    const float *kb = a.k + base + (int64_t)k0 * a.kv_stride;
    const float *vb = a.v + base + (int64_t)k0 * a.kv_stride;
    const int64_t row0 = (int64_t)t * a.n_heads + (int64_t)g * a.group + h0; /* its first head */

    /* scores: every lane of a warp runs the same trips (the shuffles need
     * them all), lanes past the split's keys load zeros and write nothing */
    for (int j0 = 0; j0 < nk; j0 += SUBS) {
        const int j = j0 + sub;
        float4 kv[CH];
#pragma unroll
        for (int c = 0; c < CH; c++) {
            const int c4 = sl + c * W;
            kv[c] = load4(kb + (int64_t)j * a.kv_stride + 4 * c4, j < nk && c4 < hd4);
        }
        for (int h = 0; h < G; h++) {
            const float *qh = a.q + (row0 + h) * hd;
            float s = 0.0f;
#pragma unroll
            for (int c = 0; c < CH; c++) {
                const int c4 = sl + c * W;
                s += dot4(load4(qh + 4 * c4, c4 < hd4), kv[c]);
            }
#pragma unroll
            for (int o = W / 2; o > 0; o /= 2)
                s += __shfl_xor_sync(KC_FULL_MASK, s, o);
            if (sl == 0 && j < nk) sc[h * S + j] = s * a.scale;
        }
    }
    __syncthreads();

    /* softmax of each head's scores: a warp per head */
    for (int h = warp; h < G; h += WARPS) {
        float m = -INFINITY;
        for (int j = lane; j < nk; j += KC_WARP)
            m = fmaxf(m, sc[h * S + j]);
        m = kc_warp_max(m);
        float l = 0.0f;
        for (int j = lane; j < nk; j += KC_WARP) {
            const float p = expf(sc[h * S + j] - m);
            sc[h * S + j] = p;
            l += p;
        }
        l = kc_warp_sum(l);
        if (lane == 0) {
            ml[2 * h] = m;
            ml[2 * h + 1] = l;
        }
    }
    __syncthreads();

    /* values: each sub-warp sums its keys' rows for every head (a row is
     * read once), then the sub-warps' sums are added through shared memory */
    float4 acc[KC_DECODE_MAX_GROUP][CH];
#pragma unroll
    for (int h = 0; h < KC_DECODE_MAX_GROUP; h++)
#pragma unroll
        for (int c = 0; c < CH; c++)
            acc[h][c] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    for (int j = sub; j < nk; j += SUBS) {
        float4 vv[CH];
#pragma unroll
        for (int c = 0; c < CH; c++) {
            const int c4 = sl + c * W;
            vv[c] = load4(vb + (int64_t)j * a.kv_stride + 4 * c4, c4 < hd4);
        }
#pragma unroll
        for (int h = 0; h < KC_DECODE_MAX_GROUP; h++) {
            if (h >= G) break;
            const float p = sc[h * S + j];
#pragma unroll
            for (int c = 0; c < CH; c++) {
                acc[h][c].x += p * vv[c].x;
                acc[h][c].y += p * vv[c].y;
                acc[h][c].z += p * vv[c].z;
                acc[h][c].w += p * vv[c].w;
            }
        }
    }
#pragma unroll
    for (int h = 0; h < KC_DECODE_MAX_GROUP; h++) {
        if (h >= G) break;
#pragma unroll
        for (int c = 0; c < CH; c++) {
            const int c4 = sl + c * W;
            if (c4 < hd4)
                *reinterpret_cast<float4 *>(red + (sub * G + h) * hd + 4 * c4) = acc[h][c];
        }
    }
    __syncthreads();

    const int64_t rows = (int64_t)a.n * a.n_heads;
    for (int i = threadIdx.x; i < G * hd; i += THREADS) {
        const int h = i / hd, d = i % hd;
        float o = 0.0f;
        for (int s = 0; s < SUBS; s++)
            o += red[(s * G + h) * hd + d];
        const int64_t row = row0 + h;
        if (a.out) {
            /* one split, every key: as the merge computes one split */
            a.out[row * hd + d] = o * (1.0f / ml[2 * h + 1]);
        } else {
            const int64_t prow = (int64_t)z * rows + row;
            a.part_acc[prow * hd + d] = o;
            if (d == 0) {
                a.part_ml[prow * 2] = ml[2 * h];
                a.part_ml[prow * 2 + 1] = ml[2 * h + 1];
            }
        }
    }
}

template <int W, int CH>
static int launch(struct kc_ctx *c, const struct decode_args *a, int splits, struct mm_err *err)
{
    constexpr int SUBS = THREADS / W;
    const int G = a->group < KC_DECODE_MAX_GROUP ? a->group : KC_DECODE_MAX_GROUP;
    size_t smem =
        (size_t)(scores_floats(G, a->split_keys) + SUBS * G * a->head_dim + 2 * G) * sizeof(float);
    if (smem > c->smem_optin) {
        mm_err_set(err, "decode attention: %d heads per KV head need %zu bytes of shared memory",
                   a->group, smem);
        return -1;
    }
    if (smem > 48 * 1024 &&
        kc_cuda_ok(cudaFuncSetAttribute(decode_kernel<W, CH>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem),
                   "decode attention: raise the shared memory limit", err))
        return -1;
    dim3 grid((unsigned)splits, (unsigned)(a->n_heads / a->group * a->group_chunks),
              (unsigned)a->n);
    decode_kernel<W, CH><<<grid, THREADS, smem, c->stream>>>(*a);
    return kc_launched("decode attention", err);
}

extern "C" int kc_attention_decode_supported(int n_heads, int n_kv_heads, int head_dim)
{
    if (n_kv_heads <= 0 || n_heads <= 0 || n_heads % n_kv_heads) return 0;
    int64_t chunks = (n_heads / n_kv_heads + KC_DECODE_MAX_GROUP - 1) / KC_DECODE_MAX_GROUP;
    return (int64_t)n_kv_heads * chunks <= 65535 && head_dim > 0 && head_dim % 4 == 0 &&
           head_dim <= 256;
}

extern "C" int kc_attention_decode_split(struct kc_ctx *c, float *out, const float *q,
                                         const float *k_cache, const float *v_cache,
                                         const int32_t *slot, const int32_t *pos, int n,
                                         int max_keys, int64_t slot_stride, int n_heads,
                                         int n_kv_heads, int head_dim, int window, int split_keys,
                                         struct mm_err *err)
{
    if (!kc_attention_decode_supported(n_heads, n_kv_heads, head_dim) || n > 65535 ||
        split_keys < 1 || max_keys < 1) {
        mm_err_set(err,
                   "decode attention: unsupported shape (%d tokens, %d heads, %d KV heads, "
                   "head_dim %d, %d keys in splits of %d)",
                   n, n_heads, n_kv_heads, head_dim, max_keys, split_keys);
        return -1;
    }
    if (n <= 0) return 0;
    struct decode_args a = {};
    a.q = q;
    a.k = k_cache;
    a.v = v_cache;
    a.slot = slot;
    a.pos = pos;
    a.n = n;
    a.n_heads = n_heads;
    a.group = n_heads / n_kv_heads;
    a.group_chunks = (a.group + KC_DECODE_MAX_GROUP - 1) / KC_DECODE_MAX_GROUP;
    a.head_dim = head_dim;
    a.window = window;
    a.split_keys = split_keys;
    a.kv_stride = (int64_t)n_kv_heads * head_dim;
    a.slot_stride = slot_stride;
    a.scale = 1.0f / sqrtf((float)head_dim);
    int splits = (max_keys + a.split_keys - 1) / a.split_keys;
    int64_t rows = (int64_t)n * n_heads;
    if (splits > 1) {
        if (kc_attention_partials(c, splits, rows, head_dim, &a.part_acc, &a.part_ml, err))
            return -1;
    } else {
        a.out = out;
    }
    int hd4 = head_dim / 4, rc;
    if (hd4 <= 8)
        rc = launch<8, 1>(c, &a, splits, err);
    else if (hd4 <= 16)
        rc = launch<16, 1>(c, &a, splits, err);
    else if (hd4 <= 32)
        rc = launch<32, 1>(c, &a, splits, err);
    else
        rc = launch<32, 2>(c, &a, splits, err);
    if (rc || splits == 1) return rc;
    return kc_attention_merge(c, out, a.part_acc, a.part_ml, rows, head_dim, splits, err);
}

/* Most bytes of split partials one launch of the invariant dispatcher
 * takes: longer batches go in chunks of tokens. */
#define INVARIANT_PARTIAL_BYTES ((size_t)256 << 20)

/* The invariant numerics: splits of KC_DECODE_SPLIT_KEYS keys whatever the
 * batch, tokens in chunks of chunk_tokens (0: as many as keep the partials
 * within INVARIANT_PARTIAL_BYTES). Each token's result is its own, so the
 * chunking changes nothing but the workspace. */
extern "C" int kc_attention_decode_invariant(struct kc_ctx *c, float *out, const float *q,
                                             const float *k_cache, const float *v_cache,
                                             const int32_t *slot, const int32_t *pos, int n,
                                             int max_keys, int64_t slot_stride, int n_heads,
                                             int n_kv_heads, int head_dim, int window,
                                             int chunk_tokens, struct mm_err *err)
{
    if (n <= 0) /* the shape checks still run */
        return kc_attention_decode_split(c, out, q, k_cache, v_cache, slot, pos, n, max_keys,
                                         slot_stride, n_heads, n_kv_heads, head_dim, window,
                                         KC_DECODE_SPLIT_KEYS, err);
    const int64_t q_dim = (int64_t)n_heads * head_dim;
    int64_t chunk = chunk_tokens;
    if (chunk <= 0) {
        int64_t splits = max_keys > 0 ? (max_keys - 1) / KC_DECODE_SPLIT_KEYS + 1 : 1;
        size_t per_token = (size_t)splits * (size_t)(n_heads > 0 ? n_heads : 1) *
                           (size_t)((head_dim > 0 ? head_dim : 1) + 2) * sizeof(float);
        chunk = splits > 1 ? (int64_t)(INVARIANT_PARTIAL_BYTES / per_token) : 65535;
    }
    if (chunk < 1) chunk = 1;
    if (chunk > 65535) chunk = 65535;
    for (int t0 = 0; t0 < n; t0 += (int)chunk) {
        int m = n - t0 < chunk ? n - t0 : (int)chunk;
        if (kc_attention_decode_split(c, out + t0 * q_dim, q + t0 * q_dim, k_cache, v_cache,
                                      slot + t0, pos + t0, m, max_keys, slot_stride, n_heads,
                                      n_kv_heads, head_dim, window, KC_DECODE_SPLIT_KEYS, err))
            return -1;
    }
    return 0;
}

extern "C" int kc_attention_decode(struct kc_ctx *c, float *out, const float *q,
                                   const float *k_cache, const float *v_cache, const int32_t *slot,
                                   const int32_t *pos, int n, int max_keys, int64_t slot_stride,
                                   int n_heads, int n_kv_heads, int head_dim, int window,
                                   struct mm_err *err)
{
    if (c->numerics == KC_NUMERICS_INVARIANT)
        return kc_attention_decode_invariant(c, out, q, k_cache, v_cache, slot, pos, n, max_keys,
                                             slot_stride, n_heads, n_kv_heads, head_dim, window, 0,
                                             err);
    /* fast: enough splits that the blocks fill the GPU twice over, each split
     * still worth a block, and no more keys per split than the default
     * shared memory holds the scores of */
    int64_t blocks = (int64_t)(n > 0 ? n : 1) * (n_kv_heads > 0 ? n_kv_heads : 1);
    int64_t want = (2 * c->sm_count + blocks - 1) / blocks;
    int64_t keys = max_keys > 0 ? max_keys : 1;
    int64_t split_keys = (keys + want - 1) / want;
    if (split_keys < MIN_SPLIT_KEYS) split_keys = MIN_SPLIT_KEYS;
    if (split_keys > KC_DECODE_SPLIT_KEYS) split_keys = KC_DECODE_SPLIT_KEYS;
    return kc_attention_decode_split(c, out, q, k_cache, v_cache, slot, pos, n, max_keys,
                                     slot_stride, n_heads, n_kv_heads, head_dim, window,
                                     (int)split_keys, err);
}
