#include "train_params.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lora.h"
#include "safetensors.h"
#include "train_rng.h"

static const char *const target_names[LIN_COUNT + 1] = {
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"};
static const char *const target_short[LIN_COUNT + 1] = {"q",    "k",  "v",    "o",
                                                        "gate", "up", "down", "lm_head"};

#define ROWS_NAME "base_model.model.model.embed_tokens.token_adapter.trainable_tokens_delta"

const char *train_target_name(int i)
{
    return i >= 0 && i <= LIN_COUNT ? target_names[i] : NULL;
}

int train_parse_targets(const char *list, unsigned *targets, struct mm_err *err)
{
    *targets = 0;
    const char *p = list;
    while (*p) {
        size_t len = strcspn(p, ",");
        int found = -1;
        for (int i = 0; i <= LIN_COUNT && found < 0; i++)
            if ((strlen(target_names[i]) == len && !strncmp(p, target_names[i], len)) ||
                (strlen(target_short[i]) == len && !strncmp(p, target_short[i], len)))
                found = i;
        if (found < 0) {
            mm_err_set(err,
                       "target module '%.*s' is not one of q, k, v, o, gate, up, down, lm_head "
                       "(or their PEFT names q_proj, ...)",
                       (int)len, p);
            return -1;
        }
        *targets |= 1u << found;
        p += len + (p[len] == ',');
    }
    if (!*targets) {
        mm_err_set(err, "no target modules given");
        return -1;
    }
    return 0;
}

/* "model.layers.3.self_attn.q_proj" or "lm_head". */
static void module_name(char *out, size_t cap, int layer, int lin)
{
    if (lin == TRAIN_LM_HEAD)
        snprintf(out, cap, "lm_head");
    else
        snprintf(out, cap, "model.layers.%d.%s.%s", layer, lin <= LIN_O ? "self_attn" : "mlp",
                 target_names[lin]);
}

/* The base matrix a module adapts: [out, in]. */
static const struct k_matrix *base_matrix(const struct model *m, int layer, int lin)
{
    return lin == TRAIN_LM_HEAD ? &m->lm_head : &m->layers[layer].lin[lin];
}

static int add_tensor(struct train_params *p, const char *name, int64_t rows, int64_t cols,
                      struct mm_err *err)
{
    struct train_tensor *t = realloc(p->t, (size_t)(p->n_t + 1) * sizeof(*t));
    if (!t) goto oom;
    p->t = t;
    t = &p->t[p->n_t];
    t->name = strdup(name);
    if (!t->name) goto oom;
    t->rows = rows;
    t->cols = cols;
    t->off = p->count;
    p->count += (size_t)(rows * cols);
    return p->n_t++;
oom:
    mm_err_set(err, "trainer: out of memory for the parameter list");
    return -1;
}

/* Lays out every tensor (value not yet allocated). rank_of(layer, lin) < 0
 * leaves a module out. */
static int layout(struct train_params *p, const struct model *m, struct mm_err *err)
{
    const struct model_config *c = &m->cfg;
    if (m->layer_begin != 0 || m->layer_end != c->n_layers) {
        mm_err_set(err, "%s: the trainer needs the whole model in one stage", m->path);
        return -1;
    }
    p->model = m;
    p->rows_t = -1;
    size_t n_mod = (size_t)c->n_layers * LIN_COUNT + 1;
    p->mod = calloc(n_mod, sizeof(*p->mod));
    if (!p->mod) {
        mm_err_set(err, "trainer: out of memory");
        return -1;
    }
    for (int layer = 0; layer <= c->n_layers; layer++)
        for (int lin = 0; lin <= LIN_COUNT; lin++) {
            if ((layer == c->n_layers) != (lin == TRAIN_LM_HEAD)) continue;
            struct train_module *mod = (struct train_module *)train_module_at(p, layer, lin);
            mod->a = mod->b = -1;
            if (!(p->cfg.targets & (1u << lin))) continue;
            char module[128], name[256];
            module_name(module, sizeof(module), layer, lin);
            int r = (int)lora_pattern_value(p->cfg.rank_pattern, module, p->cfg.rank);
            double alpha = lora_pattern_value(p->cfg.alpha_pattern, module, p->cfg.alpha);
            if (r <= 0) {
                mm_err_set(err, "LoRA rank of %s is %d (must be positive)", module, r);
                return -1;
            }
            const struct k_matrix *w = base_matrix(m, layer, lin);
            snprintf(name, sizeof(name), "base_model.model.%s.lora_A.weight", module);
            mod->a = add_tensor(p, name, r, w->cols, err);
            snprintf(name, sizeof(name), "base_model.model.%s.lora_B.weight", module);
            mod->b = add_tensor(p, name, w->rows, r, err);
            if (mod->a < 0 || mod->b < 0) return -1;
            mod->rank = r;
            mod->scale = (float)(alpha / r);
        }
    if (p->cfg.n_tokens > 0) {
        for (int i = 0; i < p->cfg.n_tokens; i++)
            if (p->cfg.token_ids[i] < 0 || p->cfg.token_ids[i] >= c->vocab_size) {
                mm_err_set(err, "trainable token id %d is outside the vocabulary of %d tokens",
                           p->cfg.token_ids[i], c->vocab_size);
                return -1;
            }
        p->rows_t = add_tensor(p, ROWS_NAME, p->cfg.n_tokens, c->dim, err);
        if (p->rows_t < 0) return -1;
    }
    p->value = calloc(p->count ? p->count : 1, sizeof(float));
    if (!p->value) {
        mm_err_set(err, "trainer: out of memory for %zu parameters", p->count);
        return -1;
    }
    return 0;
}

static void copy_token_rows(struct train_params *p)
{
    const struct k_matrix *e = &p->model->tok_embd;
    float *rows = p->value + p->t[p->rows_t].off;
    for (int i = 0; i < p->cfg.n_tokens; i++)
        mm_dequantize_row(e->dtype,
                          (const uint8_t *)e->data + (size_t)p->cfg.token_ids[i] * e->row_bytes,
                          rows + (size_t)i * e->cols, e->cols);
}

int train_params_init(struct train_params *p, const struct model *m,
                      const struct train_lora_config *cfg, uint64_t seed, struct mm_err *err)
{
    memset(p, 0, sizeof(*p));
    p->cfg = *cfg;
    json_incref(cfg->rank_pattern);
    json_incref(cfg->alpha_pattern);
    if (layout(p, m, err)) {
        train_params_free(p);
        return -1;
    }
    size_t n_mod = (size_t)m->cfg.n_layers * LIN_COUNT + 1;
    for (size_t k = 0; k < n_mod; k++) {
        int a = p->mod[k].a; /* each lora_A draws from its tensor's own stream */
        if (a < 0) continue;
        const struct train_tensor *t = &p->t[a];
        float bound = 1.0f / sqrtf((float)t->cols);
        for (int64_t j = 0; j < t->rows * t->cols; j++)
            p->value[t->off + (size_t)j] =
                bound * (2.0f * train_rng_uniform(seed, (uint64_t)a, (uint64_t)j) - 1.0f);
    }
    if (p->rows_t >= 0) copy_token_rows(p);
    return 0;
}

static int is_gguf_qk(const struct train_params *p, int lin)
{
    return p->model->cfg.rope_style == K_ROPE_NORM && (lin == LIN_Q || lin == LIN_K);
}

/* The lora_B of q/k between the model's GGUF row order and HF's. */
static int permute_qk(struct train_params *p, float *value, int back)
{
    const struct model_config *c = &p->model->cfg;
    for (int layer = 0; layer < c->n_layers; layer++)
        for (int lin = LIN_Q; lin <= LIN_K; lin++) {
            const struct train_module *mod = train_module_at(p, layer, lin);
            if (mod->a < 0 || !is_gguf_qk(p, lin)) continue;
            const struct train_tensor *t = &p->t[mod->b];
            if (lora_permute_rows_for_norm_rope(value + t->off, t->rows, t->cols,
                                                lin == LIN_Q ? c->n_heads : c->n_kv_heads, back))
                return -1;
        }
    return 0;
}

/* The config PEFT needs to rebuild the adapter: targets, ranks, alphas,
 * patterns and the token rows. */
static int read_config(struct train_lora_config *cfg, json_t *j, const char *path,
                       struct mm_err *err)
{
    json_t *r = json_object_get(j, "r"), *alpha = json_object_get(j, "lora_alpha");
    json_t *targets = json_object_get(j, "target_modules");
    if (!json_is_integer(r) || !json_is_number(alpha) || !json_is_array(targets)) {
        mm_err_set(err, "%s: needs integer 'r', numeric 'lora_alpha' and a 'target_modules' list",
                   path);
        return -1;
    }
    cfg->rank = (int)json_integer_value(r);
    cfg->alpha = json_number_value(alpha);
    size_t i;
    json_t *v;
    json_array_foreach(targets, i, v)
    {
        unsigned bit;
        if (!json_is_string(v) || train_parse_targets(json_string_value(v), &bit, err)) {
            mm_err_prefix(err, "%s: target_modules", path);
            return -1;
        }
        cfg->targets |= bit;
    }
    cfg->rank_pattern = json_incref(json_object_get(j, "rank_pattern"));
    cfg->alpha_pattern = json_incref(json_object_get(j, "alpha_pattern"));
    json_t *tok = json_object_get(j, "trainable_token_indices");
    if (json_is_object(tok)) tok = json_object_get(tok, "embed_tokens");
    if (tok && !json_is_null(tok)) {
        if (!json_is_array(tok) || json_array_size(tok) > TRAIN_MAX_TOKENS) {
            mm_err_set(err, "%s: trainable_token_indices must be a list of at most %d ids", path,
                       TRAIN_MAX_TOKENS);
            return -1;
        }
        json_array_foreach(tok, i, v)
        {
            if (!json_is_integer(v)) {
                mm_err_set(err, "%s: trainable_token_indices[%zu] is not an integer", path, i);
                return -1;
            }
            cfg->token_ids[cfg->n_tokens++] = (int32_t)json_integer_value(v);
        }
    }
    return 0;
}

int train_params_load(struct train_params *p, const struct model *m, const char *dir, float dropout,
                      struct mm_err *err)
{
    memset(p, 0, sizeof(*p));
    char path[4096];
    snprintf(path, sizeof(path), "%s/adapter_config.json", dir);
    json_error_t jerr;
    json_t *j = json_load_file(path, 0, &jerr);
    struct st_set st = {0};
    int rc = -1;
    if (!json_is_object(j)) {
        mm_err_set(err, "%s: %s", path, j ? "not a JSON object" : jerr.text);
        goto out;
    }
    if (read_config(&p->cfg, j, path, err)) goto out;
    p->cfg.dropout = dropout;
    if (layout(p, m, err) || st_set_open(&st, dir, "adapter_model", err)) goto out;
    for (int i = 0; i < p->n_t; i++) {
        const struct train_tensor *t = &p->t[i];
        const struct st_tensor *s = st_set_find(&st, t->name);
        if (!s) {
            mm_err_set(err, "%s: adapter_model.safetensors lacks '%s', which its config implies",
                       dir, t->name);
            goto out;
        }
        if (s->n_dims != 2 || s->shape[0] != t->rows || s->shape[1] != t->cols) {
            mm_err_set(err, "%s: tensor '%s' is not [%lld, %lld] as the base model implies", dir,
                       t->name, (long long)t->rows, (long long)t->cols);
            goto out;
        }
        size_t row = mm_dtype_row_bytes(s->dtype, t->cols);
        for (int64_t r = 0; r < t->rows; r++)
            mm_dequantize_row(s->dtype, s->data + (size_t)r * row,
                              p->value + t->off + (size_t)(r * t->cols), t->cols);
    }
    if (permute_qk(p, p->value, 0)) {
        mm_err_set(err, "%s: out of memory", dir);
        goto out;
    }
    rc = 0;
out:
    st_set_close(&st);
    json_decref(j);
    if (rc) train_params_free(p);
    return rc;
}

static json_t *config_json(const struct train_params *p)
{
    json_t *targets = json_array(), *tokens = json_null();
    for (int i = 0; i <= LIN_COUNT; i++)
        if (p->cfg.targets & (1u << i))
            json_array_append_new(targets, json_string(target_names[i]));
    if (p->cfg.n_tokens > 0) {
        tokens = json_array();
        for (int i = 0; i < p->cfg.n_tokens; i++)
            json_array_append_new(tokens, json_integer(p->cfg.token_ids[i]));
    }
    /* "o" takes a reference: the patterns' own are the params' */
    json_t *rank_pattern = p->cfg.rank_pattern ? json_incref(p->cfg.rank_pattern) : json_object();
    json_t *alpha_pattern =
        p->cfg.alpha_pattern ? json_incref(p->cfg.alpha_pattern) : json_object();
    return json_pack("{s:s, s:s, s:o, s:i, s:f, s:f, s:o, s:o, s:o, s:s, s:b, s:b, s:b, s:o, "
                     "s:b, s:s}",
                     "peft_type", "LORA", "task_type", "CAUSAL_LM", "base_model_name_or_path",
                     json_null(), "r", p->cfg.rank, "lora_alpha", p->cfg.alpha, "lora_dropout",
                     (double)p->cfg.dropout, "target_modules", targets, "rank_pattern",
                     rank_pattern, "alpha_pattern", alpha_pattern, "bias", "none", "fan_in_fan_out",
                     0, "use_rslora", 0, "use_dora", 0, "trainable_token_indices", tokens,
                     "inference_mode", 1, "peft_version", "0.21.2");
}

int train_params_save(const struct train_params *p, const char *dir, enum mm_dtype dtype,
                      struct mm_err *err)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        mm_err_set(err, "%s: %s", dir, strerror(errno));
        return -1;
    }
    float *hf = malloc((p->count ? p->count : 1) * sizeof(float));
    struct st_out_tensor *out = calloc((size_t)p->n_t + 1, sizeof(*out));
    json_t *cfg = config_json(p);
    int rc = -1;
    if (!hf || !out || !cfg) {
        mm_err_set(err, "%s: out of memory", dir);
        goto done;
    }
    memcpy(hf, p->value, p->count * sizeof(float));
    if (permute_qk((struct train_params *)p, hf, 1)) {
        mm_err_set(err, "%s: out of memory", dir);
        goto done;
    }
    for (int i = 0; i < p->n_t; i++)
        out[i] = (struct st_out_tensor){p->t[i].name, dtype, p->t[i].rows, p->t[i].cols,
                                        hf + p->t[i].off};
    char path[4096], tmp[4200];
    snprintf(path, sizeof(path), "%s/adapter_model.safetensors", dir);
    if (st_write(path, out, (size_t)p->n_t, "{\"format\": \"pt\"}", err)) goto done;
    snprintf(path, sizeof(path), "%s/adapter_config.json", dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (json_dump_file(cfg, tmp, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0 ||
        rename(tmp, path) != 0) {
        mm_err_set(err, "%s: write failed", path);
        goto done;
    }
    rc = 0;
done:
    json_decref(cfg);
    free(out);
    free(hf);
    return rc;
}

void train_params_free(struct train_params *p)
{
    for (int i = 0; i < p->n_t; i++)
        free(p->t[i].name);
    free(p->t);
    free(p->value);
    free(p->mod);
    json_decref(p->cfg.rank_pattern);
    json_decref(p->cfg.alpha_pattern);
    memset(p, 0, sizeof(*p));
}
