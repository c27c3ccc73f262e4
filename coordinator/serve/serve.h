/* memllm serve's life on the coordinator (or the one process): the HTTP
 * threads take requests, this thread runs the engine's continuous batch
 * over them, and SIGTERM (or SIGINT) drains: no new connections, every
 * request already taken finishes and is answered, then it returns 0.
 * DESIGN.md §8. */
#ifndef MEMLLM_COORDINATOR_SERVE_H
#define MEMLLM_COORDINATOR_SERVE_H

#include <stddef.h>

#include "engine.h"
#include "memory_client.h"
#include "serve_http.h"

struct serve_options {
    const char *host;
    int port; /* 0: a free one */
    struct serve_key *keys;
    int n_keys;
    const char *memory_dir; /* the memory's directory (edit undo records) */
    const char *model_path;
    const char *model_name; /* the base model in the API */
    size_t max_body;
    int max_tokens;                 /* the most a request may ask for */
    int default_max_tokens;         /* when it does not say */
    int max_queue;                  /* requests waiting for a slot */
    int drain_seconds;              /* how long SIGTERM waits for answers to be sent */
    int health_timeout;             /* seconds GET /health waits for the probes */
    const char *tls_cert, *tls_key; /* PEM files for HTTPS; NULL: HTTP */
    struct mm_query_options q;
};

/* Prints "memllm serve: listening on http://HOST:PORT" on stdout once it
 * listens. m: the memory (NULL: none); the caller closes it after this
 * returns (on the same thread: under mpirun that is what MPI allows). */
int serve_run(struct engine *e, struct mm_memory *m, const struct serve_options *o,
              struct mm_err *err);

#endif
