#include "corpus.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "read_all.h"
#include "sentences.h"
#include "text.h"

void corpus_doc_free(struct corpus_doc *d)
{
    for (int i = 0; i < d->n_sentences; i++)
        free(d->sentences[i]);
    free(d->sentences);
    free(d->id);
}

static int doc_set_id(struct corpus_doc *d, const char *id, const char *where, struct mm_err *err)
{
    if (mm_text_check("document id", id, err)) {
        mm_err_prefix(err, "%s", where);
        return -1;
    }
    if (!(d->id = strdup(id))) {
        mm_err_set(err, "out of memory");
        return -1;
    }
    return 0;
}

static int doc_push(struct corpus_doc *d, char *sentence, int *cap, struct mm_err *err)
{
    if (!sentence) return -1;
    if (d->n_sentences == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        char **s = realloc(d->sentences, (size_t)*cap * sizeof(*s));
        if (!s) {
            free(sentence);
            mm_err_set(err, "out of memory");
            return -1;
        }
        d->sentences = s;
    }
    d->sentences[d->n_sentences++] = sentence;
    return 0;
}

static int doc_from_text(struct corpus_doc *d, const char *text, size_t len, struct mm_err *err)
{
    struct sentence_span *sp;
    size_t n;
    if (sentences_split(text, len, &sp, &n, err)) return -1;
    int cap = 0, rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = doc_push(d, sentence_text(text, &sp[i], err), &cap, err);
    free(sp);
    return rc;
}

int corpus_doc_from_json(struct corpus_doc *d, const json_t *obj, const char *where,
                         struct mm_err *err)
{
    json_t *id = json_object_get(obj, "id"), *text = json_object_get(obj, "text");
    json_t *title = json_object_get(obj, "title"), *sents = json_object_get(obj, "sents");
    char num[32];
    if (json_is_integer(id)) {
        snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(id));
        if (doc_set_id(d, num, where, err)) return -1;
    } else if (json_is_string(id) || json_is_string(title)) {
        if (doc_set_id(d, json_string_value(json_is_string(id) ? id : title), where, err))
            return -1;
    } else {
        mm_err_set(err, "%s: a document needs a string or integer \"id\" (or a \"title\")", where);
        return -1;
    }
    if (json_is_string(text))
        return doc_from_text(d, json_string_value(text), json_string_length(text), err);
    if (!json_is_array(sents)) {
        mm_err_set(err, "%s: a document needs \"text\" (a string) or \"sents\" (lists of tokens)",
                   where);
        return -1;
    }
    int cap = 0;
    size_t i;
    json_t *toks;
    json_array_foreach(sents, i, toks)
    {
        size_t len = 0, k;
        json_t *t;
        int ok = json_is_array(toks);
        json_array_foreach(toks, k, t)
        {
            ok &= json_is_string(t);
            len += json_string_length(t) + 1;
        }
        if (!ok) {
            mm_err_set(err, "%s: \"sents\"[%zu] must be a list of token strings", where, i);
            return -1;
        }
        char *s = calloc(len + 1, 1), *p = s;
        if (!s) {
            mm_err_set(err, "out of memory");
            return -1;
        }
        json_array_foreach(toks, k, t)
        {
            if (k) *p++ = ' ';
            memcpy(p, json_string_value(t), json_string_length(t));
            p += json_string_length(t);
        }
        if (doc_push(d, s, &cap, err)) return -1;
    }
    return 0;
}

struct corpus {
    char **paths;
    int n_paths, path;
    FILE *f;        /* the open .jsonl file */
    long line;      /* its line number */
    json_t *array;  /* the loaded .json file */
    size_t element; /* next array element */
    char *buf;      /* getline's */
    size_t buf_cap;
};

enum file_kind { FILE_TEXT, FILE_JSONL, FILE_JSON_ARRAY };

static enum file_kind kind_of(const char *path)
{
    size_t n = strlen(path);
    if (n > 6 && !strcmp(path + n - 6, ".jsonl")) return FILE_JSONL;
    if (n > 5 && !strcmp(path + n - 5, ".json")) return FILE_JSON_ARRAY;
    return FILE_TEXT;
}

/* The next document: 1, 0 at the end, -1 on error. */
int corpus_next(struct corpus *c, struct corpus_doc *d, struct mm_err *err)
{
    memset(d, 0, sizeof(*d));
    char where[4200];
    while (c->path < c->n_paths) {
        const char *path = c->paths[c->path];
        enum file_kind kind = kind_of(path);
        if (kind == FILE_TEXT) {
            c->path++;
            size_t len;
            char *text = read_all_file(path, &len, err);
            if (!text) return -1;
            const char *slash = strrchr(path, '/');
            int rc = doc_set_id(d, slash ? slash + 1 : path, path, err) ||
                     doc_from_text(d, text, len, err);
            free(text);
            return rc ? -1 : 1;
        }
        if (kind == FILE_JSONL) {
            if (!c->f && !(c->f = fopen(path, "r"))) {
                mm_err_set(err, "%s: %s", path, strerror(errno));
                return -1;
            }
            ssize_t len;
            while ((len = getline(&c->buf, &c->buf_cap, c->f)) >= 0) {
                c->line++;
                if (strspn(c->buf, " \t\r\n") == (size_t)len) continue;
                snprintf(where, sizeof(where), "%s:%ld", path, c->line);
                json_error_t jerr;
                json_t *obj = json_loadb(c->buf, (size_t)len, 0, &jerr);
                if (!json_is_object(obj)) {
                    mm_err_set(err, "%s: %s", where, obj ? "not a JSON object" : jerr.text);
                    json_decref(obj);
                    return -1;
                }
                int rc = corpus_doc_from_json(d, obj, where, err);
                json_decref(obj);
                return rc ? -1 : 1;
            }
            fclose(c->f);
            c->f = NULL;
            c->line = 0;
            c->path++;
            continue;
        }
        if (!c->array) {
            json_error_t jerr;
            c->array = json_load_file(path, 0, &jerr);
            if (!json_is_array(c->array)) {
                mm_err_set(err, "%s: %s", path,
                           c->array ? "not a JSON array of documents" : jerr.text);
                return -1;
            }
            c->element = 0;
        }
        if (c->element < json_array_size(c->array)) {
            snprintf(where, sizeof(where), "%s: document %zu", path, c->element);
            json_t *obj = json_array_get(c->array, c->element++);
            if (!json_is_object(obj)) {
                mm_err_set(err, "%s: not a JSON object", where);
                return -1;
            }
            return corpus_doc_from_json(d, obj, where, err) ? -1 : 1;
        }
        json_decref(c->array);
        c->array = NULL;
        c->path++;
    }
    return 0;
}

/* How many documents the corpus holds (for the progress bar); reading the
 * files first also reports a missing one before any work is done. */
int corpus_count(char **paths, int n, int64_t *total, struct mm_err *err)
{
    *total = 0;
    for (int i = 0; i < n; i++) {
        enum file_kind kind = kind_of(paths[i]);
        if (kind == FILE_JSON_ARRAY) {
            json_error_t jerr;
            json_t *a = json_load_file(paths[i], 0, &jerr);
            if (!json_is_array(a)) {
                mm_err_set(err, "%s: %s", paths[i],
                           a ? "not a JSON array of documents" : jerr.text);
                json_decref(a);
                return -1;
            }
            *total += (int64_t)json_array_size(a);
            json_decref(a);
            continue;
        }
        FILE *f = fopen(paths[i], "r");
        if (!f) {
            mm_err_set(err, "%s: %s", paths[i], strerror(errno));
            return -1;
        }
        if (kind == FILE_TEXT) {
            (*total)++;
        } else {
            char *line = NULL;
            size_t cap = 0;
            ssize_t len;
            while ((len = getline(&line, &cap, f)) >= 0)
                *total += strspn(line, " \t\r\n") != (size_t)len;
            free(line);
        }
        fclose(f);
    }
    return 0;
}

struct corpus *corpus_open(char **paths, int n, struct mm_err *err)
{
    struct corpus *c = calloc(1, sizeof(*c));
    if (!c) {
        mm_err_set(err, "out of memory");
        return NULL;
    }
    c->paths = paths;
    c->n_paths = n;
    return c;
}

void corpus_close(struct corpus *c)
{
    if (!c) return;
    if (c->f) fclose(c->f);
    json_decref(c->array);
    free(c->buf);
    free(c);
}
