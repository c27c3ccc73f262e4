#include "model_config.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* config.json integer field; `dflt` < 0 means required. */
static int json_int(json_t *root, const char *path, const char *key, long long dflt, int *out,
                    struct mm_err *err)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        if (dflt < 0) {
            mm_err_set(err, "%s: missing required field '%s'", path, key);
            return -1;
        }
        *out = (int)dflt;
        return 0;
    }
    if (!json_is_integer(v)) {
        mm_err_set(err, "%s: field '%s' must be an integer", path, key);
        return -1;
    }
    json_int_t x = json_integer_value(v);
    if (x < 0 || x > 1 << 30) {
        mm_err_set(err, "%s: field '%s' = %lld is out of range", path, key, (long long)x);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int json_float(json_t *root, const char *path, const char *key, double dflt, float *out,
                      struct mm_err *err)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        *out = (float)dflt;
        return 0;
    }
    if (!json_is_number(v)) {
        mm_err_set(err, "%s: field '%s' must be a number", path, key);
        return -1;
    }
    *out = (float)json_number_value(v);
    return 0;
}

static int field_is_true(json_t *root, const char *key)
{
    return json_is_true(json_object_get(root, key));
}

int model_config_from_json(struct model_config *c, const char *path, struct mm_err *err)
{
    memset(c, 0, sizeof(*c));
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
    const char *type = json_string_value(json_object_get(root, "model_type"));
    if (!type) {
        mm_err_set(err, "%s: missing 'model_type'", path);
        goto out;
    }
    if (!strcmp(type, "llama")) {
        c->arch = MODEL_ARCH_LLAMA;
    } else if (!strcmp(type, "mistral")) {
        c->arch = MODEL_ARCH_MISTRAL;
    } else {
        mm_err_set(err, "%s: model_type '%s' is not supported (llama, mistral)", path, type);
        goto out;
    }
    const char *act = json_string_value(json_object_get(root, "hidden_act"));
    if (act && strcmp(act, "silu") != 0) {
        mm_err_set(err, "%s: hidden_act '%s' is not supported (silu)", path, act);
        goto out;
    }
    json_t *scaling = json_object_get(root, "rope_scaling");
    if (scaling && !json_is_null(scaling)) {
        mm_err_set(err, "%s: rope_scaling is not supported", path);
        goto out;
    }
    /* transformers >= 5 writes {"rope_parameters": {"rope_theta": ...,
     * "rope_type": "default"}} where older versions wrote "rope_theta". */
    json_t *rope = json_object_get(root, "rope_parameters");
    json_t *rope_src = root;
    if (rope && !json_is_null(rope)) {
        const char *rope_type = json_string_value(json_object_get(rope, "rope_type"));
        if (!json_is_object(rope) || (rope_type && strcmp(rope_type, "default") != 0)) {
            mm_err_set(err, "%s: rope_parameters: only rope_type \"default\" is supported", path);
            goto out;
        }
        rope_src = rope;
    }
    if (field_is_true(root, "attention_bias") || field_is_true(root, "mlp_bias")) {
        mm_err_set(err, "%s: attention_bias / mlp_bias are not supported", path);
        goto out;
    }
    if (json_int(root, path, "num_hidden_layers", -1, &c->n_layers, err) ||
        json_int(root, path, "hidden_size", -1, &c->dim, err) ||
        json_int(root, path, "intermediate_size", -1, &c->ffn_dim, err) ||
        json_int(root, path, "num_attention_heads", -1, &c->n_heads, err) ||
        json_int(root, path, "num_key_value_heads", c->n_heads, &c->n_kv_heads, err) ||
        json_int(root, path, "vocab_size", -1, &c->vocab_size, err) ||
        json_int(root, path, "max_position_embeddings", 2048, &c->max_positions, err) ||
        json_int(root, path, "sliding_window", 0, &c->sliding_window, err) ||
        json_float(rope_src, path, "rope_theta", 10000.0, &c->rope_theta, err) ||
        json_float(root, path, "rms_norm_eps", 1e-6, &c->norm_eps, err))
        goto out;
    int default_head_dim = c->n_heads > 0 ? c->dim / c->n_heads : 0;
    if (json_int(root, path, "head_dim", default_head_dim, &c->head_dim, err)) goto out;
    /* Mistral configs may carry a window even when use_sliding_window-like
     * switches are absent; Llama has none. */
    if (c->arch == MODEL_ARCH_LLAMA) c->sliding_window = 0;
    c->tied_embeddings = field_is_true(root, "tie_word_embeddings");
    c->rope_style = K_ROPE_NEOX;
    rc = model_config_validate(c, path, err);
out:
    json_decref(root);
    return rc;
}

static int gguf_arch_u32(const struct gguf_file *g, const char *arch, const char *suffix,
                         uint32_t dflt, int required, int *out, struct mm_err *err)
{
    char key[128];
    snprintf(key, sizeof(key), "%s.%s", arch, suffix);
    if (!gguf_find_kv(g, key)) {
        if (required) {
            mm_err_set(err, "%s: missing metadata key '%s'", g->path, key);
            return -1;
        }
        *out = (int)dflt;
        return 0;
    }
    uint32_t v;
    if (gguf_get_u32(g, key, &v, err)) return -1;
    if (v > 1u << 30) {
        mm_err_set(err, "%s: metadata '%s' = %u is out of range", g->path, key, v);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int gguf_arch_f32(const struct gguf_file *g, const char *arch, const char *suffix,
                         float dflt, float *out, struct mm_err *err)
{
    char key[128];
    snprintf(key, sizeof(key), "%s.%s", arch, suffix);
    if (!gguf_find_kv(g, key)) {
        *out = dflt;
        return 0;
    }
    return gguf_get_f32(g, key, out, err);
}

int model_config_from_gguf(struct model_config *c, const struct gguf_file *g, struct mm_err *err)
{
    memset(c, 0, sizeof(*c));
    struct gguf_str a;
    if (gguf_get_str(g, "general.architecture", &a, err)) return -1;
    char arch[32];
    if (a.len >= sizeof(arch)) {
        mm_err_set(err, "%s: general.architecture is too long", g->path);
        return -1;
    }
    memcpy(arch, a.ptr, a.len);
    arch[a.len] = 0;
    if (!strcmp(arch, "llama")) {
        c->arch = MODEL_ARCH_LLAMA;
    } else if (!strcmp(arch, "mistral")) {
        c->arch = MODEL_ARCH_MISTRAL;
    } else {
        mm_err_set(err, "%s: architecture '%s' is not supported (llama, mistral)", g->path, arch);
        return -1;
    }
    if (gguf_arch_u32(g, arch, "block_count", 0, 1, &c->n_layers, err) ||
        gguf_arch_u32(g, arch, "embedding_length", 0, 1, &c->dim, err) ||
        gguf_arch_u32(g, arch, "feed_forward_length", 0, 1, &c->ffn_dim, err) ||
        gguf_arch_u32(g, arch, "attention.head_count", 0, 1, &c->n_heads, err) ||
        gguf_arch_u32(g, arch, "context_length", 2048, 0, &c->max_positions, err) ||
        gguf_arch_u32(g, arch, "attention.sliding_window", 0, 0, &c->sliding_window, err) ||
        gguf_arch_f32(g, arch, "rope.freq_base", 10000.0f, &c->rope_theta, err) ||
        gguf_arch_f32(g, arch, "attention.layer_norm_rms_epsilon", 1e-5f, &c->norm_eps, err))
        return -1;
    if (gguf_arch_u32(g, arch, "attention.head_count_kv", (uint32_t)c->n_heads, 0, &c->n_kv_heads,
                      err))
        return -1;
    int default_head_dim = c->n_heads > 0 ? c->dim / c->n_heads : 0;
    if (gguf_arch_u32(g, arch, "attention.key_length", (uint32_t)default_head_dim, 0, &c->head_dim,
                      err))
        return -1;
    const struct gguf_tensor *emb = gguf_find_tensor(g, "token_embd.weight");
    if (!emb) {
        mm_err_set(err, "%s: missing tensor 'token_embd.weight'", g->path);
        return -1;
    }
    if (emb->n_dims != 2 || emb->ne[1] > (1 << 30)) {
        mm_err_set(err, "%s: tensor 'token_embd.weight' must be 2-D [dim, vocab]", g->path);
        return -1;
    }
    c->vocab_size = (int)emb->ne[1];
    c->tied_embeddings = gguf_find_tensor(g, "output.weight") == NULL;
    /* convert_hf_to_gguf.py permutes Q and K rows so that llama.cpp can rotate
     * adjacent pairs; the rotation must follow the stored layout. */
    c->rope_style = K_ROPE_NORM;
    return model_config_validate(c, g->path, err);
}

int model_config_validate(const struct model_config *c, const char *source, struct mm_err *err)
{
    if (c->n_layers <= 0 || c->dim <= 0 || c->ffn_dim <= 0 || c->n_heads <= 0 ||
        c->n_kv_heads <= 0 || c->head_dim <= 0 || c->vocab_size <= 0 || c->max_positions <= 0) {
        mm_err_set(err,
                   "%s: layers, hidden size, intermediate size, heads, kv heads, head_dim, "
                   "vocab size and max positions must all be positive",
                   source);
        return -1;
    }
    if (c->n_heads % c->n_kv_heads != 0) {
        mm_err_set(err, "%s: %d attention heads are not a multiple of %d key/value heads", source,
                   c->n_heads, c->n_kv_heads);
        return -1;
    }
    if (c->head_dim % 2 != 0) {
        mm_err_set(err, "%s: head_dim %d must be even for rotary embeddings", source, c->head_dim);
        return -1;
    }
    if (!(c->norm_eps > 0.0f) || !(c->rope_theta > 0.0f)) {
        mm_err_set(err, "%s: rms_norm_eps and rope_theta must be positive", source);
        return -1;
    }
    if (c->sliding_window < 0) {
        mm_err_set(err, "%s: sliding_window must not be negative", source);
        return -1;
    }
    return 0;
}
