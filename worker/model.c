#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A tensor as found in either file format, shape in PyTorch order
 * (shape[n_dims - 1] contiguous). */
struct found_tensor {
    enum mm_dtype dtype;
    int n_dims;
    int64_t shape[4];
    const void *data;
};

static const char *const hf_linear_names[LIN_COUNT] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj",
};
static const char *const gguf_linear_names[LIN_COUNT] = {
    "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down",
};

const char *model_linear_hf_name(enum model_linear l)
{
    const char *n = hf_linear_names[l];
    return strchr(n, '.') + 1;
}

int model_own(struct model *m, void *buf, struct mm_err *err)
{
    void **grown = realloc(m->owned, (size_t)(m->n_owned + 1) * sizeof(*grown));
    if (!grown) {
        mm_err_set(err, "%s: out of memory", m->path);
        return -1;
    }
    m->owned = grown;
    m->owned[m->n_owned++] = buf;
    return 0;
}

static int find_tensor(const struct model *m, const char *name, struct found_tensor *f)
{
    if (m->gguf) {
        const struct gguf_tensor *t = gguf_find_tensor(m->gguf, name);
        if (!t) return -1;
        f->dtype = t->dtype;
        f->n_dims = t->n_dims;
        for (int i = 0; i < t->n_dims; i++)
            f->shape[i] = t->ne[t->n_dims - 1 - i];
        f->data = t->data;
        return 0;
    }
    const struct st_tensor *t = st_set_find(&m->st, name);
    if (!t) return -1;
    f->dtype = t->dtype;
    f->n_dims = t->n_dims;
    for (int i = 0; i < t->n_dims; i++)
        f->shape[i] = t->shape[i];
    f->data = t->data;
    return 0;
}

static int bind_matrix(const struct model *m, const char *name, int64_t rows, int64_t cols,
                       struct k_matrix *out, struct mm_err *err)
{
    struct found_tensor f = {0};
    if (find_tensor(m, name, &f)) {
        mm_err_set(err, "%s: missing tensor '%s'", m->path, name);
        return -1;
    }
    if (f.n_dims != 2 || f.shape[0] != rows || f.shape[1] != cols) {
        mm_err_set(err, "%s: tensor '%s' has shape [%lld, %lld], config.json implies [%lld, %lld]",
                   m->path, name, (long long)f.shape[0], (long long)(f.n_dims > 1 ? f.shape[1] : 0),
                   (long long)rows, (long long)cols);
        return -1;
    }
    out->dtype = f.dtype;
    out->rows = rows;
    out->cols = cols;
    out->row_bytes = mm_dtype_row_bytes(f.dtype, cols);
    out->data = f.data;
    return 0;
}

/* Norm weights are tiny and read on every token: keep an f32 copy. */
static float *load_vector(const struct model *m, const char *name, int64_t len, struct mm_err *err)
{
    struct found_tensor f = {0};
    if (find_tensor(m, name, &f)) {
        mm_err_set(err, "%s: missing tensor '%s'", m->path, name);
        return NULL;
    }
    if (f.n_dims != 1 || f.shape[0] != len) {
        mm_err_set(err, "%s: tensor '%s' must be a vector of %lld elements", m->path, name,
                   (long long)len);
        return NULL;
    }
    if (len % mm_dtype_block_elems(f.dtype) != 0) {
        mm_err_set(err, "%s: tensor '%s': length %lld is not a multiple of its %s block", m->path,
                   name, (long long)len, mm_dtype_name(f.dtype));
        return NULL;
    }
    float *v = malloc((size_t)len * sizeof(float));
    if (!v) {
        mm_err_set(err, "%s: out of memory for tensor '%s'", m->path, name);
        return NULL;
    }
    mm_dequantize_row(f.dtype, f.data, v, len);
    return v;
}

static int is_directory(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int model_read_config(const char *path, struct model_config *c, struct mm_err *err)
{
    if (is_directory(path)) {
        char cfg[4096];
        snprintf(cfg, sizeof(cfg), "%s/config.json", path);
        return model_config_from_json(c, cfg, err);
    }
    struct gguf_file *g = gguf_open(path, err);
    if (!g) return -1;
    int rc = model_config_from_gguf(c, g, err);
    gguf_close(g);
    return rc;
}

static int open_source(struct model *m, struct mm_err *err)
{
    if (is_directory(m->path)) {
        char cfg[4096];
        snprintf(cfg, sizeof(cfg), "%s/config.json", m->path);
        if (model_config_from_json(&m->cfg, cfg, err)) return -1;
        return st_set_open(&m->st, m->path, "model", err);
    }
    m->gguf = gguf_open(m->path, err);
    if (!m->gguf) return -1;
    return model_config_from_gguf(&m->cfg, m->gguf, err);
}

static int bind_layer(struct model *m, int l, struct model_layer *layer, struct mm_err *err)
{
    const struct model_config *c = &m->cfg;
    const int64_t shapes[LIN_COUNT][2] = {
        [LIN_Q] = {model_config_q_dim(c), c->dim},  [LIN_K] = {model_config_kv_dim(c), c->dim},
        [LIN_V] = {model_config_kv_dim(c), c->dim}, [LIN_O] = {c->dim, model_config_q_dim(c)},
        [LIN_GATE] = {c->ffn_dim, c->dim},          [LIN_UP] = {c->ffn_dim, c->dim},
        [LIN_DOWN] = {c->dim, c->ffn_dim},
    };
    char name[256];
    for (int i = 0; i < LIN_COUNT; i++) {
        if (m->gguf)
            snprintf(name, sizeof(name), "blk.%d.%s.weight", l, gguf_linear_names[i]);
        else
            snprintf(name, sizeof(name), "model.layers.%d.%s.weight", l, hf_linear_names[i]);
        if (bind_matrix(m, name, shapes[i][0], shapes[i][1], &layer->lin[i], err)) return -1;
    }
    snprintf(name, sizeof(name),
             m->gguf ? "blk.%d.attn_norm.weight" : "model.layers.%d.input_layernorm.weight", l);
    layer->attn_norm = load_vector(m, name, c->dim, err);
    if (!layer->attn_norm) return -1;
    snprintf(name, sizeof(name),
             m->gguf ? "blk.%d.ffn_norm.weight" : "model.layers.%d.post_attention_layernorm.weight",
             l);
    layer->ffn_norm = load_vector(m, name, c->dim, err);
    return layer->ffn_norm ? 0 : -1;
}

static int bind_ends(struct model *m, struct mm_err *err)
{
    const struct model_config *c = &m->cfg;
    const char *embd_name = m->gguf ? "token_embd.weight" : "model.embed_tokens.weight";
    /* The LM head of a tied model is the embedding matrix. */
    if (model_is_first_stage(m) || (model_is_last_stage(m) && c->tied_embeddings))
        if (bind_matrix(m, embd_name, c->vocab_size, c->dim, &m->tok_embd, err)) return -1;
    if (!model_is_last_stage(m)) return 0;
    m->out_norm = load_vector(m, m->gguf ? "output_norm.weight" : "model.norm.weight", c->dim, err);
    if (!m->out_norm) return -1;
    if (c->tied_embeddings) {
        m->lm_head = m->tok_embd;
        return 0;
    }
    return bind_matrix(m, m->gguf ? "output.weight" : "lm_head.weight", c->vocab_size, c->dim,
                       &m->lm_head, err);
}

struct model *model_load(const char *path, int layer_begin, int layer_end, struct mm_err *err)
{
    struct model *m = calloc(1, sizeof(*m));
    if (!m || !(m->path = strdup(path))) {
        free(m);
        mm_err_set(err, "%s: out of memory", path);
        return NULL;
    }
    if (open_source(m, err)) goto fail;
    if (layer_end < 0) layer_end = m->cfg.n_layers;
    if (layer_begin < 0 || layer_begin >= layer_end || layer_end > m->cfg.n_layers) {
        mm_err_set(err, "%s: layer range [%d, %d) is outside the model's %d layers", path,
                   layer_begin, layer_end, m->cfg.n_layers);
        goto fail;
    }
    m->layer_begin = layer_begin;
    m->layer_end = layer_end;
    m->layers = calloc((size_t)(layer_end - layer_begin), sizeof(*m->layers));
    if (!m->layers) {
        mm_err_set(err, "%s: out of memory", path);
        goto fail;
    }
    for (int l = layer_begin; l < layer_end; l++)
        if (bind_layer(m, l, &m->layers[l - layer_begin], err)) goto fail;
    if (bind_ends(m, err)) goto fail;
    return m;
fail:
    model_free(m);
    return NULL;
}

void model_free(struct model *m)
{
    if (!m) return;
    if (m->layers) {
        for (int l = 0; l < m->layer_end - m->layer_begin; l++) {
            free(m->layers[l].attn_norm);
            free(m->layers[l].ffn_norm);
        }
        free(m->layers);
    }
    free(m->out_norm);
    for (int i = 0; i < m->n_owned; i++)
        free(m->owned[i]);
    free(m->owned);
    if (m->gguf) gguf_close(m->gguf);
    st_set_close(&m->st);
    free(m->path);
    free(m);
}
