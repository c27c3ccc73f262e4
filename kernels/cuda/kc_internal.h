/* Internals of the CUDA backend, shared by its C and CUDA files and with the
 * tests that run each matmul path whichever the dispatcher would pick.
 * The engine includes kernels_cuda.h, never this. */
#ifndef MEMLLM_KERNELS_CUDA_INTERNAL_H
#define MEMLLM_KERNELS_CUDA_INTERNAL_H

#include <cublas_v2.h>

#include "kernels_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

struct kc_ctx {
    int device;
    int sm_count;
    size_t smem_optin; /* the most dynamic shared memory a block may ask for */
    cudaStream_t stream;
    cublasHandle_t blas;
    void *work; /* workspace of the ops; stream order keeps its users apart */
    size_t work_bytes;
    enum kc_numerics numerics; /* kc_ctx_set_numerics */
};

/* 0 when e is cudaSuccess; otherwise -1 with "what: CUDA error text". */
int kc_cuda_ok(cudaError_t e, const char *what, struct mm_err *err);
int kc_blas_ok(cublasStatus_t s, const char *what, struct mm_err *err);
/* After a kernel launch: whether it was accepted. */
int kc_launched(const char *what, struct mm_err *err);

/* The context's workspace with at least `bytes`, 256-byte aligned; NULL
 * with err set when it cannot grow. The previous contents are lost when it
 * grows (growing frees the old buffer, which waits for its users). */
void *kc_workspace(struct kc_ctx *c, size_t bytes, struct mm_err *err);

/* The two matmul paths: out = alpha x W^T (accumulate = 0) or
 * out += alpha x W^T (accumulate = 1).
 * kc_matmul_dots: dot-product kernels over the stored weights, any n (in
 * launches of KC_DOTS_MAX_TOKENS tokens).
 * kc_matmul_gemm: cuBLAS (tiles dequantized to bf16 for quantized weights). */
/* Whether the dispatcher (kc_matmul_forward) takes the dot kernels for n
 * tokens of dtype t in the context's numerics (always in the invariant
 * ones); else cuBLAS. */
int kc_matmul_uses_dots(const struct kc_ctx *c, enum mm_dtype t, int n);
int kc_matmul_dots(struct kc_ctx *c, float *out, const float *x, const struct kc_matrix *w, int n,
                   float alpha, int accumulate, struct mm_err *err);
int kc_matmul_gemm(struct kc_ctx *c, float *out, const float *x, const struct kc_matrix *w, int n,
                   float alpha, int accumulate, struct mm_err *err);

/* Attention with the key splits chosen by the caller (1: no split), so the
 * tests run the merge on short caches too. */
int kc_attention_split(struct kc_ctx *c, float *out, const float *q, const float *k, const float *v,
                       int n, int pos0, int n_heads, int n_kv_heads, int head_dim, int window,
                       int causal, int splits, struct mm_err *err);

/* The partials of `splits` key splits over `rows` (token, head) rows in the
 * context's workspace: part_acc [splits, rows, head_dim] and part_ml
 * [splits, rows, 2]. */
int kc_attention_partials(struct kc_ctx *c, int splits, int64_t rows, int head_dim,
                          float **part_acc, float **part_ml, struct mm_err *err);
/* out = the merge of key splits' partials (attention.cu's layout: part_acc
 * [splits, rows, head_dim], part_ml [splits, rows, 2] max and sum), shared
 * by the prefill and decode kernels. */
int kc_attention_merge(struct kc_ctx *c, float *out, const float *part_acc, const float *part_ml,
                       int64_t rows, int head_dim, int splits, struct mm_err *err);

/* Attention of one sequence's run through cuBLAS (kc_attention_forward's
 * arguments and result), and the workspace bytes its scores take. */
size_t kc_attention_gemm_bytes(int n, int pos0, int n_kv_heads);
int kc_attention_gemm(struct kc_ctx *c, float *out, const float *q, const float *k, const float *v,
                      int n, int pos0, int n_heads, int n_kv_heads, int head_dim, int window,
                      int causal, struct mm_err *err);

/* Decode attention with the keys per split chosen by the caller (in any
 * numerics; the invariant dispatcher passes KC_DECODE_SPLIT_KEYS), so the
 * tests run splits and their merge on short caches too. One launch for
 * the n tokens (n <= 65535) and the merge when there are several splits;
 * a row computed with one split and a row merged from one non-empty
 * split and empty ones get the same bits. */
int kc_attention_decode_split(struct kc_ctx *c, float *out, const float *q, const float *k_cache,
                              const float *v_cache, const int32_t *slot, const int32_t *pos, int n,
                              int max_keys, int64_t slot_stride, int n_heads, int n_kv_heads,
                              int head_dim, int window, int split_keys, struct mm_err *err);

/* The invariant numerics' decode attention (kc_attention_decode's choice
 * there) with the tokens in chunks of chunk_tokens (0: sized from the
 * workspace the partials may take), so the tests run the chunking on short
 * batches. */
int kc_attention_decode_invariant(struct kc_ctx *c, float *out, const float *q,
                                  const float *k_cache, const float *v_cache, const int32_t *slot,
                                  const int32_t *pos, int n, int max_keys, int64_t slot_stride,
                                  int n_heads, int n_kv_heads, int head_dim, int window,
                                  int chunk_tokens, struct mm_err *err);

#ifdef __cplusplus
}
#endif

#endif
