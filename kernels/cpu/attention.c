/* Causal grouped-query attention of new tokens against one sequence's KV
 * cache (see kernels.h for the layout and the mask).
 *
 * A task is the query heads that share one KV head, for up to a few tokens:
 * their keys and values are read once into L1 for all of them. Keys are
 * visited in chunks with an online softmax (the running maximum rescales
 * what was summed so far), so no buffer of kv_len scores is needed and no
 * exponential overflows.
 *
 * A row's result must not depend on the other rows of its task (which
 * tokens share a call): its chunks are cut at absolute key positions
 * (multiples of the chunk), not from where the task's keys start, and it
 * accumulates only its own keys. With a sliding window the rows of a task
 * start at different keys; their chunks still line up. */
#include <math.h>

#include "internal.h"

/* Keys per chunk of the portable path. */
#define KEY_CHUNK 64

static float dot(const float *a, const float *b, int len)
{
    float s = 0.0f;
    for (int i = 0; i < len; i++)
        s += a[i] * b[i];
    return s;
}

/* The portable path: one row at a time, its chunks [p0, p0 + KEY_CHUNK)
 * with p0 a multiple of KEY_CHUNK, clipped to the row's keys lo..hi. */
static void attend_row(float *out, const float *q, const struct k_kv_view *k,
                       const struct k_kv_view *v, int64_t col, int lo, int hi, int head_dim,
                       float scale)
{
    float acc[K_MAX_HEAD_DIM];
    for (int i = 0; i < head_dim; i++)
        acc[i] = 0.0f;
    float max = -INFINITY, sum = 0.0f;
    for (int c0 = lo - lo % KEY_CHUNK; c0 <= hi; c0 += KEY_CHUNK) {
        int p0 = c0 < lo ? lo : c0;
        int len = (hi < c0 + KEY_CHUNK - 1 ? hi : c0 + KEY_CHUNK - 1) - p0 + 1;
        float s[KEY_CHUNK];
        float chunk_max = -INFINITY;
        for (int j = 0; j < len; j++) {
            s[j] = dot(q, k_kv_row(k, p0 + j) + col, head_dim) * scale;
            chunk_max = s[j] > chunk_max ? s[j] : chunk_max;
        }
        if (chunk_max > max) {
            float r = expf(max - chunk_max); /* 0 on the first chunk */
            sum *= r;
            for (int i = 0; i < head_dim; i++)
                acc[i] *= r;
            max = chunk_max;
        }
        for (int j = 0; j < len; j++) {
            float p = expf(s[j] - max);
            const float *vj = k_kv_row(v, p0 + j) + col;
            sum += p;
            for (int i = 0; i < head_dim; i++)
                acc[i] += p * vj[i];
        }
    }
    float r = 1.0f / sum;
    for (int i = 0; i < head_dim; i++)
        out[i] = acc[i] * r;
}

void k_attend_scalar(const struct k_att_rows *rows, const struct k_kv_view *k,
                     const struct k_kv_view *v, int64_t col, int head_dim, float scale)
{
    for (int i = 0; i < rows->n; i++)
        attend_row(rows->out[i], rows->q[i], k, v, col, rows->lo[i], rows->hi[i], head_dim, scale);
}

#ifdef K_HAVE_AVX512

/* Four dot-product accumulators summed down to their four totals. */
static inline __m128 sum4(__m512 a, __m512 b, __m512 c, __m512 d)
{
    __m512 ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
    __m512 cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
    __m512 abcd = _mm512_add_ps(_mm512_shuffle_ps(ab, cd, _MM_SHUFFLE(1, 0, 1, 0)),
                                _mm512_shuffle_ps(ab, cd, _MM_SHUFFLE(3, 2, 3, 2)));
    /* each 128-bit lane now holds [a b c d] partial sums: add the lanes */
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(abcd), _mm512_extractf32x8_ps(abcd, 1));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

#define CHUNK 16 /* keys: one vector of scores */
_Static_assert(K_KV_PAGE % CHUNK == 0, "a chunk of keys must lie in one page");
#define INLINE static inline __attribute__((always_inline))

/* nv = head_dim / 16 vectors; a constant at the specialised call sites, so
 * a row's query and accumulator stay in registers. */
INLINE void attend_rows(int nv, const struct k_att_rows *rows, const struct k_kv_view *k,
                        const struct k_kv_view *v, int64_t col, float scale)
{
    int lo = rows->lo[0], hi = rows->hi[0];
    for (int i = 1; i < rows->n; i++) {
        lo = rows->lo[i] < lo ? rows->lo[i] : lo;
        hi = rows->hi[i] > hi ? rows->hi[i] : hi;
    }
    lo -= lo % CHUNK; /* chunks at absolute positions: the same for a row in any task */
    float acc[K_ATT_MAX_ROWS][K_MAX_HEAD_DIM];
    float max[K_ATT_MAX_ROWS], sum[K_ATT_MAX_ROWS];
    for (int i = 0; i < rows->n; i++) {
        for (int c = 0; c < 16 * nv; c++)
            acc[i][c] = 0.0f;
        max[i] = -INFINITY;
        sum[i] = 0.0f;
    }
    const int64_t kv_stride = k->stride;
    for (int p0 = lo; p0 <= hi; p0 += CHUNK) {
        int len = hi - p0 + 1 < CHUNK ? hi - p0 + 1 : CHUNK;
        /* a chunk's keys lie in one page, rows kv_stride apart */
        const float *kc = k_kv_row(k, p0) + col, *vc = k_kv_row(v, p0) + col;
        for (int i = 0; i < rows->n; i++) {
            int first = rows->lo[i] - p0, last = rows->hi[i] - p0; /* row i's keys in the chunk */
            if (last < 0 || first >= len) continue;
            __m512 qv[K_MAX_HEAD_DIM / 16], a[K_MAX_HEAD_DIM / 16];
            for (int c = 0; c < nv; c++)
                qv[c] = _mm512_loadu_ps(rows->q[i] + 16 * c);
            float s[CHUNK];
            for (int j = 0; j < len; j += 4) {
                __m512 d[4];
                for (int u = 0; u < 4; u++) {
                    /* past len: repeat the chunk's last key, masked below */
                    const float *kp = kc + (int64_t)(j + u < len ? j + u : len - 1) * kv_stride;
                    d[u] = _mm512_mul_ps(qv[0], _mm512_loadu_ps(kp));
                    for (int c = 1; c < nv; c++)
                        d[u] = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(kp + 16 * c), d[u]);
                }
                _mm_storeu_ps(s + j, sum4(d[0], d[1], d[2], d[3]));
            }
            __mmask16 valid = (__mmask16)(((1u << (last < len - 1 ? last + 1 : len)) - 1u) &
                                          ~((1u << (first > 0 ? first : 0)) - 1u));
            __m512 sv = _mm512_mask_mul_ps(_mm512_set1_ps(-INFINITY), valid, _mm512_loadu_ps(s),
                                           _mm512_set1_ps(scale));
            float chunk_max = _mm512_mask_reduce_max_ps(valid, sv);
            for (int c = 0; c < nv; c++)
                a[c] = _mm512_loadu_ps(acc[i] + 16 * c);
            if (chunk_max > max[i]) {
                float r = max[i] == -INFINITY ? 0.0f : expf(max[i] - chunk_max);
                sum[i] *= r;
                for (int c = 0; c < nv; c++)
                    a[c] = _mm512_mul_ps(a[c], _mm512_set1_ps(r));
                max[i] = chunk_max;
            }
            __m512 p =
                _mm512_maskz_mov_ps(valid, k_exp512(_mm512_sub_ps(sv, _mm512_set1_ps(max[i]))));
            sum[i] += _mm512_reduce_add_ps(p);
            _mm512_storeu_ps(s, p);
            /* the row's own keys only: the others have p = 0, but adding
             * 0 * v is not a no-op for every v (inf, nan, -0) */
            int j_end = last < len - 1 ? last + 1 : len;
            for (int j = first > 0 ? first : 0; j < j_end; j++) {
                __m512 pj = _mm512_set1_ps(s[j]);
                const float *vp = vc + (int64_t)j * kv_stride;
                for (int c = 0; c < nv; c++)
                    a[c] = _mm512_fmadd_ps(pj, _mm512_loadu_ps(vp + 16 * c), a[c]);
            }
            for (int c = 0; c < nv; c++)
                _mm512_storeu_ps(acc[i] + 16 * c, a[c]);
        }
    }
    for (int i = 0; i < rows->n; i++) {
        __m512 r = _mm512_set1_ps(1.0f / sum[i]);
        for (int c = 0; c < nv; c++)
            _mm512_storeu_ps(rows->out[i] + 16 * c,
                             _mm512_mul_ps(_mm512_loadu_ps(acc[i] + 16 * c), r));
    }
}

void k_attend_avx512(const struct k_att_rows *rows, const struct k_kv_view *k,
                     const struct k_kv_view *v, int64_t col, int head_dim, float scale)
{
    switch (head_dim / 16) {
    case 2:
        attend_rows(2, rows, k, v, col, scale);
        break;
    case 4:
        attend_rows(4, rows, k, v, col, scale);
        break;
    case 8:
        attend_rows(8, rows, k, v, col, scale);
        break;
    default:
        attend_rows(head_dim / 16, rows, k, v, col, scale);
        break;
    }
}

#endif

void k_attention_forward(float *out, const float *q, const float *k, const float *v, int n,
                         int pos0, int n_heads, int n_kv_heads, int head_dim, int window,
                         int causal)
{
    int64_t stride = (int64_t)n_kv_heads * head_dim;
    struct k_kv_view kv = {.base = k, .stride = stride}, vv = {.base = v, .stride = stride};
    k_attention_view(out, q, &kv, &vv, n, pos0, n_heads, n_kv_heads, head_dim, window, causal);
}

void k_attention_view(float *out, const float *q, const struct k_kv_view *k,
                      const struct k_kv_view *v, int n, int pos0, int n_heads, int n_kv_heads,
                      int head_dim, int window, int causal)
{
    k_attend_fn attend = k_attend_scalar;
#ifdef K_HAVE_AVX512
    if (head_dim % 16 == 0) attend = k_attend_avx512;
#endif
    k_attention_with(attend, out, q, k, v, n, pos0, n_heads, n_kv_heads, head_dim, window, causal);
}

void k_attention_with(k_attend_fn attend, float *out, const float *q, const struct k_kv_view *k,
                      const struct k_kv_view *v, int n, int pos0, int n_heads, int n_kv_heads,
                      int head_dim, int window, int causal)
{
    int group = n_heads / n_kv_heads;
    int kv_len = pos0 + n;
    int64_t q_stride = (int64_t)n_heads * head_dim;
    float scale = 1.0f / sqrtf((float)head_dim);
    /* tokens per task: as many as fit with the group's heads, at most 4 */
    int tokens = group >= K_ATT_MAX_ROWS ? 1 : K_ATT_MAX_ROWS / group;
    tokens = tokens > 4 ? 4 : tokens;
    int tasks_per_head = (n + tokens - 1) / tokens;
    /* a query head group larger than a task splits into several tasks */
    int parts = (group + K_ATT_MAX_ROWS - 1) / K_ATT_MAX_ROWS;
    int64_t work = (int64_t)n * n_heads * kv_len * head_dim;
#pragma omp parallel for collapse(3) schedule(dynamic, 1) if (work >= K_PARALLEL_MIN_WORK)
    for (int tt = 0; tt < tasks_per_head; tt++) {
        for (int g = 0; g < n_kv_heads; g++) {
            for (int part = 0; part < parts; part++) {
                struct k_att_rows rows = {.n = 0};
                int h_end =
                    (part + 1) * K_ATT_MAX_ROWS < group ? (part + 1) * K_ATT_MAX_ROWS : group;
                for (int t = tt * tokens; t < n && t < (tt + 1) * tokens; t++) {
                    for (int h = part * K_ATT_MAX_ROWS; h < h_end; h++) {
                        int qh = g * group + h;
                        int lo = window > 0 ? pos0 + t - window + 1 : 0;
                        rows.q[rows.n] = q + t * q_stride + (int64_t)qh * head_dim;
                        rows.out[rows.n] = out + t * q_stride + (int64_t)qh * head_dim;
                        rows.lo[rows.n] = lo < 0 ? 0 : lo;
                        rows.hi[rows.n] = causal ? pos0 + t : kv_len - 1;
                        rows.n++;
                    }
                }
                attend(&rows, k, v, (int64_t)g * head_dim, head_dim, scale);
            }
        }
    }
}
