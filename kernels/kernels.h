/* The compute interface of memllm: every op the engine (and later the
 * trainer) needs, as small functions in llm.c style — an op's forward and
 * backward sit side by side in one file under kernels/cpu/ (and, behind the
 * same signatures, kernels/cuda/).
 *
 * Conventions
 *   - Activations are f32, row-major, one row per token: x[t * dim + i].
 *   - A weight matrix is [rows = out features, cols = in features], row-major
 *     (the layout of torch.nn.Linear.weight and of GGUF tensors), in any
 *     mm_dtype. Quantized weights stay quantized; products run on the blocks.
 *   - Ops are multithreaded with OpenMP where worth it; call them from one
 *     thread. Decode runs a few hundred short parallel regions per token:
 *     on a machine shared with other busy processes, libgomp's default
 *     barrier spinning makes each cost a scheduler time slice (decode 200x
 *     slower); GOMP_SPINCOUNT=10000 keeps the speed and avoids that.
 *   - Batch invariance: every output element is computed by one fixed
 *     sequence of floating-point operations, whatever the number of tokens
 *     in the call, the token's position among them, the other tokens, the
 *     OpenMP thread count and the machine's BLAS. A token's logits then do
 *     not depend on what shares its step: decoding it alone, in a batch, in
 *     a prompt or after a rollback gives the same bits, and so do the
 *     tokens sampled from them. Matmuls are dot products that each (row,
 *     token) pair sums in its own accumulators in one order (kernels/cpu/
 *     internal.h); prefill runs them in tiles of several rows x tokens for
 *     speed, never a differently ordered sum. Work is split over rows and
 *     tokens, never over a sum. Attention cuts each row's keys at absolute
 *     positions; row reductions (norms, softmax) sum in fixed lanes; the
 *     build does not contract a * b + c into FMAs behind the code's back.
 *     The order is fixed per build (SIMD level); other builds may round
 *     differently.
 *   - No BLAS on the model path: an sgemm's order depends on the shapes,
 *     threads and the kernels OpenBLAS picks for the CPU
 *     (OPENBLAS_CORETYPE), which would break the rule above.
 *   - Ops cannot fail: shapes are checked by the loader that builds the
 *     model, not on the hot path. */
#ifndef MEMLLM_KERNELS_H
#define MEMLLM_KERNELS_H

#include <stdint.h>

#include "dtype.h"

struct k_matrix {
    enum mm_dtype dtype;
    int64_t rows;     /* out features */
    int64_t cols;     /* in features; a multiple of the block size */
    size_t row_bytes; /* mm_dtype_row_bytes(dtype, cols) */
    const void *data; /* rows * row_bytes bytes, 4-byte aligned (GGUF aligns tensors to 32) */
};

/* out[t, r] = sum_c x[t, c] * w[r, c]  for t < n, r < w->rows.
 * x: [n, w->cols], out: [n, w->rows]. */
void k_matmul_forward(float *out, const float *x, const struct k_matrix *w, int n);

/* out[t, r] += ...: as k_matmul_forward, but accumulates into out (used for
 * LoRA's low-rank update and residual paths). */
void k_matmul_accumulate(float *out, const float *x, const struct k_matrix *w, int n, float scale);

/* out[t, :] = row ids[t] of table, dequantized. out: [n, table->cols]. */
void k_embedding_forward(float *out, const int32_t *ids, int n, const struct k_matrix *table);

/* out[t, i] = x[t, i] / sqrt(mean_i(x[t, :]^2) + eps) * weight[i]. */
void k_rmsnorm_forward(float *out, const float *x, const float *weight, int n, int dim, float eps);

/* out[t, i] = (x[t, i] - mean) / sqrt(var + eps) * weight[i] + bias[i]
 * (BERT-family encoders). */
void k_layernorm_forward(float *out, const float *x, const float *weight, const float *bias, int n,
                         int dim, float eps);

/* The largest head_dim that rope and attention take (they keep per-head
 * tables on the stack); the model loader rejects larger heads. */
#define K_MAX_HEAD_DIM 512

enum k_rope_style {
    K_ROPE_NEOX, /* rotate halves: pairs (i, i + d/2); HF transformers' rotate_half */
    K_ROPE_NORM  /* adjacent pairs (2i, 2i + 1); GGUF llama tensors are permuted for it */
};

/* Rotary position embedding in place. x: [n, n_heads * head_dim]; token t has
 * position pos[t]. theta: rope base (rope_theta). */
void k_rope_forward(float *x, const int32_t *pos, int n, int n_heads, int head_dim, float theta,
                    enum k_rope_style style);

/* out[i] = silu(gate[i]) * up[i] for i < len. */
void k_swiglu_forward(float *out, const float *gate, const float *up, int64_t len);

/* out[i] = gelu(x[i]) (erf form, as BERT). */
void k_gelu_forward(float *out, const float *x, int64_t len);

/* x[i] += y[i]. */
void k_add_inplace(float *x, const float *y, int64_t len);

/* Row-wise softmax / log-softmax in place. x: [n, dim]. */
void k_softmax_forward(float *x, int n, int dim);
void k_log_softmax_forward(float *x, int n, int dim);

/* Causal grouped-query attention of n new tokens of one sequence against its
 * KV cache.
 *   q:      [n, n_heads * head_dim], already rotated
 *   k, v:   the sequence's cache for this layer, [kv_len, n_kv_heads * head_dim]
 *           with kv_len = pos0 + n, the n new rows already written
 *   out:    [n, n_heads * head_dim]
 * Token t (position pos0 + t) attends to positions p with p <= pos0 + t and,
 * when window > 0, p > pos0 + t - window (Mistral's sliding window).
 * Query head h reads KV head h / (n_heads / n_kv_heads). Scale 1/sqrt(head_dim).
 * A causal attention with no mask (BERT) is the same call with causal = 0. */
void k_attention_forward(float *out, const float *q, const float *k, const float *v, int n,
                         int pos0, int n_heads, int n_kv_heads, int head_dim, int window,
                         int causal);

/* Where the rows of one sequence's keys (or values) lie for one layer: one
 * matrix (pages NULL: row p at base + p * stride), or pages of K_KV_PAGE
 * rows (row p at pages[p / K_KV_PAGE] + (p % K_KV_PAGE) * stride), as the
 * paged KV cache keeps them (worker/kv_cache.h). The attention reads its
 * keys in page-aligned chunks of 16, each inside one page, in the same
 * order either way: paging changes no result. */
#define K_KV_PAGE 16
struct k_kv_view {
    const float *base;
    const float *const *pages;
    int64_t stride;
};

static inline const float *k_kv_row(const struct k_kv_view *v, int p)
{
    if (v->pages) return v->pages[p / K_KV_PAGE] + (int64_t)(p % K_KV_PAGE) * v->stride;
    return v->base + (int64_t)p * v->stride;
}

/* k_attention_forward over views: the paged cache's entry point. */
void k_attention_view(float *out, const float *q, const struct k_kv_view *k,
                      const struct k_kv_view *v, int n, int pos0, int n_heads, int n_kv_heads,
                      int head_dim, int window, int causal);

/* Index of the largest value of x[0..n) (first one on ties). */
int k_argmax(const float *x, int n);

/* ---- Training: the backward of each op above, and what they need ----
 * Backward functions follow the same batch-invariance rule: token t's
 * gradients do not depend on the other tokens of the call or the threads. */

/* dx[t, i] += dL/dx[t, i] of out = rmsnorm(x) * weight, given dy = dL/dout.
 * Accumulates (the residual stream's gradient is a sum); weight is frozen. */
void k_rmsnorm_backward(float *dx, const float *dy, const float *x, const float *weight, int n,
                        int dim, float eps);

/* The inverse rotation in place: dx becomes the gradient w.r.t. rope's input. */
void k_rope_backward(float *dx, const int32_t *pos, int n, int n_heads, int head_dim, float theta,
                     enum k_rope_style style);

/* dgate = dout * up * silu'(gate), dup = dout * silu(gate). Overwrites. */
void k_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                       const float *up, int64_t len);

/* Attention of one whole training sequence of n tokens (positions 0..n-1),
 * causal, with the sliding window (window > 0: token t sees keys p with
 * t - window < p <= t) and GQA as k_attention_forward. q: [n, n_heads *
 * head_dim]; k, v: [n, n_kv_heads * head_dim]; out as q; lse: [n_heads, n],
 * each row's log-sum-exp of its scaled scores, kept for the backward. */
void k_attention_train_forward(float *out, float *lse, const float *q, const float *k,
                               const float *v, int n, int n_heads, int n_kv_heads, int head_dim,
                               int window);
/* dq, dk, dv (overwritten) given dout and the forward's out and lse.
 * scratch: k_attention_backward_scratch(...) floats (each query head's share
 * of dk and dv, summed over its group in head order, and K and V
 * transposed). */
size_t k_attention_backward_scratch(int n, int n_heads, int n_kv_heads, int head_dim);
void k_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *out,
                          const float *lse, const float *q, const float *k, const float *v, int n,
                          int n_heads, int n_kv_heads, int head_dim, int window, float *scratch);

/* Next-token cross-entropy with a weight per row, fused with its backward:
 * logits [n, vocab] become grad_scale * weight[t] * (softmax - onehot(target));
 * loss[t] = weight[t] * (logsumexp - logit of target). Rows of weight 0 get
 * a zero gradient and loss. */
void k_cross_entropy_backward(float *logits, float *loss, const int32_t *target,
                              const float *weight, int n, int vocab, float grad_scale);

/* out[t, j] = alpha * sum_k x[t, k] * b[k, j] (added to out[t, j] when
 * accumulate), t < n, j < cols: the matmuls of training, where the matrix
 * is f32 and either side of a product (dy W as well as x W^T) is wanted.
 * b is k-major, [k_dim, cols] with rows ldb floats apart; x is [n, k_dim],
 * out [n, cols]. Each output is one chain of fused multiply-adds over k in
 * order (gemm.c), whatever n, cols or the thread count. */
void k_gemm_f32(float *out, const float *x, int n, int k_dim, const float *b, int64_t cols,
                int64_t ldb, float alpha, int accumulate);

/* The same with x given as its transpose: x[t, k] = xt[k * ldx + t] (the
 * weight gradients, sums over tokens: dB = dy^T u reads dy as it is). */
void k_gemm_f32_xt(float *out, const float *xt, int64_t ldx, int n, int k_dim, const float *b,
                   int64_t cols, int64_t ldb, float alpha, int accumulate);

/* The same product with b packed once beforehand into the kernel's panels
 * (a frozen weight used at every step): the same bits as k_gemm_f32 on the
 * unpacked matrix, without packing a panel per call. */
struct k_panels {
    int64_t k_dim, cols;
    const float *data; /* k_panels_floats(k_dim, cols) floats */
};
size_t k_panels_floats(int64_t k_dim, int64_t cols);
/* A weight of any dtype, dequantized: its panels as b = W^T ([cols, rows],
 * for x W^T) when transposed, as b = W ([rows, cols], for dy W) when not. */
void k_panels_of_matrix(float *dst, const struct k_matrix *w, int transposed);
/* Row k of b ([k_dim, cols]) in its panels dst set to values[0..cols). */
void k_panels_set_row(float *dst, int64_t k_dim, int64_t cols, int64_t k, const float *values);
void k_gemm_panels(float *out, const float *x, int n, const struct k_panels *b, float alpha,
                   int accumulate);

/* Dropout keep-bits (bit i of a mask: bits[i / 32] >> i % 32 & 1): for
 * i < count, bit bit0 + i is set (ORed in: the caller zeroes the mask) when
 * train_rng_uniform(seed, module, first + i) >= p (common/train_rng.h), the
 * same draws as the CUDA trainer's. */
void k_dropout_mask(uint32_t *bits, int64_t bit0, int64_t count, uint64_t seed, uint64_t module,
                    uint64_t first, float p);
/* out[i] = x[i] * keep where bit i is set, 0 elsewhere. */
void k_dropout_apply(float *out, const float *x, const uint32_t *bits, int64_t count, float keep);
/* dx[i] += g[i] * keep where bit i is set (dx untouched elsewhere). */
void k_dropout_accumulate(float *dx, const float *g, const uint32_t *bits, int64_t count,
                          float keep);

/* out[c, t] = x[t, c]: [n, dim] -> [dim, n]. */
void k_transpose_f32(float *out, const float *x, int n, int dim);

#endif
