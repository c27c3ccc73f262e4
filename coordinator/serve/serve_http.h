/* The HTTP side of memllm serve (libmicrohttpd, a thread per connection):
 * routes, bearer-token auth, body limits, and for generation requests the
 * whole exchange with the engine thread through the queue: parse, render
 * the chat template, tokenize, check the lengths, submit (429 with
 * Retry-After when full, 503 while draining), then wait for the result or
 * stream it as server-sent events. A client that disconnects has its job
 * cancelled, which frees its sequence at the next token.
 *
 *   GET  /health                  {"status": "ok"|"draining", "running", "queued"}
 *   GET  /v1/models               the base model and each adapter
 *   POST /v1/completions          OpenAI's completions
 *   POST /v1/chat/completions     OpenAI's chat completions
 *
 * With keys, every /v1/ route needs "Authorization: Bearer KEY" (401
 * otherwise); /health never does. */
#ifndef MEMLLM_COORDINATOR_SERVE_HTTP_H
#define MEMLLM_COORDINATOR_SERVE_HTTP_H

#include <pthread.h>
#include <stddef.h>

#include "engine.h"
#include "serve_chat_template.h"
#include "serve_queue.h"

struct serve_http_config {
    struct engine *e; /* its tokenizer, context and adapter names (read-only) */
    struct serve_queue *q;
    const struct chat_template *chat;
    int has_memory;
    const char *model_name; /* the base model's name in the API */
    char **keys;            /* API keys; none: no auth */
    int n_keys;
    size_t max_body;        /* bytes */
    int max_tokens;         /* the most a request may ask for */
    int default_max_tokens; /* when it does not say */
    int max_connections;
};

struct serve_http;

/* Listens on host:port (port 0: a free one, see serve_http_port). */
struct serve_http *serve_http_start(const struct serve_http_config *c, const char *host, int port,
                                    struct mm_err *err);
int serve_http_port(const struct serve_http *h);
/* Stops accepting connections (draining). */
void serve_http_quiesce(struct serve_http *h);
/* Waits up to `seconds` for the responses of every submitted job to be
 * sent; returns how many are still going. */
int serve_http_wait_idle(struct serve_http *h, int seconds);
/* Closes every connection and frees. */
void serve_http_stop(struct serve_http *h);

#endif
