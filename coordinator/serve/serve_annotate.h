/* memllm serve's annotate jobs: documents posted to /v1/memory/annotate run
 * through the MemLLM write loop (memllm_write.h) as a background job with an
 * id and progress, resumable as `memllm annotate` is (annotate_done.h: a
 * document finished once is skipped when posted again, also after a
 * restart).
 *
 * The job's sentences join the engine's continuous batch: serve_engine.c
 * takes a sentence (serve_annotate_next) whenever a slot is free and no
 * HTTP request waits, so generation requests go first and the batch stays
 * full. Sentences carry indices from `base` on (the HTTP jobs' are below
 * it), and the writer's hooks see their own request index. One job runs
 * at a time, the others wait in order. A job whose writer fails (its
 * memory write, say) ends "failed" with the error; the service goes on.
 * Draining (SIGTERM) takes no new sentence: the running job ends
 * "interrupted" once its running sentences finish, its finished documents
 * recorded.
 *
 * The registry is shared: HTTP threads add jobs and read progress under
 * the mutex; everything else (the writer, the memory) is the engine
 * thread's. */
#ifndef MEMLLM_COORDINATOR_SERVE_ANNOTATE_H
#define MEMLLM_COORDINATOR_SERVE_ANNOTATE_H

#include <jansson.h>
#include <pthread.h>

#include "annotate_done.h"
#include "corpus.h"
#include "memllm_write.h"

struct serve_annotate_job {
    char id[32];
    /* Set before the engine takes it; read-only after. */
    struct corpus_doc *docs;
    int n_docs;
    int adapter;    /* the write model: engine adapter index, -1 the base */
    int max_tokens; /* generated per sentence; 0: memllm annotate's default */

    /* Progress, under the registry's mutex. */
    const char *status; /* queued, running, done, failed, interrupted */
    int docs_done, docs_skipped, sentences_done, n_sentences;
    long facts;
    long prompt_tokens, completion_tokens; /* of its sequences: "usage" */
    char *error;

    /* The engine thread's. */
    struct memllm_writer *w;
    struct mw_document *mw;
    struct annotate_done done;
    int next_req, n_reqs, running;
    int failed;
    struct serve_annotator *owner;
    struct serve_annotate_job *next; /* registry order: oldest first */
};

struct serve_annotator {
    pthread_mutex_t mu;
    struct serve_annotate_job *jobs, **tail;
    long next_id;
    /* The engine thread's. */
    struct engine *e;
    struct mm_memory *m;
    const char *dir; /* the memory's directory: annotate.done */
    int base;        /* the first index of a sentence */
    struct serve_annotate_job *active;
};

void serve_annotator_init(struct serve_annotator *a, struct engine *e, struct mm_memory *m,
                          const char *dir, int base);
void serve_annotator_destroy(struct serve_annotator *a);

/* Parses {"documents": [{"id", "text"} | {"title", "sents"}, ...],
 * "model": adapter name (optional), "max_tokens": tokens written per
 * sentence (optional, 1 to 4096, as annotate's --max-tokens)} into a new job (NULL with *status and
 * err set: 400 for the body, 404 for an unknown model). */
struct serve_annotate_job *serve_annotate_parse(struct serve_annotator *a, const char *body,
                                                size_t len, const char *base_model, int *status,
                                                struct mm_err *err);
/* The engine thread queues the job (a memop's run, arg: the job, which the
 * registry owns from then on). */
int serve_annotate_add(void *job, struct mm_err *err);
void serve_annotate_job_free(struct serve_annotate_job *j);
/* The job's progress as JSON, or NULL when no job has that id. */
json_t *serve_annotate_progress(struct serve_annotator *a, const char *id);

/* --- the engine thread ---------------------------------------------------------------------- */

/* The next sentence to run, with its index (from base on), or NULL.
 * draining: take no new sentence. */
const struct gen_request *serve_annotate_next(struct serve_annotator *a, int draining, int *index);
/* Whether a sequence with this index is an annotate sentence. */
int serve_annotate_owns(const struct serve_annotator *a, int index);
/* The writer's hooks for a sentence's sequence. A failure fails the job,
 * not the engine (the sequence ends); -1 only when out of memory. */
int serve_annotate_before_sample(struct serve_annotator *a, struct gen_sequence *s,
                                 const float *logits, struct mm_err *err);
int serve_annotate_on_token(struct serve_annotator *a, struct gen_sequence *s, int32_t token,
                            const char *piece, size_t len, struct mm_err *err);
int serve_annotate_on_finish(struct serve_annotator *a, struct gen_sequence *s, struct mm_err *err);

#endif
