#include "eval_ppl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "memllm_read.h"
#include "sampling.h"

/* Tokens fed to the engine per call. */
#define CHUNK 64

/* ---- a document as tokens ---- */

struct ivec {
    int32_t *v;
    uint8_t *c;
    int n, cap;
};

static int ivec_push(struct ivec *x, const int32_t *ids, size_t n, uint8_t cls)
{
    if (x->n + (int)n > x->cap) {
        int cap = 2 * (x->n + (int)n) + 16;
        int32_t *v = realloc(x->v, (size_t)cap * sizeof(int32_t));
        if (!v) return -1;
        x->v = v;
        uint8_t *c = realloc(x->c, (size_t)cap);
        if (!c) return -1;
        x->c = c;
        x->cap = cap;
    }
    memcpy(x->v + x->n, ids, n * sizeof(int32_t));
    memset(x->c + x->n, cls, n);
    x->n += (int)n;
    return 0;
}

/* Appends the tokens of text[0, len) (parse_special: MemLLM's tokens). */
static int push_text(struct ivec *x, const struct tokenizer *tok, const char *text, size_t len,
                     int parse_special, uint8_t cls, struct mm_err *err)
{
    int32_t *ids = NULL;
    size_t n = 0;
    if (len == 0) return 0;
    if (tok_encode(tok, text, len, 0, parse_special, &ids, &n, err)) return -1;
    int rc = ivec_push(x, ids, n, cls);
    free(ids);
    if (rc) mm_err_set(err, "out of memory");
    return rc;
}

/* A mention's piece starts at the space before it. */
static int piece_start(const struct mr_plan *p, int i)
{
    int s = p->m[i].start;
    return s > 0 && p->text[s - 1] == ' ' ? s - 1 : s;
}

static int by_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

void ppl_doc_free(struct ppl_doc *pd)
{
    for (int j = 0; pd->call && j < pd->n_reads; j++)
        free(pd->call[j]);
    free(pd->call);
    free(pd->n_call);
    free(pd->read_at);
    free(pd->tok);
    free(pd->cls);
    memset(pd, 0, sizeof(*pd));
}

static int build_call(struct ppl_doc *pd, int j, const struct mr_read *r,
                      const struct tokenizer *tok, struct mm_err *err)
{
    struct ivec x = {0};
    size_t qlen = strlen(r->queries) + 16;
    char *open = malloc(qlen);
    int rc = -1;
    if (!open) goto done;
    snprintf(open, qlen, "({MEM_READ(%s)-->", r->queries);
    /* as the MR examples tokenize it: the space before the read ends the
     * text before it, then the call, the answers and "})" each alone */
    if (push_text(&x, tok, " ", 1, 0, 0, err) ||
        push_text(&x, tok, open, strlen(open), 1, 0, err) ||
        push_text(&x, tok, r->answers, strlen(r->answers), 1, 0, err) ||
        push_text(&x, tok, "})", 2, 1, 0, err))
        goto done;
    pd->call[j] = x.v;
    pd->n_call[j] = x.n;
    x.v = NULL;
    rc = 0;
done:
    if (!open) mm_err_set(err, "out of memory");
    free(open);
    free(x.v);
    free(x.c);
    return rc;
}

int ppl_doc_build(struct ppl_doc *pd, const struct mr_plan *p, const struct tokenizer *tok,
                  struct mm_err *err)
{
    memset(pd, 0, sizeof(*pd));
    int len = (int)strlen(p->text), n_cuts = 0;
    int *cuts = malloc((size_t)(2 * p->n_m + 2) * sizeof(int));
    uint8_t *is_read = calloc((size_t)p->n_m + 1, 1);
    int *piece_tok = malloc((size_t)(len + 1) * sizeof(int)); /* cut offset -> first token */
    struct ivec x = {0};
    int rc = -1;
    if (!cuts || !is_read || !piece_tok) goto oom;
    for (int j = 0; j < p->n_rp; j++)
        is_read[p->rp[j].mention] = 1;
    cuts[n_cuts++] = 0;
    cuts[n_cuts++] = len;
    for (int i = 0; i < p->n_m; i++) {
        cuts[n_cuts++] = piece_start(p, i);
        cuts[n_cuts++] = p->m[i].end;
    }
    qsort(cuts, (size_t)n_cuts, sizeof(int), by_int);
    if (tok_add_bos_default(tok)) {
        int32_t bos = tok_bos(tok);
        if (ivec_push(&x, &bos, 1, 0)) goto oom;
    }
    for (int k = 0; k + 1 < n_cuts; k++) {
        int a = cuts[k], b = cuts[k + 1];
        if (a == b) continue;
        uint8_t cls = 0;
        for (int i = 0; i < p->n_m; i++)
            if (piece_start(p, i) <= a && b <= p->m[i].end)
                cls |= PPL_IS_ENTITY | (is_read[i] ? PPL_IS_TARGET : 0);
        piece_tok[a] = x.n;
        if (push_text(&x, tok, p->text + a, (size_t)(b - a), 0, cls, err)) goto done;
    }
    pd->n_reads = p->n_rp;
    pd->read_at = calloc((size_t)p->n_rp + 1, sizeof(int));
    pd->call = calloc((size_t)p->n_rp + 1, sizeof(int32_t *));
    pd->n_call = calloc((size_t)p->n_rp + 1, sizeof(int));
    if (!pd->read_at || !pd->call || !pd->n_call) goto oom;
    for (int j = 0; j < p->n_rp; j++) {
        pd->read_at[j] = piece_tok[piece_start(p, p->rp[j].mention)];
        if (build_call(pd, j, &p->rp[j], tok, err)) goto done;
    }
    pd->tok = x.v;
    pd->cls = x.c;
    pd->n = x.n;
    pd->first = 1;
    x.v = NULL;
    x.c = NULL;
    rc = 0;
    goto done;
oom:
    mm_err_set(err, "out of memory");
done:
    free(cuts);
    free(is_read);
    free(piece_tok);
    free(x.v);
    free(x.c);
    if (rc) ppl_doc_free(pd);
    return rc;
}

/* ---- scoring ---- */

struct scorer {
    struct engine *e;
    const struct ppl_doc *pd;
    const struct ppl_options *o;
    struct ppl_counts *c;
    json_t *trace;
    int32_t *ctx; /* the context: the text so far, with at most one read's span */
    int *doc_at;  /* [ctx] the text token a context token is, -1 in a span */
    int n_ctx, cap;
    int kv;              /* ctx[0, kv) are in the KV cache */
    int span_from;       /* the span's first context index; -1: none */
    int no_read_at;      /* a read was dropped before this text token */
    int seen;            /* text tokens before this one were scored (a span cut feeds
                          * some again) */
    float *rows, *last;  /* logits: CHUNK rows, and after the context's last token */
    int32_t open, space; /* "({" and a lone space, -1 where not one token */
    int stop_at;         /* model reads: the text token a read is tried before */
};

static int ctx_push(struct scorer *s, int32_t id, int doc_at, struct mm_err *err)
{
    if (s->n_ctx == s->cap) {
        mm_err_set(err,
                   "a document with its reads needs more than the %d positions of the "
                   "context",
                   s->cap);
        return -1;
    }
    s->ctx[s->n_ctx] = id;
    s->doc_at[s->n_ctx++] = doc_at;
    return 0;
}

static int32_t argmax(const float *x, int n)
{
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static void score(struct scorer *s, int t, const float *logits)
{
    if (t < s->pd->first) return;
    double nll = -logits_logprob(logits, s->e->vocab, s->pd->tok[t]);
    uint8_t cls = s->pd->cls[t];
    s->c->nll[PPL_OVERALL] += nll;
    s->c->n[PPL_OVERALL]++;
    if (cls & PPL_IS_ENTITY) {
        s->c->nll[PPL_ENTITY] += nll;
        s->c->n[PPL_ENTITY]++;
    }
    if (cls & PPL_IS_TARGET) {
        s->c->nll[PPL_TARGET] += nll;
        s->c->n[PPL_TARGET]++;
    }
}

/* Before text token t, given the logits that predict it: 1 when the model
 * wants to read there (model reads only), else t is scored and 0. */
static int before_text(struct scorer *s, int t, const float *logits)
{
    if (t < s->seen) return 0;
    if (s->o->reads == PPL_READS_MODEL && t != s->no_read_at && t >= s->pd->first) {
        int32_t top = argmax(logits, s->e->vocab);
        if (top == s->open || (top == s->space && s->space >= 0)) {
            s->stop_at = t;
            return 1;
        }
    }
    score(s, t, logits);
    s->seen = t + 1;
    return 0;
}

/* Feeds ctx[kv, n_ctx); each row's logits predict the next context token,
 * which, when it is text, before_text sees first. Stops early (the context
 * then ends before that text token) when it asks for a read. s->last gets
 * the logits after the context's last token. */
static int feed(struct scorer *s, struct mm_err *err)
{
    int32_t pos[CHUNK], slot[CHUNK], adapter[CHUNK];
    size_t vocab = (size_t)s->e->vocab;
    while (s->kv < s->n_ctx) {
        int m = s->n_ctx - s->kv < CHUNK ? s->n_ctx - s->kv : CHUNK;
        for (int i = 0; i < m; i++) {
            pos[i] = s->kv + i;
            slot[i] = 0;
            adapter[i] = s->o->adapter;
        }
        struct stage_batch b = {.n = m,
                                .tokens = s->ctx + s->kv,
                                .pos = pos,
                                .slot = slot,
                                .adapter = s->o->adapter >= 0 ? adapter : NULL};
        if (engine_forward(s->e, &b, s->rows, err)) return -1;
        for (int i = 0; i < m; i++) {
            int at = s->kv + i;
            const float *row = s->rows + (size_t)i * vocab;
            if (at + 1 == s->n_ctx) {
                memcpy(s->last, row, vocab * sizeof(float));
                continue;
            }
            int t = s->doc_at[at + 1];
            if (t >= 0 && before_text(s, t, row)) {
                s->n_ctx = at + 1;
                s->kv = at + 1;
                memcpy(s->last, row, vocab * sizeof(float));
                return 0;
            }
        }
        s->kv += m;
    }
    return 0;
}

/* Appends text tokens [from, to) and feeds them; the first is seen with
 * s->last. Returns the text token it stopped before (to when none). */
static int feed_text(struct scorer *s, int from, int to, struct mm_err *err)
{
    s->stop_at = to;
    if (from >= to) return to;
    if (s->n_ctx > 0 && before_text(s, from, s->last)) return from;
    for (int t = from; t < to; t++)
        if (ctx_push(s, s->pd->tok[t], t, err)) return -1;
    if (feed(s, err)) return -1;
    return s->stop_at;
}

/* Appends span to the context (the previous read's span cut out first), and
 * feeds it. */
static int put_span(struct scorer *s, const int32_t *span, int n, struct mm_err *err)
{
    if (s->span_from >= 0) {
        /* the text tokens after the old span move back over it */
        int w = s->span_from;
        for (int i = s->span_from; i < s->n_ctx; i++)
            if (s->doc_at[i] >= 0) {
                s->ctx[w] = s->ctx[i];
                s->doc_at[w++] = s->doc_at[i];
            }
        if (s->kv > s->span_from) s->kv = s->span_from;
        s->n_ctx = w;
    }
    s->span_from = s->n_ctx;
    for (int i = 0; i < n; i++)
        if (ctx_push(s, span[i], -1, err)) return -1;
    return feed(s, err);
}

/* The greedy call after "({": its tokens until the decoded text ends with
 * "-->" (1), or a malformed or overlong one (0). */
static int write_call(struct scorer *s, int32_t *call, int *n_call, char **text, struct mm_err *err)
{
    *text = NULL;
    for (int k = 0; k < s->o->max_call_tokens; k++) {
        int32_t next = argmax(s->last, s->e->vocab);
        if (ctx_push(s, next, -1, err)) return -1;
        call[(*n_call)++] = next;
        if (feed(s, err)) return -1;
        free(*text);
        *text = tok_decode(s->e->tok, call, (size_t)*n_call, 0, err);
        if (!*text) return -1;
        size_t len = strlen(*text);
        if (len >= 3 && !strcmp(*text + len - 3, "-->")) return 1;
        if (strstr(*text, "})") || next == tok_eos(s->e->tok)) return 0;
    }
    return 0;
}

/* Model reads: tries the read the model asks for before text token t. */
static int try_read(struct scorer *s, int t, struct mm_err *err)
{
    int saved_n = s->n_ctx, saved_span = s->span_from;
    size_t vocab = (size_t)s->e->vocab;
    float *saved_last = malloc(vocab * sizeof(float));
    int32_t *call = malloc((size_t)(s->o->max_call_tokens + 2) * sizeof(int32_t));
    char *text = NULL, *answers = NULL;
    int rc = -1, n_call = 0, ok = 0;
    if (!saved_last || !call) {
        mm_err_set(err, "out of memory");
        goto done;
    }
    memcpy(saved_last, s->last, vocab * sizeof(float));
    if (argmax(s->last, s->e->vocab) == s->space) {
        call[n_call++] = s->space;
        if (ctx_push(s, s->space, -1, err) || feed(s, err)) goto done;
    }
    if (argmax(s->last, s->e->vocab) == s->open) {
        call[n_call++] = s->open;
        if (ctx_push(s, s->open, -1, err) || feed(s, err)) goto done;
        int w = write_call(s, call, &n_call, &text, err);
        if (w < 0) goto done;
        static const char opener[] = "({MEM_READ(";
        const char *q = text ? strstr(text, opener) : NULL;
        size_t len = text ? strlen(text) : 0;
        /* "({MEM_READ(" queries ")-->" */
        if (w == 1 && q && text + len - 4 >= q + strlen(opener) && text[len - 4] == ')') {
            q += strlen("({MEM_READ(");
            char *queries = strndup(q, (size_t)(text + len - 4 - q));
            json_t *entry = json_object();
            double seconds = 0;
            if (!queries || !entry) {
                free(queries);
                json_decref(entry);
                mm_err_set(err, "out of memory");
                goto done;
            }
            int bad = memllm_read_answer(s->o->mem, &s->o->query, queries, entry, &answers,
                                         &seconds, err);
            if (!bad && answers && s->trace)
                json_array_append_new(s->trace, json_pack("{s:i, s:s, s:s}", "at", t, "call",
                                                          queries, "answers", answers));
            free(queries);
            json_decref(entry);
            if (bad) goto done;
            ok = answers != NULL;
        }
    }
    if (ok) {
        /* the span: what the model wrote, the answers and "})" */
        struct ivec span = {0};
        if (ivec_push(&span, call, (size_t)n_call, 0) ||
            push_text(&span, s->e->tok, answers, strlen(answers), 1, 0, err) ||
            push_text(&span, s->e->tok, "})", 2, 1, 0, err)) {
            free(span.v);
            free(span.c);
            if (!err->msg[0]) mm_err_set(err, "out of memory");
            goto done;
        }
        s->n_ctx = saved_n;
        if (s->kv > saved_n) s->kv = saved_n;
        rc = put_span(s, span.v, span.n, err);
        free(span.v);
        free(span.c);
        if (rc == 0) s->c->reads++;
        s->no_read_at = t; /* one read before a token */
    } else {
        /* dropped: back to before the attempt, and no new try here */
        s->n_ctx = saved_n;
        if (s->kv > saved_n) s->kv = saved_n;
        s->span_from = saved_span;
        memcpy(s->last, saved_last, vocab * sizeof(float));
        s->no_read_at = t;
        s->c->dropped++;
        rc = 0;
    }
done:
    free(saved_last);
    free(call);
    free(text);
    free(answers);
    return rc;
}

static int32_t single_token(const struct tokenizer *tok, const char *text, int parse_special)
{
    int32_t *ids = NULL, id = -1;
    size_t n = 0;
    if (tok_encode(tok, text, strlen(text), 0, parse_special, &ids, &n, NULL) == 0 && n == 1)
        id = ids[0];
    free(ids);
    return id;
}

int ppl_score_document(struct engine *e, const struct ppl_doc *pd, const struct ppl_options *o,
                       struct ppl_counts *c, json_t *trace, struct mm_err *err)
{
    struct scorer s = {.e = e,
                       .pd = pd,
                       .o = o,
                       .c = c,
                       .trace = trace,
                       .span_from = -1,
                       .no_read_at = -1,
                       .cap = e->context};
    size_t vocab = (size_t)e->vocab;
    s.ctx = malloc((size_t)s.cap * sizeof(int32_t));
    s.doc_at = malloc((size_t)s.cap * sizeof(int));
    s.rows = malloc((size_t)CHUNK * vocab * sizeof(float));
    s.last = malloc(vocab * sizeof(float));
    s.open = single_token(e->tok, "({", 1);
    s.space = single_token(e->tok, " ", 0);
    int rc = -1;
    if (!s.ctx || !s.doc_at || !s.rows || !s.last) {
        mm_err_set(err, "out of memory");
        goto done;
    }
    if (o->reads == PPL_READS_MODEL && (s.open < 0 || !o->mem)) {
        mm_err_set(err, "model reads need a memory and a tokenizer with \"({\" as one token");
        goto done;
    }
    int t = 0, j = 0;
    while (t < pd->n) {
        int end = pd->n;
        if (o->reads == PPL_READS_GOLD && j < pd->n_reads) end = pd->read_at[j];
        int stop = feed_text(&s, t, end, err);
        if (stop < 0) goto done;
        t = stop;
        if (o->reads == PPL_READS_MODEL && t < end) {
            if (try_read(&s, t, err)) goto done;
            continue;
        }
        if (o->reads == PPL_READS_GOLD && j < pd->n_reads && t == pd->read_at[j]) {
            if (put_span(&s, pd->call[j], pd->n_call[j], err)) goto done;
            if (trace) json_array_append_new(trace, json_pack("{s:i}", "at", t));
            c->reads++;
            j++;
        }
    }
    c->documents++;
    rc = 0;
done:
    free(s.ctx);
    free(s.doc_at);
    free(s.rows);
    free(s.last);
    return rc;
}

double ppl_of(const struct ppl_counts *c, int k)
{
    return c->n[k] ? exp(c->nll[k] / (double)c->n[k]) : 0.0;
}
