#include "lora.h"

#include <cblas.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* PEFT's rank_pattern / alpha_pattern keys name a module by a suffix of its
 * full name ("q_proj", "layers.0.self_attn.q_proj"). */
int lora_pattern_matches(const char *key, const char *module)
{
    size_t kl = strlen(key), ml = strlen(module);
    if (kl > ml) return 0;
    if (strcmp(module + ml - kl, key) != 0) return 0;
    return kl == ml || module[ml - kl - 1] == '.';
}

double lora_pattern_value(json_t *patterns, const char *module, double dflt)
{
    const char *key;
    json_t *val;
    json_object_foreach(patterns, key, val)
    {
        if (json_is_number(val) && lora_pattern_matches(key, module)) return json_number_value(val);
    }
    return dflt;
}

/* Copies a safetensors tensor to a new f32 matrix [rows, cols]. */
static int load_f32(const struct st_set *st, const char *name, int64_t rows, int64_t cols,
                    int rows_free, struct k_matrix *out, const char *dir, struct mm_err *err)
{
    const struct st_tensor *t = st_set_find(st, name);
    if (!t) {
        mm_err_set(err, "%s: missing tensor '%s'", dir, name);
        return -1;
    }
    if (t->n_dims != 2 || (!rows_free && t->shape[0] != rows) || (rows_free && t->shape[0] <= 0) ||
        (cols >= 0 && t->shape[1] != cols) || (cols < 0 && t->shape[1] <= 0)) {
        mm_err_set(err,
                   "%s: tensor '%s' has shape [%lld, %lld], the base model implies [%lld, %lld]",
                   dir, name, (long long)t->shape[0], (long long)(t->n_dims > 1 ? t->shape[1] : 0),
                   (long long)rows, (long long)cols);
        return -1;
    }
    int64_t r = t->shape[0], c = t->shape[1];
    float *data = malloc((size_t)(r * c) * sizeof(float));
    if (!data) {
        mm_err_set(err, "%s: out of memory for '%s'", dir, name);
        return -1;
    }
    size_t src_row = mm_dtype_row_bytes(t->dtype, c);
    for (int64_t i = 0; i < r; i++)
        mm_dequantize_row(t->dtype, t->data + (size_t)i * src_row, data + i * c, c);
    out->dtype = MM_F32;
    out->rows = r;
    out->cols = c;
    out->row_bytes = (size_t)c * sizeof(float);
    out->data = data;
    return 0;
}

int lora_permute_rows_for_norm_rope(float *b, int64_t rows, int64_t cols, int n_heads, int back)
{
    int64_t hd = rows / n_heads, half = hd / 2;
    float *tmp = malloc((size_t)(hd * cols) * sizeof(float));
    if (!tmp) return -1;
    for (int h = 0; h < n_heads; h++) {
        float *head = b + (int64_t)h * hd * cols;
        memcpy(tmp, head, (size_t)(hd * cols) * sizeof(float));
        for (int64_t i = 0; i < half; i++)
            for (int t = 0; t < 2; t++) {
                int64_t norm = i * 2 + t, neox = t * half + i;
                memcpy(head + (back ? neox : norm) * cols, tmp + (back ? norm : neox) * cols,
                       (size_t)cols * sizeof(float));
            }
    }
    free(tmp);
    return 0;
}

static int check_config(json_t *cfg, const char *path, struct mm_err *err)
{
    const char *type = json_string_value(json_object_get(cfg, "peft_type"));
    if (type && strcmp(type, "LORA") != 0) {
        mm_err_set(err, "%s: peft_type '%s' is not supported (LORA)", path, type);
        return -1;
    }
    if (json_is_true(json_object_get(cfg, "use_dora"))) {
        mm_err_set(err, "%s: use_dora is not supported", path);
        return -1;
    }
    if (json_is_true(json_object_get(cfg, "fan_in_fan_out"))) {
        mm_err_set(err, "%s: fan_in_fan_out is not supported", path);
        return -1;
    }
    const char *bias = json_string_value(json_object_get(cfg, "bias"));
    if (bias && strcmp(bias, "none") != 0) {
        mm_err_set(err, "%s: bias '%s' is not supported (none)", path, bias);
        return -1;
    }
    if (!json_is_number(json_object_get(cfg, "lora_alpha"))) {
        mm_err_set(err, "%s: missing numeric 'lora_alpha'", path);
        return -1;
    }
    return 0;
}

static int load_module(struct lora_adapter *a, const struct model *m, const struct st_set *st,
                       json_t *cfg, const char *dir, int layer, enum model_linear l,
                       struct mm_err *err)
{
    static const char *const hf_prefix[LIN_COUNT] = {
        "self_attn", "self_attn", "self_attn", "self_attn", "mlp", "mlp", "mlp"};
    char module[256], name[320];
    snprintf(module, sizeof(module), "model.layers.%d.%s.%s", layer, hf_prefix[l],
             model_linear_hf_name(l));
    snprintf(name, sizeof(name), "base_model.model.%s.lora_A.weight", module);
    if (!st_set_find(st, name)) return 0; /* not a target module */

    const struct k_matrix *w = &m->layers[layer - m->layer_begin].lin[l];
    struct lora_module *mod = &a->modules[(size_t)(layer - a->layer_begin) * LIN_COUNT + l];
    if (load_f32(st, name, 0, w->cols, 1, &mod->a, dir, err)) return -1;
    int64_t r = mod->a.rows;
    snprintf(name, sizeof(name), "base_model.model.%s.lora_B.weight", module);
    if (load_f32(st, name, w->rows, r, 0, &mod->b, dir, err)) return -1;
    if (m->cfg.rope_style == K_ROPE_NORM && (l == LIN_Q || l == LIN_K) &&
        lora_permute_rows_for_norm_rope((float *)mod->b.data, mod->b.rows, mod->b.cols,
                                        l == LIN_Q ? m->cfg.n_heads : m->cfg.n_kv_heads, 0)) {
        mm_err_set(err, "%s: out of memory", dir);
        return -1;
    }
    double alpha = lora_pattern_value(json_object_get(cfg, "alpha_pattern"), module,
                                      json_number_value(json_object_get(cfg, "lora_alpha")));
    int rslora = json_is_true(json_object_get(cfg, "use_rslora"));
    mod->scale = (float)(rslora ? alpha / sqrt((double)r) : alpha / (double)r);
    if (r > a->max_rank) a->max_rank = (int)r;
    return 0;
}

/* LoRA on the LM head (last stage): base_model.model.lm_head.lora_{A,B}. */
static int load_head(struct lora_adapter *a, const struct model *m, const struct st_set *st,
                     json_t *cfg, const char *dir, struct mm_err *err)
{
    const char *name_a = "base_model.model.lm_head.lora_A.weight";
    if (!model_is_last_stage(m) || !st_set_find(st, name_a)) return 0;
    if (load_f32(st, name_a, 0, m->lm_head.cols, 1, &a->head.a, dir, err) ||
        load_f32(st, "base_model.model.lm_head.lora_B.weight", m->lm_head.rows, a->head.a.rows, 0,
                 &a->head.b, dir, err))
        return -1;
    double alpha = lora_pattern_value(json_object_get(cfg, "alpha_pattern"), "lm_head",
                                      json_number_value(json_object_get(cfg, "lora_alpha")));
    double r = (double)a->head.a.rows;
    a->head.scale =
        (float)(json_is_true(json_object_get(cfg, "use_rslora")) ? alpha / sqrt(r) : alpha / r);
    if (a->head.a.rows > a->max_rank) a->max_rank = (int)a->head.a.rows;
    return 0;
}

/* The embedding's ids in PEFT's trainable_token_indices: a list, or an
 * object by module name (suffix). PEFT ties a tied head to the embedding's
 * rows when the head is not listed or listed with the same ids; other
 * entries give a module rows of its own, which memllm does not apply, so
 * they are refused rather than ignored. *ids NULL: none. */
static int token_ids_config(json_t *cfg, const struct model *m, json_t **ids, const char *dir,
                            struct mm_err *err)
{
    json_t *v = json_object_get(cfg, "trainable_token_indices");
    *ids = NULL;
    if (!v || json_is_null(v)) return 0;
    if (json_is_array(v)) {
        *ids = v;
        return 0;
    }
    if (!json_is_object(v)) {
        mm_err_set(err, "%s: trainable_token_indices is neither a list nor an object", dir);
        return -1;
    }
    json_t *head = NULL, *val;
    const char *key;
    json_object_foreach(v, key, val)
    {
        if (lora_pattern_matches(key, "model.embed_tokens")) {
            *ids = val;
        } else if (lora_pattern_matches(key, "lm_head") && m->cfg.tied_embeddings) {
            head = val;
        } else {
            mm_err_set(err,
                       "%s: trainable_token_indices for '%s' is not supported (only the "
                       "embedding's, which a tied LM head shares)",
                       dir, key);
            return -1;
        }
    }
    if (head && !json_equal(head, *ids)) {
        mm_err_set(err,
                   "%s: trainable_token_indices gives the tied LM head other ids than the "
                   "embedding (rows of its own), which is not supported",
                   dir);
        return -1;
    }
    return 0;
}

/* PEFT's trainable_token_indices and their rows, where this stage uses
 * them: the embedding (first stage) or a head tied to it (last stage). */
static int load_rows(struct lora_adapter *a, const struct model *m, const struct st_set *st,
                     json_t *cfg, const char *dir, struct mm_err *err)
{
    json_t *ids;
    if (token_ids_config(cfg, m, &ids, dir, err)) return -1;
    if (!ids) return 0;
    if (!model_is_first_stage(m) && !(model_is_last_stage(m) && m->cfg.tied_embeddings)) return 0;
    const char *name = "base_model.model.model.embed_tokens.token_adapter.trainable_tokens_delta";
    struct k_matrix rows;
    if (!json_is_array(ids) || json_array_size(ids) == 0) {
        mm_err_set(err, "%s: trainable_token_indices is not a list of token ids", dir);
        return -1;
    }
    if (load_f32(st, name, (int64_t)json_array_size(ids), m->cfg.dim, 0, &rows, dir, err))
        return -1;
    a->rows = (float *)rows.data;
    a->n_rows = (int)rows.rows;
    a->row_ids = malloc((size_t)a->n_rows * sizeof(int32_t));
    if (!a->row_ids) {
        mm_err_set(err, "%s: out of memory", dir);
        return -1;
    }
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v)
    {
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) >= m->cfg.vocab_size) {
            mm_err_set(err, "%s: trainable_token_indices[%zu] is not a token id below %d", dir, i,
                       m->cfg.vocab_size);
            return -1;
        }
        a->row_ids[i] = (int32_t)json_integer_value(v);
    }
    if (a->n_rows > a->max_rank) a->max_rank = a->n_rows;
    return 0;
}

int lora_load(struct lora_adapter *a, const struct model *m, const char *dir, const char *name,
              struct mm_err *err)
{
    memset(a, 0, sizeof(*a));
    char path[4096];
    snprintf(path, sizeof(path), "%s/adapter_config.json", dir);
    json_error_t jerr;
    json_t *cfg = json_load_file(path, 0, &jerr);
    if (!cfg) {
        mm_err_set(err, "%s: line %d column %d: %s", path, jerr.line, jerr.column, jerr.text);
        return -1;
    }
    struct st_set st = {0};
    int rc = -1;
    if (!json_is_object(cfg)) {
        mm_err_set(err, "%s: not a JSON object", path);
        goto out;
    }
    if (check_config(cfg, path, err)) goto out;
    if (st_set_open(&st, dir, "adapter_model", err)) goto out;
    a->name = strdup(name);
    a->layer_begin = m->layer_begin;
    a->layer_end = m->layer_end;
    a->modules = calloc((size_t)(m->layer_end - m->layer_begin) * LIN_COUNT, sizeof(*a->modules));
    if (!a->name || !a->modules) {
        mm_err_set(err, "%s: out of memory", dir);
        goto out;
    }
    int found = 0;
    for (int layer = m->layer_begin; layer < m->layer_end; layer++)
        for (int l = 0; l < LIN_COUNT; l++) {
            if (load_module(a, m, &st, cfg, dir, layer, (enum model_linear)l, err)) goto out;
            found += lora_module_at(a, layer, (enum model_linear)l)->a.data != NULL;
        }
    if (load_head(a, m, &st, cfg, dir, err) || load_rows(a, m, &st, cfg, dir, err)) goto out;
    found += lora_adapts_ends(a);
    if (found == 0) {
        mm_err_set(err,
                   "%s: no LoRA tensors for layers %d..%d of the base model (expected names like "
                   "'base_model.model.model.layers.%d.self_attn.q_proj.lora_A.weight')",
                   dir, m->layer_begin, m->layer_end - 1, m->layer_begin);
        goto out;
    }
    rc = 0;
out:
    st_set_close(&st);
    json_decref(cfg);
    if (rc) lora_free(a);
    return rc;
}

void lora_free(struct lora_adapter *a)
{
    if (a->modules) {
        size_t n = (size_t)(a->layer_end - a->layer_begin) * LIN_COUNT;
        for (size_t i = 0; i < n; i++) {
            free((void *)a->modules[i].a.data);
            free((void *)a->modules[i].b.data);
        }
    }
    free(a->modules);
    free((void *)a->head.a.data);
    free((void *)a->head.b.data);
    free(a->rows);
    free(a->row_ids);
    free(a->name);
    memset(a, 0, sizeof(*a));
}

/* An f32 copy of w, owned by the model, that w then points to. */
static float *own_f32_copy(struct model *m, struct k_matrix *w, struct mm_err *err)
{
    float *f = malloc((size_t)(w->rows * w->cols) * sizeof(float));
    if (!f || model_own(m, f, err)) {
        free(f);
        mm_err_set(err, "%s: out of memory for an f32 copy of a %lld x %lld matrix", m->path,
                   (long long)w->rows, (long long)w->cols);
        return NULL;
    }
    for (int64_t i = 0; i < w->rows; i++)
        mm_dequantize_row(w->dtype, (const uint8_t *)w->data + (size_t)i * w->row_bytes,
                          f + i * w->cols, w->cols);
    w->dtype = MM_F32;
    w->row_bytes = (size_t)w->cols * sizeof(float);
    w->data = f;
    return f;
}

/* The head and the embedding: token rows in, then the head's LoRA. */
static int merge_ends(struct model *m, const struct lora_adapter *a, struct mm_err *err)
{
    int dim = m->cfg.dim;
    if (a->n_rows > 0 && model_is_first_stage(m)) {
        float *e = own_f32_copy(m, &m->tok_embd, err);
        if (!e) return -1;
        for (int i = 0; i < a->n_rows; i++)
            memcpy(e + (size_t)a->row_ids[i] * dim, a->rows + (size_t)i * dim,
                   (size_t)dim * sizeof(float));
    }
    int head_rows = a->n_rows > 0 && model_is_last_stage(m) && m->cfg.tied_embeddings;
    if (!head_rows && !a->head.a.data) return 0;
    float *h = own_f32_copy(m, &m->lm_head, err);
    if (!h) return -1;
    for (int i = 0; head_rows && i < a->n_rows; i++)
        memcpy(h + (size_t)a->row_ids[i] * dim, a->rows + (size_t)i * dim,
               (size_t)dim * sizeof(float));
    if (a->head.a.data)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m->lm_head.rows, dim,
                    (int)a->head.a.rows, a->head.scale, a->head.b.data, (int)a->head.a.rows,
                    a->head.a.data, dim, 1.0f, h, dim);
    return 0;
}

void lora_apply_rows(const struct lora_adapter *a, const int32_t *tokens, int n, float *x, int dim)
{
    for (int t = 0; t < n; t++)
        for (int i = 0; i < a->n_rows; i++)
            if (tokens[t] == a->row_ids[i])
                memcpy(x + (size_t)t * dim, a->rows + (size_t)i * dim, (size_t)dim * sizeof(float));
}

void lora_apply_head(const struct lora_adapter *a, const struct model *m, const float *xn, int n,
                     float *logits, float *tmp)
{
    int vocab = (int)m->lm_head.rows;
    if (a->n_rows > 0 && m->cfg.tied_embeddings) {
        struct k_matrix rows = {MM_F32, a->n_rows, m->cfg.dim, (size_t)m->cfg.dim * sizeof(float),
                                a->rows};
        k_matmul_forward(tmp, xn, &rows, n);
        for (int t = 0; t < n; t++)
            for (int i = 0; i < a->n_rows; i++)
                logits[(size_t)t * vocab + a->row_ids[i]] = tmp[(size_t)t * a->n_rows + i];
    }
    if (a->head.a.data) {
        k_matmul_forward(tmp, xn, &a->head.a, n);
        k_matmul_accumulate(logits, tmp, &a->head.b, n, a->head.scale);
    }
}

int lora_merge(struct model *m, const struct lora_adapter *a, struct mm_err *err)
{
    if (merge_ends(m, a, err)) return -1;
    for (int layer = m->layer_begin; layer < m->layer_end; layer++)
        for (int l = 0; l < LIN_COUNT; l++) {
            const struct lora_module *mod = lora_module_at(a, layer, (enum model_linear)l);
            if (!mod->a.data) continue;
            struct k_matrix *w = &m->layers[layer - m->layer_begin].lin[l];
            float *merged = malloc((size_t)(w->rows * w->cols) * sizeof(float));
            if (!merged || model_own(m, merged, err)) {
                free(merged);
                mm_err_set(err, "%s: out of memory merging adapter '%s'", m->path, a->name);
                return -1;
            }
            for (int64_t i = 0; i < w->rows; i++)
                mm_dequantize_row(w->dtype, (const uint8_t *)w->data + (size_t)i * w->row_bytes,
                                  merged + i * w->cols, w->cols);
            /* merged += scale * B A, with B [rows, r] and A [r, cols] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)w->rows, (int)w->cols,
                        (int)mod->a.rows, mod->scale, mod->b.data, (int)mod->a.rows, mod->a.data,
                        (int)w->cols, 1.0f, merged, (int)w->cols);
            w->dtype = MM_F32;
            w->row_bytes = (size_t)w->cols * sizeof(float);
            w->data = merged;
        }
    return 0;
}
