#include "eval_extract.h"

#include <stdlib.h>
#include <string.h>

#include "eval_names.h"
#include "train_examples_doc.h"

/* Whether `name` is one of entity e's mention names. */
static int names_entity(const struct doc *d, int e, const char *name)
{
    size_t k;
    json_t *m;
    json_array_foreach(json_array_get(d->vertex, (size_t)e), k, m)
    {
        const char *n = json_string_value(json_object_get(m, "name"));
        if (n && eval_same_name(n, name)) return 1;
    }
    return 0;
}

static int matches(const struct doc *d, int h, const char *r, int t, const struct mm_triple_text *f)
{
    return !strcmp(r, f->r) && names_entity(d, h, f->s) && names_entity(d, t, f->o);
}

static int same_text(const struct mm_triple_text *a, const struct mm_triple_text *b)
{
    return !strcmp(a->s, b->s) && !strcmp(a->r, b->r) && !strcmp(a->o, b->o);
}

/* Whether gold label l repeats an earlier label's (h, r, t). */
static int repeated_label(const struct doc *d, json_t *props, size_t l)
{
    int h, t, h2, t2;
    const char *r, *r2;
    doc_label(d, l, props, &h, &t, &r);
    for (size_t k = 0; k < l; k++) {
        doc_label(d, k, props, &h2, &t2, &r2);
        if (h == h2 && t == t2 && !strcmp(r, r2)) return 1;
    }
    return 0;
}

int extract_score_document(json_t *doc, json_t *props, const struct mm_triple_text *facts,
                           int n_facts, struct extract_counts *c, struct mm_err *err)
{
    struct doc d;
    if (doc_read(&d, doc, err)) return -1;
    size_t n_labels = json_array_size(d.labels);
    for (int i = 0; i < n_facts; i++) {
        int seen = 0;
        for (int j = 0; j < i && !seen; j++)
            seen = same_text(&facts[i], &facts[j]);
        if (seen) continue;
        c->facts++;
        for (size_t l = 0; l < n_labels; l++) {
            int h, t;
            const char *r;
            doc_label(&d, l, props, &h, &t, &r);
            if (matches(&d, h, r, t, &facts[i])) {
                c->correct++;
                break;
            }
        }
    }
    for (size_t l = 0; l < n_labels; l++) {
        if (repeated_label(&d, props, l)) continue;
        int h, t;
        const char *r;
        doc_label(&d, l, props, &h, &t, &r);
        c->gold++;
        for (int i = 0; i < n_facts; i++)
            if (matches(&d, h, r, t, &facts[i])) {
                c->recalled++;
                break;
            }
    }
    c->documents++;
    doc_free(&d);
    return 0;
}

double extract_precision(const struct extract_counts *c)
{
    return c->facts ? (double)c->correct / (double)c->facts : 0.0;
}

double extract_recall(const struct extract_counts *c)
{
    return c->gold ? (double)c->recalled / (double)c->gold : 0.0;
}

double extract_f1(const struct extract_counts *c)
{
    double p = extract_precision(c), r = extract_recall(c);
    return p + r > 0 ? 2 * p * r / (p + r) : 0.0;
}
