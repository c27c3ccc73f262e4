#include "serve_memory_request.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BAD_REQUEST "invalid_request_error"

/* The body's array `field` with 1..max items. */
static json_t *load_array(const char *body, size_t len, const char *field, size_t max,
                          json_t **root, struct serve_error *e)
{
    json_error_t jerr;
    /* jansson refuses invalid UTF-8, NUL characters, and numbers too large
     * for int64 and double. */
    *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!*root) {
        serve_error_set(e, 400, BAD_REQUEST, "malformed JSON body: line %d column %d: %s",
                        jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    json_t *a = json_object_get(*root, field);
    if (!json_is_object(*root) || !json_is_array(a) || json_array_size(a) == 0 ||
        json_array_size(a) > max) {
        serve_error_set(e, 400, BAD_REQUEST, "the body must be {\"%s\": [...]} with 1 to %zu items",
                        field, max);
        json_decref(*root);
        *root = NULL;
        return NULL;
    }
    return a;
}

int serve_memory_parse_queries(const char *body, size_t len, struct serve_memory_queries *out,
                               struct serve_error *e)
{
    memset(out, 0, sizeof(*out));
    json_t *root, *a = load_array(body, len, "queries", SERVE_MAX_QUERIES, &root, e);
    if (!a) return -1;
    size_t n = json_array_size(a);
    out->t = calloc(n, sizeof(*out->t));
    out->q = calloc(n, sizeof(*out->q));
    out->items = calloc(n, sizeof(*out->items));
    int rc = out->t && out->q && out->items ? 0 : -1;
    if (rc) serve_error_set(e, 500, "server_error", "out of memory");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *item = json_string_value(json_array_get(a, i));
        struct mm_err err;
        int want_subject;
        if (!item) {
            serve_error_set(e, 400, BAD_REQUEST, "queries[%zu]: expected a string", i);
            rc = -1;
        } else if (mm_query_parse(item, &out->t[i], &want_subject, &err)) {
            serve_error_set(e, 400, BAD_REQUEST, "queries[%zu]: %s", i, err.msg);
            rc = -1;
        } else if (!(out->items[i] = strdup(item))) {
            out->n = i + 1;
            serve_error_set(e, 500, "server_error", "out of memory");
            rc = -1;
        } else {
            const struct mm_triple_text *t = &out->t[i];
            out->q[i] = (struct mm_query){want_subject ? t->o : t->s, t->r, want_subject};
            out->n = i + 1;
        }
    }
    json_decref(root);
    if (rc) serve_memory_queries_free(out);
    return rc;
}

/* One fact item: a "s>>r>>o" string, or an object. */
static int parse_fact(const json_t *item, size_t i, struct mm_triple_text *t, char **source,
                      int *sentence, struct serve_error *e)
{
    struct mm_err err;
    const char *triple = json_string_value(item);
    const char *src = "api";
    *sentence = -1;
    if (json_is_object(item)) {
        triple = json_string_value(json_object_get(item, "triple"));
        const json_t *js = json_object_get(item, "source"), *jn = json_object_get(item, "sentence");
        if (js && !(src = json_string_value(js))) {
            serve_error_set(e, 400, BAD_REQUEST, "facts[%zu].source: expected a string", i);
            return -1;
        }
        if (jn && (!json_is_integer(jn) || json_integer_value(jn) < -1 ||
                   json_integer_value(jn) > 1 << 30)) {
            serve_error_set(e, 400, BAD_REQUEST,
                            "facts[%zu].sentence: expected an integer from -1 to 2^30", i);
            return -1;
        }
        if (jn) *sentence = (int)json_integer_value(jn);
        if (!triple) {
            const char *s = json_string_value(json_object_get(item, "subject"));
            const char *r = json_string_value(json_object_get(item, "relation"));
            const char *o = json_string_value(json_object_get(item, "object"));
            if (!s || !r || !o) {
                serve_error_set(e, 400, BAD_REQUEST,
                                "facts[%zu]: give \"triple\" or \"subject\", \"relation\" and "
                                "\"object\" strings",
                                i);
                return -1;
            }
            /* One check of the texts: the triple form's. */
            size_t n = strlen(s) + strlen(r) + strlen(o) + 5;
            char *joined = malloc(n);
            if (!joined) {
                serve_error_set(e, 500, "server_error", "out of memory");
                return -1;
            }
            snprintf(joined, n, "%s>>%s>>%s", s, r, o);
            int sep = strstr(s, ">>") || strstr(r, ">>") || strstr(o, ">>");
            int bad = sep || mm_triple_parse(joined, t, &err);
            free(joined);
            if (bad) {
                serve_error_set(e, 400, BAD_REQUEST, "facts[%zu]: %s", i,
                                sep ? "a part holds \">>\"" : err.msg);
                return -1;
            }
            triple = NULL;
        }
    } else if (!triple) {
        serve_error_set(e, 400, BAD_REQUEST, "facts[%zu]: expected \"s>>r>>o\" or an object", i);
        return -1;
    }
    if (triple && mm_triple_parse(triple, t, &err)) {
        serve_error_set(e, 400, BAD_REQUEST, "facts[%zu]: %s", i, err.msg);
        return -1;
    }
    if (!(*source = strdup(src))) {
        mm_triple_text_free(t);
        serve_error_set(e, 500, "server_error", "out of memory");
        return -1;
    }
    return 0;
}

int serve_memory_parse_facts(const char *body, size_t len, struct serve_memory_facts *out,
                             struct serve_error *e)
{
    memset(out, 0, sizeof(*out));
    json_t *root, *a = load_array(body, len, "facts", SERVE_MAX_FACTS, &root, e);
    if (!a) return -1;
    size_t n = json_array_size(a);
    out->t = calloc(n, sizeof(*out->t));
    out->f = calloc(n, sizeof(*out->f));
    out->sources = calloc(n, sizeof(*out->sources));
    int rc = out->t && out->f && out->sources ? 0 : -1;
    if (rc) serve_error_set(e, 500, "server_error", "out of memory");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        int sentence;
        rc = parse_fact(json_array_get(a, i), i, &out->t[i], &out->sources[i], &sentence, e);
        if (rc) break;
        const struct mm_triple_text *t = &out->t[i];
        out->f[i] = (struct mm_fact){t->s, t->r, t->o, {out->sources[i], sentence, 0}};
        out->n = i + 1;
    }
    json_decref(root);
    if (rc) serve_memory_facts_free(out);
    return rc;
}

int serve_memory_parse_edits(const char *body, size_t len, struct serve_memory_edits *out,
                             struct serve_error *e)
{
    memset(out, 0, sizeof(*out));
    json_t *root, *a = load_array(body, len, "edits", SERVE_MAX_FACTS, &root, e);
    if (!a) return -1;
    size_t n = json_array_size(a);
    int rc = (out->e = calloc(n, sizeof(*out->e))) ? 0 : -1;
    if (rc) serve_error_set(e, 500, "server_error", "out of memory");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct mm_err err;
        /* The provenance's sentence is the edit's place in the batch, from
         * 1 as a file's line is. */
        if (edit_from_json(json_array_get(a, i), (int)i + 1, &out->e[i], &err)) {
            serve_error_set(e, 400, BAD_REQUEST, "edits[%zu]: %s", i, err.msg);
            rc = -1;
        } else {
            out->n = (int)i + 1;
        }
    }
    json_decref(root);
    if (rc) serve_memory_edits_free(out);
    return rc;
}

void serve_memory_queries_free(struct serve_memory_queries *q)
{
    for (size_t i = 0; i < q->n; i++) {
        mm_triple_text_free(&q->t[i]);
        free(q->items[i]);
    }
    free(q->t);
    free(q->q);
    free(q->items);
    memset(q, 0, sizeof(*q));
}

void serve_memory_facts_free(struct serve_memory_facts *f)
{
    for (size_t i = 0; i < f->n; i++) {
        mm_triple_text_free(&f->t[i]);
        free(f->sources[i]);
    }
    free(f->t);
    free(f->f);
    free(f->sources);
    memset(f, 0, sizeof(*f));
}

void serve_memory_edits_free(struct serve_memory_edits *e)
{
    for (int i = 0; i < e->n; i++)
        mm_triple_text_free(&e->e[i].t);
    free(e->e);
    memset(e, 0, sizeof(*e));
}
