#include "memllm_read.h"

#include <stdlib.h>
#include <string.h>

#include "progress.h"
#include "triple_text.h"

#define CALL_NAME "MEM_READ("
#define CALL_WAIT "-->"
#define SPAN_OPEN "({"
#define SPAN_CLOSE "})"
#define MAX_QUERIES 3
/* How far back from "-->" a call may begin, in tokens. */
#define MAX_CALL_TOKENS 512

struct read_state {
    int span_from, span_to; /* the answered read in the context; to == 0: none */
    char *queries;          /* its query text, to spot a repeat */
    json_t *trace;
};

struct memllm_reader {
    struct engine *e;
    struct mm_memory *m;
    struct mm_query_options q;
    int n;
    struct read_state *st;
    long reads;
    double query_s;
};

struct memllm_reader *memllm_reader_new(struct engine *e, struct mm_memory *m,
                                        const struct mm_query_options *q, int n_requests,
                                        struct mm_err *err)
{
    struct memllm_reader *r = calloc(1, sizeof(*r));
    if (r) r->st = calloc((size_t)(n_requests > 0 ? n_requests : 1), sizeof(*r->st));
    if (!r || !r->st) {
        free(r);
        mm_err_set(err, "out of memory");
        return NULL;
    }
    r->e = e;
    r->m = m;
    r->q = *q;
    r->n = n_requests;
    for (int i = 0; i < n_requests; i++)
        r->st[i].trace = json_array();
    return r;
}

void memllm_reader_free(struct memllm_reader *r)
{
    if (!r) return;
    for (int i = 0; i < r->n; i++) {
        free(r->st[i].queries);
        json_decref(r->st[i].trace);
    }
    free(r->st);
    free(r);
}

int memllm_reader_reset(struct memllm_reader *r, int request, struct mm_err *err)
{
    struct read_state *st = &r->st[request];
    json_t *trace = json_array();
    if (!trace) {
        mm_err_set(err, "out of memory");
        return -1;
    }
    free(st->queries);
    json_decref(st->trace);
    memset(st, 0, sizeof(*st));
    st->trace = trace;
    return 0;
}

void memllm_reader_stats(const struct memllm_reader *r, long *reads, double *seconds)
{
    *reads = r->reads;
    *seconds = r->query_s;
}

json_t *memllm_reader_trace(const struct memllm_reader *r, int request)
{
    return r->st[request].trace;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !memcmp(s + n - k, suffix, k);
}

/* Where the call opened by "({" + `name` begins in text: the last `name`
 * preceded by "({" and optional spaces (SentencePiece tokenizers decode the
 * text after an added token such as "({" with a space). NULL if none. */
static const char *find_open(const char *text, const char *name)
{
    const char *found = NULL;
    for (const char *p = strstr(text, name); p; p = strstr(p + 1, name)) {
        const char *q = p;
        while (q > text && q[-1] == ' ')
            q--;
        if (q - text >= 2 && q[-2] == '(' && q[-1] == '{') found = q - 2;
    }
    return found;
}

/* Finds the call that the context's last tokens close: *start receives the
 * index of the token where its "({" begins and *queries the text between
 * "MEM_READ(" and ")-->" (malloc'd). Returns 1 if found, 0 if the context
 * does not end with a read call, -1 on error. */
static int find_call(const struct memllm_reader *r, const struct gen_sequence *s, int *start,
                     char **queries, struct mm_err *err)
{
    int n = s->n_tokens, tail = n < 4 ? n : 4;
    char *text = tok_decode(r->e->tok, s->tokens + n - tail, (size_t)tail, 0, err);
    if (!text) return -1;
    int closes = ends_with(text, CALL_WAIT);
    free(text);
    if (!closes) return 0;
    for (int k = 1; k <= n && k <= MAX_CALL_TOKENS; k++) {
        text = tok_decode(r->e->tok, s->tokens + n - k, (size_t)k, 0, err);
        if (!text) return -1;
        const char *open = find_open(text, CALL_NAME);
        if (!open) {
            free(text);
            continue;
        }
        const char *q = strstr(open, CALL_NAME) + strlen(CALL_NAME);
        size_t len = strlen(q) - strlen(CALL_WAIT);
        if (len > 0 && q[len - 1] == ')') len--;
        *queries = strndup(q, len);
        free(text);
        if (!*queries) {
            mm_err_set(err, "out of memory");
            return -1;
        }
        *start = n - k;
        return 1;
    }
    return 0;
}

json_t *memllm_answer_json(const struct mm_answer *a)
{
    json_t *prov = json_array();
    for (size_t i = 0; i < a->nprov; i++)
        json_array_append_new(prov, json_pack("{s:s, s:i, s:I}", "source", a->prov[i].source,
                                              "sentence", a->prov[i].sentence, "time_ms",
                                              (json_int_t)a->prov[i].time_ms));
    return json_pack("{s:s, s:f, s:b, s:s, s:s, s:o}", "text", a->text, "score", a->score, "exact",
                     a->exact, "entity", a->entity, "relation", a->relation, "provenance", prov);
}

/* Runs the call's queries; *joined receives the distinct answers joined by
 * ";" (malloc'd; NULL when there is none). Adds the queries to `entry`. */
int memllm_read_answer(struct mm_memory *m, const struct mm_query_options *qo, const char *queries,
                       json_t *entry, char **joined, double *seconds, struct mm_err *err)
{
    *joined = NULL;
    char *copy = strdup(queries);
    if (!copy) {
        mm_err_set(err, "out of memory");
        return -1;
    }
    struct mm_triple_text parsed[MAX_QUERIES];
    struct mm_query q[MAX_QUERIES];
    int nq = 0, rc = -1;
    json_t *qs = json_array();
    json_object_set_new(entry, "queries", qs);
    char *save = NULL;
    for (char *item = strtok_r(copy, ";", &save); item; item = strtok_r(NULL, ";", &save)) {
        struct mm_err perr = {{0}};
        int want_subject;
        if (nq == MAX_QUERIES) {
            json_array_append_new(
                qs, json_pack("{s:s, s:s}", "query", item, "skipped", "more than 3 queries"));
            continue;
        }
        if (mm_query_parse(item, &parsed[nq], &want_subject, &perr)) {
            json_array_append_new(qs, json_pack("{s:s, s:s}", "query", item, "skipped", perr.msg));
            continue;
        }
        q[nq] = (struct mm_query){.entity = want_subject ? parsed[nq].o : parsed[nq].s,
                                  .relation = parsed[nq].r,
                                  .want_subject = want_subject};
        json_array_append_new(qs, json_pack("{s:s, s:[]}", "query", item, "answers"));
        nq++;
    }
    struct mm_answers out[MAX_QUERIES];
    uint32_t S = mm_memory_shards(m);
    double *shard_s = calloc(S, sizeof(*shard_s));
    if (!shard_s) goto oom;
    double t0 = progress_now();
    int failed = nq > 0 && mm_memory_query_timed(m, q, (size_t)nq, qo, out, shard_s, err);
    double took = progress_now() - t0;
    *seconds += took;
    if (!failed && nq > 0) {
        /* The one field that differs between runs and layouts: what the read
         * cost, in all and at each shard (mm_memory_query_timed). */
        json_t *per_shard = json_array();
        for (uint32_t j = 0; j < S; j++)
            json_array_append_new(per_shard, json_real(shard_s[j] * 1e3));
        json_object_set_new(entry, "latency",
                            json_pack("{s:f, s:o}", "ms", took * 1e3, "shard_ms", per_shard));
    }
    free(shard_s);
    if (failed) goto done;
    size_t cap = 1, used = 0, kept = 0;
    char *buf = malloc(cap);
    if (!buf) goto oom;
    buf[0] = 0;
    for (int i = 0, row = 0; i < nq; i++, row++) {
        while (json_object_get(json_array_get(qs, (size_t)row), "skipped"))
            row++;
        json_t *answers = json_object_get(json_array_get(qs, (size_t)row), "answers");
        for (size_t j = 0; j < out[i].n; j++) {
            const struct mm_answer *a = &out[i].a[j];
            json_array_append_new(answers, memllm_answer_json(a));
            /* Distinct answers across the queries, at most Qthr. */
            size_t len = strlen(a->text);
            int seen = 0;
            for (const char *p = buf; *p && !seen;) {
                size_t l = strcspn(p, ";");
                seen = l == len && !memcmp(p, a->text, len);
                p += l + (p[l] == ';');
            }
            if (seen || kept == qo->qthr) continue;
            char *grown = realloc(buf, used + len + 2);
            if (!grown) {
                free(buf);
                mm_answers_free(out, (size_t)nq);
                goto oom;
            }
            buf = grown;
            if (used) buf[used++] = ';';
            memcpy(buf + used, a->text, len + 1);
            used += len;
            kept++;
        }
    }
    if (nq > 0) mm_answers_free(out, (size_t)nq);
    if (kept)
        *joined = buf;
    else
        free(buf);
    rc = 0;
    goto done;
oom:
    mm_err_set(err, "out of memory");
done:
    for (int i = 0; i < nq; i++)
        mm_triple_text_free(&parsed[i]);
    free(copy);
    return rc;
}

/* Answers the read call the context ends with, if any. Returns 1 when the
 * sequence changed, 0 when there is no call, -1 on error. */
static int process(struct memllm_reader *r, struct gen_sequence *s, struct mm_err *err)
{
    int start;
    char *queries = NULL;
    int found = find_call(r, s, &start, &queries, err);
    if (found <= 0) return found;
    struct read_state *st = &r->st[s->index];
    r->reads++;
    json_t *entry = json_pack("{s:i, s:s}", "position", start, "call", queries);
    json_array_append_new(st->trace, entry);
    char *answers = NULL;
    int repeat = st->queries && !strcmp(st->queries, queries);
    if (!repeat && memllm_read_answer(r->m, &r->q, queries, entry, &answers, &r->query_s, err)) {
        free(queries);
        return -1;
    }
    if (!answers) {
        json_object_set_new(entry, "outcome", json_string(repeat ? "repeat" : "no_answer"));
        int32_t opener = s->tokens[start];
        gen_sequence_truncate(s, start);
        s->banned[0] = opener;
        s->n_banned = 1;
        free(queries);
        return 1;
    }
    json_object_set_new(entry, "outcome", json_string("answered"));
    json_object_set_new(entry, "inserted", json_string(answers));
    /* Only the latest read stays in the context. */
    if (st->span_to > 0 && st->span_to <= start) {
        gen_sequence_cut(s, st->span_from, st->span_to);
        start -= st->span_to - st->span_from;
    }
    size_t len = strlen(answers);
    char *text = malloc(len + sizeof(SPAN_CLOSE));
    int32_t *ids = NULL;
    size_t n_ids = 0;
    int rc = -1;
    if (!text) {
        mm_err_set(err, "out of memory");
        goto out;
    }
    memcpy(text, answers, len);
    memcpy(text + len, SPAN_CLOSE, sizeof(SPAN_CLOSE));
    if (tok_encode(r->e->tok, text, strlen(text), 0, 1, &ids, &n_ids, err) ||
        gen_sequence_insert(s, ids, (int)n_ids, text, strlen(text), err))
        goto out;
    st->span_from = start;
    st->span_to = s->n_tokens;
    free(st->queries);
    st->queries = queries;
    queries = NULL;
    rc = 1;
out:
    free(ids);
    free(text);
    free(answers);
    free(queries);
    return rc;
}

int memllm_read_before_sample(void *ctx, struct gen_sequence *s, const float *logits,
                              struct mm_err *err)
{
    (void)logits;
    /* A call generated by the model is answered as soon as its "-->" is
     * sampled (memllm_read_on_token); here only a prompt that ends with one
     * remains, before the first token is sampled. */
    if (s->n_generated > 0 || s->n_tokens != s->req->n_prompt) return 0;
    return process(ctx, s, err);
}

int memllm_read_on_token(void *ctx, struct gen_sequence *s, int32_t token, const char *piece,
                         size_t len, struct mm_err *err)
{
    (void)token, (void)piece, (void)len;
    int rc = process(ctx, s, err);
    return rc < 0 ? -1 : 0;
}

char *memllm_strip_api(const char *text)
{
    size_t n = strlen(text);
    char *out = malloc(n + 1);
    if (!out) return NULL;
    size_t o = 0, i = 0;
    /* A read whose call ended the prompt starts the text inside its span:
     * its answers come first, up to the span's "})". */
    const char *first_open = strstr(text, SPAN_OPEN), *first_close = strstr(text, SPAN_CLOSE);
    if (first_close && (!first_open || first_close < first_open))
        i = (size_t)(first_close - text) + strlen(SPAN_CLOSE);
    while (i < n) {
        const char *open = strstr(text + i, SPAN_OPEN);
        const char *close = open ? strstr(open, SPAN_CLOSE) : NULL;
        if (!open || !close) {
            memcpy(out + o, text + i, n - i);
            o += n - i;
            break;
        }
        memcpy(out + o, text + i, (size_t)(open - (text + i)));
        o += (size_t)(open - (text + i));
        i = (size_t)(close - text) + strlen(SPAN_CLOSE);
    }
    out[o] = 0;
    return out;
}
