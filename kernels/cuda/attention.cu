/* Grouped-query attention of n new tokens of one sequence against its KV
 * cache (kernels.h has the layout and the mask), flash-style: keys and
 * values pass through shared memory in tiles of 32, each query row keeps an
 * online softmax (running max, running sum, unnormalised output), and no
 * kv_len-long score buffer exists.
 *
 * A block takes 16 query rows that share one KV head: the (token, head)
 * pairs of that head's group, token-major, so in prefill a tile serves
 * several tokens and all the heads of their group. Each of its 4 warps owns
 * 4 rows; in the score step lane j takes key j of the tile against the
 * warp's rows (queries broadcast from shared memory), in the value step lane
 * i takes output columns i, i + 32, ... All arithmetic is f32.
 *
 * Decode has few rows (one token's group) against a long cache, too few
 * blocks to fill the GPU; there the keys of each block are also split over
 * gridDim.z blocks, each writes its partial (max, sum, output) to the
 * workspace, and a second kernel merges them (flash-decoding). */
#include <math.h>

#include "kc_device.cuh"

#define WARPS 4
#define ROWS_PER_WARP 4
#define BLOCK_ROWS (WARPS * ROWS_PER_WARP)
#define TILE 32 /* keys per tile: one per lane */

struct att_args {
    float *out;      /* [n, n_heads * head_dim]; NULL when writing partials */
    float *part_acc; /* [splits, n * n_heads, head_dim] */
    float *part_ml;  /* [splits, n * n_heads, 2]: max, sum */
    const float *q, *k, *v;
    int n, pos0, n_heads, group, head_dim, window, causal;
    int64_t kv_stride; /* floats between keys: n_kv_heads * head_dim */
    int stride;        /* floats per row of the shared tiles */
    float scale;
};

static __device__ __forceinline__ int key_lo(const struct att_args &a, int t)
{
    int lo = a.window > 0 ? a.pos0 + t - a.window + 1 : 0;
    return lo < 0 ? 0 : lo;
}

static __device__ __forceinline__ int key_hi(const struct att_args &a, int t)
{
    return a.causal ? a.pos0 + t : a.pos0 + a.n - 1;
}

/* NC: output columns per lane, head_dim <= 32 * NC. */
template <int NC>
static __global__ void __launch_bounds__(WARPS *KC_WARP) attention_kernel(const struct att_args a)
{
    extern __shared__ __align__(16) float smem[];
    const int st = a.stride;
    float *q_s = smem;                  /* [BLOCK_ROWS][st] */
    float *k_s = q_s + BLOCK_ROWS * st; /* [TILE][st] */
    float *v_s = k_s + TILE * st;       /* [TILE][st] */
    float *p_s = v_s + TILE * st;       /* [WARPS][ROWS_PER_WARP][TILE] */
    const int lane = threadIdx.x % KC_WARP, warp = threadIdx.x / KC_WARP;
    const int hd = a.head_dim, hd4 = (hd + 3) & ~3;
    const int g = blockIdx.y;
    const int rows_total = a.n * a.group;
    const int row0 = blockIdx.x * BLOCK_ROWS;
    const int row_last = min(row0 + BLOCK_ROWS, rows_total) - 1;

    /* the block's queries; zeros in the padding up to hd4 */
    for (int i = threadIdx.x; i < BLOCK_ROWS * hd4; i += blockDim.x) {
        int r = i / hd4, cc = i % hd4, ri = row0 + r;
        float val = 0.0f;
        if (ri <= row_last && cc < hd) {
            int t = ri / a.group, qh = g * a.group + ri % a.group;
            val = a.q[((int64_t)t * a.n_heads + qh) * hd + cc];
        }
        q_s[r * st + cc] = val;
    }
    for (int i = threadIdx.x; i < TILE * (hd4 - hd); i += blockDim.x) {
        int j = i / (hd4 - hd), cc = hd + i % (hd4 - hd);
        k_s[j * st + cc] = 0.0f;
    }

    /* this warp's rows: their token, key range, and softmax state */
    int lo[ROWS_PER_WARP], hi[ROWS_PER_WARP];
    float m[ROWS_PER_WARP], l[ROWS_PER_WARP], acc[ROWS_PER_WARP][NC];
#pragma unroll
    for (int r = 0; r < ROWS_PER_WARP; r++) {
        int ri = row0 + warp * ROWS_PER_WARP + r;
        int t = ri / a.group;
        if (ri <= row_last) {
            lo[r] = key_lo(a, t);
            hi[r] = key_hi(a, t);
        } else {
            lo[r] = 1; /* empty range: the row is padding */
            hi[r] = 0;
        }
        m[r] = -INFINITY;
        l[r] = 0.0f;
#pragma unroll
        for (int i = 0; i < NC; i++)
            acc[r][i] = 0.0f;
    }

    /* the block's keys (rows are token-major, so the first row has the
     * lowest bounds and the last the highest), then this split's share */
    int block_lo = key_lo(a, row0 / a.group), block_hi = key_hi(a, row_last / a.group);
    int split_len = (block_hi - block_lo + gridDim.z) / gridDim.z;
    split_len = (split_len + TILE - 1) / TILE * TILE;
    int range_lo = block_lo + (int)blockIdx.z * split_len;
    int range_hi = min(block_hi, range_lo + split_len - 1);
    const float *kg = a.k + (int64_t)g * hd, *vg = a.v + (int64_t)g * hd;

    for (int p0 = range_lo; p0 <= range_hi; p0 += TILE) {
        __syncthreads(); /* the previous tile is no longer read */
        for (int i = threadIdx.x; i < TILE * hd; i += blockDim.x) {
            int j = i / hd, cc = i % hd;
            int p = p0 + j;
            float kv = 0.0f, vv = 0.0f;
            if (p <= range_hi) {
                kv = kg[(int64_t)p * a.kv_stride + cc];
                vv = vg[(int64_t)p * a.kv_stride + cc];
            }
            k_s[j * st + cc] = kv;
            v_s[j * st + cc] = vv;
        }
        __syncthreads();

        int p = p0 + lane;
        float s[ROWS_PER_WARP];
#pragma unroll
        for (int r = 0; r < ROWS_PER_WARP; r++)
            s[r] = 0.0f;
        for (int c4 = 0; c4 < hd4; c4 += 4) {
            float4 kv = *reinterpret_cast<const float4 *>(k_s + lane * st + c4);
#pragma unroll
            for (int r = 0; r < ROWS_PER_WARP; r++) {
                float4 qv =
                    *reinterpret_cast<const float4 *>(q_s + (warp * ROWS_PER_WARP + r) * st + c4);
                s[r] += qv.x * kv.x + qv.y * kv.y + qv.z * kv.z + qv.w * kv.w;
            }
        }
#pragma unroll
        for (int r = 0; r < ROWS_PER_WARP; r++) {
            int valid = p <= range_hi && p >= lo[r] && p <= hi[r];
            float sv = valid ? s[r] * a.scale : -INFINITY;
            float tile_max = kc_warp_max(sv);
            float pr = 0.0f;
            if (tile_max != -INFINITY) { /* the row has keys in this tile */
                float m_new = fmaxf(m[r], tile_max);
                float corr = expf(m[r] - m_new); /* 0 on the row's first keys */
                pr = valid ? expf(sv - m_new) : 0.0f;
                l[r] = l[r] * corr + kc_warp_sum(pr);
#pragma unroll
                for (int i = 0; i < NC; i++)
                    acc[r][i] *= corr;
                m[r] = m_new;
            }
            p_s[(warp * ROWS_PER_WARP + r) * TILE + lane] = pr;
        }
        __syncwarp();
        int keys = min(TILE, range_hi - p0 + 1);
        for (int j = 0; j < keys; j++) {
            float pj[ROWS_PER_WARP];
#pragma unroll
            for (int r = 0; r < ROWS_PER_WARP; r++)
                pj[r] = p_s[(warp * ROWS_PER_WARP + r) * TILE + j];
#pragma unroll
            for (int i = 0; i < NC; i++) {
                int cc = lane + KC_WARP * i;
                if (cc < hd) {
                    float vv = v_s[j * st + cc];
#pragma unroll
                    for (int r = 0; r < ROWS_PER_WARP; r++)
                        acc[r][i] += pj[r] * vv;
                }
            }
        }
    }

#pragma unroll
    for (int r = 0; r < ROWS_PER_WARP; r++) {
        int ri = row0 + warp * ROWS_PER_WARP + r;
        if (ri > row_last) continue;
        int t = ri / a.group, qh = g * a.group + ri % a.group;
        int64_t row = (int64_t)t * a.n_heads + qh;
        if (a.out) {
            float inv = 1.0f / l[r];
#pragma unroll
            for (int i = 0; i < NC; i++) {
                int cc = lane + KC_WARP * i;
                if (cc < hd) a.out[row * hd + cc] = acc[r][i] * inv;
            }
        } else {
            int64_t prow = (int64_t)blockIdx.z * a.n * a.n_heads + row;
#pragma unroll
            for (int i = 0; i < NC; i++) {
                int cc = lane + KC_WARP * i;
                if (cc < hd) a.part_acc[prow * hd + cc] = acc[r][i];
            }
            if (lane == 0) {
                a.part_ml[prow * 2] = m[r];
                a.part_ml[prow * 2 + 1] = l[r];
            }
        }
    }
}

/* out row = sum_z acc_z e^(m_z - M) / sum_z l_z e^(m_z - M), M = max_z m_z;
 * a split without keys for the row has m = -inf and weighs nothing. One
 * block per (token, head) row. */
static __global__ void merge_kernel(float *out, const float *part_acc, const float *part_ml,
                                    int64_t rows, int head_dim, int splits)
{
    int64_t row = blockIdx.x;
    float mx = -INFINITY;
    for (int z = 0; z < splits; z++)
        mx = fmaxf(mx, part_ml[(z * rows + row) * 2]);
    float sum = 0.0f;
    for (int z = 0; z < splits; z++)
        sum += part_ml[(z * rows + row) * 2 + 1] * expf(part_ml[(z * rows + row) * 2] - mx);
    float inv = 1.0f / sum;
    for (int cc = threadIdx.x; cc < head_dim; cc += blockDim.x) {
        float o = 0.0f;
        for (int z = 0; z < splits; z++)
            o += part_acc[(z * rows + row) * head_dim + cc] *
                 expf(part_ml[(z * rows + row) * 2] - mx);
        out[row * head_dim + cc] = o * inv;
    }
}

extern "C" int kc_attention_partials(struct kc_ctx *c, int splits, int64_t rows, int head_dim,
                                     float **part_acc, float **part_ml, struct mm_err *err)
{
    size_t acc_bytes = ((size_t)(splits * rows * head_dim) * sizeof(float) + 255) & ~(size_t)255;
    char *ws =
        (char *)kc_workspace(c, acc_bytes + (size_t)(splits * rows * 2) * sizeof(float), err);
    if (!ws) return -1;
    *part_acc = (float *)ws;
    *part_ml = (float *)(ws + acc_bytes);
    return 0;
}

extern "C" int kc_attention_merge(struct kc_ctx *c, float *out, const float *part_acc,
                                  const float *part_ml, int64_t rows, int head_dim, int splits,
                                  struct mm_err *err)
{
    merge_kernel<<<(unsigned)rows, 128, 0, c->stream>>>(out, part_acc, part_ml, rows, head_dim,
                                                        splits);
    return kc_launched("attention: merge", err);
}

template <int NC>
static int launch(struct kc_ctx *c, const struct att_args *a, dim3 grid, size_t smem,
                  struct mm_err *err)
{
    if (smem > 48 * 1024 &&
        kc_cuda_ok(cudaFuncSetAttribute(attention_kernel<NC>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem),
                   "attention: raise the shared memory limit", err))
        return -1;
    attention_kernel<NC><<<grid, WARPS * KC_WARP, smem, c->stream>>>(*a);
    return kc_launched("attention", err);
}

extern "C" int kc_attention_split(struct kc_ctx *c, float *out, const float *q, const float *k,
                                  const float *v, int n, int pos0, int n_heads, int n_kv_heads,
                                  int head_dim, int window, int causal, int splits,
                                  struct mm_err *err)
{
    if (head_dim < 1 || head_dim > K_MAX_HEAD_DIM || n_kv_heads < 1 || n_heads % n_kv_heads ||
        n_kv_heads > 65535 || splits < 1 || splits > 65535 || pos0 < 0) {
        mm_err_set(err,
                   "attention: unsupported shape (head_dim %d, %d heads, %d KV heads, %d splits, "
                   "pos0 %d)",
                   head_dim, n_heads, n_kv_heads, splits, pos0);
        return -1;
    }
    if (n <= 0) return 0;
    struct att_args a = {};
    a.q = q;
    a.k = k;
    a.v = v;
    a.n = n;
    a.pos0 = pos0;
    a.n_heads = n_heads;
    a.group = n_heads / n_kv_heads;
    a.head_dim = head_dim;
    a.window = window;
    a.causal = causal;
    a.kv_stride = (int64_t)n_kv_heads * head_dim;
    a.stride = ((head_dim + 3) & ~3) + 4; /* padding spreads a column over the banks */
    a.scale = 1.0f / sqrtf((float)head_dim);
    size_t smem =
        (size_t)((BLOCK_ROWS + 2 * TILE) * a.stride + WARPS * ROWS_PER_WARP * TILE) * sizeof(float);
    if (smem > c->smem_optin) {
        mm_err_set(err,
                   "attention: head_dim %d needs %zu bytes of shared memory, the device has %zu",
                   head_dim, smem, c->smem_optin);
        return -1;
    }
    int64_t rows = (int64_t)n * n_heads;
    if (splits > 1) {
        if (kc_attention_partials(c, splits, rows, head_dim, &a.part_acc, &a.part_ml, err))
            return -1;
    } else {
        a.out = out;
    }
    int64_t group_rows = (int64_t)n * a.group; /* query rows per KV head */
    dim3 grid((unsigned)((group_rows + BLOCK_ROWS - 1) / BLOCK_ROWS), (unsigned)n_kv_heads,
              (unsigned)splits);
    int rc;
    if (head_dim <= 32)
        rc = launch<1>(c, &a, grid, smem, err);
    else if (head_dim <= 64)
        rc = launch<2>(c, &a, grid, smem, err);
    else if (head_dim <= 128)
        rc = launch<4>(c, &a, grid, smem, err);
    else if (head_dim <= 256)
        rc = launch<8>(c, &a, grid, smem, err);
    else
        rc = launch<16>(c, &a, grid, smem, err);
    if (rc || splits == 1) return rc;
    return kc_attention_merge(c, out, a.part_acc, a.part_ml, rows, head_dim, splits, err);
}

/* Keys per split worth a block of its own. */
#define SPLIT_KEYS 256

/* Runs of at least GEMM_MIN_ROWS tokens whose window covers every key take
 * cuBLAS (attention_gemm.cu) while their scores fit GEMM_MAX_BYTES of
 * workspace: at 2048 tokens of a Mistral-7B shape on an H100 the flash
 * kernel took about 140 of 254 ms. */
#define GEMM_MIN_ROWS 64
#define GEMM_MAX_BYTES ((size_t)256 << 20)

extern "C" int kc_attention_forward(struct kc_ctx *c, float *out, const float *q, const float *k,
                                    const float *v, int n, int pos0, int n_heads, int n_kv_heads,
                                    int head_dim, int window, int causal, struct mm_err *err)
{
    int keys_all = pos0 + n;
    if (n >= GEMM_MIN_ROWS && (window <= 0 || window >= keys_all) && n_kv_heads > 0 &&
        n_heads % n_kv_heads == 0 && head_dim >= 1 && head_dim <= K_MAX_HEAD_DIM && pos0 >= 0 &&
        kc_attention_gemm_bytes(n, pos0, n_kv_heads) <= GEMM_MAX_BYTES)
        return kc_attention_gemm(c, out, q, k, v, n, pos0, n_heads, n_kv_heads, head_dim, window,
                                 causal, err);
    /* split when the blocks would not fill the GPU twice over and each split
     * still gets SPLIT_KEYS keys */
    int splits = 1;
    if (n_kv_heads > 0 && n > 0) {
        int64_t group_rows = (int64_t)n * (n_heads / n_kv_heads);
        int64_t blocks = (group_rows + BLOCK_ROWS - 1) / BLOCK_ROWS * n_kv_heads;
        int64_t keys = pos0 + n;
        if (window > 0 && window < keys) keys = window;
        int64_t want = (2 * c->sm_count + blocks - 1) / blocks;
        int64_t most = keys / SPLIT_KEYS;
        int64_t s = want < most ? want : most;
        splits = s > 1 ? (int)(s < 64 ? s : 64) : 1;
    }
    return kc_attention_split(c, out, q, k, v, n, pos0, n_heads, n_kv_heads, head_dim, window,
                              causal, splits, err);
}
