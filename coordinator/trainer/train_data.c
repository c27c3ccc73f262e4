#include "train_data.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int append(struct train_example *e, int *cap, const int32_t *ids, size_t n, int loss)
{
    if ((size_t)e->n + n > (size_t)*cap) {
        int want = *cap ? *cap : 256;
        while ((size_t)want < (size_t)e->n + n)
            want *= 2;
        int32_t *t = realloc(e->tokens, (size_t)want * sizeof(*t));
        if (!t) return -1;
        e->tokens = t;
        uint8_t *m = realloc(e->target, (size_t)want);
        if (!m) return -1;
        e->target = m;
        *cap = want;
    }
    memcpy(e->tokens + e->n, ids, n * sizeof(*ids));
    memset(e->target + e->n, loss ? 1 : 0, n);
    e->n += (int)n;
    return 0;
}

/* A segment given as token ids (ids are checked against the model later). */
static int token_list(json_t *arr, int32_t **ids, size_t *n, struct mm_err *err)
{
    *n = json_array_size(arr);
    *ids = malloc((*n ? *n : 1) * sizeof(int32_t));
    if (!*ids) {
        mm_err_set(err, "out of memory");
        return -1;
    }
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX) {
            mm_err_set(err, "tokens[%zu] is not a token id", i);
            free(*ids);
            *ids = NULL;
            return -1;
        }
        (*ids)[i] = (int32_t)json_integer_value(v);
    }
    return 0;
}

int train_example_parse(struct train_example *e, const char *line, size_t len,
                        const struct tokenizer *tok, struct mm_err *err)
{
    json_error_t jerr;
    json_t *j = json_loadb(line, len, 0, &jerr);
    json_t *segs = json_object_get(j, "segments");
    int cap = 0, rc = -1;
    if (!j) {
        mm_err_set(err, "not JSON (column %d: %s)", jerr.column, jerr.text);
        goto out;
    }
    if (!json_is_array(segs) || json_array_size(segs) == 0) {
        mm_err_set(err, "needs a non-empty \"segments\" array");
        goto out;
    }
    json_t *first_text = json_object_get(json_array_get(segs, 0), "text");
    if (first_text && tok_add_bos_default(tok) && tok_bos(tok) >= 0) {
        int32_t b = tok_bos(tok);
        if (append(e, &cap, &b, 1, 0)) goto oom;
    }
    size_t i;
    json_t *seg;
    json_array_foreach(segs, i, seg)
    {
        json_t *text = json_object_get(seg, "text"), *loss = json_object_get(seg, "loss");
        json_t *given = json_object_get(seg, "tokens");
        if ((!json_is_string(text) && !json_is_array(given)) || !json_is_boolean(loss)) {
            mm_err_set(err,
                       "segment %zu needs a string \"text\" (or a \"tokens\" array) and a "
                       "boolean \"loss\"",
                       i);
            goto out;
        }
        int32_t *ids = NULL;
        size_t n = 0;
        if (!text) {
            if (token_list(given, &ids, &n, err)) {
                mm_err_prefix(err, "segment %zu", i);
                goto out;
            }
        } else if (tok_encode(tok, json_string_value(text), json_string_length(text), 0, 1, &ids,
                              &n, err)) {
            mm_err_prefix(err, "segment %zu", i);
            goto out;
        }
        int bad = append(e, &cap, ids, n, json_is_true(loss));
        free(ids);
        if (bad) goto oom;
    }
    for (int t = 1; t < e->n; t++)
        e->n_target += e->target[t];
    if (e->n_target == 0) {
        mm_err_set(err, "no token carries loss (every segment has \"loss\": false, or the loss "
                        "segments are empty)");
        goto out;
    }
    rc = 0;
    goto out;
oom:
    mm_err_set(err, "out of memory");
out:
    json_decref(j);
    return rc;
}

int train_set_load(struct train_set *s, const char *path, const struct tokenizer *tok,
                   int max_tokens, struct mm_err *err)
{
    memset(s, 0, sizeof(*s));
    FILE *f = fopen(path, "r");
    if (!f) {
        mm_err_set(err, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, ex_cap = 0, rc = -1;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        if (len == 0) continue;
        if (s->n == ex_cap) {
            ex_cap = ex_cap ? ex_cap * 2 : 64;
            struct train_example *ex = realloc(s->ex, (size_t)ex_cap * sizeof(*ex));
            if (!ex) {
                mm_err_set(err, "%s: out of memory at line %d", path, lineno);
                goto out;
            }
            s->ex = ex;
        }
        struct train_example *e = &s->ex[s->n];
        memset(e, 0, sizeof(*e));
        e->line = lineno;
        s->n++;
        if (train_example_parse(e, line, (size_t)len, tok, err)) {
            mm_err_prefix(err, "%s: line %d", path, lineno);
            goto out;
        }
        if (e->n > max_tokens) {
            mm_err_set(err,
                       "%s: line %d: the example has %d tokens, more than the %d allowed "
                       "(--max-tokens, at most the model's context)",
                       path, lineno, e->n, max_tokens);
            goto out;
        }
        s->tokens += e->n;
        s->targets += e->n_target;
    }
    if (ferror(f)) {
        mm_err_set(err, "%s: read error: %s", path, strerror(errno));
        goto out;
    }
    if (s->n == 0) {
        mm_err_set(err, "%s: no examples", path);
        goto out;
    }
    rc = 0;
out:
    free(line);
    fclose(f);
    if (rc) train_set_free(s);
    return rc;
}

void train_example_free(struct train_example *e)
{
    free(e->tokens);
    free(e->target);
    memset(e, 0, sizeof(*e));
}

void train_set_free(struct train_set *s)
{
    for (int i = 0; i < s->n; i++)
        train_example_free(&s->ex[i]);
    free(s->ex);
    memset(s, 0, sizeof(*s));
}
