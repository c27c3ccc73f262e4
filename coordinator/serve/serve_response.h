/* The JSON bodies memllm serve answers with, in OpenAI's shapes: a whole
 * completion or chat completion, the chunks of a stream, and errors. A
 * MemLLM job also carries "memllm": the text with its API spans, the text
 * without, and the read trace. */
#ifndef MEMLLM_COORDINATOR_SERVE_RESPONSE_H
#define MEMLLM_COORDINATOR_SERVE_RESPONSE_H

#include <jansson.h>

#include "serve_queue.h"
#include "serve_request.h"

/* What every object of one response shares. */
struct serve_reply {
    enum serve_route route;
    char id[64];
    long long created; /* Unix seconds */
    const char *model;
};

/* The non-streaming answer to a finished job. */
json_t *serve_response_body(const struct serve_reply *m, const struct serve_job *j);

/* One stream chunk: `text` (len bytes) as the delta; with `role` (chat's
 * first chunk) the assistant role; with finished job `j` the finish
 * reason, and the job's logprobs and MemLLM fields. */
json_t *serve_response_chunk(const struct serve_reply *m, const char *text, size_t len, int role,
                             const struct serve_job *j);
/* The stream's last chunk when the client asked for usage: no choices. */
json_t *serve_response_usage_chunk(const struct serve_reply *m, const struct serve_job *j);

/* {"error": {"message", "type", "code"}}. */
json_t *serve_response_error(const struct serve_error *e);

#endif
