/* The DocRED document reading and example writing that the MW and MR
 * example makers share. */
#include "train_examples_doc.h"

#include <stdlib.h>
#include <string.h>

#include "memory_client_docred.h"
#include "train_data.h"
#include "train_rng.h"

void doc_free(struct doc *d)
{
    for (int i = 0; i < d->n_sents; i++)
        free(d->sents[i]);
    for (int i = 0; i < d->n_entities; i++)
        free(d->names[i]);
    free(d->sents);
    free(d->names);
    free(d->first_sent);
}

static int join_sentence(json_t *toks, char **out)
{
    size_t len = 1, i;
    json_t *t;
    json_array_foreach(toks, i, t)
    {
        if (!json_is_string(t)) return -1;
        len += json_string_length(t) + 1;
    }
    char *s = malloc(len), *p = s;
    if (!s) return -1;
    json_array_foreach(toks, i, t)
    {
        if (i) *p++ = ' ';
        memcpy(p, json_string_value(t), json_string_length(t));
        p += json_string_length(t);
    }
    *p = 0;
    *out = s;
    return 0;
}

/* Checks every field the examples use, so that a bad document fails whole
 * and names what is wrong. */
int doc_read(struct doc *d, json_t *j, struct mm_err *err)
{
    memset(d, 0, sizeof(*d));
    json_t *sents = d->tokens = json_object_get(j, "sents");
    d->vertex = json_object_get(j, "vertexSet");
    d->labels = json_object_get(j, "labels");
    if (!json_is_array(sents) || !json_is_array(d->vertex) || !json_is_array(d->labels)) {
        mm_err_set(err, "needs \"sents\", \"vertexSet\" and \"labels\" arrays");
        return -1;
    }
    d->n_sents = (int)json_array_size(sents);
    d->n_entities = (int)json_array_size(d->vertex);
    d->sents = calloc((size_t)d->n_sents + 1, sizeof(char *));
    d->names = calloc((size_t)d->n_entities + 1, sizeof(char *));
    d->first_sent = calloc((size_t)d->n_entities + 1, sizeof(int));
    if (!d->sents || !d->names || !d->first_sent) goto oom;
    for (int i = 0; i < d->n_sents; i++)
        if (!json_is_array(json_array_get(sents, (size_t)i)) ||
            join_sentence(json_array_get(sents, (size_t)i), &d->sents[i])) {
            mm_err_set(err, "sents[%d] is not a list of token strings", i);
            return -1;
        }
    for (int e = 0; e < d->n_entities; e++) {
        json_t *mentions = json_array_get(d->vertex, (size_t)e), *m;
        size_t k;
        d->first_sent[e] = d->n_sents;
        if (!json_is_array(mentions) || json_array_size(mentions) == 0) {
            mm_err_set(err, "vertexSet[%d] is not a non-empty list of mentions", e);
            return -1;
        }
        json_array_foreach(mentions, k, m)
        {
            json_t *sent = json_object_get(m, "sent_id"), *pos = json_object_get(m, "pos");
            if (!json_is_integer(sent) || json_integer_value(sent) < 0 ||
                json_integer_value(sent) >= d->n_sents ||
                !json_is_integer(json_array_get(pos, 0))) {
                mm_err_set(err, "vertexSet[%d][%zu]: needs a sent_id in [0, %d) and a pos", e, k,
                           d->n_sents);
                return -1;
            }
            int s = (int)json_integer_value(sent);
            d->first_sent[e] = s < d->first_sent[e] ? s : d->first_sent[e];
        }
        d->names[e] = mm_docred_entity_name(mentions);
    }
    size_t l;
    json_t *lab;
    json_array_foreach(d->labels, l, lab)
    {
        json_t *h = json_object_get(lab, "h"), *t = json_object_get(lab, "t");
        if (!json_is_integer(h) || !json_is_integer(t) || json_integer_value(h) < 0 ||
            json_integer_value(t) < 0 || json_integer_value(h) >= d->n_entities ||
            json_integer_value(t) >= d->n_entities || !json_is_string(json_object_get(lab, "r"))) {
            mm_err_set(err, "labels[%zu]: needs entity indices h and t below %d and a relation r",
                       l, d->n_entities);
            return -1;
        }
    }
    return 0;
oom:
    mm_err_set(err, "out of memory");
    return -1;
}

/* A name or label the API cannot carry: the separators inside it. */
void doc_label(const struct doc *d, size_t l, json_t *props, int *h, int *t, const char **r)
{
    json_t *lab = json_array_get(d->labels, l);
    *h = (int)json_integer_value(json_object_get(lab, "h"));
    *t = (int)json_integer_value(json_object_get(lab, "t"));
    const char *pid = json_string_value(json_object_get(lab, "r"));
    *r = json_string_value(json_object_get(props, pid));
    if (!*r) *r = pid;
}

int api_safe(const char *s)
{
    return s && *s && !strstr(s, ">>") && !strchr(s, ';') && !strstr(s, "({") && !strstr(s, "})");
}

int put_example(FILE *out, const char *kind, size_t index, const char *title, json_t *segments,
                const struct examples_options *o, int64_t *tokens, struct mm_err *err)
{
    json_t *line = json_pack("{s:s, s:I, s:s, s:o}", "kind", kind, "doc", (json_int_t)index,
                             "title", title ? title : "", "segments", segments);
    char *text = line ? json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(line);
    if (!text) {
        mm_err_set(err, "out of memory");
        return -1;
    }
    int rc = 1;
    *tokens = 0;
    if (o->tok) {
        struct train_example e = {0};
        if (train_example_parse(&e, text, strlen(text), o->tok, err)) {
            rc = -1;
        } else {
            *tokens = e.n;
            rc = e.n <= o->max_tokens;
        }
        train_example_free(&e);
    }
    if (rc == 1 && fprintf(out, "%s\n", text) < 0) {
        mm_err_set(err, "cannot write the example");
        rc = -1;
    }
    free(text);
    return rc;
}

/* Which documents go to validation: the first `val` of a shuffle drawn
 * from the seed (Fisher-Yates), so mw and mr split alike. */
char *examples_validation_set(size_t n, int val, int seed)
{
    size_t *order = malloc((n ? n : 1) * sizeof(size_t));
    char *is_val = calloc(n ? n : 1, 1);
    if (!order || !is_val) {
        free(order);
        free(is_val);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(train_rng_u64((uint64_t)seed, 0x53504c4954ULL, i) % i);
        size_t t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < n && (int)i < val; i++)
        is_val[order[i]] = 1;
    free(order);
    return is_val;
}
