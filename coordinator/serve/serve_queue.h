/* The hand-over between the HTTP threads and the engine thread.
 *
 * An HTTP thread fills a job (the request and the storage it points to)
 * and submits it; the engine thread takes jobs from the queue between
 * scheduler steps (serve_queue_next is a gen_source), and publishes the
 * text as it is generated and the result when the sequence ends. The HTTP
 * thread waits on the job's condition variable and reads what was
 * published. One mutex guards the queue and every job's shared fields.
 *
 * Bounds: at most max_running jobs in the engine (its slots) and
 * max_waiting queued; a submit beyond them is refused (the client gets
 * 429), never queued without bound.
 *
 * A job is shared by the HTTP thread and, once submitted, the engine: it
 * is freed when both have released it. */
#ifndef MEMLLM_COORDINATOR_SERVE_QUEUE_H
#define MEMLLM_COORDINATOR_SERVE_QUEUE_H

#include <jansson.h>
#include <pthread.h>
#include <time.h>

#include "scheduler.h"
#include "serve_request.h"

struct serve_job {
    /* Filled by the HTTP thread before submitting; read-only after. */
    struct gen_request req; /* req.user: this job */
    int32_t *prompt_ids;
    struct serve_request r; /* the parsed body (req.stop points into it) */
    int32_t stop_tokens[1];
    double submitted; /* progress_now() at submission: time to first token */

    /* Published by the engine thread under the queue's mutex. */
    char *out; /* the answer's text so far (streams read it as it grows) */
    size_t out_len, out_cap;
    int done;
    const char *finish;  /* "stop", "length", "eos", or "cancelled" */
    int n_generated;     /* usage.completion_tokens */
    char *text_with_api; /* memory: the text with its API spans */
    json_t *reads;       /* memory: the read trace */
    char *error;         /* the engine failed: the job has no result */

    /* The engine thread's own (the HTTP thread reads them once done). */
    int index;          /* gen_sequence.index while running */
    size_t published;   /* bytes of the sequence's text published */
    float *logprobs;    /* [n_tok] */
    char **token_texts; /* [n_tok] */
    int n_tok, cap_tok;
    double last_token; /* progress_now() at the previous token; 0: none yet */
    char *read_error;  /* a memory read failed: the job ends with it */

    int cancelled; /* the client went away: stop generating */
    int refs;
    pthread_cond_t cond;
};

/* A memory operation of the memory API, run by the engine thread between
 * scheduler steps (serve_memory.h says why). The HTTP thread fills run and
 * arg, submits, and waits until done. */
struct serve_memop {
    int (*run)(void *arg, struct mm_err *err); /* 0, or -1 with err set */
    void *arg;
    /* Posted (serve_queue_memop_post) rather than waited for: called on the
     * engine thread once rc and err are set, without the queue's mutex; op
     * is the callee's from then on. NULL for serve_queue_memop. */
    void (*finished)(struct serve_memop *op);
    struct mm_err err;
    int rc;
    int done;
    struct serve_memop *next;
};

struct serve_queue {
    pthread_mutex_t mu;
    pthread_cond_t work; /* signalled when a job or memop arrives or the queue closes */
    pthread_cond_t memop_done;
    struct serve_memop *memops, **memops_tail; /* FIFO */
    struct serve_job **waiting;                /* ring of max_waiting */
    int head, n_waiting, max_waiting;
    struct serve_job **running; /* [max_running], by job index */
    int n_running, max_running;
    int closed;
};

int serve_queue_init(struct serve_queue *q, int max_running, int max_waiting, struct mm_err *err);
void serve_queue_destroy(struct serve_queue *q);

/* A new job, held once by the caller. NULL when out of memory. */
struct serve_job *serve_job_new(void);
/* Drops one hold; the last frees the job. */
void serve_job_release(struct serve_queue *q, struct serve_job *j);

enum serve_submit {
    SERVE_SUBMIT_OK,
    SERVE_SUBMIT_FULL,   /* every slot and queue place taken: 429 */
    SERVE_SUBMIT_CLOSED, /* draining: 503 */
};
enum serve_submit serve_queue_submit(struct serve_queue *q, struct serve_job *j);

/* `ms` milliseconds from now on the monotonic clock (the clock the
 * service's condition variables wait on), for pthread_cond_timedwait. */
struct timespec serve_deadline(int ms);

/* Waits until the job has more than `have` bytes of text, is done, or
 * `ms` milliseconds passed. Returns 1 when there is something new (text or
 * done), 0 on timeout. */
int serve_job_wait(struct serve_queue *q, struct serve_job *j, size_t have, int ms);
/* The client went away: a waiting job is dropped, a running one ends at
 * its next token. */
void serve_queue_cancel(struct serve_queue *q, struct serve_job *j);

/* Runs op on the engine thread and waits for it: 0 when it ran (op->rc
 * holds its result), -1 when the queue is closed (draining) or the engine
 * failed (op->err says which). */
int serve_queue_memop(struct serve_queue *q, struct serve_memop *op);

/* Queues op (finished set) without waiting for it: for a caller that
 * waits on its own terms, e.g. with a time limit (GET /health), while the
 * op lives on until the engine thread has run it. -1 when the queue is
 * closed (op->err says so; finished is not called). */
int serve_queue_memop_post(struct serve_queue *q, struct serve_memop *op);

/* Sequences running and jobs waiting, for /health. */
void serve_queue_counts(struct serve_queue *q, int *running, int *waiting);

/* --- the engine thread's side --------------------------------------------------------- */

/* gen_source.next (ctx: the queue): the next job not cancelled, or NULL.
 * With `wait` it blocks until a job comes, a memop is pending (see
 * serve_queue_run_memops), or the queue is closed and empty. *index: a
 * free index in [0, max_running). */
const struct gen_request *serve_queue_next(void *ctx, int wait, int *index);
/* Runs every pending memop (the engine thread). Returns how many ran. */
int serve_queue_run_memops(struct serve_queue *q);
/* Appends text to what the job's client sees. */
int serve_job_publish(struct serve_queue *q, struct serve_job *j, const char *text, size_t len);
/* The job's sequence has ended (results set): its client is woken and the
 * engine's hold released. */
void serve_queue_finish(struct serve_queue *q, struct serve_job *j);
/* Stops taking jobs: queued ones still run, then serve_queue_next returns
 * NULL. */
void serve_queue_close(struct serve_queue *q);
/* The engine failed: every queued and running job and pending memop ends
 * with `message`. */
void serve_queue_fail(struct serve_queue *q, const char *message);

#endif
