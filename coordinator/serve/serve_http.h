/* The HTTP side of memllm serve (libmicrohttpd, a thread per connection):
 * routes, bearer-token auth, body limits, and for generation requests the
 * whole exchange with the engine thread through the queue: parse, render
 * the chat template, tokenize, check the lengths, submit (429 with
 * Retry-After when full, 503 while draining), then wait for the result or
 * stream it as server-sent events. A client that disconnects has its job
 * cancelled, which frees its sequence at the next token.
 *
 *   GET  /health                  {"status": "ok"|"unavailable"|"draining",
 *                                 "running", "queued", "stages", "shards"}: ok
 *                                 (200) only when every stage and memory shard
 *                                 answered its probe now (serve_health.h)
 *   GET  /metrics                 Prometheus text (serve_metrics.h)
 *   GET  /v1/models               the base model and each adapter
 *   POST /v1/completions          OpenAI's completions
 *   POST /v1/chat/completions     OpenAI's chat completions
 *   /v1/memory/...                the memory API (serve_memory.h)
 *
 * With keys, every /v1/ route and /metrics need "Authorization: Bearer
 * KEY" (401 otherwise), and the memory's write routes a read-write key
 * (403 otherwise); /health never does. */
#ifndef MEMLLM_COORDINATOR_SERVE_HTTP_H
#define MEMLLM_COORDINATOR_SERVE_HTTP_H

#include <pthread.h>
#include <stddef.h>

#include "engine.h"
#include "memory_client.h"
#include "serve_annotate.h"
#include "serve_chat_template.h"
#include "serve_metrics.h"
#include "serve_queue.h"

/* An API key and what it may do. */
struct serve_key {
    char *key;
    int writes; /* 1: read-write (memory writes, edits); 0: read-only */
};

struct serve_http_config {
    struct engine *e; /* its tokenizer, context and adapter names (read-only) */
    struct serve_queue *q;
    const struct chat_template *chat;
    int has_memory;
    /* Only the engine thread touches these (through memops). */
    struct mm_memory *memory; /* NULL: none */
    const char *memory_dir;   /* where edit batches keep their undo records */
    const struct mm_query_options *query;
    struct serve_metrics *metrics;
    struct serve_annotator *annotator; /* NULL: no memory */
    const char *model_name;            /* the base model's name in the API */
    struct serve_key *keys;            /* none: no auth */
    int n_keys;
    size_t max_body;        /* bytes */
    int max_tokens;         /* the most a request may ask for */
    int default_max_tokens; /* when it does not say */
    int max_connections;
    int health_timeout_ms; /* GET /health's wait for its probes */
    /* HTTPS: PEM files of the certificate (chain) and its private key; both
     * NULL: plain HTTP. */
    const char *tls_cert, *tls_key;
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
