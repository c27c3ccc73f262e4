#include "embedder_bert.h"

#include "bert_model.h"
#include "kernels.h"
#include "tokenizer.h"

#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Tokens encoded per forward pass: large enough for the matrix products to
 * run at full speed, small enough that the activations (~15 KB a token for
 * MiniLM) stay modest. A longer sequence still gets a pass of its own. */
#define PASS_TOKENS 2048

struct bert_embedder {
    struct mm_embedder base;
    char name[128];
    struct bert_model *model;
    struct tokenizer *tok;
    int max_tokens; /* [CLS] and [SEP] included */
};

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Loads dir/rel when it exists: 1 with *root set, 0 when absent, -1 when
 * unreadable or not a JSON object. */
static int load_optional_json(const char *dir, const char *rel, json_t **root, char *path,
                              size_t cap, struct mm_err *err)
{
    snprintf(path, cap, "%s/%s", dir, rel);
    if (!file_exists(path)) return 0;
    json_error_t jerr;
    *root = json_load_file(path, 0, &jerr);
    if (!*root) {
        mm_err_set(err, "%s: line %d column %d: %s", path, jerr.line, jerr.column, jerr.text);
        return -1;
    }
    if (!json_is_object(*root) && !json_is_array(*root)) {
        json_decref(*root);
        mm_err_set(err, "%s: not a JSON object", path);
        return -1;
    }
    return 1;
}

/* modules.json: the sentence-transformers pipeline. Only Transformer,
 * Pooling and Normalize are understood; a Dense layer or anything else would
 * change the vectors. Sets the pooling config's folder. */
static int check_modules(const char *dir, char *pooling_dir, size_t cap, struct mm_err *err)
{
    char path[4096];
    json_t *root;
    snprintf(pooling_dir, cap, "1_Pooling");
    int found = load_optional_json(dir, "modules.json", &root, path, sizeof(path), err);
    if (found <= 0) return found;
    int rc = -1;
    if (!json_is_array(root)) {
        mm_err_set(err, "%s: expected a list of modules", path);
        goto out;
    }
    static const char prefix[] = "sentence_transformers.models.";
    size_t i;
    json_t *mod;
    json_array_foreach(root, i, mod)
    {
        const char *type = json_string_value(json_object_get(mod, "type"));
        const char *mpath = json_string_value(json_object_get(mod, "path"));
        if (!type || !mpath || strncmp(type, prefix, sizeof(prefix) - 1) != 0) {
            mm_err_set(err, "%s: module %zu has no sentence_transformers type and path", path, i);
            goto out;
        }
        const char *kind = type + sizeof(prefix) - 1;
        if (!strcmp(kind, "Transformer")) {
            if (mpath[0]) {
                mm_err_set(err,
                           "%s: the Transformer module is in '%s'; only a model at the "
                           "directory's top is supported",
                           path, mpath);
                goto out;
            }
        } else if (!strcmp(kind, "Pooling")) {
            snprintf(pooling_dir, cap, "%s", mpath);
        } else if (strcmp(kind, "Normalize") != 0) {
            mm_err_set(err, "%s: module %s is not supported (Transformer, Pooling, Normalize)",
                       path, type);
            goto out;
        }
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

/* The pooling config must ask for mean pooling and nothing else. */
static int check_pooling(const char *dir, const char *pooling_dir, int dim, struct mm_err *err)
{
    char rel[4200], path[4096];
    snprintf(rel, sizeof(rel), "%s/config.json", pooling_dir);
    json_t *root;
    int found = load_optional_json(dir, rel, &root, path, sizeof(path), err);
    if (found <= 0) return found; /* sentence-transformers' default: mean */
    int rc = -1;
    json_t *wdim = json_object_get(root, "word_embedding_dimension");
    if (wdim && json_integer_value(wdim) != dim) {
        mm_err_set(err, "%s: word_embedding_dimension is not the model's hidden size %d", path,
                   dim);
        goto out;
    }
    int mean = 0;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (!strcmp(key, "pooling_mode") && json_is_string(v)) {
            mean = !strcmp(json_string_value(v), "mean");
            if (!mean) break;
        } else if (!strncmp(key, "pooling_mode_", 13) && json_is_true(v)) {
            mean = !strcmp(key, "pooling_mode_mean_tokens");
            if (!mean) break;
        }
    }
    if (!mean) {
        mm_err_set(err, "%s: only mean pooling (pooling_mode_mean_tokens alone) is supported",
                   path);
        goto out;
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

/* sentence_bert_config.json: the token limit; config_sentence_transformers
 * .json: no default prompt (which sentence-transformers would prepend). */
static int read_st_settings(const char *dir, int max_positions, int *max_tokens, struct mm_err *err)
{
    char path[4096];
    json_t *root;
    *max_tokens = max_positions;
    int found =
        load_optional_json(dir, "sentence_bert_config.json", &root, path, sizeof(path), err);
    if (found < 0) return -1;
    if (found) {
        json_t *max = json_object_get(root, "max_seq_length");
        int bad_max = max && (!json_is_integer(max) || json_integer_value(max) < 2 ||
                              json_integer_value(max) > max_positions);
        int lower = json_is_true(json_object_get(root, "do_lower_case"));
        if (max && !bad_max) *max_tokens = (int)json_integer_value(max);
        json_decref(root);
        if (bad_max) {
            mm_err_set(err, "%s: max_seq_length must be an integer in 2..%d", path, max_positions);
            return -1;
        }
        if (lower) {
            mm_err_set(err,
                       "%s: do_lower_case is not supported (the tokenizer's normalizer "
                       "lowercases uncased models)",
                       path);
            return -1;
        }
    }
    found = load_optional_json(dir, "config_sentence_transformers.json", &root, path, sizeof(path),
                               err);
    if (found <= 0) return found;
    json_t *prompt = json_object_get(root, "default_prompt_name");
    int has_prompt = prompt && !json_is_null(prompt);
    json_decref(root);
    if (has_prompt) {
        mm_err_set(err, "%s: a default prompt is not supported", path);
        return -1;
    }
    return 0;
}

/* ---- name ---- */

static uint64_t fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* Hashes what decides the vectors besides the code: tokenizer.json, the
 * token limit, and every tensor's name, dtype, shape and first 4 KiB (a
 * finetuned model differs in all of them). */
static int fingerprint(const struct bert_embedder *b, const char *dir, uint64_t *out,
                       struct mm_err *err)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    FILE *f = fopen(path, "rb");
    if (!f) {
        mm_err_set(err, "%s: cannot read", path);
        return -1;
    }
    uint64_t h = 0xcbf29ce484222325ULL;
    char buf[65536];
    size_t got;
    while ((got = fread(buf, 1, sizeof(buf), f)) > 0)
        h = fnv1a(h, buf, got);
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        mm_err_set(err, "%s: read error", path);
        return -1;
    }
    h = fnv1a(h, &b->max_tokens, sizeof(b->max_tokens));
    const struct st_set *st = &b->model->st;
    for (size_t i = 0; i < st->n_files; i++) {
        for (size_t j = 0; j < st->files[i]->n_tensors; j++) {
            const struct st_tensor *t = &st->files[i]->tensors[j];
            int32_t dtype = (int32_t)t->dtype;
            h = fnv1a(h, t->name, strlen(t->name) + 1);
            h = fnv1a(h, &dtype, sizeof(dtype));
            h = fnv1a(h, t->shape, sizeof(t->shape[0]) * (size_t)t->n_dims);
            h = fnv1a(h, t->data, t->nbytes < 4096 ? t->nbytes : 4096);
        }
    }
    *out = h;
    return 0;
}

static int make_name(struct bert_embedder *b, const char *dir, struct mm_err *err)
{
    char real[PATH_MAX];
    if (!realpath(dir, real)) {
        mm_err_set(err, "%s: cannot resolve the path", dir);
        return -1;
    }
    const char *base = basename(real);
    uint64_t h;
    if (fingerprint(b, dir, &h, err)) return -1;
    int n = snprintf(b->name, sizeof(b->name), "%s" MM_BERT_EMBEDDER_SUFFIX "%08x", base,
                     (unsigned)(h ^ (h >> 32)));
    if (n < 0 || (size_t)n >= sizeof(b->name)) {
        mm_err_set(err, "%s: the directory name is too long for an embedder name", dir);
        return -1;
    }
    return 0;
}

/* ---- embedding ---- */

static int tokenize(const struct bert_embedder *b, const char *text, int32_t **ids, size_t *n,
                    struct mm_err *err)
{
    /* Special tokens written in the text ("[SEP]") are recognised, as the HF
     * tokenizer sentence-transformers calls does. */
    if (tok_encode(b->tok, text, strlen(text), 1, 1, ids, n, err)) return -1;
    /* Truncation keeps the head of the text and the closing [SEP]. */
    if (*n > (size_t)b->max_tokens) {
        (*ids)[b->max_tokens - 1] = (*ids)[*n - 1];
        *n = (size_t)b->max_tokens;
    }
    return 0;
}

int mm_bert_embedder_tokenize(const struct mm_embedder *e, const char *text, int32_t **ids,
                              size_t *n, struct mm_err *err)
{
    return tokenize((const struct bert_embedder *)e, text, ids, n, err);
}

/* Mean of each sequence's token states, L2-normalised (as
 * torch.nn.functional.normalize: eps 1e-12). */
static void pool(const float *hidden, const int *lens, int n_seqs, int dim, float *out)
{
    for (int s = 0; s < n_seqs; s++) {
        float *o = out + (size_t)s * dim;
        memset(o, 0, (size_t)dim * sizeof(*o));
        for (int t = 0; t < lens[s]; t++)
            k_add_inplace(o, hidden + (size_t)t * dim, dim);
        for (int d = 0; d < dim; d++)
            o[d] /= (float)lens[s];
        double norm2 = 0;
        for (int d = 0; d < dim; d++)
            norm2 += (double)o[d] * o[d];
        float inv = (float)(1.0 / fmax(sqrt(norm2), 1e-12));
        for (int d = 0; d < dim; d++)
            o[d] *= inv;
        hidden += (size_t)lens[s] * dim;
    }
}

struct batch {
    int32_t **ids;
    int *lens;
    int32_t *flat;
    float *hidden;
};

/* Encodes texts [first, end) in one pass. */
static int run_pass(struct bert_embedder *b, struct batch *bt, size_t first, size_t end, float *out,
                    struct mm_err *err)
{
    int dim = b->model->cfg.dim;
    size_t t = 0;
    for (size_t i = first; i < end; i++) {
        memcpy(bt->flat + t, bt->ids[i], (size_t)bt->lens[i] * sizeof(int32_t));
        t += (size_t)bt->lens[i];
    }
    if (bert_forward(b->model, bt->flat, bt->lens + first, (int)(end - first), bt->hidden, err))
        return -1;
    pool(bt->hidden, bt->lens + first, (int)(end - first), dim, out + first * (size_t)dim);
    return 0;
}

static int bert_embed(struct mm_embedder *self, const char *const *texts, size_t n, float *out,
                      struct mm_err *err)
{
    struct bert_embedder *b = (struct bert_embedder *)self;
    if (n == 0) return 0;
    int dim = b->model->cfg.dim;
    size_t pass_tokens = PASS_TOKENS > b->max_tokens ? PASS_TOKENS : (size_t)b->max_tokens;
    struct batch bt = {
        .ids = calloc(n, sizeof(*bt.ids)),
        .lens = malloc(n * sizeof(*bt.lens)),
        .flat = malloc(pass_tokens * sizeof(*bt.flat)),
        .hidden = malloc(pass_tokens * (size_t)dim * sizeof(*bt.hidden)),
    };
    int rc = -1;
    if (!bt.ids || !bt.lens || !bt.flat || !bt.hidden) {
        mm_err_set(err, "%s: out of memory for %zu texts", b->name, n);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        size_t len;
        if (tokenize(b, texts[i], &bt.ids[i], &len, err)) goto out;
        bt.lens[i] = (int)len;
    }
    size_t first = 0, tokens = 0;
    for (size_t i = 0; i < n; i++) {
        if (tokens + (size_t)bt.lens[i] > pass_tokens) {
            if (run_pass(b, &bt, first, i, out, err)) goto out;
            first = i;
            tokens = 0;
        }
        tokens += (size_t)bt.lens[i];
    }
    rc = run_pass(b, &bt, first, n, out, err);
out:
    if (bt.ids)
        for (size_t i = 0; i < n; i++)
            free(bt.ids[i]);
    free(bt.ids);
    free(bt.lens);
    free(bt.flat);
    free(bt.hidden);
    return rc;
}

static void bert_destroy(struct mm_embedder *self)
{
    struct bert_embedder *b = (struct bert_embedder *)self;
    bert_model_free(b->model);
    tok_free(b->tok);
    free(b);
}

struct mm_embedder *mm_bert_embedder_new(const char *model_dir, struct mm_err *err)
{
    struct bert_embedder *b = calloc(1, sizeof(*b));
    if (!b) {
        mm_err_set(err, "%s: out of memory", model_dir);
        return NULL;
    }
    b->base.name = b->name;
    b->base.embed = bert_embed;
    b->base.destroy = bert_destroy;
    char pooling_dir[1024];
    if (!(b->model = bert_model_load(model_dir, err))) goto fail;
    b->base.dim = b->model->cfg.dim;
    if (check_modules(model_dir, pooling_dir, sizeof(pooling_dir), err) ||
        check_pooling(model_dir, pooling_dir, b->base.dim, err) ||
        read_st_settings(model_dir, b->model->cfg.max_positions, &b->max_tokens, err))
        goto fail;
    if (!(b->tok = tok_load(model_dir, err))) goto fail;
    if (tok_bos(b->tok) < 0 || tok_eos(b->tok) < 0) {
        mm_err_set(err, "%s/tokenizer.json: no [CLS]/[SEP] tokens to frame a text with", model_dir);
        goto fail;
    }
    if (tok_n_vocab(b->tok) > b->model->cfg.vocab_size) {
        mm_err_set(err, "%s/tokenizer.json: %d tokens, but the model embeds only %d", model_dir,
                   tok_n_vocab(b->tok), b->model->cfg.vocab_size);
        goto fail;
    }
    if (make_name(b, model_dir, err)) goto fail;
    return &b->base;
fail:
    bert_destroy(&b->base);
    return NULL;
}
