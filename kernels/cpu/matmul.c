/* Matrix multiplication out = x W^T for weights in any mm_dtype: the
 * dispatch, the driver that cuts a matmul into tiles for the threads, and
 * the float-weight path.
 *
 * Every output element is a dot product computed by the level's kernel in
 * one fixed order of operations, whatever the number of tokens in the call
 * (kernels.h): decode (one token, bound by reading the weights) and prefill
 * (many tokens, bound by arithmetic) run the same kernels, prefill in tiles
 * of several rows x several tokens that reuse each loaded weight and
 * activation vector. No BLAS: an sgemm's summation order changes with the
 * matrix shapes, the thread count and the CPU it picks kernels for. */
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

static void matmul(float *out, const float *x, const struct k_matrix *w, int n, float alpha,
                   int accumulate)
{
    if (w->dtype == MM_F32 || w->dtype == MM_F16 || w->dtype == MM_BF16) {
        k_matmul_fdots(out, x, w, n, alpha, accumulate, k_fdot_impls[0]);
        return;
    }
    if (k_matmul_qdots(out, x, w, n, alpha, accumulate, k_qdot_impls[0]) == 0) return;
    /* No memory for the whole batch's quantized activations: one token at a
     * time needs a few KB and gives the same bits. */
    for (int t = 0; t < n; t++) {
        if (k_matmul_qdots(out + t * w->rows, x + t * w->cols, w, 1, alpha, accumulate,
                           k_qdot_impls[0]) != 0) {
            fprintf(stderr, "memllm: out of memory in a matmul\n");
            abort();
        }
    }
}

void k_matmul_forward(float *out, const float *x, const struct k_matrix *w, int n)
{
    matmul(out, x, w, n, 1.0f, 0);
}

void k_matmul_accumulate(float *out, const float *x, const struct k_matrix *w, int n, float scale)
{
    matmul(out, x, w, n, scale, 1);
}

/* Cache blocking: rows in blocks of ROW_BLOCK_BYTES of weights, which stay
 * in L2 while every token passes over them; tokens in chunks whose
 * activations stay in L1 (half of a 32 KB L1, the rest for the weight tile
 * and the stack) while the block's rows pass over them; a task is ROW_CHUNK
 * rows of a block for one token chunk. Without the row blocks, a matrix
 * larger than the caches (an LM head) would be read from memory again for
 * every token chunk. */
#define ROW_BLOCK_BYTES (256 << 10)
#define CHUNK_BYTES (16 << 10)
#define ROW_CHUNK 16

/* The tiles of one task: tokens [t0, t1) x rows [r0, r1). */
static void run_task(float *out, int64_t rows, float alpha, int accumulate,
                     const struct k_tiler *tl, int t0, int t1, int64_t r0, int64_t r1)
{
    float res[K_DOT_MAX_ROWS * K_DOT_MAX_TOKENS];
    for (int64_t r = r0; r < r1; r += tl->rows) {
        int nr = r1 - r < tl->rows ? (int)(r1 - r) : tl->rows;
        for (int t = t0; t < t1; t += tl->tokens) {
            int nt = t1 - t < tl->tokens ? t1 - t : tl->tokens;
            tl->tile(tl->ctx, r, nr, t, nt, res);
            for (int i = 0; i < nr; i++)
                for (int j = 0; j < nt; j++)
                    k_store(out + (int64_t)(t + j) * rows + r + i, res[i * nt + j], alpha,
                            accumulate);
        }
    }
}

/* How a matmul is cut: chunks of `chunk` tokens, tasks of `rchunk` rows,
 * blocks of `block_chunks` tasks' rows. */
struct grid {
    int64_t chunk, rchunk, block_chunks, blocks;
    int token_chunks;
};

static struct grid make_grid(const struct k_matrix *w, int n, const struct k_tiler *tl)
{
    struct grid g;
    g.chunk = (int64_t)(CHUNK_BYTES / tl->act_bytes);
    g.chunk = g.chunk < tl->tokens ? tl->tokens : g.chunk - g.chunk % tl->tokens;
    g.token_chunks = (int)((n + g.chunk - 1) / g.chunk);
    /* whole tiles of rows per task */
    g.rchunk = (ROW_CHUNK + tl->rows - 1) / tl->rows * tl->rows;
    /* blocks of equal size, so that a static split of the iterations is a
     * fair split of the work */
    int64_t row_chunks = (w->rows + g.rchunk - 1) / g.rchunk;
    int64_t max_chunks = (int64_t)(ROW_BLOCK_BYTES / w->row_bytes) / g.rchunk;
    max_chunks = max_chunks < 1 ? 1 : max_chunks;
    g.blocks = (row_chunks + max_chunks - 1) / max_chunks;
    g.block_chunks = (row_chunks + g.blocks - 1) / g.blocks;
    return g;
}

void k_matmul_run(float *out, const struct k_matrix *w, int n, float alpha, int accumulate,
                  const struct k_tiler *tl)
{
    int64_t rows = w->rows;
    struct grid g = make_grid(w, n, tl);
    /* static: a thread takes a run of blocks (or of a block's token chunks),
     * so the rows it reads stay in its L2 */
#pragma omp parallel for collapse(3) schedule(static) if (rows * w->cols * n >= K_PARALLEL_MIN_WORK)
    for (int64_t b = 0; b < g.blocks; b++) {
        for (int tc = 0; tc < g.token_chunks; tc++) {
            for (int64_t rc = 0; rc < g.block_chunks; rc++) {
                int64_t r0 = (b * g.block_chunks + rc) * g.rchunk;
                if (r0 >= rows) continue;
                int64_t r1 = r0 + g.rchunk < rows ? r0 + g.rchunk : rows;
                int t0 = (int)(tc * g.chunk), t1 = (int)(t0 + g.chunk < n ? t0 + g.chunk : n);
                run_task(out, rows, alpha, accumulate, tl, t0, t1, r0, r1);
            }
        }
    }
}

struct fdots_ctx {
    const struct k_fdot_impl *impl;
    const struct k_matrix *w;
    const float *x;
};

static void fdots_tile(const void *ctx, int64_t r0, int nr, int t0, int nt, float *res)
{
    const struct fdots_ctx *c = ctx;
    const char *rows = (const char *)c->w->data + r0 * (int64_t)c->w->row_bytes;
    c->impl->dot(c->w->dtype, rows, c->w->row_bytes, nr, c->x + t0 * c->w->cols, c->w->cols, nt,
                 res);
}

void k_matmul_fdots(float *out, const float *x, const struct k_matrix *w, int n, float alpha,
                    int accumulate, const struct k_fdot_impl *impl)
{
    struct fdots_ctx c = {impl, w, x};
    struct k_tiler tl = {impl->rows, impl->tokens, (size_t)w->cols * sizeof(float), fdots_tile, &c};
    k_matmul_run(out, w, n, alpha, accumulate, &tl);
}
