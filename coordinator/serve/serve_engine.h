/* The engine thread of memllm serve: runs the continuous batch over the
 * jobs the HTTP threads queue (scheduler_serve with the queue as source),
 * streams each job's text to it as it is generated (held back where it
 * could still be the start of a stop string), runs the MemLLM read loop
 * for the jobs that ask for memory, and hands every result back. Jobs
 * whose client went away end at their next token. */
#ifndef MEMLLM_COORDINATOR_SERVE_ENGINE_H
#define MEMLLM_COORDINATOR_SERVE_ENGINE_H

#include "engine.h"
#include "memllm_read.h"
#include "serve_queue.h"

struct serve_engine {
    struct engine *e;
    struct serve_queue *q;
    struct memllm_reader *reader; /* NULL: no memory; indexed by job index */
    int max_batch_tokens;
};

/* Runs until the queue is closed and every job taken has finished.
 * Returns -1 with err set when the engine failed (every job then ends with
 * the error). */
int serve_engine_run(struct serve_engine *se, struct mm_err *err);

#endif
