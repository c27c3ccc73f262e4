/* What serve_http.c (the daemon, routes, connections), serve_generate.c
 * (a generation request's exchange with the engine) and serve_stream.c
 * (its server-sent events) share. */
#ifndef MEMLLM_COORDINATOR_SERVE_HTTP_INTERNAL_H
#define MEMLLM_COORDINATOR_SERVE_HTTP_INTERNAL_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdatomic.h>

#include "serve_http.h"
#include "serve_response.h"

/* How often a waiting connection looks whether its client is still there. */
#define POLL_MS 100

struct serve_http {
    struct serve_http_config c;
    struct MHD_Daemon *d;
    int port;
    atomic_long next_id;
    pthread_mutex_t mu;
    pthread_cond_t idle;
    int in_flight;              /* submitted jobs whose response is not yet over */
    char *tls_cert, *tls_key;   /* the PEM files' text, while the daemon runs */
    struct health_probe *probe; /* GET /health's probe in flight (under mu) */
};

/* One connection's request. */
struct conn {
    char *body;
    size_t len, cap;
    int too_large;
    int counted;  /* in h->in_flight */
    int answered; /* in the metrics' requests by route and status */
    enum serve_metric_route route;
};

/* Whether the client of socket fd has hung up. */
int serve_client_gone(int fd);
int serve_connection_fd(struct MHD_Connection *c);

/* Queues `body` (taken) as the JSON response; retry_after: the header's
 * value, or NULL. */
enum MHD_Result serve_send_json(struct MHD_Connection *c, unsigned status, json_t *body,
                                const char *retry_after);
/* {"error": ...} with e's status (429 with Retry-After). */
enum MHD_Result serve_send_error(struct MHD_Connection *c, const struct serve_error *e);
enum MHD_Result serve_fail(struct MHD_Connection *c, int status, const char *type,
                           const char *message);

/* A fresh id, the time and the model name of the response to j. */
void serve_reply_init(struct serve_http *h, struct serve_reply *m, const struct serve_job *j);

/* POST /v1/completions or /v1/chat/completions with the body in cn. */
enum MHD_Result serve_generate(struct serve_http *h, struct MHD_Connection *c, struct conn *cn,
                               enum serve_route route);
/* Answers a submitted job as server-sent events; takes the caller's hold
 * on j. */
enum MHD_Result serve_stream(struct serve_http *h, struct MHD_Connection *c, struct serve_job *j);

#endif
