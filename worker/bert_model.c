#include "bert_model.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- config.json ---- */

/* An integer field in 1..2^30; dflt <= 0 makes it required. */
static int config_int(json_t *root, const char *path, const char *key, int dflt, int *out,
                      struct mm_err *err)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        if (dflt <= 0) {
            mm_err_set(err, "%s: missing required field '%s'", path, key);
            return -1;
        }
        *out = dflt;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1 << 30) {
        mm_err_set(err, "%s: field '%s' must be an integer in 1..2^30", path, key);
        return -1;
    }
    *out = (int)json_integer_value(v);
    return 0;
}

/* A string field that must be absent or equal one of the accepted values;
 * what else it could say changes the computation in ways not implemented. */
static int config_expect(json_t *root, const char *path, const char *key, const char *accepted,
                         int required, struct mm_err *err)
{
    json_t *v = json_object_get(root, key);
    if (!v && !required) return 0;
    const char *s = json_string_value(v);
    if (!s || strcmp(s, accepted) != 0) {
        mm_err_set(err, "%s: field '%s' is %s%s%s, only \"%s\" is supported", path, key,
                   s ? "\"" : "", s ? s : (v ? "not a string" : "missing"), s ? "\"" : "",
                   accepted);
        return -1;
    }
    return 0;
}

static int read_config(struct bert_config *c, const char *path, struct mm_err *err)
{
    memset(c, 0, sizeof(*c));
    struct stat sb;
    if (stat(path, &sb) != 0) {
        mm_err_set(err, "%s: %s", path, strerror(errno));
        return -1;
    }
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        mm_err_set(err, "%s: line %d column %d: %s", path, jerr.line, jerr.column, jerr.text);
        return -1;
    }
    int rc = -1;
    if (!json_is_object(root)) {
        mm_err_set(err, "%s: not a JSON object", path);
        goto out;
    }
    /* BERT's GELU is the erf form; "gelu_new" and friends are the tanh
     * approximation, a different model. */
    if (config_expect(root, path, "model_type", "bert", 1, err) ||
        config_expect(root, path, "hidden_act", "gelu", 1, err) ||
        config_expect(root, path, "position_embedding_type", "absolute", 0, err))
        goto out;
    if (config_int(root, path, "vocab_size", 0, &c->vocab_size, err) ||
        config_int(root, path, "hidden_size", 0, &c->dim, err) ||
        config_int(root, path, "num_hidden_layers", 0, &c->n_layers, err) ||
        config_int(root, path, "num_attention_heads", 0, &c->n_heads, err) ||
        config_int(root, path, "intermediate_size", 0, &c->ffn_dim, err) ||
        config_int(root, path, "max_position_embeddings", 0, &c->max_positions, err) ||
        config_int(root, path, "type_vocab_size", 2, &c->type_vocab_size, err))
        goto out;
    json_t *eps = json_object_get(root, "layer_norm_eps");
    if (eps && !(json_is_number(eps) && json_number_value(eps) > 0)) {
        mm_err_set(err, "%s: field 'layer_norm_eps' must be a positive number", path);
        goto out;
    }
    c->norm_eps = eps ? (float)json_number_value(eps) : 1e-12f;
    if (c->dim % c->n_heads != 0) {
        mm_err_set(err, "%s: hidden_size %d is not a multiple of num_attention_heads %d", path,
                   c->dim, c->n_heads);
        goto out;
    }
    c->head_dim = c->dim / c->n_heads;
    if (c->head_dim > K_MAX_HEAD_DIM) {
        mm_err_set(err, "%s: head size %d is larger than the kernels' %d", path, c->head_dim,
                   K_MAX_HEAD_DIM);
        goto out;
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

/* ---- weights ---- */

struct loader {
    struct bert_model *m;
    const char *prefix; /* "" or "bert." */
    float *next;        /* next free float of m->vectors */
};

/* The tensor `name` (after the prefix) and the file that holds it. */
static const struct st_tensor *find(const struct loader *l, const char *name, char *full,
                                    size_t cap, const char **file, struct mm_err *err)
{
    snprintf(full, cap, "%s%s", l->prefix, name);
    for (size_t i = 0; i < l->m->st.n_files; i++) {
        const struct st_tensor *t = st_find(l->m->st.files[i], full);
        if (!t) continue;
        *file = l->m->st.files[i]->path;
        /* Mapped files start on a page; the kernels read floats in place. */
        if ((uintptr_t)t->data % 4 != 0) {
            mm_err_set(err, "%s: tensor '%s' is not 4-byte aligned in the file", *file, full);
            return NULL;
        }
        return t;
    }
    mm_err_set(err, "%s: missing tensor '%s'", l->m->path, full);
    return NULL;
}

static int bind_matrix(struct loader *l, const char *name, int64_t rows, int64_t cols,
                       struct k_matrix *out, struct mm_err *err)
{
    char full[256];
    const char *file;
    const struct st_tensor *t = find(l, name, full, sizeof(full), &file, err);
    if (!t) return -1;
    if (t->n_dims != 2 || t->shape[0] != rows || t->shape[1] != cols) {
        char shape[128];
        int len = 0;
        for (int i = 0; i < t->n_dims; i++)
            len += snprintf(shape + len, sizeof(shape) - (size_t)len, "%s%lld", i ? ", " : "",
                            (long long)t->shape[i]);
        mm_err_set(err, "%s: tensor '%s' has shape [%s], config.json implies [%lld, %lld]", file,
                   full, shape, (long long)rows, (long long)cols);
        return -1;
    }
    out->dtype = t->dtype;
    out->rows = rows;
    out->cols = cols;
    out->row_bytes = mm_dtype_row_bytes(t->dtype, cols);
    out->data = t->data;
    return 0;
}

/* A vector of len floats, converted into the model's vector buffer. */
static const float *load_vector(struct loader *l, const char *name, int64_t len, struct mm_err *err)
{
    char full[256];
    const char *file;
    const struct st_tensor *t = find(l, name, full, sizeof(full), &file, err);
    if (!t) return NULL;
    if (t->n_dims != 1 || t->shape[0] != len) {
        mm_err_set(err, "%s: tensor '%s' must be a vector of %lld elements (config.json)", file,
                   full, (long long)len);
        return NULL;
    }
    float *v = l->next;
    mm_dequantize_row(t->dtype, t->data, v, len);
    l->next += len;
    return v;
}

static int bind_linear(struct loader *l, const char *name, int64_t rows, int64_t cols,
                       struct bert_linear *out, struct mm_err *err)
{
    char w[192], b[192];
    snprintf(w, sizeof(w), "%s.weight", name);
    snprintf(b, sizeof(b), "%s.bias", name);
    if (bind_matrix(l, w, rows, cols, &out->w, err)) return -1;
    return (out->bias = load_vector(l, b, rows, err)) ? 0 : -1;
}

static int bind_norm(struct loader *l, const char *name, int64_t dim, const float **w,
                     const float **b, struct mm_err *err)
{
    char wn[192], bn[192];
    snprintf(wn, sizeof(wn), "%s.weight", name);
    snprintf(bn, sizeof(bn), "%s.bias", name);
    if (!(*w = load_vector(l, wn, dim, err))) return -1;
    return (*b = load_vector(l, bn, dim, err)) ? 0 : -1;
}

static int bind_layer(struct loader *l, int i, struct bert_layer *layer, struct mm_err *err)
{
    const struct bert_config *c = &l->m->cfg;
    char p[160];
#define NAME(suffix) (snprintf(p, sizeof(p), "encoder.layer.%d.%s", i, suffix), p)
    if (bind_linear(l, NAME("attention.self.query"), c->dim, c->dim, &layer->q, err) ||
        bind_linear(l, NAME("attention.self.key"), c->dim, c->dim, &layer->k, err) ||
        bind_linear(l, NAME("attention.self.value"), c->dim, c->dim, &layer->v, err) ||
        bind_linear(l, NAME("attention.output.dense"), c->dim, c->dim, &layer->attn_out, err) ||
        bind_norm(l, NAME("attention.output.LayerNorm"), c->dim, &layer->attn_norm_w,
                  &layer->attn_norm_b, err) ||
        bind_linear(l, NAME("intermediate.dense"), c->ffn_dim, c->dim, &layer->ffn_up, err) ||
        bind_linear(l, NAME("output.dense"), c->dim, c->ffn_dim, &layer->ffn_down, err) ||
        bind_norm(l, NAME("output.LayerNorm"), c->dim, &layer->ffn_norm_w, &layer->ffn_norm_b, err))
        return -1;
#undef NAME
    return 0;
}

static int bind_weights(struct bert_model *m, struct mm_err *err)
{
    const struct bert_config *c = &m->cfg;
    struct loader l = {.m = m, .prefix = ""};
    /* BertModel saves bare names; BertForMaskedLM and the like nest it. */
    if (!st_set_find(&m->st, "embeddings.word_embeddings.weight") &&
        st_set_find(&m->st, "bert.embeddings.word_embeddings.weight"))
        l.prefix = "bert.";
    /* type-0 row, embedding norm, and per layer 6 biases and 2 norms */
    size_t n_floats = 3 * (size_t)c->dim + (size_t)c->n_layers * (9 * (size_t)c->dim + c->ffn_dim);
    m->vectors = malloc(n_floats * sizeof(float));
    m->layers = calloc((size_t)c->n_layers, sizeof(*m->layers));
    if (!m->vectors || !m->layers) {
        mm_err_set(err, "%s: out of memory", m->path);
        return -1;
    }
    l.next = m->vectors;
    struct k_matrix types;
    if (bind_matrix(&l, "embeddings.word_embeddings.weight", c->vocab_size, c->dim, &m->word_embd,
                    err) ||
        bind_matrix(&l, "embeddings.position_embeddings.weight", c->max_positions, c->dim,
                    &m->pos_embd, err) ||
        bind_matrix(&l, "embeddings.token_type_embeddings.weight", c->type_vocab_size, c->dim,
                    &types, err) ||
        bind_norm(&l, "embeddings.LayerNorm", c->dim, &m->embd_norm_w, &m->embd_norm_b, err))
        return -1;
    float *type0 = l.next;
    mm_dequantize_row(types.dtype, types.data, type0, c->dim);
    l.next += c->dim;
    m->type0_embd = type0;
    for (int i = 0; i < c->n_layers; i++)
        if (bind_layer(&l, i, &m->layers[i], err)) return -1;
    return 0;
}

struct bert_model *bert_model_load(const char *dir, struct mm_err *err)
{
    struct bert_model *m = calloc(1, sizeof(*m));
    if (!m || !(m->path = strdup(dir))) {
        free(m);
        mm_err_set(err, "%s: out of memory", dir);
        return NULL;
    }
    char cfg[4096];
    snprintf(cfg, sizeof(cfg), "%s/config.json", dir);
    if (read_config(&m->cfg, cfg, err) || st_set_open(&m->st, dir, "model", err) ||
        bind_weights(m, err)) {
        bert_model_free(m);
        return NULL;
    }
    return m;
}

void bert_model_free(struct bert_model *m)
{
    if (!m) return;
    st_set_close(&m->st);
    free(m->layers);
    free(m->vectors);
    free(m->path);
    free(m);
}

/* ---- forward ---- */

/* out = x W^T + b over n tokens. */
static void linear(float *out, const float *x, const struct bert_linear *l, int n)
{
    k_matmul_forward(out, x, &l->w, n);
    for (int t = 0; t < n; t++)
        k_add_inplace(out + (int64_t)t * l->w.rows, l->bias, l->w.rows);
}

/* Activations of a pass over n tokens. */
struct activations {
    float *q, *k, *v, *att, *tmp; /* [n, dim] */
    float *ffn;                   /* [n, ffn_dim] */
    int32_t *pos;                 /* [n] */
};

static void embed(const struct bert_model *m, const int32_t *ids, const int *lens, int n_seqs,
                  int n, float *x, struct activations *a)
{
    const struct bert_config *c = &m->cfg;
    for (int s = 0, t = 0; s < n_seqs; s++)
        for (int p = 0; p < lens[s]; p++)
            a->pos[t++] = p;
    k_embedding_forward(a->tmp, ids, n, &m->word_embd);
    k_embedding_forward(a->att, a->pos, n, &m->pos_embd);
    k_add_inplace(a->tmp, a->att, (int64_t)n * c->dim);
    for (int t = 0; t < n; t++)
        k_add_inplace(a->tmp + (int64_t)t * c->dim, m->type0_embd, c->dim);
    k_layernorm_forward(x, a->tmp, m->embd_norm_w, m->embd_norm_b, n, c->dim, c->norm_eps);
}

static void layer_forward(const struct bert_model *m, const struct bert_layer *L, const int *lens,
                          int n_seqs, int n, float *x, struct activations *a)
{
    const struct bert_config *c = &m->cfg;
    int64_t nd = (int64_t)n * c->dim;
    linear(a->q, x, &L->q, n);
    linear(a->k, x, &L->k, n);
    linear(a->v, x, &L->v, n);
    for (int s = 0, off = 0; s < n_seqs; off += lens[s++]) {
        int64_t o = (int64_t)off * c->dim;
        k_attention_forward(a->att + o, a->q + o, a->k + o, a->v + o, lens[s], 0, c->n_heads,
                            c->n_heads, c->head_dim, 0, 0);
    }
    linear(a->tmp, a->att, &L->attn_out, n);
    k_add_inplace(a->tmp, x, nd);
    k_layernorm_forward(x, a->tmp, L->attn_norm_w, L->attn_norm_b, n, c->dim, c->norm_eps);

    linear(a->ffn, x, &L->ffn_up, n);
    k_gelu_forward(a->ffn, a->ffn, (int64_t)n * c->ffn_dim);
    linear(a->tmp, a->ffn, &L->ffn_down, n);
    k_add_inplace(a->tmp, x, nd);
    k_layernorm_forward(x, a->tmp, L->ffn_norm_w, L->ffn_norm_b, n, c->dim, c->norm_eps);
}

int bert_forward(const struct bert_model *m, const int32_t *ids, const int *lens, int n_seqs,
                 float *out, struct mm_err *err)
{
    const struct bert_config *c = &m->cfg;
    int64_t n = 0;
    for (int s = 0; s < n_seqs; s++) {
        if (lens[s] < 1 || lens[s] > c->max_positions) {
            mm_err_set(err, "%s: sequence %d has %d tokens (expected 1..%d)", m->path, s, lens[s],
                       c->max_positions);
            return -1;
        }
        n += lens[s];
    }
    if (n == 0) return 0;
    if (n > 1 << 24) {
        mm_err_set(err, "%s: %lld tokens in one pass (at most %d)", m->path, (long long)n, 1 << 24);
        return -1;
    }
    for (int64_t t = 0; t < n; t++) {
        if (ids[t] < 0 || ids[t] >= c->vocab_size) {
            mm_err_set(err, "%s: token id %d outside the vocabulary (%d)", m->path, ids[t],
                       c->vocab_size);
            return -1;
        }
    }
    size_t nd = (size_t)n * c->dim;
    float *buf = malloc((5 * nd + (size_t)n * c->ffn_dim) * sizeof(float));
    int32_t *pos = malloc((size_t)n * sizeof(*pos));
    if (!buf || !pos) {
        free(buf);
        free(pos);
        mm_err_set(err, "%s: out of memory for the activations of %lld tokens", m->path,
                   (long long)n);
        return -1;
    }
    struct activations a = {.q = buf,
                            .k = buf + nd,
                            .v = buf + 2 * nd,
                            .att = buf + 3 * nd,
                            .tmp = buf + 4 * nd,
                            .ffn = buf + 5 * nd,
                            .pos = pos};
    embed(m, ids, lens, n_seqs, (int)n, out, &a);
    for (int l = 0; l < c->n_layers; l++)
        layer_forward(m, &m->layers[l], lens, n_seqs, (int)n, out, &a);
    free(buf);
    free(pos);
    return 0;
}
