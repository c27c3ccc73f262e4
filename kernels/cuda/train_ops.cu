/* The trainer's small kernels around the products: LoRA dropout with the
 * CPU trainer's counter-based masks (common/train_rng.h, so both backends
 * drop the same elements), moving the rows of the LM head's target tokens
 * in and out, and the trainable token rows (PEFT's trainable_token_indices)
 * in the embedding and the tied LM head. Each output element is written by
 * one thread in a fixed order: the same bits on every run. */
#include "kc_device.cuh"
#include "train_rng.h"

#define THREADS 256

static __global__ void dropout_kernel(float *out, const float *x, const int32_t *pos, int n, int in,
                                      uint64_t key, uint64_t module, float p, float keep,
                                      int accumulate)
{
    const int64_t len = (int64_t)n * in;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < len;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t t = i / in, col = i % in;
        const uint64_t at = (uint64_t)pos[t] * (uint64_t)in + (uint64_t)col;
        const float v = train_rng_uniform(key, module, at) < p ? 0.0f : x[i] * keep;
        if (accumulate)
            out[i] += v;
        else
            out[i] = v;
    }
}

extern "C" int kc_dropout(struct kc_ctx *c, float *out, const float *x, const int32_t *pos, int n,
                          int in, uint64_t key, uint64_t module, float p, int accumulate,
                          struct mm_err *err)
{
    const int64_t len = (int64_t)n * in;
    if (len <= 0) return 0;
    const float keep = 1.0f / (1.0f - p);
    dropout_kernel<<<kc_grid(len, THREADS), THREADS, 0, c->stream>>>(out, x, pos, n, in, key,
                                                                     module, p, keep, accumulate);
    return kc_launched("dropout", err);
}

/* scatter 0: out[i] = x[rows[i]]; scatter 1: out[rows[i]] = x[i]. */
static __global__ void rows_kernel(float *out, const float *x, const int32_t *rows, int dim,
                                   int scatter)
{
    const int64_t a = (int64_t)blockIdx.x * dim, b = (int64_t)rows[blockIdx.x] * dim;
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        if (scatter)
            out[b + i] = x[a + i];
        else
            out[a + i] = x[b + i];
}

extern "C" int kc_gather_rows(struct kc_ctx *c, float *out, const float *x, const int32_t *rows,
                              int n_rows, int dim, struct mm_err *err)
{
    if (n_rows <= 0) return 0;
    rows_kernel<<<n_rows, THREADS, 0, c->stream>>>(out, x, rows, dim, 0);
    return kc_launched("gather rows", err);
}

extern "C" int kc_scatter_rows(struct kc_ctx *c, float *out, const float *x, const int32_t *rows,
                               int n_rows, int dim, struct mm_err *err)
{
    if (n_rows <= 0) return 0;
    rows_kernel<<<n_rows, THREADS, 0, c->stream>>>(out, x, rows, dim, 1);
    return kc_launched("scatter rows", err);
}

/* Token t's embedding row becomes trainable row map[t] where map[t] >= 0. */
static __global__ void token_rows_kernel(float *x, const int32_t *map, const float *rows, int dim)
{
    const int j = map[blockIdx.x];
    if (j < 0) return;
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        x[(int64_t)blockIdx.x * dim + i] = rows[(int64_t)j * dim + i];
}

extern "C" int kc_token_rows_forward(struct kc_ctx *c, float *x, const int32_t *map,
                                     const float *rows, int n, int dim, struct mm_err *err)
{
    if (n <= 0) return 0;
    token_rows_kernel<<<n, THREADS, 0, c->stream>>>(x, map, rows, dim);
    return kc_launched("token rows", err);
}

/* grad row j += the dx rows of the tokens t with map[t] == j, in token order. */
static __global__ void token_rows_backward_kernel(float *grad, const float *dx, const int32_t *map,
                                                  int n, int dim)
{
    const int j = blockIdx.x;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        float s = grad[(int64_t)j * dim + i];
        for (int t = 0; t < n; t++)
            if (map[t] == j) s += dx[(int64_t)t * dim + i];
        grad[(int64_t)j * dim + i] = s;
    }
}

extern "C" int kc_token_rows_backward(struct kc_ctx *c, float *grad, const float *dx,
                                      const int32_t *map, int n, int n_tokens, int dim,
                                      struct mm_err *err)
{
    if (n <= 0 || n_tokens <= 0) return 0;
    token_rows_backward_kernel<<<n_tokens, THREADS, 0, c->stream>>>(grad, dx, map, n, dim);
    return kc_launched("token rows backward", err);
}

/* mode 0: logits[t, ids[j]] = cols[t, j]; mode 1: cols[t, j] = logits[t,
 * ids[j]]; mode 2: that, and logits[t, ids[j]] = 0. */
static __global__ void columns_kernel(float *logits, float *cols, const int32_t *ids, int n_ids,
                                      int vocab, int mode)
{
    float *row = logits + (int64_t)blockIdx.x * vocab;
    float *cr = cols + (int64_t)blockIdx.x * n_ids;
    for (int j = threadIdx.x; j < n_ids; j += blockDim.x) {
        if (mode == 0) {
            row[ids[j]] = cr[j];
        } else {
            cr[j] = row[ids[j]];
            if (mode == 2) row[ids[j]] = 0.0f;
        }
    }
}

extern "C" int kc_columns_set(struct kc_ctx *c, float *logits, const float *cols,
                              const int32_t *ids, int n, int n_ids, int vocab, struct mm_err *err)
{
    if (n <= 0 || n_ids <= 0) return 0;
    columns_kernel<<<n, 64, 0, c->stream>>>(logits, (float *)cols, ids, n_ids, vocab, 0);
    return kc_launched("set columns", err);
}

extern "C" int kc_columns_take(struct kc_ctx *c, float *cols, float *logits, const int32_t *ids,
                               int n, int n_ids, int vocab, int zero, struct mm_err *err)
{
    if (n <= 0 || n_ids <= 0) return 0;
    columns_kernel<<<n, 64, 0, c->stream>>>(logits, cols, ids, n_ids, vocab, zero ? 2 : 1);
    return kc_launched("take columns", err);
}
