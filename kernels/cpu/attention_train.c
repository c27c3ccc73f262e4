/* Causal grouped-query attention over one whole training sequence, forward
 * (keeping each row's log-sum-exp) and backward (FlashAttention-2's
 * formulas: P recomputed from the log-sum-exp, D = rowsum(dO * O),
 * dS = P (dP - D)).
 *
 * Query head h of token t attends to keys p with max(0, t - window + 1) <=
 * p <= t (window 0: all earlier ones). Work is split over query heads; the
 * key and value gradients that several query heads share are summed per
 * head first and then over the group's heads in head order, so the result
 * does not depend on the thread count. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static inline int first_key(int t, int window)
{
    return window > 0 && t - window + 1 > 0 ? t - window + 1 : 0;
}

/* In fixed lanes (internal.h), which the compiler vectorizes. */
static inline float dot(const float *a, const float *b, int n)
{
    float lane[K_SUM_LANES] = {0};
    int i = 0;
    for (; i + K_SUM_LANES <= n; i += K_SUM_LANES)
        for (int l = 0; l < K_SUM_LANES; l++)
            lane[l] += a[i + l] * b[i + l];
    for (int l = 0; i + l < n; l++)
        lane[l] += a[i + l] * b[i + l];
    return k_sum_lanes(lane);
}

/* One (query, key) pair's share of the gradients: dq += ds k, dk += ds q,
 * dv += p dout (restrict: the compiler vectorizes without alias checks). */
static inline void pair_grads(float *restrict dq, float *restrict dk, float *restrict dv,
                              const float *restrict k, const float *restrict q,
                              const float *restrict dout, float ds, float p, int n)
{
    for (int i = 0; i < n; i++) {
        dq[i] += ds * k[i];
        dk[i] += ds * q[i];
        dv[i] += p * dout[i];
    }
}

void k_attention_train_forward(float *out, float *lse, const float *q, const float *k,
                               const float *v, int n, int n_heads, int n_kv_heads, int head_dim,
                               int window)
{
    int group = n_heads / n_kv_heads;
    int64_t qw = (int64_t)n_heads * head_dim, kw = (int64_t)n_kv_heads * head_dim;
    float scale = 1.0f / sqrtf((float)head_dim);
#pragma omp parallel
    {
        float *s = malloc((size_t)n * sizeof(float));
        if (!s) abort(); /* ops cannot fail (kernels.h): the process is out of memory */
#pragma omp for collapse(2) schedule(static)
        for (int h = 0; h < n_heads; h++)
            for (int t = 0; t < n; t++) {
                const float *qt = q + t * qw + (int64_t)h * head_dim;
                const float *kh = k + (int64_t)(h / group) * head_dim;
                const float *vh = v + (int64_t)(h / group) * head_dim;
                float *ot = out + t * qw + (int64_t)h * head_dim;
                int p0 = first_key(t, window);
                float mx = -INFINITY;
                for (int p = p0; p <= t; p++) {
                    s[p] = dot(qt, kh + p * kw, head_dim) * scale;
                    mx = s[p] > mx ? s[p] : mx;
                }
                float sum = 0.0f;
                for (int p = p0; p <= t; p++) {
                    s[p] = expf(s[p] - mx);
                    sum += s[p];
                }
                memset(ot, 0, (size_t)head_dim * sizeof(float));
                for (int p = p0; p <= t; p++) {
                    float w = s[p] / sum;
                    for (int i = 0; i < head_dim; i++)
                        ot[i] += w * vh[p * kw + i];
                }
                lse[(int64_t)h * n + t] = mx + logf(sum);
            }
        free(s);
    }
}

void k_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *out,
                          const float *lse, const float *q, const float *k, const float *v, int n,
                          int n_heads, int n_kv_heads, int head_dim, int window, float *scratch)
{
    int group = n_heads / n_kv_heads;
    int64_t qw = (int64_t)n_heads * head_dim, kw = (int64_t)n_kv_heads * head_dim;
    int64_t part = (int64_t)n * head_dim;
    float scale = 1.0f / sqrtf((float)head_dim);
    /* each query head's share of dK and dV, summed over its group below */
    float *pk = scratch, *pv = scratch + n_heads * part;
    memset(scratch, 0, (size_t)(2 * n_heads * part) * sizeof(float));
#pragma omp parallel for schedule(static)
    for (int h = 0; h < n_heads; h++) {
        const float *kh = k + (int64_t)(h / group) * head_dim;
        const float *vh = v + (int64_t)(h / group) * head_dim;
        float *dkh = pk + h * part, *dvh = pv + h * part;
        for (int t = 0; t < n; t++) {
            const float *qt = q + t * qw + (int64_t)h * head_dim;
            const float *gt = dout + t * qw + (int64_t)h * head_dim;
            float *dqt = dq + t * qw + (int64_t)h * head_dim;
            float d = dot(gt, out + t * qw + (int64_t)h * head_dim, head_dim);
            float l = lse[(int64_t)h * n + t];
            memset(dqt, 0, (size_t)head_dim * sizeof(float));
            for (int p = first_key(t, window); p <= t; p++) {
                const float *kp = kh + p * kw, *vp = vh + p * kw;
                float prob = expf(dot(qt, kp, head_dim) * scale - l);
                float ds = prob * (dot(gt, vp, head_dim) - d) * scale;
                pair_grads(dqt, dkh + (int64_t)p * head_dim, dvh + (int64_t)p * head_dim, kp, qt,
                           gt, ds, prob, head_dim);
            }
        }
    }
#pragma omp parallel for schedule(static)
    for (int g = 0; g < n_kv_heads; g++)
        for (int t = 0; t < n; t++)
            for (int i = 0; i < head_dim; i++) {
                float sk = 0.0f, sv = 0.0f;
                for (int j = 0; j < group; j++) {
                    int64_t at = (int64_t)(g * group + j) * part + (int64_t)t * head_dim + i;
                    sk += pk[at];
                    sv += pv[at];
                }
                dk[t * kw + (int64_t)g * head_dim + i] = sk;
                dv[t * kw + (int64_t)g * head_dim + i] = sv;
            }
}
