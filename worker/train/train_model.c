#include "train_model.h"

#include <stdlib.h>
#include <string.h>

/* The LM head runs over the target rows in chunks of this many, so its
 * logits never take more than HEAD_CHUNK x vocab floats. A constant: the
 * chunking, and so the sums over chunks, do not depend on anything but the
 * example. */
#define HEAD_CHUNK 64

/* What one layer's forward keeps for its backward. */
struct train_layer_acts {
    float *x_in, *xn1, *q, *k, *v, *att, *lse, *x_mid, *xn2, *gate, *up, *h;
    float *u[LIN_COUNT];       /* A drop(x) of the trained modules, [n, r] */
    uint32_t *mask[LIN_COUNT]; /* the dropout mask of a module that drops (drops()) */
};

/* Backward scratch, carved from tm->work. */
struct train_work {
    float *dx, *dxn, *dq, *dk, *dv, *datt, *dgate, *dup, *dh, *tmp, *g;
    float *xd;      /* a dropped input */
    float *xf;      /* the last layer's output */
    float *ga, *gb; /* a module's A^T and B gradients, before they are added */
    float *hx, *hxn, *hdxn, *hu, *logits, *hloss, *hw; /* the LM head's chunk */
    float *att_scratch;                                /* k_attention_backward's */
    int32_t *pos, *rows, *htarget;
    uint32_t *hmask; /* the LM head chunk's dropout mask */
};

int train_wide_dim(const struct model_config *c)
{
    int w = c->dim;
    if (model_config_q_dim(c) > w) w = model_config_q_dim(c);
    if (c->ffn_dim > w) w = c->ffn_dim;
    return w;
}

const struct k_matrix *train_base_matrix(const struct model *m, int layer, int lin)
{
    return lin == TRAIN_LM_HEAD ? &m->lm_head : &m->layers[layer].lin[lin];
}

static struct train_base *base_at(const struct train_model *tm, int layer, int lin)
{
    return &tm->base[lin == TRAIN_LM_HEAD ? (size_t)tm->m->cfg.n_layers * LIN_COUNT
                                          : (size_t)layer * LIN_COUNT + (size_t)lin];
}

int train_max_rank(const struct train_params *p)
{
    int r = 1;
    size_t n = (size_t)p->model->cfg.n_layers * LIN_COUNT + 1;
    for (size_t i = 0; i < n; i++)
        if (p->mod[i].rank > r) r = p->mod[i].rank;
    return r;
}

/* Whether the LM head reads the trainable token rows: with tied embeddings
 * the head is the embedding, and PEFT ties the rows to both. */
static int head_uses_rows(const struct train_model *tm)
{
    return tm->p->rows_t >= 0 && tm->m->cfg.tied_embeddings;
}

/* w's panels as b = W^T (transposed) or b = W, dequantized to f32. */
static int make_panels(struct k_panels *pn, const struct k_matrix *w, int transposed)
{
    int64_t k_dim = transposed ? w->cols : w->rows, cols = transposed ? w->rows : w->cols;
    float *d = malloc(k_panels_floats(k_dim, cols) * sizeof(float));
    if (!d) return -1;
    k_panels_of_matrix(d, w, transposed);
    *pn = (struct k_panels){k_dim, cols, d};
    return 0;
}

static int make_bases(struct train_model *tm, struct mm_err *err)
{
    const struct model_config *c = &tm->m->cfg;
    size_t n = (size_t)c->n_layers * LIN_COUNT + 1;
    tm->base = calloc(n, sizeof(*tm->base));
    if (!tm->base) goto oom;
    for (int layer = 0; layer <= c->n_layers; layer++)
        for (int lin = 0; lin <= LIN_COUNT; lin++) {
            if ((layer == c->n_layers) != (lin == TRAIN_LM_HEAD)) continue;
            const struct k_matrix *w = train_base_matrix(tm->m, layer, lin);
            struct train_base *b = base_at(tm, layer, lin);
            if (make_panels(&b->bwd, w, 0)) goto oom;
            if (w->dtype == MM_F32 && make_panels(&b->fwd, w, 1)) goto oom;
        }
    return 0;
oom:
    mm_err_set(err, "trainer: out of memory for the f32 panels of %s", tm->m->path);
    return -1;
}

/* Whether module lin of a layer drops elements of its input (its LoRA
 * path's), and the 32-bit words of its mask for n tokens. */
static int drops(const struct train_model *tm, int layer, int lin)
{
    return tm->p->cfg.dropout > 0.0f && train_module_at(tm->p, layer, lin)->a >= 0;
}

static size_t mask_words(const struct train_model *tm, int layer, int lin, int n)
{
    if (!drops(tm, layer, lin)) return 0;
    return ((size_t)n * (size_t)train_base_matrix(tm->m, layer, lin)->cols + 31) / 32;
}

/* Activations of one layer for max_tokens tokens. */
static size_t layer_floats(const struct train_model *tm, int layer)
{
    const struct model_config *c = &tm->m->cfg;
    size_t per_tok = (size_t)c->dim * 4 + (size_t)model_config_q_dim(c) * 2 +
                     (size_t)model_config_kv_dim(c) * 2 + (size_t)c->n_heads +
                     (size_t)c->ffn_dim * 3;
    size_t masks = 0;
    for (int lin = 0; lin < LIN_COUNT; lin++) {
        per_tok += (size_t)train_module_at(tm->p, layer, lin)->rank;
        masks += mask_words(tm, layer, lin, tm->max_tokens);
    }
    return per_tok * (size_t)tm->max_tokens + masks;
}

static void carve_acts(struct train_model *tm)
{
    const struct model_config *c = &tm->m->cfg;
    size_t n = (size_t)tm->max_tokens;
    float *f = tm->arena;
    for (int layer = 0; layer < c->n_layers; layer++) {
        struct train_layer_acts *a = &tm->acts[layer];
        a->x_in = f, f += n * c->dim;
        a->xn1 = f, f += n * c->dim;
        a->q = f, f += n * model_config_q_dim(c);
        a->k = f, f += n * model_config_kv_dim(c);
        a->v = f, f += n * model_config_kv_dim(c);
        a->att = f, f += n * model_config_q_dim(c);
        a->lse = f, f += n * c->n_heads;
        a->x_mid = f, f += n * c->dim;
        a->xn2 = f, f += n * c->dim;
        a->gate = f, f += n * c->ffn_dim;
        a->up = f, f += n * c->ffn_dim;
        a->h = f, f += n * c->ffn_dim;
        for (int lin = 0; lin < LIN_COUNT; lin++) {
            a->u[lin] = f;
            f += n * (size_t)train_module_at(tm->p, layer, lin)->rank;
            a->mask[lin] = (uint32_t *)f;
            f += mask_words(tm, layer, lin, (int)n);
        }
    }
}

/* The backward's scratch; returns the floats needed when w is NULL. */
static size_t carve_work(const struct train_model *tm, struct train_work *w)
{
    const struct model_config *c = &tm->m->cfg;
    size_t n = (size_t)tm->max_tokens, wd = (size_t)train_wide_dim(c),
           r = (size_t)train_max_rank(tm->p);
    size_t hc = HEAD_CHUNK, vocab = (size_t)c->vocab_size, hr = (size_t)r;
    size_t wv = vocab > wd ? vocab : wd, nh = n > hc ? n : hc;
    size_t sizes[] = {n * c->dim,
                      n * wd,
                      n * model_config_q_dim(c),
                      n * model_config_kv_dim(c),
                      n * model_config_kv_dim(c),
                      n * model_config_q_dim(c),
                      n * c->ffn_dim,
                      n * c->ffn_dim,
                      n * c->ffn_dim,
                      nh * wd,
                      nh * r,
                      nh * wd,
                      n * c->dim,
                      r * wd,
                      wv * r,
                      hc * c->dim,
                      hc * c->dim,
                      hc * c->dim,
                      hc * (hr > TRAIN_MAX_TOKENS ? hr : TRAIN_MAX_TOKENS),
                      hc * vocab,
                      hc,
                      hc,
                      k_attention_backward_scratch((int)n, c->n_heads, c->n_kv_heads, c->head_dim),
                      n,
                      n,
                      hc,
                      (hc * c->dim + 31) / 32};
    size_t total = 0;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        total += sizes[i];
    if (!w) return total;
    float *f = tm->work;
    float **dst[] = {&w->dx,    &w->dxn,    &w->dq,    &w->dk,  &w->dv,         &w->datt,
                     &w->dgate, &w->dup,    &w->dh,    &w->tmp, &w->g,          &w->xd,
                     &w->xf,    &w->ga,     &w->gb,    &w->hx,  &w->hxn,        &w->hdxn,
                     &w->hu,    &w->logits, &w->hloss, &w->hw,  &w->att_scratch};
    size_t i = 0;
    for (; i < sizeof(dst) / sizeof(dst[0]); i++) {
        *dst[i] = f;
        f += sizes[i];
    }
    w->pos = (int32_t *)f, f += sizes[i++];
    w->rows = (int32_t *)f, f += sizes[i++];
    w->htarget = (int32_t *)f, f += sizes[i++];
    w->hmask = (uint32_t *)f;
    return total;
}

/* What every copy has of its own: the saved activations and the scratch. */
static int init_state(struct train_model *tm, const struct model *m, struct train_params *p,
                      int max_tokens, struct mm_err *err)
{
    memset(tm, 0, sizeof(*tm));
    tm->m = m;
    tm->p = p;
    tm->max_tokens = max_tokens;
    if (max_tokens <= 0 || max_tokens > m->cfg.max_positions) {
        mm_err_set(err, "%s: examples of %d tokens do not fit the model's %d positions", m->path,
                   max_tokens, m->cfg.max_positions);
        return -1;
    }
    size_t acts = 0;
    for (int layer = 0; layer < m->cfg.n_layers; layer++)
        acts += layer_floats(tm, layer);
    tm->acts = calloc((size_t)m->cfg.n_layers, sizeof(*tm->acts));
    tm->arena = malloc(acts * sizeof(float));
    tm->work_floats = carve_work(tm, NULL);
    tm->work = malloc(tm->work_floats * sizeof(float));
    if (!tm->acts || !tm->arena || !tm->work) {
        mm_err_set(err, "trainer: out of memory for the activations of %d tokens", max_tokens);
        return -1;
    }
    carve_acts(tm);
    return 0;
}

int train_model_init(struct train_model *tm, const struct model *m, struct train_params *p,
                     int max_tokens, struct mm_err *err)
{
    if (init_state(tm, m, p, max_tokens, err)) {
        train_model_free(tm);
        return -1;
    }
    tm->lora_t = malloc((p->count ? p->count : 1) * sizeof(float));
    if (!tm->lora_t) {
        mm_err_set(err, "trainer: out of memory for the LoRA transposes");
        train_model_free(tm);
        return -1;
    }
    if (make_bases(tm, err)) {
        train_model_free(tm);
        return -1;
    }
    train_model_refresh(tm);
    return 0;
}

int train_model_init_copy(struct train_model *copy, const struct train_model *tm,
                          struct mm_err *err)
{
    if (init_state(copy, tm->m, tm->p, tm->max_tokens, err)) {
        train_model_free(copy);
        return -1;
    }
    copy->base = tm->base;
    copy->lora_t = tm->lora_t;
    copy->shared = 1;
    return 0;
}

void train_model_free(struct train_model *tm)
{
    if (tm->base && !tm->shared) {
        size_t n = (size_t)tm->m->cfg.n_layers * LIN_COUNT + 1;
        for (size_t i = 0; i < n; i++) {
            free((void *)tm->base[i].fwd.data);
            free((void *)tm->base[i].bwd.data);
        }
        free(tm->base);
        free(tm->lora_t);
    }
    free(tm->acts);
    free(tm->arena);
    free(tm->work);
    memset(tm, 0, sizeof(*tm));
}

void train_model_refresh(struct train_model *tm)
{
    const struct train_params *p = tm->p;
    for (int i = 0; i < p->n_t; i++) {
        const struct train_tensor *t = &p->t[i];
        if (i == p->rows_t) continue;
        k_transpose_f32(tm->lora_t + t->off, p->value + t->off, (int)t->rows, (int)t->cols);
    }
    if (head_uses_rows(tm)) {
        /* The backward's head (b = W, [vocab, dim]): row id is token id's. */
        struct k_panels *pn = &base_at(tm, 0, TRAIN_LM_HEAD)->bwd;
        const float *rows = p->value + p->t[p->rows_t].off;
        for (int i = 0; i < p->cfg.n_tokens; i++)
            k_panels_set_row((float *)pn->data, pn->k_dim, pn->cols, p->cfg.token_ids[i],
                             rows + (size_t)i * pn->cols);
    }
}

/* The dropout mask of module lin's input [n, in], a bit an element (set:
 * kept, with probability 1 - p), each a hash of (key, module, position,
 * feature): the same draw wherever and whenever the example runs. Drawn once
 * in the forward; the backward reads the bits. */
static void draw_mask(const struct train_model *tm, uint64_t key, int layer, int lin, int n, int in,
                      const int32_t *pos, uint32_t *bits)
{
    uint64_t module = (uint64_t)layer * 8 + (uint64_t)lin;
    memset(bits, 0, ((size_t)n * in + 31) / 32 * sizeof(uint32_t));
    for (int t = 0; t < n; t++)
        k_dropout_mask(bits, (int64_t)t * in, in, key, module, (uint64_t)pos[t] * (uint64_t)in,
                       tm->p->cfg.dropout);
}

/* x through the mask into buf: kept elements scaled by 1 / (1 - p). */
static const float *apply_mask(const struct train_model *tm, const uint32_t *bits, const float *x,
                               size_t count, float *buf)
{
    k_dropout_apply(buf, x, bits, (int64_t)count, 1.0f / (1.0f - tm->p->cfg.dropout));
    return buf;
}

/* out += scale * B A drop(x), the LoRA path of module lin (out: [n, W's
 * rows]); keeps A drop(x) in u and, when the module drops, its mask in mask. */
static void lora_fwd(struct train_model *tm, struct train_work *w, uint64_t key, int layer, int lin,
                     const float *x, int n, const int32_t *pos, float *out, float *u,
                     uint32_t *mask)
{
    const struct train_params *p = tm->p;
    const struct train_module *mod = train_module_at(p, layer, lin);
    const struct k_matrix *wm = train_base_matrix(tm->m, layer, lin);
    int in = (int)wm->cols, out_dim = (int)wm->rows, r = mod->rank;
    const float *xd = x;
    if (drops(tm, layer, lin)) {
        draw_mask(tm, key, layer, lin, n, in, pos, mask);
        xd = apply_mask(tm, mask, x, (size_t)n * in, w->xd);
    }
    /* u = drop(x) A^T, out += scale u B^T, on the transposes A^T and B^T */
    k_gemm_f32(u, xd, n, in, tm->lora_t + p->t[mod->a].off, r, r, 1.0f, 0);
    k_gemm_f32(out, u, n, r, tm->lora_t + p->t[mod->b].off, out_dim, out_dim, mod->scale, 1);
}

/* out = x W^T + the LoRA path (lora_fwd). */
static void linear_fwd(struct train_model *tm, struct train_work *w, uint64_t key, int layer,
                       int lin, const float *x, int n, const int32_t *pos, float *out, float *u,
                       uint32_t *mask)
{
    const struct train_base *base = base_at(tm, layer, lin);
    if (base->fwd.data)
        k_gemm_panels(out, x, n, &base->fwd, 1.0f, 0);
    else
        k_matmul_forward(out, x, train_base_matrix(tm->m, layer, lin), n);
    if (train_module_at(tm->p, layer, lin)->a >= 0)
        lora_fwd(tm, w, key, layer, lin, x, n, pos, out, u, mask);
}

/* Given dy = dL/d out of linear_fwd: dx (= or +=) dy W + the LoRA path's
 * share; the module's A and B gradients are added to grad. */
static void linear_bwd(struct train_model *tm, struct train_work *w, int layer, int lin,
                       const float *x, const float *u, const uint32_t *mask, const float *dy, int n,
                       float *dx, int accumulate, float *grad)
{
    const struct k_panels *wp = &base_at(tm, layer, lin)->bwd;
    k_gemm_panels(dx, dy, n, wp, 1.0f, accumulate);
    const struct train_module *mod = train_module_at(tm->p, layer, lin);
    if (mod->a < 0) return;
    const struct train_params *p = tm->p;
    int in = (int)wp->cols, out = (int)wp->k_dim, r = mod->rank;
    const float *a = p->value + p->t[mod->a].off, *b = p->value + p->t[mod->b].off;
    /* g = scale * dy B: the gradient at A's output */
    k_gemm_f32(w->g, dy, n, out, b, r, r, mod->scale, 0);
    int drop = drops(tm, layer, lin);
    if (!drop) {
        k_gemm_f32(dx, w->g, n, r, a, in, in, 1.0f, 1);
    } else {
        /* through the dropout: the forward's mask */
        k_gemm_f32(w->tmp, w->g, n, r, a, in, in, 1.0f, 0);
        k_dropout_accumulate(dx, w->tmp, mask, (int64_t)n * in, 1.0f / (1.0f - p->cfg.dropout));
    }
    /* dB = scale * dy^T u: [out, r], sums over the tokens */
    k_gemm_f32_xt(w->gb, dy, out, out, n, u, r, r, 1.0f, 0);
    float *db = grad + p->t[mod->b].off;
    for (size_t i = 0; i < (size_t)out * r; i++)
        db[i] += mod->scale * w->gb[i];
    /* dA = g^T drop(x), [r, in], computed as its transpose drop(x)^T g so
     * that the long side (in) runs down the kernel's tiles */
    const float *xd = drop ? apply_mask(tm, mask, x, (size_t)n * in, w->xd) : x;
    k_gemm_f32_xt(w->ga, xd, in, in, n, w->g, r, r, 1.0f, 0);
    float *da = grad + p->t[mod->a].off;
    for (int j = 0; j < r; j++)
        for (int c = 0; c < in; c++)
            da[(size_t)j * in + c] += w->ga[(size_t)c * r + j];
}

static void embed(struct train_model *tm, const int32_t *tokens, int n, float *x)
{
    const struct train_params *p = tm->p;
    int dim = tm->m->cfg.dim;
    k_embedding_forward(x, tokens, n, &tm->m->tok_embd);
    if (p->rows_t < 0) return;
    const float *rows = p->value + p->t[p->rows_t].off;
    for (int t = 0; t < n; t++)
        for (int i = 0; i < p->cfg.n_tokens; i++)
            if (tokens[t] == p->cfg.token_ids[i])
                memcpy(x + (size_t)t * dim, rows + (size_t)i * dim, (size_t)dim * sizeof(float));
}

static void layer_fwd(struct train_model *tm, struct train_work *w, uint64_t key, int layer, int n,
                      const float *x_in, float *x_out)
{
    const struct model_config *c = &tm->m->cfg;
    const struct model_layer *lw = &tm->m->layers[layer];
    struct train_layer_acts *a = &tm->acts[layer];
    size_t nd = (size_t)n * c->dim;
    memcpy(a->x_in, x_in, nd * sizeof(float));
    k_rmsnorm_forward(a->xn1, a->x_in, lw->attn_norm, n, c->dim, c->norm_eps);
    linear_fwd(tm, w, key, layer, LIN_Q, a->xn1, n, w->pos, a->q, a->u[LIN_Q], a->mask[LIN_Q]);
    linear_fwd(tm, w, key, layer, LIN_K, a->xn1, n, w->pos, a->k, a->u[LIN_K], a->mask[LIN_K]);
    linear_fwd(tm, w, key, layer, LIN_V, a->xn1, n, w->pos, a->v, a->u[LIN_V], a->mask[LIN_V]);
    k_rope_forward(a->q, w->pos, n, c->n_heads, c->head_dim, c->rope_theta, c->rope_style);
    k_rope_forward(a->k, w->pos, n, c->n_kv_heads, c->head_dim, c->rope_theta, c->rope_style);
    k_attention_train_forward(a->att, a->lse, a->q, a->k, a->v, n, c->n_heads, c->n_kv_heads,
                              c->head_dim, c->sliding_window);
    linear_fwd(tm, w, key, layer, LIN_O, a->att, n, w->pos, w->tmp, a->u[LIN_O], a->mask[LIN_O]);
    for (size_t i = 0; i < nd; i++)
        a->x_mid[i] = a->x_in[i] + w->tmp[i];
    k_rmsnorm_forward(a->xn2, a->x_mid, lw->ffn_norm, n, c->dim, c->norm_eps);
    linear_fwd(tm, w, key, layer, LIN_GATE, a->xn2, n, w->pos, a->gate, a->u[LIN_GATE],
               a->mask[LIN_GATE]);
    linear_fwd(tm, w, key, layer, LIN_UP, a->xn2, n, w->pos, a->up, a->u[LIN_UP], a->mask[LIN_UP]);
    k_swiglu_forward(a->h, a->gate, a->up, (int64_t)n * c->ffn_dim);
    linear_fwd(tm, w, key, layer, LIN_DOWN, a->h, n, w->pos, w->tmp, a->u[LIN_DOWN],
               a->mask[LIN_DOWN]);
    for (size_t i = 0; i < nd; i++)
        x_out[i] = a->x_mid[i] + w->tmp[i];
}

/* dx: in, dL/d(layer output); out, dL/d(layer input). */
static void layer_bwd(struct train_model *tm, struct train_work *w, int layer, int n, float *dx,
                      float *grad)
{
    const struct model_config *c = &tm->m->cfg;
    const struct model_layer *lw = &tm->m->layers[layer];
    const struct train_layer_acts *a = &tm->acts[layer];
    const int32_t *pos = w->pos;
    linear_bwd(tm, w, layer, LIN_DOWN, a->h, a->u[LIN_DOWN], a->mask[LIN_DOWN], dx, n, w->dh, 0,
               grad);
    k_swiglu_backward(w->dgate, w->dup, w->dh, a->gate, a->up, (int64_t)n * c->ffn_dim);
    linear_bwd(tm, w, layer, LIN_GATE, a->xn2, a->u[LIN_GATE], a->mask[LIN_GATE], w->dgate, n,
               w->dxn, 0, grad);
    linear_bwd(tm, w, layer, LIN_UP, a->xn2, a->u[LIN_UP], a->mask[LIN_UP], w->dup, n, w->dxn, 1,
               grad);
    k_rmsnorm_backward(dx, w->dxn, a->x_mid, lw->ffn_norm, n, c->dim, c->norm_eps);

    linear_bwd(tm, w, layer, LIN_O, a->att, a->u[LIN_O], a->mask[LIN_O], dx, n, w->datt, 0, grad);
    k_attention_backward(w->dq, w->dk, w->dv, w->datt, a->att, a->lse, a->q, a->k, a->v, n,
                         c->n_heads, c->n_kv_heads, c->head_dim, c->sliding_window, w->att_scratch);
    k_rope_backward(w->dq, pos, n, c->n_heads, c->head_dim, c->rope_theta, c->rope_style);
    k_rope_backward(w->dk, pos, n, c->n_kv_heads, c->head_dim, c->rope_theta, c->rope_style);
    linear_bwd(tm, w, layer, LIN_Q, a->xn1, a->u[LIN_Q], a->mask[LIN_Q], w->dq, n, w->dxn, 0, grad);
    linear_bwd(tm, w, layer, LIN_K, a->xn1, a->u[LIN_K], a->mask[LIN_K], w->dk, n, w->dxn, 1, grad);
    linear_bwd(tm, w, layer, LIN_V, a->xn1, a->u[LIN_V], a->mask[LIN_V], w->dv, n, w->dxn, 1, grad);
    k_rmsnorm_backward(dx, w->dxn, a->x_in, lw->attn_norm, n, c->dim, c->norm_eps);
}

/* The LM head and the loss over the target rows (w->rows: the positions
 * whose next token is a target), in chunks of HEAD_CHUNK rows. x: the last
 * layer's output; dx (zeroed by the caller) gets dL/dx on those rows.
 * Returns the sum of the rows' cross-entropies. */
static double head(struct train_model *tm, struct train_work *w, uint64_t key,
                   const int32_t *tokens, int n_rows, const float *x, float *dx, float grad_scale,
                   float *grad)
{
    const struct model_config *c = &tm->m->cfg;
    const struct train_params *p = tm->p;
    const struct train_module *mod = train_module_at(p, c->n_layers, TRAIN_LM_HEAD);
    int dim = c->dim, vocab = c->vocab_size, n_tok = p->cfg.n_tokens;
    double loss = 0;
    for (int r0 = 0; r0 < n_rows; r0 += HEAD_CHUNK) {
        int nr = n_rows - r0 < HEAD_CHUNK ? n_rows - r0 : HEAD_CHUNK;
        const int32_t *rows = w->rows + r0; /* positions, which the dropout hash uses */
        for (int i = 0; i < nr; i++) {
            memcpy(w->hx + (size_t)i * dim, x + (size_t)rows[i] * dim, (size_t)dim * sizeof(float));
            w->htarget[i] = tokens[rows[i] + 1];
            w->hw[i] = 1.0f;
        }
        k_rmsnorm_forward(w->hxn, w->hx, tm->m->out_norm, nr, dim, c->norm_eps);
        const struct train_base *hb = base_at(tm, c->n_layers, TRAIN_LM_HEAD);
        if (hb->fwd.data)
            k_gemm_panels(w->logits, w->hxn, nr, &hb->fwd, 1.0f, 0);
        else
            k_matmul_forward(w->logits, w->hxn, &tm->m->lm_head, nr);
        if (head_uses_rows(tm)) {
            /* the trainable rows replace their tokens' rows of the head */
            struct k_matrix rm = train_matrix(p, p->rows_t, p->value);
            k_matmul_forward(w->hu, w->hxn, &rm, nr);
            for (int i = 0; i < nr; i++)
                for (int j = 0; j < n_tok; j++)
                    w->logits[(size_t)i * vocab + p->cfg.token_ids[j]] =
                        w->hu[(size_t)i * n_tok + j];
        }
        if (mod->a >= 0)
            lora_fwd(tm, w, key, c->n_layers, TRAIN_LM_HEAD, w->hxn, nr, rows, w->logits, w->hu,
                     w->hmask);
        k_cross_entropy_backward(w->logits, w->hloss, w->htarget, w->hw, nr, vocab, grad_scale);
        for (int i = 0; i < nr; i++)
            loss += w->hloss[i];
        if (!grad) continue;
        if (head_uses_rows(tm)) {
            /* d row j += sum_i dlogits[i, id_j] xn[i] */
            float *rg = grad + p->t[p->rows_t].off;
            for (int j = 0; j < n_tok; j++)
                for (int i = 0; i < nr; i++) {
                    float d = w->logits[(size_t)i * vocab + p->cfg.token_ids[j]];
                    for (int k = 0; k < dim; k++)
                        rg[(size_t)j * dim + k] += d * w->hxn[(size_t)i * dim + k];
                }
        }
        /* dL/dxn = dlogits W, the rows set in W's panels (refresh) */
        linear_bwd(tm, w, c->n_layers, TRAIN_LM_HEAD, w->hxn, w->hu, w->hmask, w->logits, nr,
                   w->hdxn, 0, grad);
        memset(w->hxn, 0, (size_t)nr * dim * sizeof(float));
        k_rmsnorm_backward(w->hxn, w->hdxn, w->hx, tm->m->out_norm, nr, dim, c->norm_eps);
        for (int i = 0; i < nr; i++)
            memcpy(dx + (size_t)rows[i] * dim, w->hxn + (size_t)i * dim,
                   (size_t)dim * sizeof(float));
    }
    return loss;
}

int train_example_check(const struct model_config *c, const int32_t *tokens, int n, int max_tokens,
                        struct mm_err *err)
{
    if (n < 2 || n > max_tokens) {
        mm_err_set(err, "training example of %d tokens: must have 2 to %d", n, max_tokens);
        return -1;
    }
    for (int t = 0; t < n; t++)
        if (tokens[t] < 0 || tokens[t] >= c->vocab_size) {
            mm_err_set(err, "training example: token %d has id %d, outside the vocabulary of %d", t,
                       tokens[t], c->vocab_size);
            return -1;
        }
    return 0;
}

int train_model_example(struct train_model *tm, const int32_t *tokens, const uint8_t *target, int n,
                        float grad_scale, uint64_t dropout_key, float *grad, double *loss,
                        int *n_loss, struct mm_err *err)
{
    const struct model_config *c = &tm->m->cfg;
    const struct train_params *p = tm->p;
    if (train_example_check(c, tokens, n, tm->max_tokens, err)) return -1;
    struct train_work w;
    carve_work(tm, &w);
    int n_rows = 0;
    for (int t = 0; t < n; t++) {
        w.pos[t] = t;
        if (t + 1 < n && target[t + 1]) w.rows[n_rows++] = t;
    }
    if (grad) memset(grad, 0, p->count * sizeof(float));
    *loss = 0;
    *n_loss = n_rows;
    if (n_rows == 0) return 0;

    size_t nd = (size_t)n * c->dim;
    /* forward: the residual stream stays in w.xf, each layer keeping its input */
    embed(tm, tokens, n, w.xf);
    for (int layer = 0; layer < c->n_layers; layer++)
        layer_fwd(tm, &w, dropout_key, layer, n, w.xf, w.xf);
    memset(w.dx, 0, nd * sizeof(float));
    *loss = head(tm, &w, dropout_key, tokens, n_rows, w.xf, w.dx, grad_scale, grad);
    if (!grad) return 0;
    for (int layer = c->n_layers - 1; layer >= 0; layer--)
        layer_bwd(tm, &w, layer, n, w.dx, grad);
    if (p->rows_t >= 0) {
        /* the embedding's trainable rows: each row's gradient sums its tokens' dx */
        float *rg = grad + p->t[p->rows_t].off;
        for (int t = 0; t < n; t++)
            for (int j = 0; j < p->cfg.n_tokens; j++)
                if (tokens[t] == p->cfg.token_ids[j])
                    for (int k = 0; k < c->dim; k++)
                        rg[(size_t)j * c->dim + k] += w.dx[(size_t)t * c->dim + k];
    }
    return 0;
}
