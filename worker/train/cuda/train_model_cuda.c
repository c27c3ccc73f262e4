/* The CUDA twin of train_model.c: the same forward and backward, op for
 * op, on the device (see train_model_cuda.h). Products are row-major f32
 * GEMMs: y = x W^T is kc_gemm_f32(0, 1, ...), dx = dy W is (0, 0, ...),
 * a weight gradient dy^T x is (1, 0, ...). */
#include "train_model_cuda.h"

#include <stdlib.h>
#include <string.h>

#include "kernels_cuda.h"
#include "train_model.h"

/* What one layer's forward keeps for its backward (device pointers). */
struct layer_acts {
    float *x_in, *xn1, *q, *k, *v, *att, *probs, *x_mid, *xn2, *gate, *up, *h;
    float *u[LIN_COUNT]; /* A drop(x) of the trained modules, [n, r] */
};

struct train_model_cuda {
    const struct model *m;
    struct train_params *p;
    int max_tokens;
    struct kc_ctx *ctx;
    float *wbuf;             /* every base matrix in f32 [out, in] */
    float **w;               /* [n_layers * LIN_COUNT + 1] into wbuf, the LM head last */
    struct kc_matrix embd;   /* the embedding as stored */
    float *norms;            /* attn and ffn norm of each layer, then the output norm */
    float *value, *grad;     /* [count] each, one allocation */
    struct layer_acts *acts; /* [n_layers] */
    float *arena;            /* activations and scratch */
    int32_t *ibuf;           /* the index arrays below */
    float *xf, *dx, *dxn, *tmp, *dtmp, *xd, *dq, *dk, *dv, *datt, *dgate, *dup, *dh, *g;
    float *att_scratch, *hx, *hxn, *hdxn, *hu, *hcols, *logits, *hloss, *hw;
    int32_t *ids, *pos, *rows, *htarget, *map, *token_ids;
    int32_t *h_rows, *h_htarget, *h_map; /* host staging, [max_tokens] */
    float *h_loss, *h_ones;
};

static size_t w_index(const struct model *m, int layer, int lin)
{
    return lin == TRAIN_LM_HEAD ? (size_t)m->cfg.n_layers * LIN_COUNT
                                : (size_t)layer * LIN_COUNT + (size_t)lin;
}

static int head_uses_rows(const struct train_model_cuda *tm)
{
    return tm->p->rows_t >= 0 && tm->m->cfg.tied_embeddings;
}

/* Dequantizes each base matrix to f32 on the host, one at a time, and
 * uploads it. */
static int upload_base(struct train_model_cuda *tm, struct mm_err *err)
{
    const struct model *m = tm->m;
    size_t n = (size_t)m->cfg.n_layers * LIN_COUNT + 1, total = 0, largest = 0;
    tm->w = calloc(n, sizeof(*tm->w));
    if (!tm->w) goto oom;
    for (size_t i = 0; i < n; i++) {
        const struct k_matrix *w =
            i + 1 == n ? &m->lm_head : &m->layers[i / LIN_COUNT].lin[i % LIN_COUNT];
        size_t floats = (size_t)(w->rows * w->cols);
        total += floats;
        if (floats > largest) largest = floats;
    }
    tm->wbuf = kc_alloc(total * sizeof(float), err);
    if (!tm->wbuf) return -1;
    float *host = malloc(largest * sizeof(float));
    if (!host) goto oom;
    float *at = tm->wbuf;
    for (size_t i = 0; i < n; i++) {
        const struct k_matrix *w =
            i + 1 == n ? &m->lm_head : &m->layers[i / LIN_COUNT].lin[i % LIN_COUNT];
        for (int64_t r = 0; r < w->rows; r++)
            mm_dequantize_row(w->dtype, (const char *)w->data + (size_t)r * w->row_bytes,
                              host + (size_t)r * w->cols, w->cols);
        size_t floats = (size_t)(w->rows * w->cols);
        /* kc_upload from pageable memory copies before it returns */
        if (kc_upload(tm->ctx, at, host, floats * sizeof(float), err)) {
            free(host);
            return -1;
        }
        tm->w[i] = at;
        at += floats;
    }
    free(host);
    return 0;
oom:
    mm_err_set(err, "CUDA trainer: out of host memory for the f32 base of %s", m->path);
    return -1;
}

static int upload_norms(struct train_model_cuda *tm, struct mm_err *err)
{
    const struct model_config *c = &tm->m->cfg;
    size_t dim = (size_t)c->dim;
    tm->norms = kc_alloc((2 * (size_t)c->n_layers + 1) * dim * sizeof(float), err);
    if (!tm->norms) return -1;
    for (int l = 0; l < c->n_layers; l++)
        if (kc_upload(tm->ctx, tm->norms + 2 * l * dim, tm->m->layers[l].attn_norm,
                      dim * sizeof(float), err) ||
            kc_upload(tm->ctx, tm->norms + (2 * l + 1) * dim, tm->m->layers[l].ffn_norm,
                      dim * sizeof(float), err))
            return -1;
    return kc_upload(tm->ctx, tm->norms + 2 * (size_t)c->n_layers * dim, tm->m->out_norm,
                     dim * sizeof(float), err);
}

/* Carves the activations and scratch from one allocation; with carve 0
 * only counts the floats. */
static size_t carve(struct train_model_cuda *tm, int carve_now)
{
    const struct model_config *c = &tm->m->cfg;
    size_t n = (size_t)tm->max_tokens, dim = (size_t)c->dim, qd = (size_t)model_config_q_dim(c);
    size_t kvd = (size_t)model_config_kv_dim(c), ffn = (size_t)c->ffn_dim;
    size_t wd = (size_t)train_wide_dim(c), r = (size_t)train_max_rank(tm->p),
           vocab = (size_t)c->vocab_size;
    size_t nt = tm->p->cfg.n_tokens > 0 ? (size_t)tm->p->cfg.n_tokens : 1;
    size_t nn = n * n, total = 0;
    float *f = tm->arena;
#define TAKE(dst, floats)                                                                          \
    do {                                                                                           \
        if (carve_now) (dst) = f + total;                                                          \
        total += (floats);                                                                         \
    } while (0)
    for (int l = 0; l < c->n_layers; l++) {
        struct layer_acts *a = &tm->acts[l];
        TAKE(a->x_in, n * dim);
        TAKE(a->xn1, n * dim);
        TAKE(a->q, n * qd);
        TAKE(a->k, n * kvd);
        TAKE(a->v, n * kvd);
        TAKE(a->att, n * qd);
        TAKE(a->probs, (size_t)c->n_heads * nn);
        TAKE(a->x_mid, n * dim);
        TAKE(a->xn2, n * dim);
        TAKE(a->gate, n * ffn);
        TAKE(a->up, n * ffn);
        TAKE(a->h, n * ffn);
        for (int lin = 0; lin < LIN_COUNT; lin++)
            TAKE(a->u[lin], n * (size_t)train_module_at(tm->p, l, lin)->rank);
    }
    TAKE(tm->xf, n * dim);
    TAKE(tm->dx, n * dim);
    TAKE(tm->dxn, n * wd);
    TAKE(tm->tmp, n * dim);
    TAKE(tm->dtmp, n * wd);
    TAKE(tm->xd, n * wd);
    TAKE(tm->dq, n * qd);
    TAKE(tm->dk, n * kvd);
    TAKE(tm->dv, n * kvd);
    TAKE(tm->datt, n * qd);
    TAKE(tm->dgate, n * ffn);
    TAKE(tm->dup, n * ffn);
    TAKE(tm->dh, n * ffn);
    TAKE(tm->g, n * r);
    TAKE(tm->att_scratch, nn);
    TAKE(tm->hx, n * dim);
    TAKE(tm->hxn, n * dim);
    TAKE(tm->hdxn, n * dim);
    TAKE(tm->hu, n * r);
    TAKE(tm->hcols, n * nt);
    TAKE(tm->logits, n * vocab);
    TAKE(tm->hloss, n);
    TAKE(tm->hw, n);
#undef TAKE
    return total;
}

static int alloc_all(struct train_model_cuda *tm, struct mm_err *err)
{
    size_t n = (size_t)tm->max_tokens, count = tm->p->count ? tm->p->count : 1;
    tm->acts = calloc((size_t)tm->m->cfg.n_layers, sizeof(*tm->acts));
    tm->h_rows = malloc(n * sizeof(int32_t));
    tm->h_htarget = malloc(n * sizeof(int32_t));
    tm->h_map = malloc(n * sizeof(int32_t));
    tm->h_loss = malloc(n * sizeof(float));
    tm->h_ones = malloc(n * sizeof(float));
    if (!tm->acts || !tm->h_rows || !tm->h_htarget || !tm->h_map || !tm->h_loss || !tm->h_ones) {
        mm_err_set(err, "CUDA trainer: out of host memory");
        return -1;
    }
    size_t floats = carve(tm, 0);
    tm->arena = kc_alloc(floats * sizeof(float), err);
    tm->value = kc_alloc(2 * count * sizeof(float), err);
    tm->ibuf = kc_alloc((5 * n + TRAIN_MAX_TOKENS) * sizeof(int32_t), err);
    if (!tm->arena || !tm->value || !tm->ibuf) {
        mm_err_prefix(err, "CUDA trainer, %zu MB of activations for %d tokens",
                      floats * sizeof(float) >> 20, tm->max_tokens);
        return -1;
    }
    carve(tm, 1);
    tm->grad = tm->value + count;
    tm->ids = tm->ibuf;
    tm->pos = tm->ids + n;
    tm->rows = tm->pos + n;
    tm->htarget = tm->rows + n;
    tm->map = tm->htarget + n;
    tm->token_ids = tm->map + n;
    for (size_t i = 0; i < n; i++) {
        tm->h_rows[i] = (int32_t)i;
        tm->h_ones[i] = 1.0f;
    }
    /* positions 0..n-1 (the layers' dropout), the head's unit row weights */
    return kc_upload(tm->ctx, tm->pos, tm->h_rows, n * sizeof(int32_t), err) ||
                   kc_upload(tm->ctx, tm->hw, tm->h_ones, n * sizeof(float), err) ||
                   kc_upload(tm->ctx, tm->token_ids, tm->p->cfg.token_ids,
                             TRAIN_MAX_TOKENS * sizeof(int32_t), err)
               ? -1
               : 0;
}

struct train_model_cuda *train_model_cuda_init(const struct model *m, struct train_params *p,
                                               int max_tokens, int device, struct mm_err *err)
{
    if (max_tokens <= 0 || max_tokens > m->cfg.max_positions) {
        mm_err_set(err, "%s: examples of %d tokens do not fit the model's %d positions", m->path,
                   max_tokens, m->cfg.max_positions);
        return NULL;
    }
    struct train_model_cuda *tm = calloc(1, sizeof(*tm));
    if (!tm) {
        mm_err_set(err, "CUDA trainer: out of memory");
        return NULL;
    }
    tm->m = m;
    tm->p = p;
    tm->max_tokens = max_tokens;
    tm->ctx = kc_ctx_create(device, err);
    if (!tm->ctx || upload_base(tm, err) || upload_norms(tm, err) ||
        kc_matrix_upload(tm->ctx, &tm->embd, &m->tok_embd, err) || alloc_all(tm, err) ||
        train_model_cuda_refresh(tm, err) || kc_sync(tm->ctx, err)) {
        train_model_cuda_free(tm);
        return NULL;
    }
    return tm;
}

void train_model_cuda_free(struct train_model_cuda *tm)
{
    if (!tm) return;
    kc_free(tm->wbuf);
    kc_free(tm->norms);
    kc_matrix_free(&tm->embd);
    kc_free(tm->value);
    kc_free(tm->arena);
    kc_free(tm->ibuf);
    if (tm->ctx) kc_ctx_free(tm->ctx);
    free(tm->w);
    free(tm->acts);
    free(tm->h_rows);
    free(tm->h_htarget);
    free(tm->h_map);
    free(tm->h_loss);
    free(tm->h_ones);
    free(tm);
}

int train_model_cuda_refresh(struct train_model_cuda *tm, struct mm_err *err)
{
    return kc_upload(tm->ctx, tm->value, tm->p->value, tm->p->count * sizeof(float), err);
}

static float *param(const struct train_model_cuda *tm, float *base, int tensor)
{
    return base + tm->p->t[tensor].off;
}

/* The dropout stream of a module, as train_model.c's hash coordinates. */
static uint64_t module_id(int layer, int lin)
{
    return (uint64_t)layer * 8 + (uint64_t)lin;
}

/* x with the module's dropout (x itself when there is none). */
static const float *dropped(struct train_model_cuda *tm, uint64_t key, int layer, int lin,
                            const float *x, int n, int in, const int32_t *pos, struct mm_err *err)
{
    float p = tm->p->cfg.dropout;
    if (p <= 0.0f) return x;
    if (kc_dropout(tm->ctx, tm->xd, x, pos, n, in, key, module_id(layer, lin), p, 0, err))
        return NULL;
    return tm->xd;
}

/* out += scale * B A drop(x), keeping A drop(x) in u. pos: the rows'
 * positions (the dropout hash's). */
static int lora_fwd(struct train_model_cuda *tm, uint64_t key, int layer, int lin, const float *x,
                    int n, const int32_t *pos, float *out, float *u, struct mm_err *err)
{
    const struct train_module *mod = train_module_at(tm->p, layer, lin);
    if (mod->a < 0) return 0;
    const struct k_matrix *wm = train_base_matrix(tm->m, layer, lin);
    int in = (int)wm->cols, od = (int)wm->rows, r = mod->rank;
    const float *xd = dropped(tm, key, layer, lin, x, n, in, pos, err);
    return !xd ||
                   kc_gemm_f32(tm->ctx, 0, 1, n, r, in, 1.0f, xd, in, param(tm, tm->value, mod->a),
                               in, 0.0f, u, r, err) ||
                   kc_gemm_f32(tm->ctx, 0, 1, n, od, r, mod->scale, u, r,
                               param(tm, tm->value, mod->b), r, 1.0f, out, od, err)
               ? -1
               : 0;
}

/* out = x W^T + scale * B A drop(x). */
static int linear_fwd(struct train_model_cuda *tm, uint64_t key, int layer, int lin, const float *x,
                      int n, const int32_t *pos, float *out, float *u, struct mm_err *err)
{
    const struct k_matrix *wm = train_base_matrix(tm->m, layer, lin);
    int in = (int)wm->cols, od = (int)wm->rows;
    return kc_gemm_f32(tm->ctx, 0, 1, n, od, in, 1.0f, x, in, tm->w[w_index(tm->m, layer, lin)], in,
                       0.0f, out, od, err) ||
                   lora_fwd(tm, key, layer, lin, x, n, pos, out, u, err)
               ? -1
               : 0;
}

/* The LoRA path's backward, given dy = dL/d out: dx += its share, and the
 * A and B gradients added to tm->grad. */
static int lora_bwd(struct train_model_cuda *tm, uint64_t key, int layer, int lin, const float *x,
                    const float *u, const float *dy, int n, const int32_t *pos, float *dx,
                    struct mm_err *err)
{
    const struct train_module *mod = train_module_at(tm->p, layer, lin);
    if (mod->a < 0) return 0;
    const struct k_matrix *wm = train_base_matrix(tm->m, layer, lin);
    int in = (int)wm->cols, od = (int)wm->rows, r = mod->rank;
    float p = tm->p->cfg.dropout;
    const float *a = param(tm, tm->value, mod->a), *b = param(tm, tm->value, mod->b);
    /* g = scale * dy B: the gradient at A's output */
    if (kc_gemm_f32(tm->ctx, 0, 0, n, r, od, mod->scale, dy, od, b, r, 0.0f, tm->g, r, err))
        return -1;
    if (p <= 0.0f) {
        if (kc_gemm_f32(tm->ctx, 0, 0, n, in, r, 1.0f, tm->g, r, a, in, 1.0f, dx, in, err))
            return -1;
    } else if (kc_gemm_f32(tm->ctx, 0, 0, n, in, r, 1.0f, tm->g, r, a, in, 0.0f, tm->dtmp, in,
                           err) ||
               kc_dropout(tm->ctx, dx, tm->dtmp, pos, n, in, key, module_id(layer, lin), p, 1,
                          err)) {
        return -1;
    }
    /* dB += scale * dy^T u; dA += g^T drop(x) */
    const float *xd = dropped(tm, key, layer, lin, x, n, in, pos, err);
    return !xd ||
                   kc_gemm_f32(tm->ctx, 1, 0, od, r, n, mod->scale, dy, od, u, r, 1.0f,
                               param(tm, tm->grad, mod->b), r, err) ||
                   kc_gemm_f32(tm->ctx, 1, 0, r, in, n, 1.0f, tm->g, r, xd, in, 1.0f,
                               param(tm, tm->grad, mod->a), in, err)
               ? -1
               : 0;
}

/* dx (= or +=) dy W, then the LoRA path's share and gradients. */
static int linear_bwd(struct train_model_cuda *tm, uint64_t key, int layer, int lin, const float *x,
                      const float *u, const float *dy, int n, const int32_t *pos, float *dx,
                      int accumulate, struct mm_err *err)
{
    const struct k_matrix *wm = train_base_matrix(tm->m, layer, lin);
    int in = (int)wm->cols, od = (int)wm->rows;
    return kc_gemm_f32(tm->ctx, 0, 0, n, in, od, 1.0f, dy, od, tm->w[w_index(tm->m, layer, lin)],
                       in, accumulate ? 1.0f : 0.0f, dx, in, err) ||
                   lora_bwd(tm, key, layer, lin, x, u, dy, n, pos, dx, err)
               ? -1
               : 0;
}

static const float *norm_of(const struct train_model_cuda *tm, int layer, int ffn)
{
    return tm->norms + (2 * (size_t)layer + (size_t)ffn) * (size_t)tm->m->cfg.dim;
}

static int layer_fwd(struct train_model_cuda *tm, uint64_t key, int layer, int n, float *x,
                     struct mm_err *err)
{
    const struct model_config *c = &tm->m->cfg;
    struct layer_acts *a = &tm->acts[layer];
    struct kc_ctx *k = tm->ctx;
    size_t nd = (size_t)n * c->dim;
    const int32_t *pos = tm->pos;
    return kc_copy(k, a->x_in, x, nd * sizeof(float), err) ||
                   kc_rmsnorm_forward(k, a->xn1, a->x_in, norm_of(tm, layer, 0), n, c->dim,
                                      c->norm_eps, err) ||
                   linear_fwd(tm, key, layer, LIN_Q, a->xn1, n, pos, a->q, a->u[LIN_Q], err) ||
                   linear_fwd(tm, key, layer, LIN_K, a->xn1, n, pos, a->k, a->u[LIN_K], err) ||
                   linear_fwd(tm, key, layer, LIN_V, a->xn1, n, pos, a->v, a->u[LIN_V], err) ||
                   kc_rope_forward(k, a->q, pos, n, c->n_heads, c->head_dim, c->rope_theta,
                                   c->rope_style, err) ||
                   kc_rope_forward(k, a->k, pos, n, c->n_kv_heads, c->head_dim, c->rope_theta,
                                   c->rope_style, err) ||
                   kc_attention_train_forward(k, a->att, a->probs, a->q, a->k, a->v, n, c->n_heads,
                                              c->n_kv_heads, c->head_dim, c->sliding_window, err) ||
                   linear_fwd(tm, key, layer, LIN_O, a->att, n, pos, tm->tmp, a->u[LIN_O], err) ||
                   kc_copy(k, a->x_mid, a->x_in, nd * sizeof(float), err) ||
                   kc_add_inplace(k, a->x_mid, tm->tmp, (int64_t)nd, err) ||
                   kc_rmsnorm_forward(k, a->xn2, a->x_mid, norm_of(tm, layer, 1), n, c->dim,
                                      c->norm_eps, err) ||
                   linear_fwd(tm, key, layer, LIN_GATE, a->xn2, n, pos, a->gate, a->u[LIN_GATE],
                              err) ||
                   linear_fwd(tm, key, layer, LIN_UP, a->xn2, n, pos, a->up, a->u[LIN_UP], err) ||
                   kc_swiglu_forward(k, a->h, a->gate, a->up, (int64_t)n * c->ffn_dim, err) ||
                   linear_fwd(tm, key, layer, LIN_DOWN, a->h, n, pos, tm->tmp, a->u[LIN_DOWN],
                              err) ||
                   kc_copy(k, x, a->x_mid, nd * sizeof(float), err) ||
                   kc_add_inplace(k, x, tm->tmp, (int64_t)nd, err)
               ? -1
               : 0;
}

/* dx: in, dL/d(layer output); out, dL/d(layer input). */
static int layer_bwd(struct train_model_cuda *tm, uint64_t key, int layer, int n, float *dx,
                     struct mm_err *err)
{
    const struct model_config *c = &tm->m->cfg;
    const struct layer_acts *a = &tm->acts[layer];
    struct kc_ctx *k = tm->ctx;
    const int32_t *pos = tm->pos;
    return linear_bwd(tm, key, layer, LIN_DOWN, a->h, a->u[LIN_DOWN], dx, n, pos, tm->dh, 0, err) ||
                   kc_swiglu_backward(k, tm->dgate, tm->dup, tm->dh, a->gate, a->up,
                                      (int64_t)n * c->ffn_dim, err) ||
                   linear_bwd(tm, key, layer, LIN_GATE, a->xn2, a->u[LIN_GATE], tm->dgate, n, pos,
                              tm->dxn, 0, err) ||
                   linear_bwd(tm, key, layer, LIN_UP, a->xn2, a->u[LIN_UP], tm->dup, n, pos,
                              tm->dxn, 1, err) ||
                   kc_rmsnorm_backward(k, dx, tm->dxn, a->x_mid, norm_of(tm, layer, 1), n, c->dim,
                                       c->norm_eps, err) ||
                   linear_bwd(tm, key, layer, LIN_O, a->att, a->u[LIN_O], dx, n, pos, tm->datt, 0,
                              err) ||
                   kc_attention_backward(k, tm->dq, tm->dk, tm->dv, tm->datt, a->probs, a->q, a->k,
                                         a->v, n, c->n_heads, c->n_kv_heads, c->head_dim,
                                         tm->att_scratch, err) ||
                   kc_rope_backward(k, tm->dq, pos, n, c->n_heads, c->head_dim, c->rope_theta,
                                    c->rope_style, err) ||
                   kc_rope_backward(k, tm->dk, pos, n, c->n_kv_heads, c->head_dim, c->rope_theta,
                                    c->rope_style, err) ||
                   linear_bwd(tm, key, layer, LIN_Q, a->xn1, a->u[LIN_Q], tm->dq, n, pos, tm->dxn,
                              0, err) ||
                   linear_bwd(tm, key, layer, LIN_K, a->xn1, a->u[LIN_K], tm->dk, n, pos, tm->dxn,
                              1, err) ||
                   linear_bwd(tm, key, layer, LIN_V, a->xn1, a->u[LIN_V], tm->dv, n, pos, tm->dxn,
                              1, err) ||
                   kc_rmsnorm_backward(k, dx, tm->dxn, a->x_in, norm_of(tm, layer, 0), n, c->dim,
                                       c->norm_eps, err)
               ? -1
               : 0;
}

/* The LM head over the nr target rows (tm->rows, positions) of the last
 * layer's output tm->xf, and the rows' cross-entropy fused with its
 * backward: tm->logits becomes dL/dlogits, tm->hloss the rows' losses. */
static int head_fwd(struct train_model_cuda *tm, uint64_t key, int nr, float grad_scale,
                    struct mm_err *err)
{
    const struct model_config *c = &tm->m->cfg;
    const struct train_params *p = tm->p;
    struct kc_ctx *k = tm->ctx;
    int dim = c->dim, vocab = c->vocab_size, nt = p->cfg.n_tokens;
    const float *head = tm->w[w_index(tm->m, 0, TRAIN_LM_HEAD)];
    if (kc_gather_rows(k, tm->hx, tm->xf, tm->rows, nr, dim, err) ||
        kc_rmsnorm_forward(k, tm->hxn, tm->hx, norm_of(tm, c->n_layers, 0), nr, dim, c->norm_eps,
                           err) ||
        kc_gemm_f32(k, 0, 1, nr, vocab, dim, 1.0f, tm->hxn, dim, head, dim, 0.0f, tm->logits, vocab,
                    err))
        return -1;
    /* the trainable rows replace their tokens' rows of a tied head */
    if (head_uses_rows(tm) &&
        (kc_gemm_f32(k, 0, 1, nr, nt, dim, 1.0f, tm->hxn, dim, param(tm, tm->value, p->rows_t), dim,
                     0.0f, tm->hcols, nt, err) ||
         kc_columns_set(k, tm->logits, tm->hcols, tm->token_ids, nr, nt, vocab, err)))
        return -1;
    return lora_fwd(tm, key, c->n_layers, TRAIN_LM_HEAD, tm->hxn, nr, tm->rows, tm->logits, tm->hu,
                    err) ||
                   kc_cross_entropy_backward(k, tm->logits, tm->hloss, tm->htarget, tm->hw, nr,
                                             vocab, grad_scale, err)
               ? -1
               : 0;
}

/* Given head_fwd's dL/dlogits: the head's gradients, and dL/dx of the
 * target rows into tm->dx (the other rows zero). */
static int head_bwd(struct train_model_cuda *tm, uint64_t key, int nr, struct mm_err *err)
{
    const struct model_config *c = &tm->m->cfg;
    const struct train_params *p = tm->p;
    struct kc_ctx *k = tm->ctx;
    int dim = c->dim, vocab = c->vocab_size, nt = p->cfg.n_tokens;
    const float *head = tm->w[w_index(tm->m, 0, TRAIN_LM_HEAD)];
    int rows = head_uses_rows(tm);
    size_t rd = (size_t)nr * dim * sizeof(float);
    /* the rows' columns: their gradient (d row j = sum_i dlogits[i, id_j]
     * xn_i), then out of the base head's product (they multiply the rows,
     * not the base rows); the LoRA path sees every column */
    if (rows && (kc_columns_take(k, tm->hcols, tm->logits, tm->token_ids, nr, nt, vocab, 0, err) ||
                 kc_gemm_f32(k, 1, 0, nt, dim, nr, 1.0f, tm->hcols, nt, tm->hxn, dim, 1.0f,
                             param(tm, tm->grad, p->rows_t), dim, err)))
        return -1;
    if (kc_zero(k, tm->hdxn, rd, err) || lora_bwd(tm, key, c->n_layers, TRAIN_LM_HEAD, tm->hxn,
                                                  tm->hu, tm->logits, nr, tm->rows, tm->hdxn, err))
        return -1;
    if (rows && (kc_columns_take(k, tm->hcols, tm->logits, tm->token_ids, nr, nt, vocab, 1, err) ||
                 kc_gemm_f32(k, 0, 0, nr, dim, nt, 1.0f, tm->hcols, nt,
                             param(tm, tm->value, p->rows_t), dim, 1.0f, tm->hdxn, dim, err)))
        return -1;
    return kc_gemm_f32(k, 0, 0, nr, dim, vocab, 1.0f, tm->logits, vocab, head, dim, 1.0f, tm->hdxn,
                       dim, err) ||
                   kc_zero(k, tm->hxn, rd, err) ||
                   kc_rmsnorm_backward(k, tm->hxn, tm->hdxn, tm->hx, norm_of(tm, c->n_layers, 0),
                                       nr, dim, c->norm_eps, err) ||
                   kc_zero(k, tm->dx, (size_t)tm->max_tokens * dim * sizeof(float), err) ||
                   kc_scatter_rows(k, tm->dx, tm->hxn, tm->rows, nr, dim, err)
               ? -1
               : 0;
}

/* The example's index arrays, on the host then the device; returns the
 * number of target rows. */
static int stage_example(struct train_model_cuda *tm, const int32_t *tokens, const uint8_t *target,
                         int n, struct mm_err *err)
{
    const struct train_params *p = tm->p;
    int nr = 0;
    for (int t = 0; t < n; t++) {
        if (t + 1 < n && target[t + 1]) {
            tm->h_rows[nr] = t;
            tm->h_htarget[nr++] = tokens[t + 1];
        }
        tm->h_map[t] = -1;
        for (int j = 0; j < p->cfg.n_tokens; j++)
            if (tokens[t] == p->cfg.token_ids[j]) tm->h_map[t] = j;
    }
    size_t b = sizeof(int32_t);
    if (kc_upload(tm->ctx, tm->ids, tokens, (size_t)n * b, err) ||
        kc_upload(tm->ctx, tm->map, tm->h_map, (size_t)n * b, err) ||
        kc_upload(tm->ctx, tm->rows, tm->h_rows, (size_t)nr * b, err) ||
        kc_upload(tm->ctx, tm->htarget, tm->h_htarget, (size_t)nr * b, err))
        return -1;
    return nr;
}

int train_model_cuda_example(struct train_model_cuda *tm, const int32_t *tokens,
                             const uint8_t *target, int n, float grad_scale, uint64_t dropout_key,
                             float *grad, double *loss, int *n_loss, struct mm_err *err)
{
    const struct model_config *c = &tm->m->cfg;
    const struct train_params *p = tm->p;
    struct kc_ctx *k = tm->ctx;
    if (train_example_check(c, tokens, n, tm->max_tokens, err)) return -1;
    if (grad) memset(grad, 0, p->count * sizeof(float));
    *loss = 0;
    int nr = stage_example(tm, tokens, target, n, err);
    if (nr < 0) return -1;
    *n_loss = nr;
    if (nr == 0) return 0;

    if ((grad && kc_zero(k, tm->grad, p->count * sizeof(float), err)) ||
        kc_embedding_forward(k, tm->xf, tm->ids, n, &tm->embd, err) ||
        (p->rows_t >= 0 && kc_token_rows_forward(k, tm->xf, tm->map,
                                                 param(tm, tm->value, p->rows_t), n, c->dim, err)))
        return -1;
    for (int layer = 0; layer < c->n_layers; layer++)
        if (layer_fwd(tm, dropout_key, layer, n, tm->xf, err)) return -1;
    if (head_fwd(tm, dropout_key, nr, grad_scale, err) ||
        kc_download(k, tm->h_loss, tm->hloss, (size_t)nr * sizeof(float), err))
        return -1;
    for (int i = 0; i < nr; i++)
        *loss += tm->h_loss[i];
    if (!grad) return 0;
    if (head_bwd(tm, dropout_key, nr, err)) return -1;
    for (int layer = c->n_layers - 1; layer >= 0; layer--)
        if (layer_bwd(tm, dropout_key, layer, n, tm->dx, err)) return -1;
    if (p->rows_t >= 0 && kc_token_rows_backward(k, param(tm, tm->grad, p->rows_t), tm->dx, tm->map,
                                                 n, p->cfg.n_tokens, c->dim, err))
        return -1;
    return kc_download(k, grad, tm->grad, p->count * sizeof(float), err);
}
