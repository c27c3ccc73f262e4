/* The stage forward pass of forward.c on a GPU, op for op with the CUDA
 * kernels (kernels/cuda): the same batch rules, the same order of ops, the
 * same per-sequence attention against a per-slot KV cache.
 *
 * In the context's invariant numerics (the default) every op it runs gives
 * a token the same bits whatever the batch: the matmuls (LoRA updates and
 * LM head included) take the dot kernels for every n, attention the decode
 * kernel for every batch shape (kernels_cuda.h), and the rest work row by
 * row; the fused and unfused forms of an op (Q/K/V in one launch or three,
 * gate/up with or without SwiGLU's epilogue, add+norm or add then norm on
 * a stage's first layer) give the same bits. In the fast numerics the
 * kernels are picked by batch shape. */
#include "forward_cuda.h"

#include <stdlib.h>
#include <string.h>

struct cuda_layer {
    float *attn_norm, *ffn_norm; /* [dim] */
    struct kc_matrix lin[LIN_COUNT];
};

struct cuda_lora_module {
    struct kc_matrix a, b; /* a.data == NULL: module not adapted */
    float scale;
};

struct cuda_adapter {
    int max_rank;
    struct cuda_lora_module *modules; /* [n_layers * LIN_COUNT] */
};

struct stage_cuda {
    struct model *model;
    struct kc_ctx *ctx;
    int n_layers;
    struct cuda_layer *layers; /* indexed by layer - layer_begin */
    struct kc_matrix tok_embd; /* first stage */
    struct kc_matrix lm_head;  /* last stage; may share tok_embd's data */
    float *out_norm;

    /* KV cache: slot s of local layer l at (l * n_slots + s) * capacity * kv_dim */
    int n_slots, capacity, kv_dim;
    float *k_cache, *v_cache;
    int *len; /* host: filled positions per slot */

    struct cuda_adapter *adapters;
    int n_adapters;

    /* this batch: the most keys a token attends to when it takes decode
     * attention, 0 when it takes the prefill kernel (run() sets it) */
    int decode_keys;

    /* per-batch device buffers, grown as batches grow */
    int cap_tokens, cap_rank;
    float *x, *xn, *q, *k, *v, *att, *gate, *up, *lora_tmp, *logits;
    int32_t *tokens, *pos, *slot, *ids;
    /* page-locked staging of everything that crosses to and from the host */
    char *pinned;
    size_t pinned_bytes;
};

int stage_cuda_local_device(struct mm_err *err)
{
    int count = kc_device_count();
    if (count == 0) {
        mm_err_set(err, "no CUDA device is available");
        return -1;
    }
    static const char *const vars[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID",
                                       "SLURM_LOCALID"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return atoi(v) % count;
    }
    return 0;
}

static float *upload_floats(struct stage_cuda *s, const float *src, int n, struct mm_err *err)
{
    float *d = kc_alloc((size_t)n * sizeof(float), err);
    if (d && kc_upload(s->ctx, d, src, (size_t)n * sizeof(float), err)) {
        kc_free(d);
        return NULL;
    }
    return d;
}

static void scratch_free(struct stage_cuda *s)
{
    float *bufs[] = {s->x, s->xn, s->q, s->k, s->v, s->att, s->gate, s->up, s->lora_tmp, s->logits};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
        kc_free(bufs[i]);
    kc_free(s->tokens);
    kc_free(s->pos);
    kc_free(s->slot);
    kc_free(s->ids);
    kc_host_free(s->pinned);
    s->x = s->xn = s->q = s->k = s->v = s->att = s->gate = s->up = s->lora_tmp = s->logits = NULL;
    s->tokens = s->pos = s->slot = s->ids = NULL;
    s->pinned = NULL;
    s->pinned_bytes = 0;
    s->cap_tokens = s->cap_rank = 0;
}

void stage_cuda_free(struct stage_cuda *s)
{
    if (!s) return;
    if (s->ctx) kc_sync(s->ctx, NULL);
    for (int l = 0; s->layers && l < s->n_layers; l++) {
        kc_free(s->layers[l].attn_norm);
        kc_free(s->layers[l].ffn_norm);
        for (int i = 0; i < LIN_COUNT; i++)
            kc_matrix_free(&s->layers[l].lin[i]);
    }
    free(s->layers);
    if (s->lm_head.data != s->tok_embd.data) kc_matrix_free(&s->lm_head);
    kc_matrix_free(&s->tok_embd);
    kc_free(s->out_norm);
    for (int a = 0; a < s->n_adapters; a++) {
        for (int i = 0; i < s->n_layers * LIN_COUNT; i++) {
            kc_matrix_free(&s->adapters[a].modules[i].a);
            kc_matrix_free(&s->adapters[a].modules[i].b);
        }
        free(s->adapters[a].modules);
    }
    free(s->adapters);
    kc_free(s->k_cache);
    kc_free(s->v_cache);
    free(s->len);
    scratch_free(s);
    kc_ctx_free(s->ctx);
    free(s);
}

static int upload_weights(struct stage_cuda *s, struct mm_err *err)
{
    const struct model *m = s->model;
    int dim = m->cfg.dim;
    for (int l = 0; l < s->n_layers; l++) {
        const struct model_layer *hl = &m->layers[l];
        struct cuda_layer *dl = &s->layers[l];
        if (!(dl->attn_norm = upload_floats(s, hl->attn_norm, dim, err)) ||
            !(dl->ffn_norm = upload_floats(s, hl->ffn_norm, dim, err)))
            return -1;
        for (int i = 0; i < LIN_COUNT; i++)
            if (kc_matrix_upload(s->ctx, &dl->lin[i], &hl->lin[i], err)) return -1;
    }
    if (model_is_first_stage(m) && kc_matrix_upload(s->ctx, &s->tok_embd, &m->tok_embd, err))
        return -1;
    if (model_is_last_stage(m)) {
        if (!(s->out_norm = upload_floats(s, m->out_norm, dim, err))) return -1;
        if (s->tok_embd.data && m->lm_head.data == m->tok_embd.data)
            s->lm_head = s->tok_embd; /* tied: one device copy */
        else if (kc_matrix_upload(s->ctx, &s->lm_head, &m->lm_head, err))
            return -1;
    }
    return 0;
}

struct stage_cuda *stage_cuda_open(struct model *m, int n_slots, int capacity, int device,
                                   struct mm_err *err)
{
    if (n_slots <= 0 || capacity <= 0) {
        mm_err_set(err, "cuda stage: slots and capacity must be positive");
        return NULL;
    }
    struct stage_cuda *s = calloc(1, sizeof(*s));
    if (!s) {
        mm_err_set(err, "cuda stage: out of memory");
        return NULL;
    }
    s->model = m;
    s->n_layers = m->layer_end - m->layer_begin;
    s->n_slots = n_slots;
    s->capacity = capacity < m->cfg.max_positions ? capacity : m->cfg.max_positions;
    s->kv_dim = model_config_kv_dim(&m->cfg);
    s->layers = calloc((size_t)s->n_layers, sizeof(*s->layers));
    s->len = calloc((size_t)n_slots, sizeof(int));
    if (!s->layers || !s->len) {
        mm_err_set(err, "cuda stage: out of memory");
        stage_cuda_free(s);
        return NULL;
    }
    size_t cache = (size_t)s->n_layers * (size_t)n_slots * (size_t)s->capacity * (size_t)s->kv_dim *
                   sizeof(float);
    if (!(s->ctx = kc_ctx_create(device, err)) || upload_weights(s, err) ||
        !(s->k_cache = kc_alloc(cache, err)) || !(s->v_cache = kc_alloc(cache, err)) ||
        kc_sync(s->ctx, err)) {
        mm_err_prefix(err, "cuda stage (layers %d-%d, KV cache %zu MiB)", m->layer_begin,
                      m->layer_end, 2 * cache >> 20);
        stage_cuda_free(s);
        return NULL;
    }
    return s;
}

struct kc_ctx *stage_cuda_context(struct stage_cuda *s)
{
    return s->ctx;
}

int stage_cuda_add_adapter(struct stage_cuda *s, const struct lora_adapter *a, struct mm_err *err)
{
    /* Only the CPU stage applies the LM head's LoRA and token rows: such an
     * adapter is refused rather than run without them. Merged, it is plain
     * weights, which this stage runs. */
    if (lora_adapts_ends(a)) {
        mm_err_set(err,
                   "adapter '%s' adapts the LM head or token rows, which the CUDA stage does "
                   "not apply yet: use --merge (one adapter) or --device cpu",
                   a->name);
        return -1;
    }
    struct cuda_adapter *grown = realloc(s->adapters, (size_t)(s->n_adapters + 1) * sizeof(*grown));
    if (!grown) {
        mm_err_set(err, "cuda stage: out of memory for adapter %s", a->name);
        return -1;
    }
    s->adapters = grown;
    struct cuda_adapter *d = &s->adapters[s->n_adapters];
    d->max_rank = a->max_rank;
    d->modules = calloc((size_t)s->n_layers * LIN_COUNT, sizeof(*d->modules));
    if (!d->modules) {
        mm_err_set(err, "cuda stage: out of memory for adapter %s", a->name);
        return -1;
    }
    s->n_adapters++; /* from here on stage_cuda_free releases what was uploaded */
    for (int l = 0; l < s->n_layers; l++) {
        for (int i = 0; i < LIN_COUNT; i++) {
            const struct lora_module *hm =
                lora_module_at(a, s->model->layer_begin + l, (enum model_linear)i);
            struct cuda_lora_module *dm = &d->modules[l * LIN_COUNT + i];
            if (!hm->a.data) continue;
            dm->scale = hm->scale;
            if (kc_matrix_upload(s->ctx, &dm->a, &hm->a, err) ||
                kc_matrix_upload(s->ctx, &dm->b, &hm->b, err)) {
                mm_err_prefix(err, "adapter %s", a->name);
                return -1;
            }
        }
    }
    return kc_sync(s->ctx, err);
}

/* Device buffers and the pinned staging area for batches of n tokens. */
static int reserve(struct stage_cuda *s, int n, struct mm_err *err)
{
    int rank = 0;
    for (int i = 0; i < s->n_adapters; i++)
        if (s->adapters[i].max_rank > rank) rank = s->adapters[i].max_rank;
    if (n <= s->cap_tokens && rank <= s->cap_rank) return 0;
    scratch_free(s);
    const struct model_config *c = &s->model->cfg;
    size_t t = (size_t)n, f = sizeof(float);
    size_t wide = (size_t)(c->dim > model_config_q_dim(c) ? c->dim : model_config_q_dim(c));
    int last = model_is_last_stage(s->model);
    size_t logits = last ? t * (size_t)c->vocab_size * f : 0;
    /* in: tokens, positions, slots, hidden; out: hidden, logits or ids */
    size_t in = 3 * t * sizeof(int32_t) + t * (size_t)c->dim * f;
    size_t out = t * (size_t)c->dim * f > logits ? t * (size_t)c->dim * f : logits;
    if ((s->x = kc_alloc(t * (size_t)c->dim * f, err)) && (s->xn = kc_alloc(t * wide * f, err)) &&
        (s->q = kc_alloc(t * (size_t)model_config_q_dim(c) * f, err)) &&
        (s->k = kc_alloc(t * (size_t)s->kv_dim * f, err)) &&
        (s->v = kc_alloc(t * (size_t)s->kv_dim * f, err)) &&
        (s->att = kc_alloc(t * wide * f, err)) &&
        (s->gate = kc_alloc(t * (size_t)c->ffn_dim * f, err)) &&
        (s->up = kc_alloc(t * (size_t)c->ffn_dim * f, err)) &&
        (s->lora_tmp = kc_alloc(t * (size_t)(rank > 0 ? rank : 1) * f, err)) &&
        (!last || (s->logits = kc_alloc(logits, err))) &&
        (s->tokens = kc_alloc(t * sizeof(int32_t), err)) &&
        (s->pos = kc_alloc(t * sizeof(int32_t), err)) &&
        (s->slot = kc_alloc(t * sizeof(int32_t), err)) &&
        (s->ids = kc_alloc(t * sizeof(int32_t), err)) &&
        (s->pinned = kc_host_alloc(in > out ? in : out, err))) {
        s->pinned_bytes = in > out ? in : out;
        s->cap_tokens = n;
        s->cap_rank = rank;
        return 0;
    }
    scratch_free(s);
    mm_err_prefix(err, "cuda stage: buffers for a batch of %d tokens", n);
    return -1;
}

static int check_batch(const struct stage_cuda *s, const struct stage_batch *b, struct mm_err *err)
{
    struct stage_limits lim = {
        .n_slots = s->n_slots,
        .capacity = s->capacity,
        .len = s->len,
        .n_adapters = s->n_adapters,
        .vocab = model_is_first_stage(s->model) ? s->model->cfg.vocab_size : 0,
    };
    return stage_batch_check(b, &lim, err);
}

/* out += each token's adapter update scale * (x A^T) B^T for module l. */
static int lora_update(struct stage_cuda *s, float *out, const float *x, int local,
                       enum model_linear l, const struct stage_batch *b, struct mm_err *err)
{
    const struct kc_matrix *w = &s->layers[local].lin[l];
    if (!b->adapter) return 0;
    for (int start = 0; start < b->n;) {
        int end = start + 1;
        while (end < b->n && b->adapter[end] == b->adapter[start])
            end++;
        if (b->adapter[start] >= 0) {
            const struct cuda_lora_module *mod =
                &s->adapters[b->adapter[start]].modules[local * LIN_COUNT + l];
            if (mod->a.data &&
                (kc_matmul_forward(s->ctx, s->lora_tmp, x + (size_t)start * w->cols, &mod->a,
                                   end - start, err) ||
                 kc_matmul_accumulate(s->ctx, out + (size_t)start * w->rows, s->lora_tmp, &mod->b,
                                      end - start, mod->scale, err)))
                return -1;
        }
        start = end;
    }
    return 0;
}

/* Whether a token of b has an adapter that adapts module l of the layer. */
static int adapted(const struct stage_cuda *s, int local, enum model_linear l,
                   const struct stage_batch *b)
{
    for (int i = 0; b->adapter && i < b->n; i++)
        if (b->adapter[i] >= 0 && s->adapters[b->adapter[i]].modules[local * LIN_COUNT + l].a.data)
            return 1;
    return 0;
}

/* out = x W^T, plus each token's adapter update. */
static int linear(struct stage_cuda *s, float *out, const float *x, int local, enum model_linear l,
                  const struct stage_batch *b, struct mm_err *err)
{
    if (kc_matmul_forward(s->ctx, out, x, &s->layers[local].lin[l], b->n, err)) return -1;
    return lora_update(s, out, x, local, l, b, err);
}

/* linear() for count modules that read the same x (Q, K, V): the base
 * products in one launch where the dot kernels take them all
 * (kc_matmul_forward_multi, the same results), then the adapter updates. */
static int linears(struct stage_cuda *s, float *const *out, const float *x, int local,
                   const enum model_linear *l, int count, const struct stage_batch *b,
                   struct mm_err *err)
{
    const struct kc_matrix *w[KC_MULTI_MAX];
    for (int i = 0; i < count; i++)
        w[i] = &s->layers[local].lin[l[i]];
    if (kc_matmul_forward_multi(s->ctx, out, x, w, count, b->n, err)) return -1;
    for (int i = 0; i < count; i++)
        if (lora_update(s, out[i], x, local, l[i], b, err)) return -1;
    return 0;
}

/* s->gate = SwiGLU's gate of x's projections: one launch computing both
 * products and the gate where the dot kernels take gate and up and no
 * adapter of the batch changes them (an update must land before the
 * gate); else both linears (in one launch where they can) and
 * kc_swiglu_forward. */
static int ffn_gate(struct stage_cuda *s, const float *x, int local, const struct stage_batch *b,
                    struct mm_err *err)
{
    const struct cuda_layer *w = &s->layers[local];
    int n = b->n;
    if (kc_matmul_swiglu_supported(s->ctx, &w->lin[LIN_GATE], &w->lin[LIN_UP], n) &&
        !adapted(s, local, LIN_GATE, b) && !adapted(s, local, LIN_UP, b))
        return kc_matmul_swiglu_forward(s->ctx, s->gate, x, &w->lin[LIN_GATE], &w->lin[LIN_UP], n,
                                        err);
    static const enum model_linear gate_up[] = {LIN_GATE, LIN_UP};
    float *out[] = {s->gate, s->up};
    if (linears(s, out, x, local, gate_up, 2, b, err)) return -1;
    return kc_swiglu_forward(s->ctx, s->gate, s->gate, s->up, (int64_t)n * s->model->cfg.ffn_dim,
                             err);
}

/* Rotates q and k, writes the batch's new K/V rows into each slot's cache
 * (one launch), then attends: every sequence in one decode-attention
 * launch (always in the invariant numerics), or sequence by sequence with
 * the prefill kernel. */
static int attention(struct stage_cuda *s, int local, const struct stage_batch *b,
                     struct mm_err *err)
{
    const struct model_config *c = &s->model->cfg;
    int kv_dim = s->kv_dim, q_dim = model_config_q_dim(c);
    int64_t slot_stride = (int64_t)s->capacity * kv_dim;
    size_t layer = (size_t)local * (size_t)s->n_slots * (size_t)slot_stride;
    float *kc = s->k_cache + layer, *vc = s->v_cache + layer;
    if (kc_rope_kv_store(s->ctx, s->q, s->k, s->v, kc, vc, s->slot, s->pos, b->n, c->n_heads,
                         c->n_kv_heads, c->head_dim, c->rope_theta, c->rope_style, slot_stride,
                         err))
        return -1;
    if (kc_ctx_numerics(s->ctx) == KC_NUMERICS_INVARIANT &&
        !kc_attention_decode_supported(c->n_heads, c->n_kv_heads, c->head_dim)) {
        mm_err_set(err,
                   "cuda stage: batch-invariant attention takes head_dim a multiple of 4 up to "
                   "256 (this model: %d heads of %d, %d KV heads); --cuda-fast runs it without "
                   "the invariance",
                   c->n_heads, c->head_dim, c->n_kv_heads);
        return -1;
    }
    if (s->decode_keys > 0)
        return kc_attention_decode(s->ctx, s->att, s->q, kc, vc, s->slot, s->pos, b->n,
                                   s->decode_keys, slot_stride, c->n_heads, c->n_kv_heads,
                                   c->head_dim, c->sliding_window, err);
    for (int start = 0; start < b->n;) {
        int end = start + 1;
        while (end < b->n && b->slot[end] == b->slot[start])
            end++;
        size_t cache = (size_t)b->slot[start] * (size_t)slot_stride;
        if (kc_attention_forward(s->ctx, s->att + (size_t)start * q_dim,
                                 s->q + (size_t)start * q_dim, kc + cache, vc + cache, end - start,
                                 b->pos[start], c->n_heads, c->n_kv_heads, c->head_dim,
                                 c->sliding_window, 1, err))
            return -1;
        start = end;
    }
    return 0;
}

/* Fast numerics: sequences with up to this many tokens in a batch take
 * decode attention (each token reads its keys itself); longer runs share
 * key tiles in the prefill kernel. Invariant numerics: every run takes
 * decode attention, whose result for a token does not depend on the run. */
#define DECODE_MAX_RUN 8

/* The most keys a token of b attends to if b takes decode attention, else
 * 0 (a long run of one sequence in the fast numerics, or a shape the
 * decode kernel lacks). */
static int decode_keys(const struct stage_cuda *s, const struct stage_batch *b)
{
    const struct model_config *c = &s->model->cfg;
    if (!kc_attention_decode_supported(c->n_heads, c->n_kv_heads, c->head_dim)) return 0;
    int any_run = kc_ctx_numerics(s->ctx) == KC_NUMERICS_INVARIANT;
    int keys = 0;
    for (int start = 0; start < b->n;) {
        int end = start + 1;
        while (end < b->n && b->slot[end] == b->slot[start])
            end++;
        if (!any_run && end - start > DECODE_MAX_RUN) return 0;
        int last = b->pos[end - 1] + 1;
        if (c->sliding_window > 0 && last > c->sliding_window) last = c->sliding_window;
        if (last > keys) keys = last;
        start = end;
    }
    return keys;
}

/* One layer. Its input norm was applied by the previous layer's last add
 * (fused with it), except on the stage's first layer; its own last add
 * applies the next layer's input norm, except on the stage's last layer.
 * A decode step of one token without adapters takes 8 launches: Q/K/V,
 * RoPE with the cache write, attention (plus a merge of key splits on long
 * caches), O, add+norm, gate/up/SwiGLU, down, add+norm (quantized weights:
 * and one activation quantization per matmul launch). */
static int layer_forward(struct stage_cuda *s, int local, const struct stage_batch *b,
                         struct mm_err *err)
{
    const struct model_config *c = &s->model->cfg;
    const struct cuda_layer *w = &s->layers[local];
    struct kc_ctx *k = s->ctx;
    int n = b->n;
    if (local == 0 && kc_rmsnorm_forward(k, s->xn, s->x, w->attn_norm, n, c->dim, c->norm_eps, err))
        return -1;
    static const enum model_linear qkv[] = {LIN_Q, LIN_K, LIN_V};
    float *qkv_out[] = {s->q, s->k, s->v};
    if (linears(s, qkv_out, s->xn, local, qkv, 3, b, err) || attention(s, local, b, err) ||
        linear(s, s->xn, s->att, local, LIN_O, b, err) ||
        kc_add_rmsnorm_forward(k, s->x, s->xn, s->xn, w->ffn_norm, n, c->dim, c->norm_eps, err) ||
        ffn_gate(s, s->xn, local, b, err) || linear(s, s->xn, s->gate, local, LIN_DOWN, b, err))
        return -1;
    if (local + 1 == s->n_layers) return kc_add_inplace(k, s->x, s->xn, (int64_t)n * c->dim, err);
    return kc_add_rmsnorm_forward(k, s->x, s->xn, s->xn, s->layers[local + 1].attn_norm, n, c->dim,
                                  c->norm_eps, err);
}

/* Final norm and LM head over the rows that need logits; what the caller
 * asked for comes back through the pinned buffer. */
static int head_forward(struct stage_cuda *s, const struct stage_batch *b, float *logits,
                        int32_t *ids, struct mm_err *err)
{
    const struct model_config *c = &s->model->cfg;
    size_t dim_bytes = (size_t)c->dim * sizeof(float);
    int rows = 0;
    for (int i = 0; i < b->n; i++) {
        if (b->logits && !b->logits[i]) continue;
        if (rows != i && kc_copy(s->ctx, s->x + (size_t)rows * c->dim, s->x + (size_t)i * c->dim,
                                 dim_bytes, err))
            return -1;
        rows++;
    }
    if (rows == 0) return kc_sync(s->ctx, err);
    size_t logit_bytes = (size_t)rows * (size_t)c->vocab_size * sizeof(float);
    if (kc_rmsnorm_forward(s->ctx, s->xn, s->x, s->out_norm, rows, c->dim, c->norm_eps, err) ||
        kc_matmul_forward(s->ctx, s->logits, s->xn, &s->lm_head, rows, err))
        return -1;
    if (ids) {
        if (kc_argmax(s->ctx, s->ids, s->logits, rows, c->vocab_size, err) ||
            kc_download(s->ctx, s->pinned, s->ids, (size_t)rows * sizeof(int32_t), err))
            return -1;
        memcpy(ids, s->pinned, (size_t)rows * sizeof(int32_t));
    }
    if (logits) {
        if (kc_download(s->ctx, s->pinned, s->logits, logit_bytes, err)) return -1;
        memcpy(logits, s->pinned, logit_bytes);
    }
    return kc_sync(s->ctx, err);
}

static int run(struct stage_cuda *s, const struct stage_batch *b, float *hidden, float *logits,
               int32_t *ids, struct mm_err *err)
{
    const struct model *m = s->model;
    const int n = b->n, dim = m->cfg.dim;
    /* The previous call ended with a wait, so no copy still reads the pinned
     * buffer: tokens, positions and hidden states go in side by side. */
    int32_t *pin_tokens = (int32_t *)s->pinned, *pin_pos = pin_tokens + n, *pin_slot = pin_pos + n;
    float *pin_hidden = (float *)(pin_slot + n);
    size_t ids_bytes = (size_t)n * sizeof(int32_t), hidden_bytes = (size_t)n * dim * sizeof(float);
    memcpy(pin_pos, b->pos, ids_bytes);
    memcpy(pin_slot, b->slot, ids_bytes);
    if (kc_upload(s->ctx, s->pos, pin_pos, ids_bytes, err) ||
        kc_upload(s->ctx, s->slot, pin_slot, ids_bytes, err))
        return -1;
    if (model_is_first_stage(m)) {
        memcpy(pin_tokens, b->tokens, ids_bytes);
        if (kc_upload(s->ctx, s->tokens, pin_tokens, ids_bytes, err) ||
            kc_embedding_forward(s->ctx, s->x, s->tokens, n, &s->tok_embd, err))
            return -1;
    } else {
        memcpy(pin_hidden, hidden, hidden_bytes);
        if (kc_upload(s->ctx, s->x, pin_hidden, hidden_bytes, err)) return -1;
    }

    for (int i = 0; i < n; i++)
        if (i == 0 || b->slot[i] != b->slot[i - 1]) s->len[b->slot[i]] = b->pos[i];
    s->decode_keys = decode_keys(s, b);
    for (int l = 0; l < s->n_layers; l++)
        if (layer_forward(s, l, b, err)) return -1;
    for (int i = 0; i < n; i++)
        if (b->pos[i] + 1 > s->len[b->slot[i]]) s->len[b->slot[i]] = b->pos[i] + 1;

    if (model_is_last_stage(m)) return head_forward(s, b, logits, ids, err);
    if (kc_download(s->ctx, s->pinned, s->x, hidden_bytes, err)) return -1;
    memcpy(hidden, s->pinned, hidden_bytes);
    return 0;
}

int stage_cuda_kv_share(struct stage_cuda *s, int dst, int src, int len, struct mm_err *err)
{
    if (dst < 0 || dst >= s->n_slots || src >= s->n_slots || dst == src) {
        mm_err_set(err, "cuda stage: cannot share slot %d into slot %d (%d slots)", src, dst,
                   s->n_slots);
        return -1;
    }
    if (src < 0) {
        s->len[dst] = 0;
        return 0;
    }
    if (len < 0 || len > s->len[src]) {
        mm_err_set(err, "cuda stage: slot %d holds %d positions, %d asked to share", src,
                   s->len[src], len);
        return -1;
    }
    /* The GPU cache is one matrix per slot: the rows are copied (on the
     * stream, so before any later batch reads them). */
    size_t slot_floats = (size_t)s->capacity * (size_t)s->kv_dim;
    size_t bytes = (size_t)len * (size_t)s->kv_dim * sizeof(float);
    for (int l = 0; l < s->n_layers; l++) {
        size_t layer = (size_t)l * (size_t)s->n_slots * slot_floats;
        size_t to = layer + (size_t)dst * slot_floats, from = layer + (size_t)src * slot_floats;
        if (bytes && (kc_copy(s->ctx, s->k_cache + to, s->k_cache + from, bytes, err) ||
                      kc_copy(s->ctx, s->v_cache + to, s->v_cache + from, bytes, err)))
            return -1;
    }
    s->len[dst] = len;
    return 0;
}

int stage_cuda_forward(struct stage_cuda *s, const struct stage_batch *b, float *hidden,
                       float *logits, int32_t *ids, struct mm_err *err)
{
    if (check_batch(s, b, err) || reserve(s, b->n, err)) return -1;
    if (run(s, b, hidden, logits, ids, err) == 0) return 0;
    /* keep the promise that no copy reads the pinned buffer after a call */
    kc_sync(s->ctx, NULL);
    return -1;
}
