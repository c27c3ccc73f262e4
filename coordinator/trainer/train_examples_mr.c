/* MR examples: the paper's Algorithm 1 (train_examples.h). */
#include <stdlib.h>
#include <string.h>

#include "train_examples_doc.h"

/* Reverse queries (">>relation>>X", the subject wanted) too broad to ask:
 * in a memory of many documents, who else has this country of
 * citizenship, this place or date of birth... DESIGN.md names those three;
 * the rest are the same kind, a place, date, language or class that many
 * subjects share. */
static const char *const too_broad[] = {
    "country of citizenship",
    "place of birth",
    "date of birth",
    "place of death",
    "date of death",
    "country",
    "country of origin",
    "publication date",
    "inception",
    "original language of work",
    "sex or gender",
    "instance of",
};

static int is_too_broad(const char *relation)
{
    for (size_t i = 0; i < sizeof(too_broad) / sizeof(too_broad[0]); i++)
        if (!strcmp(relation, too_broad[i])) return 1;
    return 0;
}

static int by_start(const void *a, const void *b)
{
    const struct mr_mention *x = a, *y = b;
    return x->start != y->start ? (x->start > y->start) - (x->start < y->start)
                                : (x->entity > y->entity) - (x->entity < y->entity);
}

/* The document text (sentences joined by spaces) and, for sentence s, the
 * offset of its token k: start[s][k]. */
static char *doc_text(const struct doc *d, int ***start)
{
    size_t len = 1;
    for (int s = 0; s < d->n_sents; s++)
        len += strlen(d->sents[s]) + 1;
    char *text = malloc(len);
    *start = calloc((size_t)d->n_sents + 1, sizeof(int *));
    if (!text || !*start) {
        free(text);
        return NULL;
    }
    size_t off = 0;
    for (int s = 0; s < d->n_sents; s++) {
        json_t *toks = json_array_get(d->tokens, (size_t)s);
        size_t n = json_array_size(toks), k;
        (*start)[s] = malloc((n + 1) * sizeof(int));
        if (!(*start)[s]) {
            free(text);
            return NULL;
        }
        size_t at = off;
        json_t *t;
        json_array_foreach(toks, k, t)
        {
            (*start)[s][k] = (int)at;
            at += json_string_length(t) + 1;
        }
        (*start)[s][n] = (int)at - 1; /* the end of the last token */
        if (s) text[off - 1] = ' ';
        memcpy(text + off, d->sents[s], strlen(d->sents[s]));
        off += strlen(d->sents[s]) + 1;
    }
    text[off ? off - 1 : 0] = 0;
    return text;
}

/* Every mention, in text order. */
static struct mr_mention *mentions(const struct doc *d, int **start, int *n)
{
    size_t total = 0;
    for (int e = 0; e < d->n_entities; e++)
        total += json_array_size(json_array_get(d->vertex, (size_t)e));
    struct mr_mention *m = malloc((total + 1) * sizeof(*m));
    if (!m) return NULL;
    *n = 0;
    for (int e = 0; e < d->n_entities; e++) {
        size_t k;
        json_t *v;
        json_array_foreach(json_array_get(d->vertex, (size_t)e), k, v)
        {
            int s = (int)json_integer_value(json_object_get(v, "sent_id"));
            json_t *pos = json_object_get(v, "pos");
            int a = (int)json_integer_value(json_array_get(pos, 0));
            int b = (int)json_integer_value(json_array_get(pos, 1));
            int n_tok = (int)json_array_size(json_array_get(d->tokens, (size_t)s));
            if (a < 0 || b <= a || b > n_tok) continue;
            m[(*n)++] = (struct mr_mention){e, start[s][a], start[s][b] - (b < n_tok ? 1 : 0)};
        }
    }
    qsort(m, (size_t)*n, sizeof(*m), by_start);
    return m;
}

/* Whether text[at, at + len) stands whole somewhere in text[0, at). */
static int appeared_before(const char *text, int at, int len)
{
    for (int p = 0; p + len <= at; p++)
        if (!memcmp(text + p, text + at, (size_t)len)) return 1;
    return 0;
}

/* The read before mention m (entity e), or none (*rp untouched, 0):
 * queries on the seen entities' relations with e, answered by the memory. */
static int plan_read(const struct doc *d, json_t *props, const char *seen, int e, int at,
                     struct mm_memory *mem, struct mr_read *rp, struct examples_counts *c,
                     struct mm_err *err)
{
    enum { MAX_Q = 64 };
    struct mm_query q[MAX_Q];
    char *text[MAX_Q];
    int nq = 0;
    for (size_t l = 0; l < json_array_size(d->labels); l++) {
        int h, t;
        const char *r;
        doc_label(d, l, props, &h, &t, &r);
        int subject_wanted = h == e && t != e && seen[t];
        if (!(t == e && h != e && seen[h]) && !subject_wanted) continue;
        const char *given = subject_wanted ? d->names[t] : d->names[h];
        if (!api_safe(given) || !api_safe(r)) continue;
        if (subject_wanted && is_too_broad(r)) {
            c->broad++;
            continue;
        }
        size_t len = strlen(given) + strlen(r) + 5;
        char *qt = malloc(len);
        if (!qt) goto oom;
        snprintf(qt, len, subject_wanted ? ">>%2$s>>%1$s" : "%1$s>>%2$s>>", given, r);
        int dup = 0;
        for (int i = 0; i < nq && !dup; i++)
            dup = !strcmp(text[i], qt);
        if (dup || nq == MAX_Q) {
            free(qt);
            continue;
        }
        text[nq] = qt;
        q[nq++] = (struct mm_query){given, r, subject_wanted};
    }
    int rc = 0;
    if (nq == 0) goto done;
    struct mm_query_options o;
    mm_query_options_default(&o);
    o.qthr = 31; /* to tell "more than 30" */
    struct mm_answers *ans = calloc((size_t)nq, sizeof(*ans));
    if (!ans) goto oom;
    if (mm_memory_query(mem, q, (size_t)nq, &o, ans, err)) {
        free(ans);
        rc = -1;
        goto done;
    }
    /* fewest answers first (stable), more than 30 dropped, at most 3 */
    int order[MAX_Q], kept = 0;
    for (int i = 0; i < nq; i++) {
        if (ans[i].n > 30) {
            c->crowded++;
            continue;
        }
        int j = kept++;
        while (j > 0 && ans[order[j - 1]].n > ans[i].n) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    if (kept > 3) kept = 3;
    if (kept > 0) {
        size_t qlen = 1, alen = strlen(d->names[e]) + 1;
        for (int k = 0; k < kept; k++) {
            qlen += strlen(text[order[k]]) + 1;
            for (size_t a = 0; a < ans[order[k]].n; a++)
                alen += strlen(ans[order[k]].a[a].text) + 1;
        }
        rp->queries = calloc(qlen, 1);
        rp->answers = calloc(alen, 1);
        rp->at = at;
        int n_answers = 0;
        for (int k = 0; rp->queries && rp->answers && k < kept; k++) {
            if (k) strcat(rp->queries, ";");
            strcat(rp->queries, text[order[k]]);
            for (size_t a = 0; a < ans[order[k]].n && n_answers < 30; a++) {
                const char *at_text = ans[order[k]].a[a].text;
                size_t tl = strlen(at_text);
                const char *found = strstr(rp->answers, at_text);
                int dup = 0;
                while (found && !dup) {
                    dup = (found == rp->answers || found[-1] == ';') &&
                          (found[tl] == 0 || found[tl] == ';');
                    found = strstr(found + 1, at_text);
                }
                if (dup) continue;
                if (n_answers++) strcat(rp->answers, ";");
                strcat(rp->answers, at_text);
            }
        }
        if (rp->answers && !rp->answers[0]) {
            strcpy(rp->answers, d->names[e]); /* nothing found: the gold target */
            c->gold++;
        }
        rc = rp->queries && rp->answers ? 1 : -1;
        if (rc < 0) mm_err_set(err, "out of memory");
    }
    mm_answers_free(ans, (size_t)nq);
    free(ans);
done:
    for (int i = 0; i < nq; i++)
        free(text[i]);
    return rc;
oom:
    for (int i = 0; i < nq; i++)
        free(text[i]);
    mm_err_set(err, "out of memory");
    return -1;
}

static json_t *segment(const char *text, size_t len, int loss)
{
    return json_pack("{s:s%, s:b}", "text", text, len, "loss", loss);
}

void mr_plan_free(struct mr_plan *p)
{
    for (int j = 0; p->rp && j < p->n_rp; j++) {
        free(p->rp[j].queries);
        free(p->rp[j].answers);
    }
    free(p->rp);
    free(p->m);
    free(p->text);
    memset(p, 0, sizeof(*p));
}

int mr_plan_document(struct mr_plan *p, const struct doc *d, json_t *props, struct mm_memory *mem,
                     struct examples_counts *c, struct mm_err *err)
{
    memset(p, 0, sizeof(*p));
    int rc = -1, **start = NULL;
    char *seen = NULL;
    p->text = doc_text(d, &start);
    p->m = p->text ? mentions(d, start, &p->n_m) : NULL;
    seen = calloc((size_t)d->n_entities + 1, 1);
    p->rp = calloc((size_t)p->n_m + 1, sizeof(*p->rp));
    if (!p->text || !p->m || !seen || !p->rp) {
        mm_err_set(err, "out of memory");
        goto done;
    }
    for (int i = 0; i < p->n_m; i++) {
        int e = p->m[i].entity, at = p->m[i].start, len = p->m[i].end - p->m[i].start;
        /* a target whose text appeared before is no read point: the model
         * can copy it */
        int got = 0;
        if (!appeared_before(p->text, at, len) && d->names[e] &&
            (p->n_rp == 0 || p->rp[p->n_rp - 1].at < at) &&
            (got = plan_read(d, props, seen, e, at, mem, &p->rp[p->n_rp], c, err)) < 0)
            goto done;
        if (got) p->rp[p->n_rp++].mention = i;
        seen[e] = 1;
    }
    rc = 0;
done:
    for (int s = 0; start && s < d->n_sents; s++)
        free(start[s]);
    free(start);
    free(seen);
    if (rc) mr_plan_free(p);
    return rc;
}

int examples_mr(FILE *out, json_t *doc, size_t index, json_t *props, struct mm_memory *mem,
                const struct examples_options *o, struct examples_counts *c, struct mm_err *err)
{
    struct doc d;
    struct mr_plan p = {0};
    int rc = -1;
    if (doc_read(&d, doc, err)) return -1;
    const char *title = json_string_value(json_object_get(doc, "title"));
    c->documents++;
    if (mr_plan_document(&p, &d, props, mem, c, err)) goto done;
    const char *text = p.text;
    int n_rp = p.n_rp;
    struct mr_read *rp = p.rp;
    for (int j = 0; j < n_rp; j++) {
        int end = j + 1 < n_rp ? rp[j + 1].at : (int)strlen(text);
        size_t call_len = strlen(rp[j].queries) + 16;
        char *call = malloc(call_len);
        if (!call) {
            mm_err_set(err, "out of memory");
            goto done;
        }
        snprintf(call, call_len, "({MEM_READ(%s)-->", rp[j].queries);
        /* the continuation starts after "})" with the space the text had
         * before the read point */
        size_t cont_at = (size_t)rp[j].at, cont_len = (size_t)(end - rp[j].at);
        while (cont_len > 0 && text[cont_at + cont_len - 1] == ' ')
            cont_len--;
        char *cont = malloc(cont_len + 2);
        if (!cont) {
            free(call);
            mm_err_set(err, "out of memory");
            goto done;
        }
        cont[0] = ' ';
        memcpy(cont + 1, text + cont_at, cont_len);
        cont[cont_len + 1] = 0;
        json_t *segs = json_array();
        json_array_append_new(segs, segment(text, (size_t)rp[j].at, 0));
        json_array_append_new(segs, segment(call, strlen(call), 1));
        json_array_append_new(segs, segment(rp[j].answers, strlen(rp[j].answers), 0));
        json_array_append_new(segs, segment("})", 2, 0));
        json_array_append_new(segs, segment(cont, strlen(cont), 1));
        free(call);
        free(cont);
        int64_t tokens = 0;
        int put = -1;
        if (!segs || json_array_size(segs) != 5) {
            json_decref(segs);
            mm_err_set(err, "out of memory");
        } else {
            put = put_example(out, "mr", index, title, segs, o, &tokens, err);
        }
        if (put < 0) goto done;
        if (put == 0) {
            c->too_long++;
            continue;
        }
        c->examples++;
        c->tokens += tokens;
    }
    rc = 0;
done:
    mr_plan_free(&p);
    doc_free(&d);
    return rc;
}
