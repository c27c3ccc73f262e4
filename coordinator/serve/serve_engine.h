/* The engine thread of memllm serve: runs the continuous batch over the
 * jobs the HTTP threads queue (scheduler_serve with the queue as source),
 * streams each job's text to it as it is generated (held back where it
 * could still be the start of a stop string), runs the MemLLM read loop
 * for the jobs that ask for memory, and hands every result back. Jobs
 * whose client went away end at their next token. A memory read that
 * fails ends its job only, with the error (the HTTP side answers 5xx); the
 * batch and the service go on.
 *
 * Between steps (and while idle) it also runs the memory API's
 * operations (serve_queue_run_memops): this thread is the only one that
 * touches the memory, see serve_memory.h. */
#ifndef MEMLLM_COORDINATOR_SERVE_ENGINE_H
#define MEMLLM_COORDINATOR_SERVE_ENGINE_H

#include "engine.h"
#include "memllm_read.h"
#include "serve_annotate.h"
#include "serve_metrics.h"
#include "serve_queue.h"

struct serve_engine {
    struct engine *e;
    struct serve_queue *q;
    struct memllm_reader *reader; /* NULL: no memory; indexed by job index */
    struct serve_metrics *metrics;
    struct serve_annotator *annotator; /* NULL: no memory; its sentences' indices from base */
    int max_batch_tokens;
};

/* Runs until the queue is closed, every job taken has finished and no
 * memop is pending.
 * Returns -1 with err set when the engine failed (every job then ends with
 * the error). */
int serve_engine_run(struct serve_engine *se, struct mm_err *err);

#endif
