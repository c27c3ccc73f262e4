/* The write loop's trace: one JSON line per sentence (annotate --trace,
 * eval extract --trace), enough to replay late stopping and the repeat rule
 * offline: what the model generated, every cut late stopping recorded
 * (position in the generated text, score), what was kept, the facts and
 * how the sentence ended. */
#ifndef MEMLLM_COORDINATOR_MEMLLM_WRITE_TRACE_H
#define MEMLLM_COORDINATOR_MEMLLM_WRITE_TRACE_H

#include <stdio.h>

#include "memllm_write.h"

/* Appends r's line to f; `name` is f's name for the error. */
int mw_trace_write(FILE *f, const char *name, const struct mw_sentence_result *r,
                   struct mm_err *err);

#endif
