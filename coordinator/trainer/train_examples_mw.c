#include <stdlib.h>
#include <string.h>

#include "memllm_write.h"
#include "memory_client_docred.h"
#include "train_examples.h"

/* A DocRED document, checked and flattened. */
struct doc {
    char **sents; /* tokens joined by spaces, as `memllm annotate` reads them */
    int n_sents;
    char **names;    /* [entities] canonical names; NULL: none */
    int *first_sent; /* [entities] */
    int n_entities;
    json_t *vertex, *labels;
};

static void doc_free(struct doc *d)
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
static int doc_read(struct doc *d, json_t *j, struct mm_err *err)
{
    memset(d, 0, sizeof(*d));
    json_t *sents = json_object_get(j, "sents");
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

/* The first position of entity e's mentions in sentence s, -1 if none. */
static int pos_in_sentence(const struct doc *d, int e, int s)
{
    int best = -1;
    size_t k;
    json_t *m;
    json_array_foreach(json_array_get(d->vertex, (size_t)e), k, m)
    {
        if (json_integer_value(json_object_get(m, "sent_id")) != s) continue;
        int p = (int)json_integer_value(json_array_get(json_object_get(m, "pos"), 0));
        if (best < 0 || p < best) best = p;
    }
    return best;
}

static int has_evidence(json_t *lab, int s)
{
    size_t k;
    json_t *v;
    json_array_foreach(json_object_get(lab, "evidence"), k, v)
    {
        if (json_is_integer(v) && json_integer_value(v) == s) return 1;
    }
    return 0;
}

/* A name or label the API cannot carry: the separators inside it. */
static int api_safe(const char *s)
{
    return s && *s && !strstr(s, ">>") && !strchr(s, ';') && !strstr(s, "({") && !strstr(s, "})");
}

struct rel {
    int key, label;
    const char *h, *r, *t;
};

static int by_mention(const void *a, const void *b)
{
    const struct rel *x = a, *y = b;
    return x->key != y->key ? (x->key > y->key) - (x->key < y->key)
                            : (x->label > y->label) - (x->label < y->label);
}

/* Sentence s's answer: "s>>r>>o;...})"; -1 with *n_rel >= MW_MAX_RELATIONS
 * too. */
static char *answer(const struct doc *d, json_t *props, int s, int *n_rel)
{
    size_t n_labels = json_array_size(d->labels), l;
    struct rel *rels = calloc(n_labels + 1, sizeof(*rels));
    if (!rels) return NULL;
    int n = 0;
    json_t *lab;
    json_array_foreach(d->labels, l, lab)
    {
        int h = (int)json_integer_value(json_object_get(lab, "h"));
        int t = (int)json_integer_value(json_object_get(lab, "t"));
        const char *pid = json_string_value(json_object_get(lab, "r"));
        const char *r = json_string_value(json_object_get(props, pid));
        if (!r) r = pid;
        if (!has_evidence(lab, s) || d->first_sent[h] > s || d->first_sent[t] > s) continue;
        int ph = pos_in_sentence(d, h, s), pt = pos_in_sentence(d, t, s);
        if (ph < 0 && pt < 0) continue;
        if (!api_safe(d->names[h]) || !api_safe(d->names[t]) || !api_safe(r)) continue;
        int dup = 0;
        for (int k = 0; k < n && !dup; k++)
            dup = !strcmp(rels[k].h, d->names[h]) && !strcmp(rels[k].r, r) &&
                  !strcmp(rels[k].t, d->names[t]);
        if (dup) continue;
        int key = ph < 0 ? pt : pt < 0 ? ph : ph < pt ? ph : pt;
        rels[n++] = (struct rel){key, (int)l, d->names[h], r, d->names[t]};
    }
    qsort(rels, (size_t)n, sizeof(*rels), by_mention);
    *n_rel = n;
    size_t len = 3;
    for (int k = 0; k < n; k++)
        len += strlen(rels[k].h) + strlen(rels[k].r) + strlen(rels[k].t) + 5;
    char *a = malloc(len), *p = a;
    for (int k = 0; a && k < n; k++)
        p += sprintf(p, "%s%s>>%s>>%s", k ? ";" : "", rels[k].h, rels[k].r, rels[k].t);
    if (a) strcpy(p, "})");
    free(rels);
    return a;
}

/* Tokens of an example as `memllm train` counts them; -1 on a failure. */
static int64_t count_tokens(const struct tokenizer *tok, const char *prompt, const char *ans,
                            struct mm_err *err)
{
    int32_t *ids = NULL;
    size_t a = 0, b = 0;
    if (tok_encode(tok, prompt, strlen(prompt), tok_add_bos_default(tok), 1, &ids, &a, err))
        return -1;
    free(ids);
    ids = NULL;
    if (tok_encode(tok, ans, strlen(ans), 0, 1, &ids, &b, err)) return -1;
    free(ids);
    return (int64_t)(a + b);
}

static int write_example(FILE *out, const char *kind, size_t index, const char *title,
                         json_t *segments, struct mm_err *err)
{
    json_t *line = json_pack("{s:s, s:I, s:s, s:o}", "kind", kind, "doc", (json_int_t)index,
                             "title", title ? title : "", "segments", segments);
    char *text = line ? json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(line);
    int bad = !text || fprintf(out, "%s\n", text) < 0;
    free(text);
    if (bad) mm_err_set(err, "cannot write the example");
    return bad ? -1 : 0;
}

int examples_mw(FILE *out, json_t *doc, size_t index, json_t *props,
                const struct examples_options *o, struct examples_counts *c, struct mm_err *err)
{
    struct doc d;
    int rc = -1;
    if (doc_read(&d, doc, err)) goto done;
    const char *title = json_string_value(json_object_get(doc, "title"));
    struct mw_document mwd = {title, (const char *const *)d.sents, d.n_sents};
    c->documents++;
    for (int s = 0; s < d.n_sents; s++) {
        int n_rel = 0;
        char *ans = answer(&d, props, s, &n_rel);
        if (!ans) {
            mm_err_set(err, "out of memory");
            goto done;
        }
        if (n_rel >= MW_MAX_RELATIONS) {
            c->many_relations++;
            free(ans);
            continue;
        }
        int first = o->window < 0 || s - o->window < 0 ? 0 : s - o->window;
        char *prompt = NULL;
        int64_t tokens = 0;
        for (;; first++) {
            prompt = memllm_write_prompt(&mwd, first, s, err);
            if (!prompt) break;
            if (!o->tok) break;
            tokens = count_tokens(o->tok, prompt, ans, err);
            if (tokens < 0 || tokens <= o->max_tokens || first == s) break;
            free(prompt);
            prompt = NULL;
        }
        if (!prompt || tokens < 0) {
            free(prompt);
            free(ans);
            goto done;
        }
        if (o->tok && tokens > o->max_tokens) {
            c->too_long++;
        } else {
            c->shortened += first > (o->window < 0 || s - o->window < 0 ? 0 : s - o->window);
            json_t *segs = json_pack("[{s:s, s:b}, {s:s, s:b}]", "text", prompt, "loss", 0, "text",
                                     ans, "loss", 1);
            if (!segs || write_example(out, "mw", index, title, segs, err)) {
                free(prompt);
                free(ans);
                goto done;
            }
            c->examples++;
            c->empty += n_rel == 0;
            c->tokens += tokens;
        }
        free(prompt);
        free(ans);
    }
    rc = 0;
done:
    doc_free(&d);
    return rc;
}
