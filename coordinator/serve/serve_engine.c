#include "serve_engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "progress.h"

static struct serve_job *job_of(const struct gen_sequence *s)
{
    return s->req->user;
}

static int draining(struct serve_queue *q)
{
    pthread_mutex_lock(&q->mu);
    int closed = q->closed;
    pthread_mutex_unlock(&q->mu);
    return closed;
}

/* HTTP jobs first, then annotate sentences; memops before either. While
 * waiting, serve_queue_next returns for a memop (which may have queued an
 * annotate job) and for the closing of the queue. */
static const struct gen_request *next_job(void *ctx, int wait, int *index)
{
    struct serve_engine *se = ctx;
    const struct gen_request *r;
    for (;;) {
        serve_queue_run_memops(se->q);
        if ((r = serve_queue_next(se->q, 0, index))) break;
        if (se->annotator && (r = serve_annotate_next(se->annotator, draining(se->q), index)))
            return r;
        if (!wait) return NULL;
        if ((r = serve_queue_next(se->q, 1, index))) break;
        if (!serve_queue_run_memops(se->q) && draining(se->q)) {
            /* The annotate job ends (interrupted) now that nothing runs. */
            if (se->annotator) serve_annotate_next(se->annotator, 1, index);
            return NULL;
        }
    }
    /* The index's read state belonged to the job that had it before. A
     * failed reset leaves the job without a trace; it reads all the same. */
    if (se->reader) memllm_reader_reset(se->reader, *index, NULL);
    return r;
}

/* A memory read failed (the reader's hook returned -1 with rerr): this job
 * ends with the error at its next token (on_token) and its client gets a
 * 500; the other jobs and the service go on. Only out of memory here fails
 * the engine. */
static int read_failed(struct serve_job *j, const struct mm_err *rerr, struct mm_err *err)
{
    if (!(j->read_error = strdup(rerr->msg))) {
        mm_err_set(err, "serve: out of memory");
        return -1;
    }
    fprintf(stderr, "memllm serve: a memory read failed (that request gets a 500): %s\n",
            rerr->msg);
    return 0;
}

/* The reads a reader hook answered (or dropped) and their time, for the
 * metrics. */
static void count_reads(struct serve_engine *se, long reads0, double sec0)
{
    long reads;
    double sec;
    memllm_reader_stats(se->reader, &reads, &sec);
    if (reads > reads0) serve_metrics_reads(se->metrics, reads - reads0, sec - sec0);
}

static int before_sample(void *ctx, struct gen_sequence *s, const float *logits, struct mm_err *err)
{
    struct serve_engine *se = ctx;
    if (serve_annotate_owns(se->annotator, s->index))
        return serve_annotate_before_sample(se->annotator, s, logits, err);
    struct serve_job *j = job_of(s);
    if (!j->r.memory || j->read_error) return 0;
    long reads;
    double sec;
    memllm_reader_stats(se->reader, &reads, &sec);
    struct mm_err rerr;
    int rc = memllm_read_before_sample(se->reader, s, logits, &rerr);
    count_reads(se, reads, sec);
    /* The token sampled after a failure is never shown. */
    return rc >= 0 ? rc : read_failed(j, &rerr, err);
}

static int cancelled(struct serve_engine *se, struct serve_job *j)
{
    pthread_mutex_lock(&se->q->mu);
    int c = j->cancelled;
    pthread_mutex_unlock(&se->q->mu);
    return c;
}

static int record_logprob(struct serve_job *j, const struct gen_sequence *s, const char *piece,
                          size_t len, struct mm_err *err)
{
    if (j->n_tok == j->cap_tok) {
        int cap = j->cap_tok ? 2 * j->cap_tok : 64;
        float *lp = realloc(j->logprobs, (size_t)cap * sizeof(*lp));
        if (lp) j->logprobs = lp;
        char **tt = lp ? realloc(j->token_texts, (size_t)cap * sizeof(*tt)) : NULL;
        if (!tt) {
            mm_err_set(err, "serve: out of memory");
            return -1;
        }
        j->token_texts = tt;
        j->cap_tok = cap;
    }
    if (!(j->token_texts[j->n_tok] = strndup(piece, len))) {
        mm_err_set(err, "serve: out of memory");
        return -1;
    }
    j->logprobs[j->n_tok++] = s->logprobs[s->n_generated - 1];
    return 0;
}

static int on_token(void *ctx, struct gen_sequence *s, int32_t token, const char *piece, size_t len,
                    struct mm_err *err)
{
    struct serve_engine *se = ctx;
    /* The scheduler asks for new jobs only when a slot is free: with every
     * slot busy, memops run here, between tokens, so they never wait for a
     * sequence to end. */
    serve_queue_run_memops(se->q);
    serve_metrics_kv(se->metrics, s->slot, s->n_tokens);
    if (serve_annotate_owns(se->annotator, s->index))
        return serve_annotate_on_token(se->annotator, s, token, piece, len, err);
    struct serve_job *j = job_of(s);
    if (j->read_error) {
        s->finish = "error";
        return 0;
    }
    if (cancelled(se, j)) {
        s->finish = "cancelled";
        return 0;
    }
    double now = progress_now();
    serve_metrics_observe(se->metrics, j->last_token ? &se->metrics->per_token : &se->metrics->ttft,
                          now - (j->last_token ? j->last_token : j->submitted));
    j->last_token = now;
    /* A read can still roll the text back: memory jobs get theirs at the
     * end. */
    if (j->r.memory) {
        long reads;
        double sec;
        memllm_reader_stats(se->reader, &reads, &sec);
        struct mm_err rerr;
        int rc = memllm_read_on_token(se->reader, s, token, piece, len, &rerr);
        count_reads(se, reads, sec);
        if (rc == 0) return 0;
        s->finish = "error";
        return read_failed(j, &rerr, err);
    }
    if (j->r.logprobs && record_logprob(j, s, piece, len, err)) return -1;
    size_t upto = s->text_len - gen_sequence_stop_prefix(s);
    if (upto > j->published) {
        if (serve_job_publish(se->q, j, s->text + j->published, upto - j->published)) {
            mm_err_set(err, "serve: out of memory");
            return -1;
        }
        j->published = upto;
    }
    return 0;
}

static int on_finish(void *ctx, struct gen_sequence *s, struct mm_err *err)
{
    struct serve_engine *se = ctx;
    serve_metrics_kv(se->metrics, s->slot, 0);
    if (serve_annotate_owns(se->annotator, s->index)) {
        /* An annotate job's tokens count as any request's (its prompt
         * tokens here: it has no HTTP thread to count them at submission). */
        serve_metrics_tokens(se->metrics, s->req->n_prompt, s->n_generated);
        return serve_annotate_on_finish(se->annotator, s, err);
    }
    struct serve_job *j = job_of(s);
    int rc = 0;
    serve_metrics_tokens(se->metrics, 0, s->n_generated);
    if (j->read_error) {
        /* Read by the HTTP thread once the job is done (under the queue's
         * mutex, which serve_queue_finish takes). */
        j->error = j->read_error;
        j->read_error = NULL;
    } else if (j->r.memory) {
        char *plain = memllm_strip_api(s->text);
        j->text_with_api = strdup(s->text);
        j->reads = json_deep_copy(memllm_reader_trace(se->reader, s->index));
        rc = !plain || !j->text_with_api || !j->reads ||
             serve_job_publish(se->q, j, plain, strlen(plain));
        free(plain);
    } else if (s->text_len > j->published) {
        rc = serve_job_publish(se->q, j, s->text + j->published, s->text_len - j->published);
    }
    j->finish = s->finish;
    j->n_generated = s->n_generated;
    serve_queue_finish(se->q, j);
    if (rc) mm_err_set(err, "serve: out of memory");
    return rc ? -1 : 0;
}

int serve_engine_run(struct serve_engine *se, struct mm_err *err)
{
    struct gen_source src = {.next = next_job, .ctx = se};
    struct scheduler_hooks h = {
        .before_sample = before_sample, .on_token = on_token, .on_finish = on_finish, .ctx = se};
    if (scheduler_serve(se->e, &src, se->max_batch_tokens, &h, err) == 0) {
        /* A memop that came after the last job: serve_queue_memop refuses
         * new ones once the queue is closed, so this is the last. */
        serve_queue_run_memops(se->q);
        return 0;
    }
    serve_queue_fail(se->q, err->msg);
    return -1;
}
