#include "memllm_write.h"

#include <stdlib.h>
#include <string.h>

#include "late_stop.h"

#define PROMPT_OPEN "({USER_ST})"
#define PROMPT_CLOSE "({USER_END})({MEM_WRITE-->"
#define CALL_END "})"
#define MAX_CLOSE_TOKENS 2

/* A sentence being written, and once finished, what it wrote until its
 * document is reported. */
struct sentence_state {
    int doc; /* index among the queued documents */
    int sentence;
    int32_t *prompt;
    struct late_stop ls;
    size_t *cut_at; /* every cut late stopping recorded, for the callback */
    double *cut_score;
    int repeats; /* items in a row that repeated an earlier one */
    char *written, *generated;
    int n_facts, malformed, tokens;
    const char *finish;
};

/* A queued document and the facts its finished sentences produced. */
struct doc_state {
    const struct mw_document *doc;
    int first, n_sentences; /* its requests (w->sent) */
    int pending;            /* sentences still running */
    struct mm_triple_text *texts;
    struct mm_fact *facts;
    size_t n_facts, cap_facts;
};

struct memllm_writer {
    struct engine *e;
    struct mm_memory *m;
    struct mw_options o;
    struct mw_callbacks cb;
    int window, max_prompt;
    /* The single tokens that close a call ("})", " })"), for late stopping. */
    int32_t close[MAX_CLOSE_TOKENS];
    int n_close;
    const char *stop[1];

    struct gen_request *reqs;
    struct sentence_state *sent;
    int n_reqs, cap_reqs;
    struct doc_state *docs;
    int n_docs, cap_docs;
    int reported; /* documents reported, in the order they were queued */
    struct mw_stats stats;
};

static int report_documents(struct memllm_writer *w, struct mm_err *err);

void mw_options_default(struct mw_options *o)
{
    *o = (struct mw_options){
        .delay = LATE_STOP_DEFAULT_DELAY,
        .max_tokens = 256,
        .window = -1,
        .adapter = -1,
        .repeats = MW_DEFAULT_REPEATS,
    };
}

/* Adds the token that alone spells `text`, if there is one. */
static int find_close_token(struct memllm_writer *w, const char *text, struct mm_err *err)
{
    int32_t *ids;
    size_t n;
    if (tok_encode(w->e->tok, text, strlen(text), 0, 1, &ids, &n, err)) return -1;
    if (n == 1 && w->n_close < MAX_CLOSE_TOKENS && (w->n_close == 0 || w->close[0] != ids[0]))
        w->close[w->n_close++] = ids[0];
    free(ids);
    return 0;
}

struct memllm_writer *memllm_writer_new(struct engine *e, struct mm_memory *m,
                                        const struct mw_options *o, const struct mw_callbacks *cb,
                                        struct mm_err *err)
{
    struct memllm_writer *w = calloc(1, sizeof(*w));
    if (!w) {
        mm_err_set(err, "out of memory");
        return NULL;
    }
    w->e = e;
    w->m = m;
    w->o = *o;
    if (cb) w->cb = *cb;
    w->window = o->window >= 0 ? o->window : e->context / 40;
    /* As the original: the prompt may fill half the context, the answer
     * the rest. */
    w->max_prompt = e->context / 2;
    w->stop[0] = CALL_END;
    if (find_close_token(w, CALL_END, err) || find_close_token(w, " " CALL_END, err)) {
        free(w);
        return NULL;
    }
    return w;
}

static void doc_facts_free(struct doc_state *d)
{
    for (size_t i = 0; i < d->n_facts; i++)
        mm_triple_text_free(&d->texts[i]);
    free(d->texts);
    free(d->facts);
    d->texts = NULL;
    d->facts = NULL;
    d->n_facts = d->cap_facts = 0;
}

static void sentence_state_free(struct sentence_state *st)
{
    free(st->prompt);
    free(st->cut_at);
    free(st->cut_score);
    free(st->written);
    free(st->generated);
}

void memllm_writer_clear(struct memllm_writer *w)
{
    for (int i = 0; i < w->n_reqs; i++)
        sentence_state_free(&w->sent[i]);
    for (int i = 0; i < w->n_docs; i++)
        doc_facts_free(&w->docs[i]);
    w->n_reqs = w->n_docs = w->reported = 0;
}

void memllm_writer_free(struct memllm_writer *w)
{
    if (!w) return;
    memllm_writer_clear(w);
    free(w->reqs);
    free(w->sent);
    free(w->docs);
    free(w);
}

const struct gen_request *memllm_writer_requests(const struct memllm_writer *w, int *n)
{
    *n = w->n_reqs;
    return w->reqs;
}

const struct mw_stats *memllm_writer_stats(const struct memllm_writer *w)
{
    return &w->stats;
}

char *memllm_write_prompt(const struct mw_document *d, int first, int i, struct mm_err *err)
{
    size_t len = strlen(PROMPT_OPEN) + strlen(d->sentences[i]) + strlen(PROMPT_CLOSE) + 1;
    for (int k = first; k < i; k++)
        len += strlen(d->sentences[k]) + 1;
    char *p = malloc(len);
    if (!p) {
        mm_err_set(err, "out of memory");
        return NULL;
    }
    p[0] = 0;
    for (int k = first; k < i; k++) {
        if (k > first) strcat(p, " ");
        strcat(p, d->sentences[k]);
    }
    strcat(p, PROMPT_OPEN);
    strcat(p, d->sentences[i]);
    strcat(p, PROMPT_CLOSE);
    return p;
}

/* Tokenises sentence i's prompt, dropping the oldest preceding sentences
 * while it is longer than max_prompt. *ids is NULL when even the sentence
 * alone is too long. */
static int encode_prompt(struct memllm_writer *w, const struct mw_document *d, int i, int32_t **ids,
                         size_t *n, struct mm_err *err)
{
    int bos = tok_add_bos_default(w->e->tok);
    for (int first = i - w->window > 0 ? i - w->window : 0; first <= i; first++) {
        char *p = memllm_write_prompt(d, first, i, err);
        if (!p) return -1;
        int rc = tok_encode(w->e->tok, p, strlen(p), bos, 1, ids, n, err);
        free(p);
        if (rc) return -1;
        if (*n <= (size_t)w->max_prompt) return 0;
        free(*ids);
    }
    *ids = NULL;
    return 0;
}

static int grow_requests(struct memllm_writer *w, struct mm_err *err)
{
    if (w->n_reqs < w->cap_reqs) return 0;
    int cap = w->cap_reqs ? 2 * w->cap_reqs : 64;
    struct gen_request *r = realloc(w->reqs, (size_t)cap * sizeof(*r));
    if (r) w->reqs = r;
    struct sentence_state *s = r ? realloc(w->sent, (size_t)cap * sizeof(*s)) : NULL;
    if (!s) {
        mm_err_set(err, "out of memory");
        return -1;
    }
    w->sent = s;
    w->cap_reqs = cap;
    return 0;
}

int memllm_writer_add(struct memllm_writer *w, const struct mw_document *doc, struct mm_err *err)
{
    if (w->n_docs == w->cap_docs) {
        int cap = w->cap_docs ? 2 * w->cap_docs : 16;
        struct doc_state *d = realloc(w->docs, (size_t)cap * sizeof(*d));
        if (!d) {
            mm_err_set(err, "out of memory");
            return -1;
        }
        w->docs = d;
        w->cap_docs = cap;
    }
    int di = w->n_docs++;
    w->docs[di] = (struct doc_state){.doc = doc, .first = w->n_reqs};
    /* In order: sentence i's prompt starts with sentence i - 1's pretext,
     * which prefix sharing (prefix_cache.h) then computes once. */
    for (int i = 0; i < doc->n_sentences; i++) {
        int32_t *ids;
        size_t n;
        if (encode_prompt(w, doc, i, &ids, &n, err)) {
            mm_err_prefix(err, "document '%s', sentence %d", doc->id, i);
            return -1;
        }
        if (!ids) {
            w->stats.skipped++;
            continue;
        }
        if (grow_requests(w, err)) {
            free(ids);
            return -1;
        }
        struct sentence_state *st = &w->sent[w->n_reqs];
        *st = (struct sentence_state){.doc = di, .sentence = i, .prompt = ids};
        late_stop_init(&st->ls, w->o.delay);
        w->reqs[w->n_reqs] = (struct gen_request){
            .prompt = ids,
            .n_prompt = (int)n,
            .max_tokens = w->o.max_tokens,
            .sampling = {.greedy = 1},
            .adapter = w->o.adapter,
            .stop = w->stop,
            .n_stop = 1,
        };
        w->n_reqs++;
        w->docs[di].n_sentences++;
        w->docs[di].pending++;
        w->stats.prompt_tokens += (int64_t)n;
    }
    return report_documents(w, err);
}

static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Keeps the cut late stopping just recorded, for the sentence's callback. */
static int log_cut(struct sentence_state *st, size_t at, struct mm_err *err)
{
    int n = st->ls.n_cuts;
    size_t *a = realloc(st->cut_at, (size_t)n * sizeof(*a));
    if (a) st->cut_at = a;
    double *sc = a ? realloc(st->cut_score, (size_t)n * sizeof(*sc)) : NULL;
    if (!sc) {
        mm_err_set(err, "out of memory");
        return -1;
    }
    st->cut_score = sc;
    st->cut_at[n - 1] = at;
    st->cut_score[n - 1] = st->ls.last_score;
    return 0;
}

int memllm_write_before_sample(void *ctx, struct gen_sequence *s, const float *logits,
                               struct mm_err *err)
{
    struct memllm_writer *w = ctx;
    /* Text put in the context by other means may already close the call:
     * memllm_write_on_token ends the sequence after this sample. */
    if (w->n_close == 0 || strstr(s->text, CALL_END)) return 0;
    int32_t top = argmax(logits, w->e->vocab);
    int is_close = 0;
    for (int i = 0; i < w->n_close; i++)
        is_close |= top == w->close[i];
    if (!is_close) return 0;
    double sum = 0;
    for (int i = 0; i < s->n_generated; i++)
        sum += s->logprobs[i];
    struct sentence_state *st = &w->sent[s->index];
    double lp = logits_logprob(logits, w->e->vocab, top);
    if (late_stop_offer(&st->ls, s->text_len, sum, s->n_generated, lp) == LATE_STOP_END)
        return 0; /* greedy sampling takes "})" and the stop string ends the sequence */
    for (int i = 0; i < w->n_close && s->n_banned < 4; i++)
        s->banned[s->n_banned++] = w->close[i];
    return log_cut(st, s->text_len, err);
}

/* The item text[start, end) without the spaces and line breaks around it. */
static void item_trim(const char *text, size_t *start, size_t *end)
{
    while (*start < *end && strchr(" \t\r\n", text[*start]))
        (*start)++;
    while (*end > *start && strchr(" \t\r\n", text[*end - 1]))
        (*end)--;
}

/* Whether the item that ends at text[end] (a ";") repeats an earlier item
 * of the same write; an empty item repeats nothing. */
static int item_repeats(const char *text, size_t end)
{
    size_t start = end;
    while (start > 0 && text[start - 1] != ';')
        start--;
    size_t a = start, b = end;
    item_trim(text, &a, &b);
    if (a == b) return 0;
    /* The earlier items: each ends at a ";" before start (the last at
     * start - 1). */
    for (size_t at = 0; at < start;) {
        size_t semi = (size_t)((const char *)memchr(text + at, ';', start - at) - text);
        size_t c = at, d = semi;
        item_trim(text, &c, &d);
        if (d - c == b - a && !memcmp(text + c, text + a, b - a)) return 1;
        at = semi + 1;
    }
    return 0;
}

int memllm_write_on_token(void *ctx, struct gen_sequence *s, int32_t token, const char *piece,
                          size_t len, struct mm_err *err)
{
    (void)token, (void)piece, (void)err;
    struct memllm_writer *w = ctx;
    /* A sampled "})" ends the sequence through its stop string; one that
     * arrived in inserted text (which stop strings do not see) ends it here. */
    if (!s->finish && strstr(s->text, CALL_END)) s->finish = "stop";
    if (s->finish || w->o.repeats <= 0) return 0;
    /* Each item this token closed: a repeat extends the run, a new one
     * ends it. */
    struct sentence_state *st = &w->sent[s->index];
    for (size_t at = s->text_len - len; at < s->text_len && !s->finish; at++) {
        if (s->text[at] != ';') continue;
        st->repeats = item_repeats(s->text, at) ? st->repeats + 1 : 0;
        if (st->repeats >= w->o.repeats) s->finish = "repeat";
    }
    return 0;
}

/* Splits the answer into items and keeps the well-formed, distinct ones in
 * the document's facts. */
static int parse_items(struct memllm_writer *w, struct doc_state *d, int sentence, char *answer,
                       int *n_facts, int *malformed, struct mm_err *err)
{
    size_t first = d->n_facts;
    *n_facts = *malformed = 0;
    char *save = NULL;
    for (char *item = strtok_r(answer, ";", &save); item; item = strtok_r(NULL, ";", &save)) {
        /* Line breaks around an item are layout, not part of its texts. */
        size_t a = 0, b = strlen(item);
        item_trim(item, &a, &b);
        if (a == b) continue;
        item[b] = 0;
        item += a;
        if (d->n_facts == d->cap_facts) {
            size_t cap = d->cap_facts ? 2 * d->cap_facts : 16;
            struct mm_triple_text *t = realloc(d->texts, cap * sizeof(*t));
            if (t) d->texts = t;
            struct mm_fact *f = t ? realloc(d->facts, cap * sizeof(*f)) : NULL;
            if (!f) {
                mm_err_set(err, "out of memory");
                return -1;
            }
            d->facts = f;
            d->cap_facts = cap;
        }
        struct mm_triple_text *t = &d->texts[d->n_facts];
        struct mm_err perr = {{0}};
        if (mm_triple_parse(item, t, &perr)) {
            (*malformed)++;
            continue;
        }
        int repeat = 0;
        for (size_t k = first; k < d->n_facts && !repeat; k++)
            repeat = !strcmp(d->texts[k].s, t->s) && !strcmp(d->texts[k].r, t->r) &&
                     !strcmp(d->texts[k].o, t->o);
        if (repeat) {
            mm_triple_text_free(t);
            continue;
        }
        d->facts[d->n_facts] =
            (struct mm_fact){t->s, t->r, t->o, {.source = d->doc->id, .sentence = sentence}};
        d->n_facts++;
        (*n_facts)++;
    }
    w->stats.facts += *n_facts;
    w->stats.malformed += *malformed;
    return 0;
}

/* The facts in sentence order, each sentence's in the order written:
 * sentences finish in an order that depends on the batch, the memory
 * must not. */
static void sort_facts(struct doc_state *d)
{
    for (size_t i = 1; i < d->n_facts; i++) {
        struct mm_fact f = d->facts[i];
        struct mm_triple_text t = d->texts[i];
        size_t j = i;
        for (; j > 0 && d->facts[j - 1].src.sentence > f.src.sentence; j--) {
            d->facts[j] = d->facts[j - 1];
            d->texts[j] = d->texts[j - 1];
        }
        d->facts[j] = f;
        d->texts[j] = t;
    }
}

/* Reports a finished document: each sentence's outcome in order, then its
 * facts written, then the document itself. */
static int report_document(struct memllm_writer *w, struct doc_state *d, struct mm_err *err)
{
    sort_facts(d);
    size_t at = 0;
    for (int i = d->first; i < d->first + d->n_sentences; i++) {
        struct sentence_state *st = &w->sent[i];
        struct mw_sentence_result r = {.doc = d->doc,
                                       .sentence = st->sentence,
                                       .written = st->written,
                                       .generated = st->generated,
                                       .facts = d->texts + at,
                                       .n_facts = st->n_facts,
                                       .malformed = st->malformed,
                                       .cuts = st->ls.n_cuts,
                                       .cut_at = st->cut_at,
                                       .cut_score = st->cut_score,
                                       .tokens = st->tokens,
                                       .finish = st->finish};
        at += (size_t)st->n_facts;
        if (w->cb.sentence && w->cb.sentence(w->cb.ctx, &r, err)) return -1;
        free(st->written);
        free(st->generated);
        st->written = st->generated = NULL;
    }
    if (d->n_facts && mm_memory_write(w->m, d->facts, d->n_facts, NULL, 0, NULL, err)) {
        mm_err_prefix(err, "document '%s'", d->doc->id);
        return -1;
    }
    doc_facts_free(d);
    w->stats.documents++;
    return w->cb.document ? w->cb.document(w->cb.ctx, d->doc, err) : 0;
}

/* Reports the finished documents at the head of the queue. Sentences
 * finish in an order that depends on the batch and the pipeline's
 * schedule; the memory (the order of its writes) and the callbacks (the
 * trace) must not, so documents are reported in the order queued. */
static int report_documents(struct memllm_writer *w, struct mm_err *err)
{
    while (w->reported < w->n_docs && w->docs[w->reported].pending == 0)
        if (report_document(w, &w->docs[w->reported++], err)) return -1;
    return 0;
}

int memllm_write_on_finish(void *ctx, struct gen_sequence *s, struct mm_err *err)
{
    struct memllm_writer *w = ctx;
    struct sentence_state *st = &w->sent[s->index];
    struct doc_state *d = &w->docs[st->doc];
    /* A write the repeat rule ended keeps all it wrote: late stopping's
     * cuts are points where the model would have closed the call, and a
     * looping write never got to close; its cut points came before items it
     * went on to write (the measure: memllm_write.h). */
    size_t keep = s->text_len;
    if (strcmp(s->finish, "repeat") != 0) late_stop_best(&st->ls, &keep);
    char *answer = strndup(s->text, keep);
    if (!answer) {
        mm_err_set(err, "out of memory");
        return -1;
    }
    char *end = strstr(answer, CALL_END);
    if (end) *end = 0;
    st->written = strdup(answer);
    st->generated = strdup(s->text);
    int rc = st->written && st->generated
                 ? parse_items(w, d, st->sentence, answer, &st->n_facts, &st->malformed, err)
                 : -1;
    if (!st->written || !st->generated) mm_err_set(err, "out of memory");
    st->tokens = s->n_generated;
    st->finish = s->finish;
    w->stats.sentences++;
    w->stats.tokens += s->n_generated;
    free(answer);
    if (rc == 0) {
        d->pending--;
        rc = report_documents(w, err);
    }
    return rc;
}

int memllm_writer_run(struct memllm_writer *w, int max_batch_tokens, struct mm_err *err)
{
    struct scheduler_hooks h = {.before_sample = memllm_write_before_sample,
                                .on_token = memllm_write_on_token,
                                .on_finish = memllm_write_on_finish,
                                .ctx = w};
    if (w->n_reqs == 0) return 0;
    return scheduler_run(w->e, w->reqs, w->n_reqs, max_batch_tokens, &h, err);
}
