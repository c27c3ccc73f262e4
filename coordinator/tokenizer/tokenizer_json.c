/* Loading HF tokenizer.json (the `tokenizers` library's format).
 *
 * Supported: models BPE (merges as "a b" strings or [a, b] pairs; byte
 * fallback, unk, fuse_unk, ignore_merges, continuing_subword_prefix,
 * end_of_word_suffix) and WordPiece; normalizers Sequence, Prepend, Replace
 * (string pattern), Lowercase, NFD, StripAccents, BertNormalizer;
 * pre-tokenizers Sequence, ByteLevel, Split with GPT-2's regex, Digits,
 * Metaspace (as the first step), BertPreTokenizer, WhitespaceSplit;
 * post-processors TemplateProcessing, BertProcessing, RobertaProcessing,
 * ByteLevel, Sequence; decoders ByteLevel, WordPiece, Metaspace and the
 * SentencePiece sequence (Replace, ByteFallback, Fuse, Strip). Anything else
 * is refused with an error that names it, rather than encoded differently
 * from HF. Truncation, padding and BPE dropout are left out: the caller
 * truncates, and encoding is deterministic. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mapped_file.h"
#include "tokenizer_impl.h"

/* GPT-2's pre-tokenizer regex as tokenizer.json spells it. */
static const char GPT2_REGEX[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

struct loader {
    struct tokenizer *t;
    struct mm_err *err;
};

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

/* Optional string member: *out = NULL when absent or null. */
static int get_str(struct loader *L, const json_t *obj, const char *where, const char *key,
                   const char **out)
{
    const json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v))
        TOK_FAIL(L, "%s.%s: expected a string, found %s", where, key, type_name(v));
    *out = json_string_value(v);
    return 0;
}

/* Optional boolean member (default when absent or null). */
static int get_bool(struct loader *L, const json_t *obj, const char *where, const char *key,
                    int dflt, int *out)
{
    const json_t *v = json_object_get(obj, key);
    *out = dflt;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v))
        TOK_FAIL(L, "%s.%s: expected a boolean, found %s", where, key, type_name(v));
    *out = json_is_true(v);
    return 0;
}

static int get_type(struct loader *L, const json_t *obj, const char *where, const char **type)
{
    if (!json_is_object(obj))
        TOK_FAIL(L, "%s: expected an object, found %s", where, type_name(obj));
    if (get_str(L, obj, where, "type", type)) return -1;
    if (!*type) TOK_FAIL(L, "%s: missing 'type'", where);
    return 0;
}

static char *dup_str(struct loader *L, const char *s)
{
    char *p = tok_strdup(L->t, s, strlen(s));
    if (!p) mm_err_set(L->err, "%s: out of memory", L->t->name);
    return p;
}

/* ---- model ------------------------------------------------------------------ */

static int check_id(struct loader *L, const char *where, const char *what, const json_t *v,
                    size_t limit, int *id)
{
    if (!json_is_integer(v))
        TOK_FAIL(L, "%s['%s']: expected an integer id, found %s", where, what, type_name(v));
    json_int_t x = json_integer_value(v);
    if (x < 0 || (size_t)x >= limit)
        TOK_FAIL(L, "%s['%s']: id %lld is out of range (ids must be below %zu)", where, what,
                 (long long)x, limit);
    *id = (int)x;
    return 0;
}

static int load_vocab(struct loader *L, const json_t *model, size_t limit)
{
    const json_t *vocab = json_object_get(model, "vocab");
    if (!vocab) TOK_FAIL(L, "model: missing 'vocab'");
    if (!json_is_object(vocab))
        TOK_FAIL(L, "model.vocab: expected an object, found %s", type_name(vocab));
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)vocab, key, v)
    {
        int id;
        if (check_id(L, "model.vocab", key, v, limit, &id)) return -1;
        if (tok_set_piece(L->t, id, key, strlen(key), L->err)) return -1;
    }
    return 0;
}

/* Splits a merge into its two tokens: "a b" (at the first space after the
 * first character, as llama.cpp) or ["a", "b"]. */
static int merge_parts(struct loader *L, const json_t *m, size_t i, const char **a, size_t *na,
                       const char **b, size_t *nb)
{
    if (json_is_string(m)) {
        const char *s = json_string_value(m);
        size_t n = json_string_length(m);
        const char *sp = n > 1 ? memchr(s + 1, ' ', n - 1) : NULL;
        if (!sp)
            TOK_FAIL(L, "model.merges[%zu]: '%s' is not two tokens separated by a space", i, s);
        *a = s;
        *na = (size_t)(sp - s);
        *b = sp + 1;
        *nb = n - *na - 1;
        return 0;
    }
    if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
        json_is_string(json_array_get(m, 1))) {
        *a = json_string_value(json_array_get(m, 0));
        *na = json_string_length(json_array_get(m, 0));
        *b = json_string_value(json_array_get(m, 1));
        *nb = json_string_length(json_array_get(m, 1));
        return 0;
    }
    TOK_FAIL(L, "model.merges[%zu]: expected \"a b\" or [\"a\", \"b\"], found %s", i, type_name(m));
}

static int load_merges(struct loader *L, const json_t *model)
{
    const json_t *merges = json_object_get(model, "merges");
    if (!merges || json_is_null(merges)) return 0;
    if (!json_is_array(merges))
        TOK_FAIL(L, "model.merges: expected an array, found %s", type_name(merges));
    struct tok_bytes joined = {0};
    for (size_t i = 0; i < json_array_size(merges); i++) {
        const char *a, *b;
        size_t na, nb;
        if (merge_parts(L, json_array_get(merges, i), i, &a, &na, &b, &nb)) goto fail;
        int ia = tok_lookup_model(L->t, a, na), ib = tok_lookup_model(L->t, b, nb);
        /* With a continuing_subword_prefix, HF drops the prefix's length from
         * the right token: "t" + "##h" = "th". */
        size_t skip = L->t->cont_prefix ? strlen(L->t->cont_prefix) : 0;
        if (skip > nb) {
            mm_err_set(L->err, "%s: model.merges[%zu]: '%.*s' is shorter than the subword prefix",
                       L->t->name, i, (int)nb, b);
            goto fail;
        }
        joined.len = 0;
        if (tok_bytes_append(&joined, a, na) || tok_bytes_append(&joined, b + skip, nb - skip)) {
            mm_err_set(L->err, "%s: out of memory", L->t->name);
            goto fail;
        }
        int im = tok_lookup_model(L->t, joined.data, joined.len);
        if (ia < 0 || ib < 0 || im < 0) {
            const char *what = ia < 0 ? a : ib < 0 ? b : joined.data;
            int n = (int)(ia < 0 ? na : ib < 0 ? nb : joined.len);
            mm_err_set(L->err, "%s: model.merges[%zu]: token '%.*s' is not in the vocabulary",
                       L->t->name, i, n > 200 ? 200 : n, what);
            goto fail;
        }
        /* HF builds a map from the list, so a repeated pair takes its last
         * rank. */
        if (tok_add_merge(L->t, ia, ib, (int32_t)i, im, 0, L->err)) goto fail;
    }
    free(joined.data);
    return 0;
fail:
    free(joined.data);
    return -1;
}

static int load_bpe(struct loader *L, const json_t *model, const char *prefix)
{
    struct tokenizer *t = L->t;
    const char *suffix;
    t->model = TOK_MODEL_BPE;
    if (get_str(L, model, "model", "end_of_word_suffix", &suffix) ||
        get_bool(L, model, "model", "byte_fallback", 0, &t->byte_fallback) ||
        get_bool(L, model, "model", "fuse_unk", 0, &t->fuse_unk) ||
        get_bool(L, model, "model", "ignore_merges", 0, &t->ignore_merges))
        return -1;
    if (prefix && *prefix && !(t->cont_prefix = dup_str(L, prefix))) return -1;
    if (suffix && *suffix && !(t->word_suffix = dup_str(L, suffix))) return -1;
    return load_merges(L, model);
}

static int load_wordpiece(struct loader *L, const json_t *model, const char *prefix,
                          const char *unk)
{
    struct tokenizer *t = L->t;
    t->model = TOK_MODEL_WORDPIECE;
    t->decode = TOK_DEC_WORDPIECE;
    t->strip_leading_space = 1;
    if (!(t->cont_prefix = dup_str(L, prefix ? prefix : "##"))) return -1;
    const json_t *mc = json_object_get(model, "max_input_chars_per_word");
    t->max_word_chars = 100;
    if (mc && !json_is_null(mc)) {
        if (!json_is_integer(mc) || json_integer_value(mc) < 0 ||
            json_integer_value(mc) > (1 << 30))
            TOK_FAIL(L, "model.max_input_chars_per_word: expected a non-negative integer");
        t->max_word_chars = (int)json_integer_value(mc);
    }
    if (t->unk < 0)
        TOK_FAIL(L, "model.unk_token: '%s' is not in the vocabulary", unk ? unk : "(none)");
    return 0;
}

static int load_model(struct loader *L, const json_t *root, size_t limit)
{
    struct tokenizer *t = L->t;
    const json_t *model = json_object_get(root, "model");
    if (!model) TOK_FAIL(L, "missing 'model'");
    if (!json_is_object(model))
        TOK_FAIL(L, "model: expected an object, found %s", type_name(model));
    const char *type, *unk, *prefix;
    if (get_str(L, model, "model", "type", &type)) return -1;
    if (!type) /* older files leave the type out */
        type = json_object_get(model, "merges") ? "BPE" : "WordPiece";
    int bpe = strcmp(type, "BPE") == 0;
    if (!bpe && strcmp(type, "WordPiece") != 0)
        TOK_FAIL(L, "model.type: unsupported model '%s' (BPE and WordPiece are)", type);
    if (load_vocab(L, model, limit) || get_str(L, model, "model", "unk_token", &unk) ||
        get_str(L, model, "model", "continuing_subword_prefix", &prefix))
        return -1;
    if (unk) t->unk = tok_lookup(t, unk, strlen(unk));
    return bpe ? load_bpe(L, model, prefix) : load_wordpiece(L, model, prefix, unk);
}

/* ---- added tokens ------------------------------------------------------------- */

static int load_added(struct loader *L, const json_t *root, size_t limit)
{
    struct tokenizer *t = L->t;
    const json_t *added = json_object_get(root, "added_tokens");
    if (!added || json_is_null(added)) return 0;
    if (!json_is_array(added))
        TOK_FAIL(L, "added_tokens: expected an array, found %s", type_name(added));
    for (size_t i = 0; i < json_array_size(added); i++) {
        const json_t *a = json_array_get(added, i);
        char where[64];
        snprintf(where, sizeof(where), "added_tokens[%zu]", i);
        if (!json_is_object(a))
            TOK_FAIL(L, "%s: expected an object, found %s", where, type_name(a));
        const char *content;
        int special, lstrip, rstrip, single_word, id;
        if (get_str(L, a, where, "content", &content) ||
            get_bool(L, a, where, "special", 0, &special) ||
            get_bool(L, a, where, "lstrip", 0, &lstrip) ||
            get_bool(L, a, where, "rstrip", 0, &rstrip) ||
            get_bool(L, a, where, "single_word", 0, &single_word))
            return -1;
        if (!content || !*content) TOK_FAIL(L, "%s: missing or empty 'content'", where);
        const json_t *jid = json_object_get(a, "id");
        if (!jid) TOK_FAIL(L, "%s: missing 'id'", where);
        if (check_id(L, "added_tokens", content, jid, limit, &id)) return -1;
        int have = tok_lookup(t, content, strlen(content));
        if (have >= 0 && have != id)
            TOK_FAIL(L, "%s: '%s' has id %d here but %d in the vocabulary", where, content, id,
                     have);
        if (have < 0) {
            if (tok_set_piece(t, id, content, strlen(content), L->err)) return -1;
            /* Not in the model's vocabulary: only matching the text yields it. */
            t->attr[id] |= TOK_ATTR_EXTRA;
        }
        t->attr[id] |= TOK_ATTR_ADDED | (special ? TOK_ATTR_SPECIAL : 0) |
                       (lstrip ? TOK_ATTR_LSTRIP : 0) | (rstrip ? TOK_ATTR_RSTRIP : 0) |
                       (single_word ? TOK_ATTR_SINGLE_WORD : 0);
    }
    return 0;
}

/* ---- normalizer ---------------------------------------------------------------- */

static int load_normalizer(struct loader *L, const json_t *n, const char *where)
{
    if (!n || json_is_null(n)) return 0;
    const char *type;
    if (get_type(L, n, where, &type)) return -1;
    struct tok_norm nm = {0};
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(n, "normalizers");
        if (!json_is_array(list)) TOK_FAIL(L, "%s.normalizers: expected an array", where);
        for (size_t i = 0; i < json_array_size(list); i++) {
            char sub[256];
            snprintf(sub, sizeof(sub), "%s.normalizers[%zu]", where, i);
            if (load_normalizer(L, json_array_get(list, i), sub)) return -1;
        }
        return 0;
    }
    if (strcmp(type, "Prepend") == 0) {
        const char *p;
        if (get_str(L, n, where, "prepend", &p)) return -1;
        if (!p) TOK_FAIL(L, "%s: missing 'prepend'", where);
        nm.kind = TOK_NORM_PREPEND;
        if (!(nm.arg = dup_str(L, p))) return -1;
    } else if (strcmp(type, "Replace") == 0) {
        const json_t *pat = json_object_get(n, "pattern");
        const char *from = NULL, *to;
        if (json_is_object(pat) && get_str(L, pat, where, "String", &from)) return -1;
        if (!from)
            TOK_FAIL(
                L, "%s: only Replace with a 'String' pattern is supported (regex patterns are not)",
                where);
        if (get_str(L, n, where, "content", &to)) return -1;
        if (!to) TOK_FAIL(L, "%s: missing 'content'", where);
        nm.kind = TOK_NORM_REPLACE;
        if (!(nm.arg = dup_str(L, from)) || !(nm.arg2 = dup_str(L, to))) return -1;
    } else if (strcmp(type, "Lowercase") == 0) {
        nm.kind = TOK_NORM_LOWERCASE;
    } else if (strcmp(type, "NFD") == 0) {
        nm.kind = TOK_NORM_NFD;
    } else if (strcmp(type, "StripAccents") == 0) {
        nm.kind = TOK_NORM_STRIP_ACCENTS;
    } else if (strcmp(type, "BertNormalizer") == 0) {
        nm.kind = TOK_NORM_BERT;
        if (get_bool(L, n, where, "clean_text", 1, &nm.clean_text) ||
            get_bool(L, n, where, "handle_chinese_chars", 1, &nm.chinese) ||
            get_bool(L, n, where, "lowercase", 1, &nm.lowercase) ||
            /* strip_accents null means: as lowercase says */
            get_bool(L, n, where, "strip_accents", nm.lowercase, &nm.strip_accents))
            return -1;
    } else {
        TOK_FAIL(L, "%s: unsupported normalizer '%s'", where, type);
    }
    return tok_add_norm(L->t, &nm, L->err);
}

/* ---- pre-tokenizer ---------------------------------------------------------------- */

static int add_pretok(struct loader *L, enum tok_pretok_kind kind, int individual, char *arg)
{
    struct tok_pretok p = {kind, individual, arg};
    return tok_add_pretok(L->t, &p, L->err);
}

static int load_metaspace(struct loader *L, const json_t *n, const char *where)
{
    struct tokenizer *t = L->t;
    if (t->n_pretoks)
        TOK_FAIL(L, "%s: Metaspace after another pre-tokenizer is not supported", where);
    const char *rep, *scheme;
    int split, add_prefix;
    if (get_str(L, n, where, "replacement", &rep) ||
        get_str(L, n, where, "prepend_scheme", &scheme) ||
        get_bool(L, n, where, "split", 1, &split) ||
        get_bool(L, n, where, "add_prefix_space", 1, &add_prefix))
        return -1;
    if (!rep) rep = "\xE2\x96\x81";
    int first_only = 0, prepend = add_prefix;
    if (scheme) {
        if (strcmp(scheme, "always") == 0)
            prepend = 1;
        else if (strcmp(scheme, "first") == 0)
            prepend = first_only = 1;
        else if (strcmp(scheme, "never") == 0)
            prepend = 0;
        else
            TOK_FAIL(L, "%s.prepend_scheme: unknown scheme '%s'", where, scheme);
    }
    struct tok_norm replace = {.kind = TOK_NORM_REPLACE};
    if (!(replace.arg = dup_str(L, " ")) || !(replace.arg2 = dup_str(L, rep))) return -1;
    if (tok_add_norm(t, &replace, L->err)) return -1;
    if (prepend) {
        struct tok_norm pre = {.kind = TOK_NORM_METASPACE_PREPEND, .first_only = first_only};
        if (!(pre.arg = dup_str(L, rep))) return -1;
        if (tok_add_norm(t, &pre, L->err)) return -1;
    }
    if (!split) return 0;
    char *arg = dup_str(L, rep);
    return arg ? add_pretok(L, TOK_PRE_METASPACE_SPLIT, 0, arg) : -1;
}

static int load_pretok(struct loader *L, const json_t *n, const char *where)
{
    if (!n || json_is_null(n)) return 0;
    const char *type;
    if (get_type(L, n, where, &type)) return -1;
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(n, "pretokenizers");
        if (!json_is_array(list)) TOK_FAIL(L, "%s.pretokenizers: expected an array", where);
        for (size_t i = 0; i < json_array_size(list); i++) {
            char sub[256];
            snprintf(sub, sizeof(sub), "%s.pretokenizers[%zu]", where, i);
            if (load_pretok(L, json_array_get(list, i), sub)) return -1;
        }
        return 0;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        int prefix, regex;
        if (get_bool(L, n, where, "add_prefix_space", 1, &prefix) ||
            get_bool(L, n, where, "use_regex", 1, &regex))
            return -1;
        L->t->byte_level = 1;
        if (prefix && add_pretok(L, TOK_PRE_BYTELEVEL_PREFIX, 0, NULL)) return -1;
        return regex ? add_pretok(L, TOK_PRE_GPT2, 0, NULL) : 0;
    }
    if (strcmp(type, "Split") == 0) {
        const json_t *pat = json_object_get(n, "pattern");
        const char *regex = NULL, *behavior;
        int invert;
        if (json_is_object(pat) && get_str(L, pat, where, "Regex", &regex)) return -1;
        if (get_str(L, n, where, "behavior", &behavior) ||
            get_bool(L, n, where, "invert", 0, &invert))
            return -1;
        if (!regex || strcmp(regex, GPT2_REGEX) != 0 || invert ||
            (behavior && strcmp(behavior, "Isolated") != 0))
            TOK_FAIL(L, "%s: unsupported Split (only GPT-2's regex, Isolated, is implemented)",
                     where);
        return add_pretok(L, TOK_PRE_GPT2, 0, NULL);
    }
    if (strcmp(type, "Digits") == 0) {
        int individual;
        if (get_bool(L, n, where, "individual_digits", 0, &individual)) return -1;
        return add_pretok(L, TOK_PRE_DIGITS, individual, NULL);
    }
    if (strcmp(type, "Metaspace") == 0) return load_metaspace(L, n, where);
    if (strcmp(type, "BertPreTokenizer") == 0) return add_pretok(L, TOK_PRE_BERT, 0, NULL);
    if (strcmp(type, "WhitespaceSplit") == 0)
        return add_pretok(L, TOK_PRE_WHITESPACE_SPLIT, 0, NULL);
    TOK_FAIL(L, "%s: unsupported pre-tokenizer '%s'", where, type);
}

/* ---- post-processor ----------------------------------------------------------------- */

static int push_special(struct loader *L, int32_t *list, int *n, int id, const char *where)
{
    if (*n == 4) TOK_FAIL(L, "%s: more than 4 special tokens around the text", where);
    if (id < 0 || id >= L->t->n_vocab)
        TOK_FAIL(L, "%s: special token id %d is out of range", where, id);
    list[(*n)++] = id;
    return 0;
}

static int load_template(struct loader *L, const json_t *n, const char *where)
{
    struct tokenizer *t = L->t;
    const json_t *single = json_object_get(n, "single"),
                 *specials = json_object_get(n, "special_tokens");
    if (!json_is_array(single)) TOK_FAIL(L, "%s.single: expected an array", where);
    int seen_text = 0;
    for (size_t i = 0; i < json_array_size(single); i++) {
        const json_t *item = json_array_get(single, i);
        const json_t *sp = json_object_get(item, "SpecialToken");
        if (json_object_get(item, "Sequence")) {
            seen_text = 1;
            continue;
        }
        const char *name;
        if (!json_is_object(sp) || get_str(L, sp, where, "id", &name) || !name)
            TOK_FAIL(L, "%s.single[%zu]: expected a SpecialToken or a Sequence", where, i);
        const json_t *ids = json_object_get(json_object_get(specials, name), "ids");
        if (!json_is_array(ids) || json_array_size(ids) == 0)
            TOK_FAIL(L, "%s.special_tokens: no ids for '%s'", where, name);
        for (size_t k = 0; k < json_array_size(ids); k++) {
            const json_t *v = json_array_get(ids, k);
            if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                json_integer_value(v) >= t->n_vocab)
                TOK_FAIL(L, "%s.special_tokens['%s'].ids[%zu]: not an id in the vocabulary", where,
                         name, k);
            int id = (int)json_integer_value(v);
            if (push_special(L, seen_text ? t->suffix : t->prefix,
                             seen_text ? &t->n_suffix : &t->n_prefix, id, where))
                return -1;
        }
    }
    return 0;
}

/* BertProcessing / RobertaProcessing: "cls": ["[CLS]", 101]. */
static int pair_id(struct loader *L, const json_t *n, const char *where, const char *key, int *id)
{
    const json_t *p = json_object_get(n, key);
    if (!json_is_array(p) || json_array_size(p) != 2 || !json_is_integer(json_array_get(p, 1)))
        TOK_FAIL(L, "%s.%s: expected [\"token\", id]", where, key);
    json_int_t v = json_integer_value(json_array_get(p, 1));
    if (v < 0 || v >= L->t->n_vocab)
        TOK_FAIL(L, "%s.%s: id %lld is out of range", where, key, (long long)v);
    *id = (int)v;
    return 0;
}

static int load_post(struct loader *L, const json_t *n, const char *where)
{
    if (!n || json_is_null(n)) return 0;
    const char *type;
    if (get_type(L, n, where, &type)) return -1;
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(n, "processors");
        if (!json_is_array(list)) TOK_FAIL(L, "%s.processors: expected an array", where);
        for (size_t i = 0; i < json_array_size(list); i++) {
            char sub[256];
            snprintf(sub, sizeof(sub), "%s.processors[%zu]", where, i);
            if (load_post(L, json_array_get(list, i), sub)) return -1;
        }
        return 0;
    }
    if (strcmp(type, "TemplateProcessing") == 0) return load_template(L, n, where);
    if (strcmp(type, "BertProcessing") == 0 || strcmp(type, "RobertaProcessing") == 0) {
        int cls, sep;
        if (pair_id(L, n, where, "cls", &cls) || pair_id(L, n, where, "sep", &sep)) return -1;
        return push_special(L, L->t->prefix, &L->t->n_prefix, cls, where) ||
               push_special(L, L->t->suffix, &L->t->n_suffix, sep, where);
    }
    if (strcmp(type, "ByteLevel") == 0) return 0;
    TOK_FAIL(L, "%s: unsupported post-processor '%s'", where, type);
}

/* ---- decoder --------------------------------------------------------------------------- */

static int load_decoder(struct loader *L, const json_t *n, const char *where)
{
    struct tokenizer *t = L->t;
    if (!n || json_is_null(n)) return 0;
    const char *type;
    if (get_type(L, n, where, &type)) return -1;
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(n, "decoders");
        if (!json_is_array(list)) TOK_FAIL(L, "%s.decoders: expected an array", where);
        for (size_t i = 0; i < json_array_size(list); i++) {
            char sub[256];
            snprintf(sub, sizeof(sub), "%s.decoders[%zu]", where, i);
            if (load_decoder(L, json_array_get(list, i), sub)) return -1;
        }
        return 0;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        t->decode = TOK_DEC_BYTELEVEL;
        return 0;
    }
    if (strcmp(type, "WordPiece") == 0) {
        t->decode = TOK_DEC_WORDPIECE;
        t->strip_leading_space = 1;
        return 0;
    }
    if (strcmp(type, "Metaspace") == 0) {
        const char *scheme;
        int add_prefix;
        if (get_str(L, n, where, "prepend_scheme", &scheme) ||
            get_bool(L, n, where, "add_prefix_space", 1, &add_prefix))
            return -1;
        t->decode = TOK_DEC_PLAIN;
        t->strip_leading_space = scheme ? strcmp(scheme, "never") != 0 : add_prefix;
        return 0;
    }
    if (strcmp(type, "Replace") == 0) {
        const json_t *pat = json_object_get(n, "pattern");
        const char *from = NULL, *to;
        if (json_is_object(pat) && get_str(L, pat, where, "String", &from)) return -1;
        if (get_str(L, n, where, "content", &to)) return -1;
        if (!from || !to || strcmp(from, "\xE2\x96\x81") != 0 || strcmp(to, " ") != 0)
            TOK_FAIL(L, "%s: only the Replace of U+2581 by a space is supported", where);
        t->decode = TOK_DEC_PLAIN;
        return 0;
    }
    if (strcmp(type, "ByteFallback") == 0 || strcmp(type, "Fuse") == 0) return 0;
    if (strcmp(type, "Strip") == 0) {
        const char *content;
        if (get_str(L, n, where, "content", &content)) return -1;
        const json_t *start = json_object_get(n, "start"), *stop = json_object_get(n, "stop");
        if (!content || strcmp(content, " ") != 0 || !json_is_integer(start) ||
            json_integer_value(start) > 1 || (stop && json_integer_value(stop) != 0))
            TOK_FAIL(L, "%s: only Strip of one leading space is supported", where);
        t->strip_leading_space = json_integer_value(start) == 1;
        return 0;
    }
    TOK_FAIL(L, "%s: unsupported decoder '%s'", where, type);
}

/* ---- special token names ------------------------------------------------------------------ */

static int first_present(const struct tokenizer *t, const char *const *names)
{
    for (; *names; names++) {
        int id = tok_lookup(t, *names, strlen(*names));
        if (id >= 0) return id;
    }
    return -1;
}

/* BOS/EOS: the post-processor's tokens around the text, else the names in
 * tokenizer_config.json (config_bos/config_eos), else the usual names. */
static void pick_specials(struct tokenizer *t, const char *config_bos, const char *config_eos,
                          int config_add_bos)
{
    static const char *const bos_names[] = {
        "<s>", "<|begin_of_text|>", "<|startoftext|>", "<bos>", "[CLS]", "<|endoftext|>", NULL};
    static const char *const eos_names[] = {
        "</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>", "[SEP]", "<|im_end|>", NULL};
    if (t->n_prefix)
        t->bos = t->prefix[0];
    else if (config_bos)
        t->bos = tok_lookup(t, config_bos, strlen(config_bos));
    if (t->bos < 0) t->bos = first_present(t, bos_names);
    if (config_eos) t->eos = tok_lookup(t, config_eos, strlen(config_eos));
    if (t->eos < 0 && t->n_suffix) t->eos = t->suffix[t->n_suffix - 1];
    if (t->eos < 0) t->eos = first_present(t, eos_names);
    t->add_bos_default = t->n_prefix > 0 || (config_add_bos && t->bos >= 0);
    /* add_bos adds BOS even where the template has no prefix. */
    if (!t->n_prefix && t->bos >= 0) t->prefix[t->n_prefix++] = t->bos;
    if (t->bos >= 0) t->attr[t->bos] |= TOK_ATTR_SPECIAL;
    if (t->eos >= 0) t->attr[t->eos] |= TOK_ATTR_SPECIAL;
}

/* ---- entry points ------------------------------------------------------------------------------
 */

static size_t count_entries(const json_t *root)
{
    const json_t *vocab = json_object_get(json_object_get(root, "model"), "vocab");
    const json_t *added = json_object_get(root, "added_tokens");
    return (json_is_object(vocab) ? json_object_size(vocab) : 0) +
           (json_is_array(added) ? json_array_size(added) : 0);
}

static int load_root(struct loader *L, const json_t *root)
{
    struct tokenizer *t = L->t;
    if (!json_is_object(root)) TOK_FAIL(L, "expected a JSON object, found %s", type_name(root));
    /* Ids may leave holes, but not so many that a bogus id makes us
     * allocate a huge table. */
    size_t limit = count_entries(root) + 1024;
    if (load_model(L, root, limit) || load_added(L, root, limit)) return -1;
    if (load_normalizer(L, json_object_get(root, "normalizer"), "normalizer") ||
        load_pretok(L, json_object_get(root, "pre_tokenizer"), "pre_tokenizer") ||
        load_post(L, json_object_get(root, "post_processor"), "post_processor"))
        return -1;
    /* Without a decoder, decode as the model and pre-tokenizer suggest. */
    if (t->model == TOK_MODEL_BPE) t->decode = t->byte_level ? TOK_DEC_BYTELEVEL : TOK_DEC_PLAIN;
    if (load_decoder(L, json_object_get(root, "decoder"), "decoder")) return -1;
    return 0;
}

static struct tokenizer *load_buffer(const char *data, size_t len, const char *name,
                                     const char *config, size_t config_len, struct mm_err *err)
{
    struct tokenizer *t = tok_new(name, err);
    if (!t) return NULL;
    struct loader L = {t, err};
    if (len == 0) {
        mm_err_set(err, "%s: empty file", name);
        goto fail;
    }
    json_error_t jerr;
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        mm_err_set(err, "%s: not valid JSON: %s (line %d, column %d)", name, jerr.text, jerr.line,
                   jerr.column);
        goto fail;
    }
    int rc = load_root(&L, root);
    json_decref(root);
    if (rc) goto fail;
    const char *cbos = NULL, *ceos = NULL;
    int cadd = 0;
    json_t *cfg = config ? json_loadb(config, config_len, 0, &jerr) : NULL;
    if (json_is_object(cfg)) {
        /* tokenizer_config.json names tokens as strings or {"content": ...}. */
        const json_t *b = json_object_get(cfg, "bos_token"), *e = json_object_get(cfg, "eos_token");
        if (json_is_object(b)) b = json_object_get(b, "content");
        if (json_is_object(e)) e = json_object_get(e, "content");
        cbos = json_string_value(b);
        ceos = json_string_value(e);
        cadd = json_is_true(json_object_get(cfg, "add_bos_token"));
    }
    pick_specials(t, cbos, ceos, cadd);
    json_decref(cfg);
    if (tok_finish(t, err)) goto fail;
    return t;
fail:
    tok_free(t);
    return NULL;
}

struct tokenizer *tok_load_json_buffer(const char *data, size_t len, const char *name,
                                       struct mm_err *err)
{
    return load_buffer(data, len, name, NULL, 0, err);
}

struct tokenizer *tok_load_json(const char *path, struct mm_err *err)
{
    struct mapped_file mf;
    if (mapped_file_open(&mf, path, err)) return NULL;
    /* tokenizer_config.json next to the file, when there is one. */
    struct mapped_file cfg = {0};
    int have_cfg = 0;
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path + 1) : 0;
    char *cfg_path = malloc(dir_len + sizeof("tokenizer_config.json"));
    if (cfg_path) {
        memcpy(cfg_path, path, dir_len);
        strcpy(cfg_path + dir_len, "tokenizer_config.json");
        FILE *f = fopen(cfg_path, "rb");
        if (f) {
            fclose(f);
            have_cfg = mapped_file_open(&cfg, cfg_path, NULL) == 0;
        }
        free(cfg_path);
    }
    struct tokenizer *t =
        load_buffer((const char *)mf.data, mf.size, path, have_cfg ? (const char *)cfg.data : NULL,
                    have_cfg ? cfg.size : 0, err);
    if (have_cfg) mapped_file_close(&cfg);
    mapped_file_close(&mf);
    return t;
}
