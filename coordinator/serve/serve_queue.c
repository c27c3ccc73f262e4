#include "serve_queue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int serve_queue_init(struct serve_queue *q, int max_running, int max_waiting, struct mm_err *err)
{
    memset(q, 0, sizeof(*q));
    if (max_running < 1 || max_waiting < 1) {
        mm_err_set(err, "serve: the engine needs a slot and the queue a place");
        return -1;
    }
    q->max_running = max_running;
    q->max_waiting = max_waiting;
    q->running = calloc((size_t)max_running, sizeof(*q->running));
    q->waiting = calloc((size_t)max_waiting, sizeof(*q->waiting));
    if (!q->running || !q->waiting) {
        free(q->running);
        free(q->waiting);
        mm_err_set(err, "serve: out of memory");
        return -1;
    }
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->work, NULL);
    pthread_cond_init(&q->memop_done, NULL);
    q->memops_tail = &q->memops;
    return 0;
}

void serve_queue_destroy(struct serve_queue *q)
{
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->work);
    pthread_cond_destroy(&q->memop_done);
    free(q->running);
    free(q->waiting);
}

struct serve_job *serve_job_new(void)
{
    struct serve_job *j = calloc(1, sizeof(*j));
    if (!j) return NULL;
    j->refs = 1;
    j->req.user = j;
    /* Waits are timed on the monotonic clock: a wall-clock jump must not
     * stretch them. */
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&j->cond, &attr);
    pthread_condattr_destroy(&attr);
    return j;
}

static void job_free(struct serve_job *j)
{
    free(j->prompt_ids);
    serve_request_free(&j->r);
    free(j->out);
    free(j->text_with_api);
    json_decref(j->reads);
    free(j->error);
    free(j->read_error);
    free(j->logprobs);
    for (int i = 0; i < j->n_tok; i++)
        free(j->token_texts[i]);
    free(j->token_texts);
    pthread_cond_destroy(&j->cond);
    free(j);
}

/* With q->mu held. */
static void release_locked(struct serve_job *j)
{
    if (--j->refs == 0) job_free(j);
}

void serve_job_release(struct serve_queue *q, struct serve_job *j)
{
    pthread_mutex_lock(&q->mu);
    release_locked(j);
    pthread_mutex_unlock(&q->mu);
}

enum serve_submit serve_queue_submit(struct serve_queue *q, struct serve_job *j)
{
    enum serve_submit rc = SERVE_SUBMIT_OK;
    pthread_mutex_lock(&q->mu);
    /* A job waits in the ring until the engine's next step takes it, even
     * when a slot is free. */
    if (q->closed)
        rc = SERVE_SUBMIT_CLOSED;
    else if (q->n_waiting == q->max_waiting ||
             q->n_waiting + q->n_running >= q->max_running + q->max_waiting)
        rc = SERVE_SUBMIT_FULL;
    else {
        q->waiting[(q->head + q->n_waiting) % q->max_waiting] = j;
        q->n_waiting++;
        j->refs++;
        pthread_cond_signal(&q->work);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

struct timespec serve_deadline(int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    return until;
}

int serve_job_wait(struct serve_queue *q, struct serve_job *j, size_t have, int ms)
{
    struct timespec until = serve_deadline(ms);
    pthread_mutex_lock(&q->mu);
    int rc = 0;
    for (;;) {
        if (j->out_len > have || j->done) {
            rc = 1;
            break;
        }
        if (pthread_cond_timedwait(&j->cond, &q->mu, &until) == ETIMEDOUT) break;
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

void serve_queue_cancel(struct serve_queue *q, struct serve_job *j)
{
    pthread_mutex_lock(&q->mu);
    j->cancelled = 1;
    pthread_mutex_unlock(&q->mu);
}

void serve_queue_counts(struct serve_queue *q, int *running, int *waiting)
{
    pthread_mutex_lock(&q->mu);
    *running = q->n_running;
    *waiting = q->n_waiting;
    pthread_mutex_unlock(&q->mu);
}

const struct gen_request *serve_queue_next(void *ctx, int wait, int *index)
{
    struct serve_queue *q = ctx;
    struct serve_job *j = NULL;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (q->n_waiting > 0 && !j) {
            j = q->waiting[q->head];
            q->head = (q->head + 1) % q->max_waiting;
            q->n_waiting--;
            if (j->cancelled) {
                /* Nobody waits for it any more. */
                j->done = 1;
                j->finish = "cancelled";
                release_locked(j);
                j = NULL;
            }
        }
        if (j || !wait || q->memops || (q->closed && q->n_waiting == 0)) break;
        pthread_cond_wait(&q->work, &q->mu);
    }
    if (j) {
        int i = 0;
        while (q->running[i])
            i++;
        q->running[i] = j;
        q->n_running++;
        j->index = *index = i;
    }
    pthread_mutex_unlock(&q->mu);
    return j ? &j->req : NULL;
}

/* Appends op to the memops (the queue's mutex held); -1 when closed. */
static int enqueue_memop_locked(struct serve_queue *q, struct serve_memop *op)
{
    if (q->closed) {
        mm_err_set(&op->err, "the server is shutting down");
        return -1;
    }
    op->done = 0;
    op->next = NULL;
    *q->memops_tail = op;
    q->memops_tail = &op->next;
    pthread_cond_signal(&q->work);
    return 0;
}

int serve_queue_memop(struct serve_queue *q, struct serve_memop *op)
{
    op->finished = NULL;
    pthread_mutex_lock(&q->mu);
    int rc = enqueue_memop_locked(q, op);
    while (rc == 0 && !op->done)
        pthread_cond_wait(&q->memop_done, &q->mu);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int serve_queue_memop_post(struct serve_queue *q, struct serve_memop *op)
{
    pthread_mutex_lock(&q->mu);
    int rc = enqueue_memop_locked(q, op);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int serve_queue_run_memops(struct serve_queue *q)
{
    int ran = 0;
    for (;;) {
        pthread_mutex_lock(&q->mu);
        struct serve_memop *op = q->memops;
        if (op && !(q->memops = op->next)) q->memops_tail = &q->memops;
        pthread_mutex_unlock(&q->mu);
        if (!op) return ran;
        int rc = op->run(op->arg, &op->err);
        /* A waiter may free op once done is set: read finished before. */
        void (*finished)(struct serve_memop *) = op->finished;
        pthread_mutex_lock(&q->mu);
        op->rc = rc;
        op->done = 1;
        pthread_cond_broadcast(&q->memop_done);
        pthread_mutex_unlock(&q->mu);
        if (finished) finished(op);
        ran++;
    }
}

int serve_job_publish(struct serve_queue *q, struct serve_job *j, const char *text, size_t len)
{
    int rc = 0;
    pthread_mutex_lock(&q->mu);
    if (j->out_len + len + 1 > j->out_cap) {
        size_t cap = j->out_cap ? 2 * j->out_cap : 256;
        while (cap < j->out_len + len + 1)
            cap *= 2;
        char *o = realloc(j->out, cap);
        if (o) {
            j->out = o;
            j->out_cap = cap;
        } else {
            rc = -1;
        }
    }
    if (rc == 0) {
        memcpy(j->out + j->out_len, text, len);
        j->out_len += len;
        j->out[j->out_len] = 0;
        pthread_cond_broadcast(&j->cond);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

/* With q->mu held. */
static void finish_locked(struct serve_queue *q, struct serve_job *j)
{
    j->done = 1;
    q->running[j->index] = NULL;
    q->n_running--;
    pthread_cond_broadcast(&j->cond);
    release_locked(j);
}

void serve_queue_finish(struct serve_queue *q, struct serve_job *j)
{
    pthread_mutex_lock(&q->mu);
    finish_locked(q, j);
    pthread_mutex_unlock(&q->mu);
}

void serve_queue_close(struct serve_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->closed = 1;
    pthread_cond_broadcast(&q->work);
    pthread_mutex_unlock(&q->mu);
}

void serve_queue_fail(struct serve_queue *q, const char *message)
{
    pthread_mutex_lock(&q->mu);
    q->closed = 1;
    for (int i = 0; i < q->max_running; i++)
        if (q->running[i]) {
            struct serve_job *j = q->running[i];
            j->error = strdup(message);
            finish_locked(q, j);
        }
    while (q->n_waiting > 0) {
        struct serve_job *j = q->waiting[q->head];
        q->head = (q->head + 1) % q->max_waiting;
        q->n_waiting--;
        j->error = strdup(message);
        j->done = 1;
        pthread_cond_broadcast(&j->cond);
        release_locked(j);
    }
    /* Posted memops are finished after the mutex is let go (their
     * callbacks take other locks); waited-for ones are woken. */
    struct serve_memop *posted = NULL;
    for (struct serve_memop *op = q->memops, *next; op; op = next) {
        next = op->next;
        mm_err_set(&op->err, "%s", message);
        op->rc = -1;
        op->done = 1;
        if (op->finished) {
            op->next = posted;
            posted = op;
        }
    }
    q->memops = NULL;
    q->memops_tail = &q->memops;
    pthread_cond_broadcast(&q->memop_done);
    pthread_cond_broadcast(&q->work);
    pthread_mutex_unlock(&q->mu);
    for (struct serve_memop *op = posted, *next; op; op = next) {
        next = op->next;
        op->finished(op);
    }
}
