/* Loading a tokenizer from GGUF metadata (tokenizer.ggml.*), to encode as
 * llama.cpp does:
 *   "llama": SentencePiece scores, merged by score; a space before the text
 *            (add_space_prefix) and spaces as U+2581.
 *   "gpt2":  byte-level BPE merges; tokenizer.ggml.pre names the
 *            pre-tokenizer regexes ("default", "gpt-2" and its aliases,
 *            "smollm" and its aliases).
 *   "bert":  WordPiece over a vocabulary whose word starts carry U+2581. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "tokenizer_impl.h"

/* llama.cpp's token types */
enum {
    GGUF_TOKEN_NORMAL = 1,
    GGUF_TOKEN_UNKNOWN = 2,
    GGUF_TOKEN_CONTROL = 3,
    GGUF_TOKEN_USER_DEFINED = 4,
    GGUF_TOKEN_UNUSED = 5,
    GGUF_TOKEN_BYTE = 6,
};

struct gloader {
    const struct gguf_file *g;
    struct tokenizer *t;
    struct mm_err *err;
};

static int str_eq(struct gguf_str s, const char *c)
{
    return s.len == strlen(c) && memcmp(s.ptr, c, s.len) == 0;
}

static int opt_str(struct gloader *L, const char *key, struct gguf_str *out)
{
    out->ptr = NULL;
    out->len = 0;
    if (!gguf_find_kv(L->g, key)) return 0;
    if (gguf_get_str(L->g, key, out, L->err)) {
        mm_err_prefix(L->err, "%s", L->t->name);
        return -1;
    }
    return 0;
}

static int opt_bool(struct gloader *L, const char *key, int dflt, int *out)
{
    const struct gguf_kv *kv = gguf_find_kv(L->g, key);
    *out = dflt;
    if (!kv) return 0;
    if (kv->type != GGUF_BOOL) TOK_FAIL(L, "key '%s': expected a bool", key);
    *out = kv->v.u64 != 0;
    return 0;
}

/* An optional token id; out of range ids are refused. */
static int opt_id(struct gloader *L, const char *key, int *id)
{
    if (!gguf_find_kv(L->g, key)) return 0;
    uint32_t v;
    if (gguf_get_u32(L->g, key, &v, L->err)) {
        mm_err_prefix(L->err, "%s", L->t->name);
        return -1;
    }
    if (v >= (uint32_t)L->t->n_vocab)
        TOK_FAIL(L, "key '%s': token id %u is out of range (%d tokens)", key, v, L->t->n_vocab);
    *id = (int)v;
    return 0;
}

static const struct gguf_kv *array_kv(struct gloader *L, const char *key, int required)
{
    const struct gguf_kv *kv = gguf_find_kv(L->g, key);
    if (!kv) {
        if (required) mm_err_set(L->err, "%s: missing key '%s'", L->t->name, key);
        return NULL;
    }
    if (kv->type != GGUF_ARRAY) {
        mm_err_set(L->err, "%s: key '%s': expected an array", L->t->name, key);
        return NULL;
    }
    return kv;
}

static int load_tokens(struct gloader *L)
{
    struct tokenizer *t = L->t;
    const struct gguf_kv *tokens = array_kv(L, "tokenizer.ggml.tokens", 1);
    if (!tokens) return -1;
    if (tokens->arr_type != GGUF_STRING)
        TOK_FAIL(L, "key 'tokenizer.ggml.tokens': expected an array of strings");
    if (tokens->arr_len == 0 || tokens->arr_len > (1u << 30))
        TOK_FAIL(L, "key 'tokenizer.ggml.tokens': %llu tokens",
                 (unsigned long long)tokens->arr_len);
    uint64_t n = tokens->arr_len;
    for (uint64_t i = 0; i < n; i++) {
        struct gguf_str s = gguf_arr_str(tokens, i);
        if (s.len == 0) {
            /* As llama.cpp: an empty token gets a name no text produces. */
            char name[32];
            int k = snprintf(name, sizeof(name), "[EMPTY_%llu]", (unsigned long long)i);
            if (tok_push_piece(t, name, (size_t)k, L->err)) return -1;
        } else if (tok_push_piece(t, s.ptr, s.len, L->err)) {
            return -1;
        }
    }

    const struct gguf_kv *types = gguf_find_kv(L->g, "tokenizer.ggml.token_type");
    if (types) {
        if (types->type != GGUF_ARRAY || types->arr_type != GGUF_INT32 || types->arr_len < n)
            TOK_FAIL(L, "key 'tokenizer.ggml.token_type': expected %llu int32 values",
                     (unsigned long long)n);
        for (uint64_t i = 0; i < n; i++) {
            int32_t ty;
            memcpy(&ty, types->arr_data + 4 * i, 4);
            if (ty == GGUF_TOKEN_UNKNOWN || ty == GGUF_TOKEN_CONTROL)
                t->attr[i] |= TOK_ATTR_ADDED | TOK_ATTR_SPECIAL;
            else if (ty == GGUF_TOKEN_USER_DEFINED)
                t->attr[i] |= TOK_ATTR_ADDED;
        }
    }

    const struct gguf_kv *scores = gguf_find_kv(L->g, "tokenizer.ggml.scores");
    if (scores) {
        if (scores->type != GGUF_ARRAY ||
            (scores->arr_type != GGUF_FLOAT32 && scores->arr_type != GGUF_INT32) ||
            scores->arr_len < n)
            TOK_FAIL(L, "key 'tokenizer.ggml.scores': expected %llu float32 or int32 values",
                     (unsigned long long)n);
        if (!(t->score = malloc((size_t)t->cap_vocab * sizeof(float))))
            TOK_FAIL(L, "out of memory for the scores");
        for (int i = 0; i < t->cap_vocab; i++)
            t->score[i] = 0;
        for (uint64_t i = 0; i < n; i++) {
            if (scores->arr_type == GGUF_FLOAT32) {
                memcpy(&t->score[i], scores->arr_data + 4 * i, 4);
            } else {
                int32_t v;
                memcpy(&v, scores->arr_data + 4 * i, 4);
                t->score[i] = (float)v;
            }
        }
    }
    return 0;
}

static int load_merges(struct gloader *L)
{
    struct tokenizer *t = L->t;
    const struct gguf_kv *merges = array_kv(L, "tokenizer.ggml.merges", 1);
    if (!merges) return -1;
    if (merges->arr_type != GGUF_STRING)
        TOK_FAIL(L, "key 'tokenizer.ggml.merges': expected an array of strings");
    struct tok_bytes joined = {0};
    for (uint64_t i = 0; i < merges->arr_len; i++) {
        struct gguf_str s = gguf_arr_str(merges, i);
        /* "a b", split at the first space after the first byte. */
        const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', s.len - 1) : NULL;
        if (!sp) continue; /* llama.cpp keeps it as a pair of empty strings: never applies */
        size_t na = (size_t)(sp - s.ptr), nb = s.len - na - 1;
        joined.len = 0;
        if (tok_bytes_append(&joined, s.ptr, na) || tok_bytes_append(&joined, sp + 1, nb)) {
            free(joined.data);
            TOK_FAIL(L, "out of memory for the merges");
        }
        int a = tok_lookup_model(t, s.ptr, na), b = tok_lookup_model(t, sp + 1, nb);
        int m = tok_lookup_model(t, joined.data, joined.len);
        /* A merge of strings outside the vocabulary cannot apply to symbols
         * that are vocabulary tokens. */
        if (a < 0 || b < 0 || m < 0) continue;
        /* llama.cpp keeps the first rank of a repeated pair. */
        if (tok_add_merge(t, a, b, (int32_t)i, m, 1, L->err)) {
            free(joined.data);
            return -1;
        }
    }
    free(joined.data);
    return 0;
}

static int add_norm(struct gloader *L, struct tok_norm n)
{
    return tok_add_norm(L->t, &n, L->err);
}

static int add_pretok(struct gloader *L, enum tok_pretok_kind kind, int individual)
{
    struct tok_pretok p = {kind, individual, NULL};
    return tok_add_pretok(L->t, &p, L->err);
}

static int name_in(struct gguf_str s, const char *const *names)
{
    for (; *names; names++)
        if (str_eq(s, *names)) return 1;
    return 0;
}

/* tokenizer.ggml.pre -> the regexes of llama.cpp's llm_tokenizer_bpe. */
static int set_pre(struct gloader *L, struct gguf_str pre)
{
    static const char *const gpt2[] = {
        "gpt-2",      "phi-2",        "jina-es",         "jina-de", "gigachat",
        "jina-v2-es", "jina-v2-de",   "a.x-4.0",         "mellum",  "modern-bert",
        "jina-v1-en", "jina-v2-code", "roberta-bpe",     "mpt",     "olmo",
        "jais",       "trillion",     "granite-docling", "exaone4", NULL};
    static const char *const smollm[] = {"smollm",     "starcoder", "refact",
                                         "command-r",  "codeshell", "exaone",
                                         "minerva-7b", "mellum2",   NULL};
    if (!pre.ptr || str_eq(pre, "default")) {
        /* [\p{P}\$\+<=>\^~\|]+, GPT-2's regex, \p{N}+, [0-9][0-9][0-9] */
        return add_pretok(L, TOK_PRE_PUNCT_RUNS, 0) || add_pretok(L, TOK_PRE_GPT2, 0) ||
               add_pretok(L, TOK_PRE_NUMBER_RUNS, 0) || add_pretok(L, TOK_PRE_ASCII_DIGIT3, 0);
    }
    if (name_in(pre, gpt2)) return add_pretok(L, TOK_PRE_GPT2, 0);
    /* \p{N}, then GPT-2's regex */
    if (name_in(pre, smollm))
        return add_pretok(L, TOK_PRE_DIGITS, 1) || add_pretok(L, TOK_PRE_GPT2, 0);
    TOK_FAIL(L,
             "key 'tokenizer.ggml.pre': unsupported pre-tokenizer '%.*s' (supported: default, "
             "gpt-2, smollm and their aliases)",
             (int)(pre.len > 100 ? 100 : pre.len), pre.ptr);
}

/* llama.cpp's default ids, where the vocabulary is big enough for them. */
static void set_default_id(struct tokenizer *t, int *id, int dflt)
{
    *id = dflt < t->n_vocab ? dflt : -1;
}

static int load(struct gloader *L)
{
    struct tokenizer *t = L->t;
    struct gguf_str model, pre;
    if (!gguf_find_kv(L->g, "tokenizer.ggml.model"))
        TOK_FAIL(L, "missing key 'tokenizer.ggml.model' (no tokenizer in this file)");
    if (opt_str(L, "tokenizer.ggml.model", &model) || opt_str(L, "tokenizer.ggml.pre", &pre) ||
        load_tokens(L))
        return -1;
    int sep = -1, add_eos, add_sep;
    if (str_eq(model, "llama")) {
        int space_prefix;
        t->model = TOK_MODEL_SPM;
        if (!t->score) TOK_FAIL(L, "missing key 'tokenizer.ggml.scores'");
        if (opt_bool(L, "tokenizer.ggml.add_space_prefix", 1, &space_prefix)) return -1;
        struct tok_norm replace = {.kind = TOK_NORM_REPLACE};
        if (!(replace.arg = tok_strdup(t, " ", 1)) ||
            !(replace.arg2 = tok_strdup(t, "\xE2\x96\x81", 3)))
            TOK_FAIL(L, "out of memory");
        if (space_prefix && add_norm(L, (struct tok_norm){.kind = TOK_NORM_SPACE_PREFIX_LLAMA}))
            return -1;
        if (add_norm(L, replace)) return -1;
        t->decode = TOK_DEC_PLAIN;
        t->strip_leading_space = space_prefix;
        set_default_id(t, &t->bos, 1);
        set_default_id(t, &t->eos, 2);
        set_default_id(t, &t->unk, 0);
        if (opt_bool(L, "tokenizer.ggml.add_bos_token", 1, &t->add_bos_default)) return -1;
        add_sep = 0;
    } else if (str_eq(model, "gpt2")) {
        t->model = TOK_MODEL_BPE;
        t->byte_level = 1;
        t->decode = TOK_DEC_BYTELEVEL;
        if (load_merges(L) || set_pre(L, pre)) return -1;
        if (opt_bool(L, "tokenizer.ggml.add_bos_token", 0, &t->add_bos_default)) return -1;
        add_sep = 0;
    } else if (str_eq(model, "bert")) {
        int lower, strip;
        t->model = TOK_MODEL_WORDPIECE;
        if (!(t->word_prefix = tok_strdup(t, "\xE2\x96\x81", 3))) TOK_FAIL(L, "out of memory");
        if (opt_bool(L, "tokenizer.ggml.normalizer.lowercase", 1, &lower) ||
            opt_bool(L, "tokenizer.ggml.normalizer.strip_accents", lower, &strip))
            return -1;
        struct tok_norm bert = {.kind = TOK_NORM_BERT,
                                .clean_text = 1,
                                .chinese = 1,
                                .strip_accents = strip,
                                .lowercase = lower,
                                .strip_all_marks = 1};
        if (add_norm(L, bert) || add_pretok(L, TOK_PRE_BERT, 0)) return -1;
        t->decode = TOK_DEC_PLAIN;
        t->strip_leading_space = 1;
        set_default_id(t, &t->bos, 101);
        set_default_id(t, &sep, 102);
        set_default_id(t, &t->unk, 100);
        if (opt_id(L, "tokenizer.ggml.cls_token_id", &t->bos) ||
            opt_id(L, "tokenizer.ggml.seperator_token_id", &sep))
            return -1;
        t->eos = sep;
        if (opt_bool(L, "tokenizer.ggml.add_bos_token", 1, &t->add_bos_default) ||
            opt_bool(L, "tokenizer.ggml.add_sep_token", 1, &add_sep))
            return -1;
    } else {
        TOK_FAIL(L,
                 "key 'tokenizer.ggml.model': unsupported tokenizer '%.*s' (llama, gpt2 and bert "
                 "are supported)",
                 (int)(model.len > 100 ? 100 : model.len), model.ptr ? model.ptr : "");
    }
    if (opt_id(L, "tokenizer.ggml.bos_token_id", &t->bos) ||
        opt_id(L, "tokenizer.ggml.eos_token_id", &t->eos) ||
        opt_id(L, "tokenizer.ggml.unknown_token_id", &t->unk) ||
        opt_bool(L, "tokenizer.ggml.add_eos_token", 0, &add_eos))
        return -1;
    if (t->add_bos_default && t->bos < 0)
        TOK_FAIL(L, "key 'tokenizer.ggml.add_bos_token' is true but there is no BOS token");
    if (t->bos >= 0) t->prefix[t->n_prefix++] = t->bos;
    if (add_sep && sep >= 0) t->suffix[t->n_suffix++] = sep;
    if (add_eos && t->eos >= 0) t->suffix[t->n_suffix++] = t->eos;
    return 0;
}

struct tokenizer *tok_load_gguf(const struct gguf_file *g, struct mm_err *err)
{
    struct tokenizer *t = tok_new(g->path ? g->path : "gguf", err);
    if (!t) return NULL;
    struct gloader L = {g, t, err};
    if (load(&L) || tok_finish(t, err)) {
        tok_free(t);
        return NULL;
    }
    return t;
}
