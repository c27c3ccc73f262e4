#include "eval_edit.h"

#include <stdlib.h>
#include <string.h>

#include "eval_names.h"
#include "memllm_read.h"
#include "train_examples_doc.h"
#include "train_rng.h"

/* An object of a relation somewhere in the file: o' is drawn from these. */
struct object {
    const char *r, *name;
    int doc, ent;
};

static int by_relation_name(const void *a, const void *b)
{
    const struct object *x = a, *y = b;
    int c = strcmp(x->r, y->r);
    if (c == 0) c = strcmp(x->name, y->name);
    if (c == 0) c = (x->doc > y->doc) - (x->doc < y->doc);
    return c;
}

static int names_have(char *const *names, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (eval_same_name(names[i], name)) return 1;
    return 0;
}

int edit_case_touches(const struct edit_case *probe, const struct edit_case *edits, int n)
{
    for (int k = 0; k < n; k++) {
        const char *named[] = {edits[k].s, edits[k].o, edits[k].o_new};
        for (int j = 0; j < 3; j++)
            if (eval_same_name(probe->s, named[j]) ||
                names_have(probe->o_names, probe->n_o_names, named[j]))
                return 1;
    }
    return 0;
}

/* Appends entity e's mention names not there yet. */
static int add_mention_names(const struct doc *d, int e, char ***names, int *n)
{
    size_t k;
    json_t *m;
    json_array_foreach(json_array_get(d->vertex, (size_t)e), k, m)
    {
        const char *name = json_string_value(json_object_get(m, "name"));
        if (!name || names_have(*names, *n, name)) continue;
        char **g = realloc(*names, (size_t)(*n + 1) * sizeof(char *));
        if (!g) return -1;
        *names = g;
        if (!(g[*n] = strdup(name))) return -1;
        (*n)++;
    }
    return 0;
}

static void case_free(struct edit_case *c)
{
    free(c->s);
    free(c->r);
    free(c->o);
    free(c->o_new);
    for (int i = 0; i < c->n_o_names; i++)
        free(c->o_names[i]);
    free(c->o_names);
    for (int i = 0; i < c->n_new_names; i++)
        free(c->new_names[i]);
    free(c->new_names);
    free(c->alias);
}

void edit_cases_free(struct edit_cases *x)
{
    for (int i = 0; i < x->n; i++)
        case_free(&x->c[i]);
    free(x->c);
    x->c = NULL;
    x->n = 0;
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

struct builder {
    struct doc *docs;
    size_t n_docs;
    json_t *props;
    struct object *obj;
    size_t n_obj;
    uint64_t seed;
};

/* Every (relation, object) of the file, sorted, once per name and document. */
static int collect_objects(struct builder *b)
{
    size_t cap = 0;
    for (size_t i = 0; i < b->n_docs; i++)
        cap += json_array_size(b->docs[i].labels);
    if (!(b->obj = malloc((cap + 1) * sizeof(*b->obj)))) return -1;
    for (size_t i = 0; i < b->n_docs; i++) {
        const struct doc *d = &b->docs[i];
        for (size_t l = 0; l < json_array_size(d->labels); l++) {
            int h, t;
            const char *r;
            doc_label(d, l, b->props, &h, &t, &r);
            if (d->names[t] && api_safe(d->names[t]) && api_safe(r))
                b->obj[b->n_obj++] = (struct object){r, d->names[t], (int)i, t};
        }
    }
    qsort(b->obj, b->n_obj, sizeof(*b->obj), by_relation_name);
    size_t w = 0;
    for (size_t k = 0; k < b->n_obj; k++)
        if (w == 0 || strcmp(b->obj[w - 1].r, b->obj[k].r) ||
            strcmp(b->obj[w - 1].name, b->obj[k].name) || b->obj[w - 1].doc != b->obj[k].doc)
            b->obj[w++] = b->obj[k];
    b->n_obj = w;
    return 0;
}

/* o' for case c of document i: from r's objects in other documents, the
 * first from a point drawn from (seed, s, r) whose name is not one of
 * (s, r)'s objects'. NULL: none. */
static const struct object *draw_new_object(const struct builder *b, const struct edit_case *c,
                                            int i)
{
    size_t lo = 0, hi;
    while (lo < b->n_obj && strcmp(b->obj[lo].r, c->r) < 0)
        lo++;
    for (hi = lo; hi < b->n_obj && !strcmp(b->obj[hi].r, c->r); hi++)
        ;
    if (hi == lo) return NULL;
    size_t n = hi - lo, start = train_rng_u64(b->seed, fnv1a(c->s), fnv1a(c->r)) % n;
    for (size_t k = 0; k < n; k++) {
        const struct object *o = &b->obj[lo + (start + k) % n];
        if (o->doc != i && !names_have(c->o_names, c->n_o_names, o->name)) return o;
    }
    return NULL;
}

static int seen_pair(const struct edit_cases *x, const char *s, const char *r)
{
    for (int k = 0; k < x->n; k++)
        if (!strcmp(x->c[k].s, s) && !strcmp(x->c[k].r, r)) return 1;
    return 0;
}

/* The case of label l of document i, appended to x unless it has none. */
static int add_case(const struct builder *b, int i, size_t l, struct edit_cases *x, size_t *cap)
{
    const struct doc *d = &b->docs[i];
    int h, t;
    const char *r;
    doc_label(d, l, b->props, &h, &t, &r);
    const char *s = d->names[h];
    if (!s || !d->names[t] || !api_safe(s) || !api_safe(r) || !api_safe(d->names[t]) ||
        seen_pair(x, s, r))
        return 0;
    struct edit_case c = {.s = strdup(s), .r = strdup(r), .o = strdup(d->names[t]), .doc = i};
    if (!c.s || !c.r || !c.o) goto oom;
    for (size_t l2 = 0; l2 < json_array_size(d->labels); l2++) {
        int h2, t2;
        const char *r2;
        doc_label(d, l2, b->props, &h2, &t2, &r2);
        if (h2 == h && !strcmp(r2, r) && add_mention_names(d, t2, &c.o_names, &c.n_o_names))
            goto oom;
    }
    const struct object *o = draw_new_object(b, &c, i);
    if (!o) {
        case_free(&c);
        return 0;
    }
    if (!(c.o_new = strdup(o->name)) ||
        add_mention_names(&b->docs[o->doc], o->ent, &c.new_names, &c.n_new_names))
        goto oom;
    size_t k;
    json_t *m;
    json_array_foreach(json_array_get(d->vertex, (size_t)h), k, m)
    {
        const char *a = json_string_value(json_object_get(m, "name"));
        if (a && api_safe(a) && !eval_same_name(a, s)) {
            if (!(c.alias = strdup(a))) goto oom;
            break;
        }
    }
    if (x->n == (int)*cap) {
        *cap = *cap ? 2 * *cap : 256;
        struct edit_case *g = realloc(x->c, *cap * sizeof(*g));
        if (!g) goto oom;
        x->c = g;
    }
    x->c[x->n++] = c;
    return 0;
oom:
    case_free(&c);
    return -1;
}

int edit_cases_build(json_t *all, const char *chosen, json_t *props, uint64_t seed,
                     struct edit_cases *out, struct mm_err *err)
{
    struct builder b = {.n_docs = json_array_size(all), .props = props, .seed = seed};
    size_t cap = 0, read = 0;
    int rc = -1;
    memset(out, 0, sizeof(*out));
    if (!(b.docs = calloc(b.n_docs + 1, sizeof(*b.docs)))) goto oom;
    for (; read < b.n_docs; read++)
        if (doc_read(&b.docs[read], json_array_get(all, read), err)) {
            mm_err_prefix(err, "document %zu", read);
            goto done;
        }
    if (collect_objects(&b)) goto oom;
    for (size_t i = 0; i < b.n_docs; i++)
        for (size_t l = 0; chosen[i] && l < json_array_size(b.docs[i].labels); l++)
            if (add_case(&b, (int)i, l, out, &cap)) goto oom;
    for (int i = out->n - 1; i > 0; i--) {
        int j = (int)(train_rng_u64(seed, 0x65646974ULL, (uint64_t)i) % (uint64_t)(i + 1));
        struct edit_case tmp = out->c[i];
        out->c[i] = out->c[j];
        out->c[j] = tmp;
    }
    rc = 0;
    goto done;
oom:
    mm_err_set(err, "out of memory");
done:
    for (size_t i = 0; i < read; i++)
        doc_free(&b.docs[i]);
    free(b.docs);
    free(b.obj);
    if (rc) edit_cases_free(out);
    return rc;
}

/* Generality's other template, for the 40 relations that make 85% of
 * Re-DocRED dev's (s, r) pairs: the fact said in words, s between the two
 * parts; other relations use "s's r is ". */
static const struct {
    const char *r, *before, *after;
} phrasings[] = {
    {"country", "", " is in the country "},
    {"located in the administrative territorial entity", "", " is located in "},
    {"country of citizenship", "", " is a citizen of "},
    {"contains administrative territorial entities", "", " contains "},
    {"part of", "", " is part of "},
    {"notable work", "A notable work of ", " is "},
    {"publication date", "", " was published in "},
    {"has part", "", " includes "},
    {"performer", "", " was performed by "},
    {"participant of", "", " took part in "},
    {"applies to jurisdiction", "", " applies to "},
    {"member of", "", " is a member of "},
    {"date of birth", "", " was born on "},
    {"country of origin", "", " comes from "},
    {"inception", "", " was founded in "},
    {"continent", "", " is on the continent of "},
    {"record label", "", " was released by the record label "},
    {"located next to body of water", "", " lies next to "},
    {"date of death", "", " died on "},
    {"present in work", "", " appears in "},
    {"conflict", "", " fought in "},
    {"owned by", "", " is owned by "},
    {"participant", "A participant of ", " was "},
    {"cast member", "The cast of ", " includes "},
    {"place of birth", "", " was born in "},
    {"spouse", "", " is married to "},
    {"located on terrain feature", "", " is located on "},
    {"followed by", "", " was followed by "},
    {"author", "", " was written by "},
    {"follows", "", " follows "},
    {"developer", "", " was developed by "},
    {"child", "A child of ", " is "},
    {"parent organization", "", " is a subsidiary of "},
    {"father", "The father of ", " is "},
    {"creator", "", " was created by "},
    {"sibling", "A sibling of ", " is "},
    {"composer", "The music of ", " was composed by "},
    {"religion", "", " follows the religion "},
    {"point in time", "", " took place in "},
    {"location", "", " took place at "},
};

char *edit_case_prompt(const struct edit_case *c, int general)
{
    const char *before = "The ", *after = " is ", *name = c->s;
    char *head = NULL;
    if (!general || c->alias) {
        size_t n = strlen(c->r) + 16;
        if (!(head = malloc(n))) return NULL;
        size_t len = strlen(c->r);
        /* "The part of s is", not "The part of of s is" */
        int ends_of = len >= 3 && !strcmp(c->r + len - 3, " of");
        snprintf(head, n, ends_of ? "The %s " : "The %s of ", c->r);
        before = head;
        name = general ? c->alias : c->s;
    } else {
        size_t k = 0, n_phrasings = sizeof(phrasings) / sizeof(phrasings[0]);
        while (k < n_phrasings && strcmp(phrasings[k].r, c->r))
            k++;
        if (k < n_phrasings) {
            before = phrasings[k].before;
            after = phrasings[k].after;
        } else {
            size_t n = strlen(c->r) + 16;
            if (!(head = malloc(n))) return NULL;
            snprintf(head, n, "'s %s is ", c->r);
            before = "";
            after = head;
        }
    }
    size_t n = strlen(before) + strlen(name) + strlen(after) + 1;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s%s%s", before, name, after);
    free(head);
    return p;
}

char *edit_answer(const char *text)
{
    char *plain = memllm_strip_api(text);
    if (!plain) return NULL;
    size_t lead = strspn(plain, " \t\r\n");
    memmove(plain, plain + lead, strlen(plain + lead) + 1);
    return plain;
}

int edit_answer_says(const char *answer, char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (eval_name_prefix(answer, names[i]) > 0) return 1;
    return 0;
}
