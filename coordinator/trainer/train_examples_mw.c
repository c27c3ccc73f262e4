#include <stdlib.h>
#include <string.h>

#include "memllm_write.h"
#include "train_examples_doc.h"

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
    for (l = 0; l < n_labels; l++) {
        json_t *lab = json_array_get(d->labels, l);
        int h, t;
        const char *r;
        doc_label(d, l, props, &h, &t, &r);
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
        /* over --max-tokens: the oldest preceding sentences go first */
        int widest = o->window < 0 || s - o->window < 0 ? 0 : s - o->window, first = widest;
        int64_t tokens = 0;
        int put;
        for (;; first++) {
            char *prompt = memllm_write_prompt(&mwd, first, s, err);
            if (!prompt) {
                put = -1;
                break;
            }
            json_t *segs = json_pack("[{s:s, s:b}, {s:s, s:b}]", "text", prompt, "loss", 0, "text",
                                     ans, "loss", 1);
            free(prompt);
            if (!segs) {
                mm_err_set(err, "out of memory");
                put = -1;
                break;
            }
            put = put_example(out, "mw", index, title, segs, o, &tokens, err);
            if (put != 0 || first == s) break;
        }
        free(ans);
        if (put < 0) goto done;
        if (put == 0) {
            c->too_long++;
            continue;
        }
        c->examples++;
        c->empty += n_rel == 0;
        c->tokens += tokens;
        c->shortened += first > widest;
    }
    rc = 0;
done:
    doc_free(&d);
    return rc;
}
