/* Causal grouped-query attention of new tokens against one sequence's KV
 * cache (see kernels.h for the layout and the mask).
 *
 * One (token, head) pair is one task; its keys are visited in chunks with an
 * online softmax (the running maximum rescales what was summed so far), so no
 * buffer of kv_len scores is needed and no exponential overflows. */
#include <math.h>

#include "internal.h"

#define KEY_CHUNK 64

static float dot(const float *a, const float *b, int len)
{
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < len; i++)
        s += a[i] * b[i];
    return s;
}

/* out_h = softmax(q_h K[lo..hi]^T * scale) V[lo..hi] for one query head. */
static void attend(float *out, const float *q, const float *k, const float *v, int lo, int hi,
                   int64_t kv_stride, int head_dim, float scale)
{
    float acc[K_MAX_HEAD_DIM];
    for (int i = 0; i < head_dim; i++)
        acc[i] = 0.0f;
    float max = -INFINITY, sum = 0.0f;
    for (int p0 = lo; p0 <= hi; p0 += KEY_CHUNK) {
        int len = hi - p0 + 1 < KEY_CHUNK ? hi - p0 + 1 : KEY_CHUNK;
        float s[KEY_CHUNK];
        float chunk_max = -INFINITY;
        for (int j = 0; j < len; j++) {
            s[j] = dot(q, k + (p0 + j) * kv_stride, head_dim) * scale;
            chunk_max = s[j] > chunk_max ? s[j] : chunk_max;
        }
        if (chunk_max > max) {
            float r = expf(max - chunk_max); /* 0 on the first chunk */
            sum *= r;
#pragma omp simd
            for (int i = 0; i < head_dim; i++)
                acc[i] *= r;
            max = chunk_max;
        }
        for (int j = 0; j < len; j++) {
            float p = expf(s[j] - max);
            const float *vj = v + (p0 + j) * kv_stride;
            sum += p;
#pragma omp simd
            for (int i = 0; i < head_dim; i++)
                acc[i] += p * vj[i];
        }
    }
    float r = 1.0f / sum;
    for (int i = 0; i < head_dim; i++)
        out[i] = acc[i] * r;
}

void k_attention_forward(float *out, const float *q, const float *k, const float *v, int n,
                         int pos0, int n_heads, int n_kv_heads, int head_dim, int window,
                         int causal)
{
    int group = n_heads / n_kv_heads;
    int kv_len = pos0 + n;
    int64_t q_stride = (int64_t)n_heads * head_dim;
    int64_t kv_stride = (int64_t)n_kv_heads * head_dim;
    float scale = 1.0f / sqrtf((float)head_dim);
    int64_t work = (int64_t)n * n_heads * kv_len * head_dim;
#pragma omp parallel for collapse(2) schedule(dynamic, 1) if (work >= K_PARALLEL_MIN_WORK)
    for (int t = 0; t < n; t++) {
        for (int h = 0; h < n_heads; h++) {
            int hi = causal ? pos0 + t : kv_len - 1;
            int lo = window > 0 ? pos0 + t - window + 1 : 0;
            if (lo < 0) lo = 0;
            int64_t kv_off = (int64_t)(h / group) * head_dim;
            attend(out + t * q_stride + (int64_t)h * head_dim,
                   q + t * q_stride + (int64_t)h * head_dim, k + kv_off, v + kv_off, lo, hi,
                   kv_stride, head_dim, scale);
        }
    }
}
