/* Causal grouped-query attention over one whole training sequence, forward
 * (keeping each row's log-sum-exp) and backward (FlashAttention-2's
 * formulas: P recomputed from the log-sum-exp, D = rowsum(dO * O),
 * dS = P (dP - D)).
 *
 * Query head h of token t attends to keys p with max(0, t - window + 1) <=
 * p <= t (window 0: all earlier ones).
 *
 * Keys go in blocks of KB, aligned to multiples of KB from position 0, so
 * that a block's scores are one SIMD vector: K and V are transposed per KV
 * head ([head_dim, padded(n)], zero past n) and a score is a chain
 * of FMAs over the head's features in order. Each sum has one fixed order:
 * a score over the features, a query's dq over its keys in position order,
 * a key's dk and dv over the queries in position order, the softmax sums in
 * lane p % KB then the lanes pairwise. Lanes outside a query's keys are
 * computed and then dropped (their weight is zero), so neither the sequence
 * length nor the thread count changes a bit of any result.
 *
 * Work is split over query heads; the key and value gradients that several
 * query heads share are summed per head first and then over the group's
 * heads in head order. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define KB K_SUM_LANES

/* The rows of a head's transposed K or V: n rounded up to whole blocks,
 * and one block more, so that rows are not a power of two apart (in L1,
 * rows a multiple of 4 KB apart compete for the same few sets, and a block
 * reads 64 of them). */
static inline int padded(int n)
{
    return (n + KB - 1) / KB * KB + KB;
}

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

/* kt[h][i][p] = x[p][h * head_dim + i]: each KV head's keys (or values)
 * transposed, rows of np floats, zero past n. */
static void transpose_heads(float *kt, const float *x, int n, int np, int n_kv_heads, int head_dim)
{
    int64_t kw = (int64_t)n_kv_heads * head_dim;
#pragma omp for schedule(static)
    for (int h = 0; h < n_kv_heads; h++)
        for (int i = 0; i < head_dim; i++) {
            float *row = kt + ((int64_t)h * head_dim + i) * np;
            for (int p = 0; p < n; p++)
                row[p] = x[p * kw + (int64_t)h * head_dim + i];
            for (int p = n; p < np; p++)
                row[p] = 0.0f;
        }
}

/* sr[l] = qr . key (b + l) for the KB keys of block b and four queries r
 * (kt: the head's transposed keys), each score a chain of FMAs over the
 * features in order. Four queries at once: their eight accumulator vectors
 * hide the FMA latency that one query's two leave exposed, and each row of
 * kt is loaded once for the four. */
static inline void block_scores4(float *restrict s0, float *restrict s1, float *restrict s2,
                                 float *restrict s3, const float *restrict q0,
                                 const float *restrict q1, const float *restrict q2,
                                 const float *restrict q3, const float *restrict kt, int np, int b,
                                 int head_dim)
{
    float a0[KB] = {0}, a1[KB] = {0}, a2[KB] = {0}, a3[KB] = {0};
    for (int i = 0; i < head_dim; i++) {
        const float *row = kt + (int64_t)i * np + b;
        float x0 = q0[i], x1 = q1[i], x2 = q2[i], x3 = q3[i];
#pragma omp simd
        for (int l = 0; l < KB; l++) {
            a0[l] = fmaf(x0, row[l], a0[l]);
            a1[l] = fmaf(x1, row[l], a1[l]);
            a2[l] = fmaf(x2, row[l], a2[l]);
            a3[l] = fmaf(x3, row[l], a3[l]);
        }
    }
    for (int l = 0; l < KB; l++)
        s0[l] = a0[l], s1[l] = a1[l], s2[l] = a2[l], s3[l] = a3[l];
}

/* s[l] = e^(s[l] - m), added to sum[l], for a block's lanes. */
static inline void exp_block(float *restrict s, float *restrict sum, float m)
{
    int l = 0;
#ifdef K_HAVE_AVX2
    for (; l < KB; l += 8) {
        __m256 e = k_exp8(_mm256_sub_ps(_mm256_loadu_ps(s + l), _mm256_set1_ps(m)));
        _mm256_storeu_ps(s + l, e);
        _mm256_storeu_ps(sum + l, _mm256_add_ps(_mm256_loadu_ps(sum + l), e));
    }
#endif
    for (; l < KB; l++) {
        s[l] = k_exp_lane(s[l] - m);
        sum[l] += s[l];
    }
}

/* A query's probabilities over key block b (keys p0..t its own, the other
 * lanes 0) from its scores s, and dS = P (dP - D) scale. */
static inline void prob_block(float *restrict prob, float *restrict ds, const float *restrict s,
                              const float *restrict dp, int b, int p0, int t, float lse, float d,
                              float scale)
{
    int l = 0;
#ifdef K_HAVE_AVX2
    __m256i lane =
        _mm256_add_epi32(_mm256_set1_epi32(b), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    for (; l < KB; l += 8) {
        __m256 e = k_exp8(
            _mm256_fmadd_ps(_mm256_loadu_ps(s + l), _mm256_set1_ps(scale), _mm256_set1_ps(-lse)));
        __m256i in = _mm256_and_si256(_mm256_cmpgt_epi32(lane, _mm256_set1_epi32(p0 - 1)),
                                      _mm256_cmpgt_epi32(_mm256_set1_epi32(t + 1), lane));
        __m256 pr = _mm256_and_ps(_mm256_castsi256_ps(in), e);
        _mm256_storeu_ps(prob + l, pr);
        _mm256_storeu_ps(ds + l,
                         _mm256_mul_ps(_mm256_mul_ps(pr, _mm256_sub_ps(_mm256_loadu_ps(dp + l),
                                                                       _mm256_set1_ps(d))),
                                       _mm256_set1_ps(scale)));
        lane = _mm256_add_epi32(lane, _mm256_set1_epi32(8));
    }
#endif
    for (; l < KB; l++) {
        int in = b + l >= p0 && b + l <= t;
        float e = k_exp_lane(fmaf(s[l], scale, -lse));
        prob[l] = in ? e : 0.0f;
        ds[l] = prob[l] * (dp[l] - d) * scale;
    }
}

/* The lanes' max, pairwise in a fixed order (k_sum_lanes' tree). */
static inline float lanes_max(float *lane)
{
    for (int w = KB / 2; w > 0; w /= 2)
        for (int l = 0; l < w; l++)
            lane[l] = lane[l + w] > lane[l] ? lane[l + w] : lane[l];
    return lane[0];
}

/* One query row of one head: out and lse, given its raw scores in s (the
 * blocks from its first key's to its own). */
static void forward_row(float *restrict ot, float *lse, const float *restrict vh, int64_t kw, int t,
                        int window, int head_dim, float scale, float *restrict s)
{
    int p0 = first_key(t, window), b0 = p0 / KB * KB;
    float mx[KB], sum[KB];
    for (int l = 0; l < KB; l++)
        mx[l] = -INFINITY, sum[l] = 0.0f;
    for (int b = b0; b <= t; b += KB) {
        for (int l = 0; l < KB; l++) {
            int in = b + l >= p0 && b + l <= t;
            s[b + l] = in ? s[b + l] * scale : -INFINITY;
            mx[l] = s[b + l] > mx[l] ? s[b + l] : mx[l];
        }
    }
    float m = lanes_max(mx);
    for (int b = b0; b <= t; b += KB)
        exp_block(s + b, sum, m);
    float total = k_sum_lanes(sum), inv = 1.0f / total;
    float acc[K_MAX_HEAD_DIM];
    for (int i = 0; i < head_dim; i++)
        acc[i] = 0.0f;
    for (int p = p0; p <= t; p++) {
        float w = s[p] * inv;
        const float *vp = vh + p * kw;
        for (int i = 0; i < head_dim; i++)
            acc[i] = fmaf(w, vp[i], acc[i]);
    }
    memcpy(ot, acc, (size_t)head_dim * sizeof(float));
    *lse = m + logf(total);
}

/* Query rows t0.. (up to 4, fewer at the end) of head h: their scores four
 * at a time over the blocks any of them sees (a row's blocks outside its
 * own range are computed and never read), then each row on its own. s: 4
 * rows of np floats. */
static void forward_rows(float *out, float *lse, const float *q, const float *kt, const float *vh,
                         int64_t qw, int64_t kw, int np, int n, int t0, int window, int head_dim,
                         float scale, float *s)
{
    int rows = n - t0 < 4 ? n - t0 : 4;
    const float *qr[4];
    float *sr[4];
    for (int r = 0; r < 4; r++) {
        int t = t0 + (r < rows ? r : rows - 1);
        qr[r] = q + t * qw;
        sr[r] = s + (int64_t)r * np;
    }
    for (int b = first_key(t0, window) / KB * KB; b < t0 + rows; b += KB)
        block_scores4(sr[0] + b, sr[1] + b, sr[2] + b, sr[3] + b, qr[0], qr[1], qr[2], qr[3], kt,
                      np, b, head_dim);
    for (int r = 0; r < rows; r++)
        forward_row(out + (t0 + r) * qw, lse + t0 + r, vh, kw, t0 + r, window, head_dim, scale,
                    sr[r]);
}

void k_attention_train_forward(float *out, float *lse, const float *q, const float *k,
                               const float *v, int n, int n_heads, int n_kv_heads, int head_dim,
                               int window)
{
    int group = n_heads / n_kv_heads, np = padded(n);
    int64_t qw = (int64_t)n_heads * head_dim, kw = (int64_t)n_kv_heads * head_dim;
    int64_t per_head = (int64_t)head_dim * np;
    float scale = 1.0f / sqrtf((float)head_dim);
    float *kt = malloc((size_t)(n_kv_heads * per_head) * sizeof(float));
    if (!kt) abort(); /* ops cannot fail (kernels.h): the process is out of memory */
#pragma omp parallel
    {
        transpose_heads(kt, k, n, np, n_kv_heads, head_dim);
        float *s = malloc(4 * (size_t)np * sizeof(float));
        if (!s) abort();
#pragma omp for collapse(2) schedule(static)
        for (int h = 0; h < n_heads; h++)
            for (int t0 = 0; t0 < n; t0 += 4)
                forward_rows(out + (int64_t)h * head_dim, lse + (int64_t)h * n,
                             q + (int64_t)h * head_dim, kt + (h / group) * per_head,
                             v + (int64_t)(h / group) * head_dim, qw, kw, np, n, t0, window,
                             head_dim, scale, s);
        free(s);
    }
    free(kt);
}

size_t k_attention_backward_scratch(int n, int n_heads, int n_kv_heads, int head_dim)
{
    return 2 * (size_t)(n_heads + n_kv_heads) * (size_t)head_dim * (size_t)padded(n);
}

/* Queries go in tiles of QT against each key block, so that the block's
 * keys, values and gradients stay in L1 while the tile's queries pass over
 * them, and a row of the block's dk and dv is loaded and stored once a tile.
 * A key still gets its queries' shares in position order (the tiles in
 * order, a tile's queries in order), a query its keys' in position order. */
#define QT 16

/* Features i..i+NI-1 of the block's transposed dk and dv: each lane a sum
 * over the tile's queries in order. Two features at once give eight
 * independent accumulator vectors, enough to hide the FMA latency that the
 * four of one feature leave exposed. */
static inline __attribute__((always_inline)) void kv_grads(int NI, float *restrict dkt,
                                                           float *restrict dvt, float prob[][KB],
                                                           float ds[][KB], const float *restrict q,
                                                           const float *restrict dout, int64_t qw,
                                                           int np, int b, int i, int t0, int t1)
{
    float ka[2][KB], va[2][KB];
    for (int f = 0; f < NI; f++)
        for (int l = 0; l < KB; l++) {
            ka[f][l] = dkt[(int64_t)(i + f) * np + b + l];
            va[f][l] = dvt[(int64_t)(i + f) * np + b + l];
        }
    for (int t = t0; t < t1; t++)
        for (int f = 0; f < NI; f++) {
            float qi = q[t * qw + i + f], gi = dout[t * qw + i + f];
#pragma omp simd
            for (int l = 0; l < KB; l++) {
                ka[f][l] = fmaf(ds[t - t0][l], qi, ka[f][l]);
                va[f][l] = fmaf(prob[t - t0][l], gi, va[f][l]);
            }
        }
    for (int f = 0; f < NI; f++)
        for (int l = 0; l < KB; l++) {
            dkt[(int64_t)(i + f) * np + b + l] = ka[f][l];
            dvt[(int64_t)(i + f) * np + b + l] = va[f][l];
        }
}

/* One head's queries t0..t1-1 against key block b: their dq (acc, [QT,
 * head_dim]), the head's transposed dk and dv (dkt, dvt), accumulated. d:
 * each query's rowsum(dout * out). */
static void backward_tile(float *restrict acc, float *restrict dkt, float *restrict dvt,
                          const float *restrict q, const float *restrict dout,
                          const float *restrict d, const float *restrict lse,
                          const float *restrict kt, const float *restrict vt,
                          const float *restrict kh, int64_t qw, int64_t kw, int np, int b, int t0,
                          int t1, int window, int head_dim, float scale)
{
    float prob[QT][KB], ds[QT][KB];
    /* scores and dP four queries at a time (block_scores4) */
    for (int t4 = t0; t4 < t1; t4 += 4) {
        int rows = t1 - t4 < 4 ? t1 - t4 : 4;
        float s[4][KB], dp[4][KB];
        const float *qr[4], *gr[4];
        for (int r = 0; r < 4; r++) {
            int t = t4 + (r < rows ? r : rows - 1);
            qr[r] = q + t * qw;
            gr[r] = dout + t * qw;
        }
        block_scores4(s[0], s[1], s[2], s[3], qr[0], qr[1], qr[2], qr[3], kt, np, b, head_dim);
        block_scores4(dp[0], dp[1], dp[2], dp[3], gr[0], gr[1], gr[2], gr[3], vt, np, b, head_dim);
        for (int r = 0; r < rows; r++) {
            int t = t4 + r, j = t - t0;
            prob_block(prob[j], ds[j], s[r], dp[r], b, first_key(t, window), t, lse[t], d[j],
                       scale);
        }
    }
    int i = 0;
    for (; i + 2 <= head_dim; i += 2)
        kv_grads(2, dkt, dvt, prob, ds, q, dout, qw, np, b, i, t0, t1);
    if (i < head_dim) kv_grads(1, dkt, dvt, prob, ds, q, dout, qw, np, b, i, t0, t1);
    for (int t = t0; t < t1; t++) {
        int p0 = first_key(t, window);
        int first = b > p0 ? b : p0, last = b + KB - 1 < t ? b + KB - 1 : t;
        float *at = acc + (t - t0) * head_dim;
        for (int p = first; p <= last; p++) {
            const float *kp = kh + p * kw;
            for (int i = 0; i < head_dim; i++)
                at[i] = fmaf(ds[t - t0][p - b], kp[i], at[i]);
        }
    }
}

/* One head's dq (overwritten) and transposed dk and dv (accumulated). */
static void backward_head(float *dq, float *dkt, float *dvt, const float *dout, const float *out,
                          const float *lse, const float *q, const float *kt, const float *vt,
                          const float *kh, int64_t qw, int64_t kw, int n, int np, int window,
                          int head_dim, float scale)
{
    float acc[QT * K_MAX_HEAD_DIM], d[QT];
    for (int t0 = 0; t0 < n; t0 += QT) {
        int t1 = t0 + QT < n ? t0 + QT : n;
        for (int t = t0; t < t1; t++) {
            d[t - t0] = dot(dout + t * qw, out + t * qw, head_dim);
            for (int i = 0; i < head_dim; i++)
                acc[(t - t0) * head_dim + i] = 0.0f;
        }
        /* the blocks that any query of the tile sees: from the first
         * query's first key to the last query */
        for (int b = first_key(t0, window) / KB * KB; b < t1; b += KB) {
            /* the queries that see a key of this block */
            int lo = b > t0 ? b : t0, hi = t1;
            while (hi > lo && first_key(hi - 1, window) >= b + KB)
                hi--;
            if (lo < hi)
                backward_tile(acc + (lo - t0) * head_dim, dkt, dvt, q, dout, d + (lo - t0), lse, kt,
                              vt, kh, qw, kw, np, b, lo, hi, window, head_dim, scale);
        }
        for (int t = t0; t < t1; t++)
            memcpy(dq + t * qw, acc + (t - t0) * head_dim, (size_t)head_dim * sizeof(float));
    }
}

void k_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *out,
                          const float *lse, const float *q, const float *k, const float *v, int n,
                          int n_heads, int n_kv_heads, int head_dim, int window, float *scratch)
{
    int group = n_heads / n_kv_heads, np = padded(n);
    int64_t qw = (int64_t)n_heads * head_dim, kw = (int64_t)n_kv_heads * head_dim;
    int64_t per_head = (int64_t)head_dim * np;
    float scale = 1.0f / sqrtf((float)head_dim);
    /* each query head's transposed share of dK and dV, summed over its
     * group below; the KV heads' transposed K and V */
    float *pk = scratch, *pv = pk + n_heads * per_head;
    float *kt = pv + n_heads * per_head, *vt = kt + n_kv_heads * per_head;
    memset(scratch, 0, (size_t)(2 * n_heads * per_head) * sizeof(float));
#pragma omp parallel
    {
        transpose_heads(kt, k, n, np, n_kv_heads, head_dim);
        transpose_heads(vt, v, n, np, n_kv_heads, head_dim);
#pragma omp for schedule(static)
        for (int h = 0; h < n_heads; h++) {
            int g = h / group;
            int64_t hq = (int64_t)h * head_dim;
            backward_head(dq + hq, pk + h * per_head, pv + h * per_head, dout + hq, out + hq,
                          lse + (int64_t)h * n, q + hq, kt + g * per_head, vt + g * per_head,
                          k + (int64_t)g * head_dim, qw, kw, n, np, window, head_dim, scale);
        }
#pragma omp for schedule(static)
        for (int g = 0; g < n_kv_heads; g++)
            for (int i = 0; i < head_dim; i++)
                for (int t = 0; t < n; t++) {
                    float sk = 0.0f, sv = 0.0f;
                    for (int j = 0; j < group; j++) {
                        int64_t at = (int64_t)(g * group + j) * per_head + (int64_t)i * np + t;
                        sk += pk[at];
                        sv += pv[at];
                    }
                    dk[t * kw + (int64_t)g * head_dim + i] = sk;
                    dv[t * kw + (int64_t)g * head_dim + i] = sv;
                }
    }
}
