#include "forward.h"

#include <stdlib.h>
#include <string.h>

int stage_init(struct stage *s, struct model *m, int n_slots, int capacity, struct mm_err *err)
{
    memset(s, 0, sizeof(*s));
    s->model = m;
    if (capacity > m->cfg.max_positions) capacity = m->cfg.max_positions;
    return kv_cache_init(&s->kv, m->layer_end - m->layer_begin, n_slots, capacity,
                         model_config_kv_dim(&m->cfg), err);
}

static void scratch_free(struct stage_scratch *sc)
{
    free(sc->x);
    free(sc->xn);
    free(sc->q);
    free(sc->k);
    free(sc->v);
    free(sc->att);
    free(sc->gate);
    free(sc->up);
    free(sc->lora_tmp);
    free(sc->row_adapter);
    memset(sc, 0, sizeof(*sc));
}

void stage_free(struct stage *s)
{
    kv_cache_free(&s->kv);
    scratch_free(&s->scratch);
}

static int scratch_reserve(struct stage *s, int n, struct mm_err *err)
{
    struct stage_scratch *sc = &s->scratch;
    int rank = 0;
    for (int i = 0; i < s->n_adapters; i++)
        if (s->adapters[i].max_rank > rank) rank = s->adapters[i].max_rank;
    if (n <= sc->cap_tokens && rank <= sc->lora_rank_cap) return 0;
    scratch_free(sc);
    const struct model_config *c = &s->model->cfg;
    size_t t = (size_t)n;
    int wide = c->dim > model_config_q_dim(c) ? c->dim : model_config_q_dim(c);
    sc->x = malloc(t * (size_t)c->dim * sizeof(float));
    sc->xn = malloc(t * (size_t)wide * sizeof(float));
    sc->q = malloc(t * (size_t)model_config_q_dim(c) * sizeof(float));
    sc->k = malloc(t * (size_t)model_config_kv_dim(c) * sizeof(float));
    sc->v = malloc(t * (size_t)model_config_kv_dim(c) * sizeof(float));
    sc->att = malloc(t * (size_t)wide * sizeof(float));
    sc->gate = malloc(t * (size_t)c->ffn_dim * sizeof(float));
    sc->up = malloc(t * (size_t)c->ffn_dim * sizeof(float));
    sc->lora_tmp = malloc(t * (size_t)(rank > 0 ? rank : 1) * sizeof(float));
    sc->row_adapter = malloc(t * sizeof(int32_t));
    if (!sc->x || !sc->xn || !sc->q || !sc->k || !sc->v || !sc->att || !sc->gate || !sc->up ||
        !sc->lora_tmp || !sc->row_adapter) {
        scratch_free(sc);
        mm_err_set(err, "forward: out of memory for a batch of %d tokens", n);
        return -1;
    }
    sc->cap_tokens = n;
    sc->lora_rank_cap = rank;
    return 0;
}

int stage_batch_check(const struct stage_batch *b, const struct stage_limits *lim,
                      struct mm_err *err)
{
    if (b->n <= 0) {
        mm_err_set(err, "forward: empty batch");
        return -1;
    }
    for (int i = 0; i < b->n; i++) {
        if (b->slot[i] < 0 || b->slot[i] >= lim->n_slots) {
            mm_err_set(err, "forward: token %d: slot %d out of range [0, %d)", i, b->slot[i],
                       lim->n_slots);
            return -1;
        }
        if (b->pos[i] < 0 || b->pos[i] >= lim->capacity) {
            mm_err_set(err, "forward: token %d: position %d exceeds the context of %d tokens", i,
                       b->pos[i], lim->capacity);
            return -1;
        }
        if (lim->vocab > 0 && (b->tokens[i] < 0 || b->tokens[i] >= lim->vocab)) {
            mm_err_set(err, "forward: token id %d out of range [0, %d)", b->tokens[i], lim->vocab);
            return -1;
        }
        if (b->adapter && (b->adapter[i] < -1 || b->adapter[i] >= lim->n_adapters)) {
            mm_err_set(err, "forward: token %d: adapter %d is not loaded", i, b->adapter[i]);
            return -1;
        }
        int starts_run = i == 0 || b->slot[i] != b->slot[i - 1];
        if (starts_run) {
            for (int j = 0; j < i; j++)
                if (b->slot[j] == b->slot[i]) {
                    mm_err_set(err, "forward: tokens of slot %d are not contiguous", b->slot[i]);
                    return -1;
                }
            if (b->pos[i] > lim->len[b->slot[i]]) {
                mm_err_set(err, "forward: slot %d holds %d positions, token %d is at position %d",
                           b->slot[i], lim->len[b->slot[i]], i, b->pos[i]);
                return -1;
            }
        } else if (b->pos[i] != b->pos[i - 1] + 1) {
            mm_err_set(err, "forward: positions of slot %d are not consecutive", b->slot[i]);
            return -1;
        } else if (b->adapter && b->adapter[i] != b->adapter[i - 1]) {
            mm_err_set(err, "forward: slot %d switches adapter inside a batch", b->slot[i]);
            return -1;
        }
    }
    return 0;
}

static int check_batch(const struct stage *s, const struct stage_batch *b, struct mm_err *err)
{
    struct stage_limits lim = {
        .n_slots = s->kv.n_slots,
        .capacity = s->kv.capacity,
        .len = s->kv.len,
        .n_adapters = s->n_adapters,
        .vocab = model_is_first_stage(s->model) ? s->model->cfg.vocab_size : 0,
    };
    return stage_batch_check(b, &lim, err);
}

/* The end of the run of equal values v[start] == v[start + 1] == ...: the
 * batch's tokens of one slot, or of one adapter, come in such runs. */
static int run_end(const int32_t *v, int n, int start)
{
    int end = start + 1;
    while (end < n && v[end] == v[start])
        end++;
    return end;
}

/* out = x W^T, plus each token's adapter update scale * (x A^T) B^T. */
static void linear(struct stage *s, float *out, const float *x, int layer, enum model_linear l,
                   const struct stage_batch *b)
{
    const struct k_matrix *w = &s->model->layers[layer - s->model->layer_begin].lin[l];
    k_matmul_forward(out, x, w, b->n);
    if (!b->adapter) return;
    for (int start = 0, end; start < b->n; start = end) {
        end = run_end(b->adapter, b->n, start);
        if (b->adapter[start] >= 0) {
            const struct lora_module *mod =
                lora_module_at(&s->adapters[b->adapter[start]], layer, l);
            if (mod->a.data) {
                k_matmul_forward(s->scratch.lora_tmp, x + (size_t)start * w->cols, &mod->a,
                                 end - start);
                k_matmul_accumulate(out + (size_t)start * w->rows, s->scratch.lora_tmp, &mod->b,
                                    end - start, mod->scale);
            }
        }
    }
}

/* Writes the batch's new K/V rows into each slot's pages, then attends. */
static void attention(struct stage *s, int layer, const struct stage_batch *b)
{
    const struct model_config *c = &s->model->cfg;
    struct stage_scratch *sc = &s->scratch;
    int local = layer - s->model->layer_begin;
    int kv_dim = model_config_kv_dim(c), q_dim = model_config_q_dim(c);
    for (int start = 0, end; start < b->n; start = end) {
        end = run_end(b->slot, b->n, start);
        int slot = b->slot[start], pos0 = b->pos[start], n = end - start;
        for (int i = 0; i < n; i++) {
            memcpy(kv_cache_row(&s->kv, s->kv.k, local, slot, pos0 + i),
                   sc->k + (size_t)(start + i) * kv_dim, (size_t)kv_dim * sizeof(float));
            memcpy(kv_cache_row(&s->kv, s->kv.v, local, slot, pos0 + i),
                   sc->v + (size_t)(start + i) * kv_dim, (size_t)kv_dim * sizeof(float));
        }
        struct k_kv_view kv, vv;
        kv_cache_view(&s->kv, local, slot, pos0 + n, &kv, &vv);
        k_attention_view(sc->att + (size_t)start * q_dim, sc->q + (size_t)start * q_dim, &kv, &vv,
                         n, pos0, c->n_heads, c->n_kv_heads, c->head_dim, c->sliding_window, 1);
    }
}

static void layer_forward(struct stage *s, int layer, const struct stage_batch *b)
{
    const struct model_config *c = &s->model->cfg;
    const struct model_layer *w = &s->model->layers[layer - s->model->layer_begin];
    struct stage_scratch *sc = &s->scratch;
    int n = b->n;

    k_rmsnorm_forward(sc->xn, sc->x, w->attn_norm, n, c->dim, c->norm_eps);
    linear(s, sc->q, sc->xn, layer, LIN_Q, b);
    linear(s, sc->k, sc->xn, layer, LIN_K, b);
    linear(s, sc->v, sc->xn, layer, LIN_V, b);
    k_rope_forward(sc->q, b->pos, n, c->n_heads, c->head_dim, c->rope_theta, c->rope_style);
    k_rope_forward(sc->k, b->pos, n, c->n_kv_heads, c->head_dim, c->rope_theta, c->rope_style);
    attention(s, layer, b);
    linear(s, sc->xn, sc->att, layer, LIN_O, b);
    k_add_inplace(sc->x, sc->xn, (int64_t)n * c->dim);

    k_rmsnorm_forward(sc->xn, sc->x, w->ffn_norm, n, c->dim, c->norm_eps);
    linear(s, sc->gate, sc->xn, layer, LIN_GATE, b);
    linear(s, sc->up, sc->xn, layer, LIN_UP, b);
    k_swiglu_forward(sc->gate, sc->gate, sc->up, (int64_t)n * c->ffn_dim);
    linear(s, sc->xn, sc->gate, layer, LIN_DOWN, b);
    k_add_inplace(sc->x, sc->xn, (int64_t)n * c->dim);
}

/* Final norm and LM head over the rows that need logits, with each row's
 * adapter's head part (kept rows keep their adapter in sc->row_adapter). */
static void head_forward(struct stage *s, const struct stage_batch *b, float *logits)
{
    const struct model_config *c = &s->model->cfg;
    struct stage_scratch *sc = &s->scratch;
    int rows = 0;
    for (int i = 0; i < b->n; i++) {
        if (b->logits && !b->logits[i]) continue;
        if (rows != i)
            memcpy(sc->x + (size_t)rows * c->dim, sc->x + (size_t)i * c->dim,
                   (size_t)c->dim * sizeof(float));
        sc->row_adapter[rows] = b->adapter ? b->adapter[i] : -1;
        rows++;
    }
    if (rows == 0) return;
    k_rmsnorm_forward(sc->xn, sc->x, s->model->out_norm, rows, c->dim, c->norm_eps);
    k_matmul_forward(logits, sc->xn, &s->model->lm_head, rows);
    int vocab = (int)s->model->lm_head.rows;
    for (int start = 0, end; start < rows; start = end) {
        end = run_end(sc->row_adapter, rows, start);
        int ad = sc->row_adapter[start];
        if (ad >= 0)
            lora_apply_head(&s->adapters[ad], s->model, sc->xn + (size_t)start * c->dim,
                            end - start, logits + (size_t)start * vocab, sc->lora_tmp);
    }
}

/* Each sequence's adapter's token rows replace its embedded tokens'. */
static void embed_rows(struct stage *s, const struct stage_batch *b)
{
    int dim = s->model->cfg.dim;
    for (int start = 0, end; b->adapter && start < b->n; start = end) {
        end = run_end(b->adapter, b->n, start);
        if (b->adapter[start] >= 0)
            lora_apply_rows(&s->adapters[b->adapter[start]], b->tokens + start, end - start,
                            s->scratch.x + (size_t)start * dim, dim);
    }
}

int stage_kv_share(struct stage *s, int dst, int src, int len, struct mm_err *err)
{
    if (src < 0 && dst >= 0 && dst < s->kv.n_slots) {
        kv_cache_truncate(&s->kv, dst, 0);
        return 0;
    }
    return kv_cache_share(&s->kv, dst, src, len, err);
}

int stage_forward(struct stage *s, const struct stage_batch *b, float *hidden, float *logits,
                  struct mm_err *err)
{
    const struct model *m = s->model;
    const int dim = m->cfg.dim;
    if (check_batch(s, b, err) || scratch_reserve(s, b->n, err)) return -1;

    if (model_is_first_stage(m)) {
        k_embedding_forward(s->scratch.x, b->tokens, b->n, &m->tok_embd);
        embed_rows(s, b);
    } else
        memcpy(s->scratch.x, hidden, (size_t)b->n * dim * sizeof(float));

    for (int start = 0, end; start < b->n; start = end) {
        end = run_end(b->slot, b->n, start);
        kv_cache_prepare(&s->kv, b->slot[start], b->pos[start], end - start);
    }
    for (int layer = m->layer_begin; layer < m->layer_end; layer++)
        layer_forward(s, layer, b);
    for (int i = 0; i < b->n; i++)
        if (b->pos[i] + 1 > s->kv.len[b->slot[i]]) s->kv.len[b->slot[i]] = b->pos[i] + 1;

    if (model_is_last_stage(m))
        head_forward(s, b, logits);
    else
        memcpy(hidden, s->scratch.x, (size_t)b->n * dim * sizeof(float));
    return 0;
}
