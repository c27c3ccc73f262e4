/* An OpenAI-style request body (POST /v1/completions or
 * /v1/chat/completions) checked and turned into a request struct. No HTTP
 * here: the HTTP layer passes the body and sends the error this returns.
 *
 * Everything a client can get wrong is refused with the HTTP status, the
 * OpenAI error type and a message naming the field: malformed JSON
 * (including invalid UTF-8, NUL characters, numbers too large for JSON's
 * integers), wrong types, values out of range, a missing prompt or
 * messages, n other than 1, and the OpenAI parameters memllm cannot honour
 * (penalties, logit_bias, echo, suffix, tools) when they ask for anything
 * but their default. Unknown fields are ignored, as OpenAI's own clients
 * send some (user, metadata). */
#ifndef MEMLLM_COORDINATOR_SERVE_REQUEST_H
#define MEMLLM_COORDINATOR_SERVE_REQUEST_H

#include <stddef.h>

#include "sampling.h"

#define SERVE_MAX_STOPS 4
#define SERVE_MAX_MESSAGES 256

enum serve_route {
    SERVE_COMPLETIONS,
    SERVE_CHAT,
};

struct serve_message {
    char *role; /* "system", "user" or "assistant" */
    char *content;
};

struct serve_request {
    enum serve_route route;
    char *model;                                       /* NULL: not given (the base model) */
    char *prompt;                                      /* completions */
    struct serve_message messages[SERVE_MAX_MESSAGES]; /* chat */
    int n_messages;
    int max_tokens; /* 0: not given (the server's default) */
    struct sampler_params sampling;
    char *stop[SERVE_MAX_STOPS];
    int n_stop;
    int logprobs; /* each generated token's log-probability */
    int stream;
    int include_usage; /* stream_options.include_usage */
    int memory;        /* MemLLM: run the read loop */
};

/* What a refused request answers. */
struct serve_error {
    int status;       /* HTTP status */
    const char *type; /* OpenAI error type */
    char message[512];
};

/* The request limits the body is checked against. */
struct serve_request_limits {
    int max_tokens; /* the largest max_tokens a request may ask */
};

/* Parses body[0..len) into *r. Returns 0, or -1 with *e filled and *r
 * empty (nothing to free). */
int serve_request_parse(const char *body, size_t len, enum serve_route route,
                        const struct serve_request_limits *lim, struct serve_request *r,
                        struct serve_error *e);
void serve_request_free(struct serve_request *r);

/* Fills *e with status, type and a printf-style message. */
void serve_error_set(struct serve_error *e, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
