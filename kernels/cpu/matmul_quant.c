/* Matmul with q8_0 / q4_0 / q4_1 weights by integer dot products, as
 * llama.cpp does it: the activations are quantized to 8-bit blocks once per
 * call, then every weight row is multiplied block by block in integers and
 * scaled in float, in tiles of a few rows x a few tokens (matmul.c's
 * driver). A token's quantized row depends on that token alone, and the
 * kernels sum each output in one fixed order, so results do not depend on
 * the batch. */
#include <stdlib.h>

#include "internal.h"

int k_qact_init(struct k_qact *a, const float *x, int n, int64_t cols, enum mm_dtype wtype,
                const struct k_qdot_impl *impl)
{
    int64_t nb = cols / MM_QBLOCK;
    size_t lane_stride = impl->lane_bytes ? impl->lane_bytes(cols) : 0;
    /* one allocation, the float arrays first so they stay aligned, then the
     * level's rows (a multiple of 64 bytes each) */
    size_t floats = (size_t)(2 * n * nb), plain = floats * sizeof(float) + (size_t)(n * cols);
    size_t lanes_at = (plain + 63) & ~(size_t)63;
    size_t total = (lanes_at + (size_t)n * lane_stride + 63) & ~(size_t)63;
    char *buf = aligned_alloc(64, total);
    if (!buf) return -1;
    *a = (struct k_qact){.cols = cols, .n = n, .d = (float *)buf, .s = (float *)buf + n * nb};
    a->qs = (int8_t *)(buf + floats * sizeof(float));
    if (lane_stride) {
        a->lanes = buf + lanes_at;
        a->lane_stride = lane_stride;
    }
#pragma omp parallel for schedule(static) if (n > 1)
    for (int t = 0; t < n; t++) {
        k_quantize_act_row(x + t * cols, cols, a->qs + t * cols, a->d + t * nb, a->s + t * nb);
        if (lane_stride) impl->prepare_lanes(a, t, wtype);
    }
    return 0;
}

void k_qact_free(struct k_qact *a)
{
    free(a->d);
}

struct qdots_ctx {
    k_qdot_fn dot;
    const struct k_matrix *w;
    const struct k_qact *a;
};

static void qdots_tile(const void *ctx, int64_t r0, int nr, int t0, int nt, float *res)
{
    const struct qdots_ctx *c = ctx;
    const char *rows = (const char *)c->w->data + r0 * (int64_t)c->w->row_bytes;
    c->dot(c->w->dtype, rows, c->w->row_bytes, nr, c->a, t0, nt, res);
}

int k_matmul_qdots(float *out, const float *x, const struct k_matrix *w, int n, float alpha,
                   int accumulate, const struct k_qdot_impl *impl)
{
    struct k_qact a;
    if (k_qact_init(&a, x, n, w->cols, w->dtype, impl) != 0) return -1;
    struct qdots_ctx c = {impl->dot, w, &a};
    /* the bytes a kernel reads per token: its own layout, or qs, d and s */
    size_t act_bytes = a.lanes ? a.lane_stride : (size_t)w->cols * 5 / 4;
    struct k_tiler tl = {impl->rows, impl->tokens, act_bytes, qdots_tile, &c};
    k_matmul_run(out, w, n, alpha, accumulate, &tl);
    k_qact_free(&a);
    return 0;
}
