/* The CUDA backend: the ops of kernels.h on device memory, with cuBLAS for
 * the large products.
 *
 * Conventions (those of kernels.h, plus)
 *   - Every pointer an op takes is device memory (cudaMalloc / kc_alloc),
 *     except the context and the error. Activations are f32, row-major, one
 *     row per token; weights are struct kc_matrix in any mm_dtype, quantized
 *     ones in GGML's block layout (dtype.h), used in place.
 *   - An op enqueues its kernels on the context's stream and returns: 0 when
 *     they were launched, -1 with err set when a launch or a cuBLAS call was
 *     refused. A fault while a kernel runs (a bad pointer, say) surfaces at
 *     the next call that waits: kc_sync or kc_download, which return -1 with
 *     the CUDA error. Library code never exits.
 *   - Ops on one context run in call order; buffers may be reused as soon as
 *     the call that consumes them has been made (no host waits needed).
 *   - Results match the CPU ops up to f32 rounding order, except where noted
 *     (quantized weights multiply 8-bit activations, as the CPU does; in
 *     the fast numerics, matmuls of many tokens with half-precision or
 *     quantized weights round the activations to the weights' half type
 *     for the tensor cores).
 *   - Numerics (kc_ctx_set_numerics): by default every op the stage runs is
 *     batch-invariant, a token's results the same bits whatever else shares
 *     the call; the fast numerics trade that for speed.
 *   - A context belongs to one host thread at a time; it makes its device
 *     current when created, and the ops launch on the current device.
 *
 * Backward passes (the trainer) slot in beside each forward, in the same
 * .cu file, as kc_<op>_backward(ctx, d_input..., d_output..., saved
 * forward inputs..., err), following the CPU ops' signatures (the
 * "Training" section at the end); the trainer's products are f32 cuBLAS
 * calls (kc_gemm_f32, gemm.c). */
#ifndef MEMLLM_KERNELS_CUDA_H
#define MEMLLM_KERNELS_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "dtype.h"
#include "err.h"
#include "kernels.h"

/* Usable CUDA devices; 0 when there are none or no driver can be loaded. */
int kc_device_count(void);

/* A device, a stream on it, a cuBLAS handle bound to that stream, and a
 * workspace the ops share (grown on demand). */
struct kc_ctx;

struct kc_ctx *kc_ctx_create(int device, struct mm_err *err);
void kc_ctx_free(struct kc_ctx *c);
cudaStream_t kc_ctx_stream(const struct kc_ctx *c);
int kc_ctx_device(const struct kc_ctx *c);

/* How the ops order their arithmetic (memllm's promise that a token's
 * logits do not depend on what shares its step rests on the first).
 *
 * KC_NUMERICS_INVARIANT (the default): batch-invariant. Each output element
 * of kc_matmul_* (and so of the LoRA updates and the LM head) and each query
 * row of kc_attention_decode is computed by one fixed sequence of f32
 * operations that depends on that token's own data only: not on n, on the
 * other tokens or sequences of the call, on how a step is cut into calls,
 * on the cache length of other sequences. So a token decoded alone, inside
 * a batch of any size, inside a 2048-token prefill, after a rollback, or
 * on one stage of a cut model gets the same bits. Matmuls take the dot
 * kernels for every n (f32 activations on float weights, 8-bit ones on
 * quantized weights, as the CPU); attention takes the decode kernel for
 * every batch shape, keys split every KC_DECODE_SPLIT_KEYS positions from
 * the token's first key, the splits merged in order. The other ops (norms,
 * RoPE, softmax, argmax, top-k, embedding, elementwise) work row by row in
 * a fixed order in every mode. Prefill then runs on the CUDA cores (no
 * tensor cores) and its attention reads the cache once per token: slower
 * than the fast numerics (bench_cuda prints both).
 *
 * KC_NUMERICS_FAST: the fastest kernel per shape, each with its own
 * summation order, so a token's bits depend on the batch it sits in: dot
 * kernels for one token (float weights) or up to KC_DOTS_MAX_TOKENS
 * (quantized), cuBLAS beyond (bf16 weights with the activations split in
 * two bf16 parts, within f32 rounding of the CPU path); attention by the
 * decode kernel for runs of up to 8 tokens per sequence, else per sequence
 * by cuBLAS or the flash kernel, key splits sized from the batch.
 *
 * KC_NUMERICS_FAST_BF16: KC_NUMERICS_FAST with bf16 matmuls of many
 * tokens on one bf16 rounding of the activations (as a bf16 model runs in
 * PyTorch): half the tensor-core work, logits a few tenths off. */
enum kc_numerics {
    KC_NUMERICS_INVARIANT = 0,
    KC_NUMERICS_FAST = 1,
    KC_NUMERICS_FAST_BF16 = 2,
};
void kc_ctx_set_numerics(struct kc_ctx *c, enum kc_numerics numerics);
enum kc_numerics kc_ctx_numerics(const struct kc_ctx *c);

/* Waits for everything enqueued on the context; reports a kernel's fault. */
int kc_sync(struct kc_ctx *c, struct mm_err *err);

/* Device memory. kc_free(NULL) does nothing. */
void *kc_alloc(size_t bytes, struct mm_err *err);
void kc_free(void *dev);
/* Page-locked host memory: transfers from and to it run at full speed and
 * kc_upload from it does not wait for the host. */
void *kc_host_alloc(size_t bytes, struct mm_err *err);
void kc_host_free(void *host);

/* Host -> device, in stream order. From pageable memory the source may be
 * reused when the call returns; from kc_host_alloc memory only after the
 * next kc_sync. */
int kc_upload(struct kc_ctx *c, void *dev, const void *host, size_t bytes, struct mm_err *err);
/* Device -> host after everything enqueued before; returns when the data is
 * on the host. */
int kc_download(struct kc_ctx *c, void *host, const void *dev, size_t bytes, struct mm_err *err);
/* Device -> device, in stream order. */
int kc_copy(struct kc_ctx *c, void *dst, const void *src, size_t bytes, struct mm_err *err);
/* bytes of device memory set to 0, in stream order. */
int kc_zero(struct kc_ctx *c, void *dev, size_t bytes, struct mm_err *err);

/* A weight matrix in device memory: struct k_matrix's layout, data on the
 * device, 16-byte aligned (as kc_matrix_upload and kc_alloc place it). */
struct kc_matrix {
    enum mm_dtype dtype;
    int64_t rows;
    int64_t cols;
    size_t row_bytes;
    const void *data;
};

/* Copies a host matrix into a new device allocation (same dtype and bytes). */
int kc_matrix_upload(struct kc_ctx *c, struct kc_matrix *dst, const struct k_matrix *src,
                     struct mm_err *err);
/* Frees what kc_matrix_upload allocated. */
void kc_matrix_free(struct kc_matrix *m);

#define KC_DOTS_MAX_TOKENS 8

/* out[t, r] = sum_c x[t, c] * w[r, c]; x: [n, w->cols], out: [n, w->rows].
 * Invariant numerics: the dot-product kernels for every n (one warp sums a
 * (row, token) element the same way whatever n; see dots.cu), which read
 * the weights at their stored width and multiply f32 activations (quantized
 * weights: the activations quantized to 8-bit blocks as the CPU does).
 * Fast numerics: those kernels for one token (float weights) or up to
 * KC_DOTS_MAX_TOKENS (quantized); more tokens through cuBLAS with f32
 * accumulation: f32 weights in full f32, f16 weights with the activations
 * rounded to f16, bf16 weights with the activations split in two bf16
 * parts (one bf16 in KC_NUMERICS_FAST_BF16), quantized weights dequantized
 * to bf16 tiles with bf16 activations (bf16, not f16: activations of large
 * models overflow f16). */
int kc_matmul_forward(struct kc_ctx *c, float *out, const float *x, const struct kc_matrix *w,
                      int n, struct mm_err *err);
/* out += scale * x W^T (LoRA updates). */
int kc_matmul_accumulate(struct kc_ctx *c, float *out, const float *x, const struct kc_matrix *w,
                         int n, float scale, struct mm_err *err);

/* The projections that read the same input (Q, K, V; gate, up) in fewer
 * launches: at decode each matmul is a short kernel, and their launches,
 * not the weight reads, bound a layer.
 *
 * kc_matmul_fusable: whether the count (1 .. KC_MULTI_MAX) matrices share a
 * dtype and row length and n tokens of that dtype take the dot kernels in
 * the context's numerics (see kc_matmul_forward: always in the invariant
 * numerics); then the calls below take one dot launch for all of them
 * (quantized weights: and one quantization of x).
 * kc_matmul_forward_multi: out[m] = x w[m]^T for each m, each result that
 * of kc_matmul_forward (each row summed in the same order); matrices that
 * are not fusable take one kc_matmul_forward each.
 * kc_matmul_swiglu_forward: out = silu(x gate^T) * (x up^T), the results
 * of the two kc_matmul_forward calls followed by kc_swiglu_forward, in one
 * launch whose warps compute matching rows of gate and up (neither product
 * goes to memory). Only where kc_matmul_swiglu_supported (fusable, and
 * gate and up of one shape); -1 otherwise. */
#define KC_MULTI_MAX 3
int kc_matmul_fusable(const struct kc_ctx *c, const struct kc_matrix *const *w, int count, int n);
int kc_matmul_forward_multi(struct kc_ctx *c, float *const *out, const float *x,
                            const struct kc_matrix *const *w, int count, int n, struct mm_err *err);
int kc_matmul_swiglu_supported(const struct kc_ctx *c, const struct kc_matrix *gate,
                               const struct kc_matrix *up, int n);
int kc_matmul_swiglu_forward(struct kc_ctx *c, float *out, const float *x,
                             const struct kc_matrix *gate, const struct kc_matrix *up, int n,
                             struct mm_err *err);

/* out[t, :] = row ids[t] of table, dequantized bit for bit as the CPU does.
 * ids (device) must be in [0, table->rows): the stage checks them. */
int kc_embedding_forward(struct kc_ctx *c, float *out, const int32_t *ids, int n,
                         const struct kc_matrix *table, struct mm_err *err);

/* As k_rmsnorm_forward / k_layernorm_forward; out may be x. */
int kc_rmsnorm_forward(struct kc_ctx *c, float *out, const float *x, const float *weight, int n,
                       int dim, float eps, struct mm_err *err);
int kc_layernorm_forward(struct kc_ctx *c, float *out, const float *x, const float *weight,
                         const float *bias, int n, int dim, float eps, struct mm_err *err);

/* As k_rope_forward; pos (device) holds n positions. head_dim even, at most
 * K_MAX_HEAD_DIM. */
int kc_rope_forward(struct kc_ctx *c, float *x, const int32_t *pos, int n, int n_heads,
                    int head_dim, float theta, enum k_rope_style style, struct mm_err *err);

/* kc_rope_forward of q [n, n_heads * head_dim] and of k [n, n_kv_heads *
 * head_dim], then kc_kv_store (below) of the rotated k and of v, in one
 * launch (at decode each is a short kernel); the same results, q and k
 * rotated in place as well. */
int kc_rope_kv_store(struct kc_ctx *c, float *q, float *k, const float *v, float *k_cache,
                     float *v_cache, const int32_t *slot, const int32_t *pos, int n, int n_heads,
                     int n_kv_heads, int head_dim, float theta, enum k_rope_style style,
                     int64_t slot_stride, struct mm_err *err);

/* Elementwise, as the CPU ops; out may alias an input. */
int kc_swiglu_forward(struct kc_ctx *c, float *out, const float *gate, const float *up, int64_t len,
                      struct mm_err *err);
int kc_gelu_forward(struct kc_ctx *c, float *out, const float *x, int64_t len, struct mm_err *err);
int kc_add_inplace(struct kc_ctx *c, float *x, const float *y, int64_t len, struct mm_err *err);
/* x += y, then out = rmsnorm(x) with weight (out may be y): the residual
 * add and the following norm in one launch, with kc_add_inplace's and
 * kc_rmsnorm_forward's results. x: [n, dim]. */
int kc_add_rmsnorm_forward(struct kc_ctx *c, float *x, const float *y, float *out,
                           const float *weight, int n, int dim, float eps, struct mm_err *err);

/* Row-wise in place, as the CPU ops (the normaliser summed in double). */
int kc_softmax_forward(struct kc_ctx *c, float *x, int n, int dim, struct mm_err *err);
int kc_log_softmax_forward(struct kc_ctx *c, float *x, int n, int dim, struct mm_err *err);

/* As k_attention_forward (one sequence: q [n, n_heads * head_dim], its KV
 * cache k, v [pos0 + n, n_kv_heads * head_dim]). Long runs whose window
 * covers every key go through cuBLAS (scores, masked softmax, values, all
 * f32); the rest through a fused flash-style kernel (key tiles in shared
 * memory, online softmax, the query heads of a KV head sharing each tile),
 * which for few query rows against long caches also splits the keys over
 * blocks and merges the partial results. Not batch-invariant (a row's
 * order depends on n and on the key splits sized from it): the stage takes
 * it in the fast numerics only. */
int kc_attention_forward(struct kc_ctx *c, float *out, const float *q, const float *k,
                         const float *v, int n, int pos0, int n_heads, int n_kv_heads, int head_dim,
                         int window, int causal, struct mm_err *err);

/* Per-slot KV caches: slot s's row for position p of k_cache (v_cache
 * alike) is at k_cache + s * slot_stride + p * kv_dim (floats).
 * kc_kv_store: the n new rows k, v [n, kv_dim] of tokens t into their slot
 * slot[t] at position pos[t] (slot and pos: device arrays).
 * kc_attention_decode: attention of n tokens, any mix of slots, each
 * against its own slot's cache: token t's query heads q [n, n_heads *
 * head_dim] over keys max(0, pos[t] - window + 1) .. pos[t] (window 0: all),
 * causal by position, so every token's own and earlier rows must be stored
 * first. Each token reads its keys itself (where the flash kernel shares
 * key tiles between the tokens of a run), a block per (token, KV head, key
 * split). max_keys >= the most keys any token sees. Invariant numerics: the
 * keys of a token are split every KC_DECODE_SPLIT_KEYS from its first key,
 * whatever max_keys, n or the batch, and the splits merged in their order,
 * so a query row's result depends on its own position, query and cache
 * only: the stage takes it for every batch, prefill included (long batches
 * go in chunks of tokens that bound the partials' workspace). Fast
 * numerics: the splits are sized from max_keys and n to fill the GPU; the
 * stage takes it for runs of up to 8 tokens per sequence. Shapes:
 * kc_attention_decode_supported. */
int kc_kv_store(struct kc_ctx *c, float *k_cache, float *v_cache, const float *k, const float *v,
                const int32_t *slot, const int32_t *pos, int n, int kv_dim, int64_t slot_stride,
                struct mm_err *err);
/* Query heads of one KV head per block (a wider group takes several
 * blocks, each reading the keys), and keys per split in the invariant
 * numerics (also the fast dispatcher's largest: a split's scores sit in
 * shared memory). */
#define KC_DECODE_MAX_GROUP 8
#define KC_DECODE_SPLIT_KEYS 256
int kc_attention_decode_supported(int n_heads, int n_kv_heads, int head_dim);
int kc_attention_decode(struct kc_ctx *c, float *out, const float *q, const float *k_cache,
                        const float *v_cache, const int32_t *slot, const int32_t *pos, int n,
                        int max_keys, int64_t slot_stride, int n_heads, int n_kv_heads,
                        int head_dim, int window, struct mm_err *err);

/* Sampling helpers over n rows of dim values (logits).
 * kc_argmax: ids[t] = index of the largest value of row t, first on ties
 * (as k_argmax; NaNs are skipped, where k_argmax keeps a leading NaN).
 * kc_topk: the k largest of each row, largest first (ties: lower index
 * first) into ids [n, k] and vals [n, k]; NaNs are never chosen, and a row
 * with fewer than k other values pads with id -1. 1 <= k <= dim. */
int kc_argmax(struct kc_ctx *c, int32_t *ids, const float *x, int n, int dim, struct mm_err *err);
int kc_topk(struct kc_ctx *c, int32_t *ids, float *vals, const float *x, int n, int dim, int k,
            struct mm_err *err);

/* ---- Training (the CUDA trainer, worker/train/cuda) ----
 * The backward ops follow the CPU ops of the same names (kernels.h), on
 * device memory; their sums run in a fixed order, so a run gives the same
 * bits every time (not the CPU's bits: tests compare within f32 rounding). */

/* Row-major f32 C = alpha op(A) op(B) + beta C through cuBLAS in full f32:
 * op(A) is [m, k] (A stored [m, k], or [k, m] with trans_a), op(B) [k, n];
 * lda, ldb, ldc: the row strides in floats. */
int kc_gemm_f32(struct kc_ctx *c, int trans_a, int trans_b, int m, int n, int k, float alpha,
                const float *a, int lda, const float *b, int ldb, float beta, float *out, int ldc,
                struct mm_err *err);

/* As k_rmsnorm_backward (accumulates into dx), k_rope_backward,
 * k_swiglu_backward and k_cross_entropy_backward. */
int kc_rmsnorm_backward(struct kc_ctx *c, float *dx, const float *dy, const float *x,
                        const float *weight, int n, int dim, float eps, struct mm_err *err);
int kc_rope_backward(struct kc_ctx *c, float *dx, const int32_t *pos, int n, int n_heads,
                     int head_dim, float theta, enum k_rope_style style, struct mm_err *err);
int kc_swiglu_backward(struct kc_ctx *c, float *dgate, float *dup, const float *dout,
                       const float *gate, const float *up, int64_t len, struct mm_err *err);
int kc_cross_entropy_backward(struct kc_ctx *c, float *logits, float *loss, const int32_t *target,
                              const float *weight, int n, int vocab, float grad_scale,
                              struct mm_err *err);

/* Attention of one training sequence (k_attention_train_forward's shapes
 * and mask), keeping the probabilities probs [n_heads, n, n] instead of the
 * log-sum-exp; the backward overwrites dq, dk, dv given dout, with scratch
 * of n * n floats. */
int kc_attention_train_forward(struct kc_ctx *c, float *out, float *probs, const float *q,
                               const float *k, const float *v, int n, int n_heads, int n_kv_heads,
                               int head_dim, int window, struct mm_err *err);
int kc_attention_backward(struct kc_ctx *c, float *dq, float *dk, float *dv, const float *dout,
                          const float *probs, const float *q, const float *k, const float *v, int n,
                          int n_heads, int n_kv_heads, int head_dim, float *scratch,
                          struct mm_err *err);

/* out (= or += with accumulate) x with LoRA dropout p: element (t, col)
 * dropped where train_rng_uniform(key, module, pos[t] * in + col) < p,
 * else scaled by 1 / (1 - p): the CPU trainer's mask. x, out: [n, in]. */
int kc_dropout(struct kc_ctx *c, float *out, const float *x, const int32_t *pos, int n, int in,
               uint64_t key, uint64_t module, float p, int accumulate, struct mm_err *err);
/* out[i] = x[rows[i]] / out[rows[i]] = x[i], rows of dim floats. */
int kc_gather_rows(struct kc_ctx *c, float *out, const float *x, const int32_t *rows, int n_rows,
                   int dim, struct mm_err *err);
int kc_scatter_rows(struct kc_ctx *c, float *out, const float *x, const int32_t *rows, int n_rows,
                    int dim, struct mm_err *err);
/* Trainable token rows: x[t] = rows[map[t]] where map[t] >= 0; the
 * backward adds each token's dx row to its row's gradient, in token order. */
int kc_token_rows_forward(struct kc_ctx *c, float *x, const int32_t *map, const float *rows, int n,
                          int dim, struct mm_err *err);
int kc_token_rows_backward(struct kc_ctx *c, float *grad, const float *dx, const int32_t *map,
                           int n, int n_tokens, int dim, struct mm_err *err);
/* Columns ids[0..n_ids) of logits [n, vocab]: set from cols [n, n_ids], or
 * copied into cols (and zeroed in logits with zero). */
int kc_columns_set(struct kc_ctx *c, float *logits, const float *cols, const int32_t *ids, int n,
                   int n_ids, int vocab, struct mm_err *err);
int kc_columns_take(struct kc_ctx *c, float *cols, float *logits, const int32_t *ids, int n,
                    int n_ids, int vocab, int zero, struct mm_err *err);

#ifdef __cplusplus
}
#endif

#endif
