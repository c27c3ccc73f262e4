#include "serve_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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
    int in_flight; /* submitted jobs whose response is not yet over */
};

/* One connection's request. */
struct conn {
    char *body;
    size_t len, cap;
    int too_large;
    int counted; /* in h->in_flight */
};

/* A streamed response. */
struct stream {
    struct serve_http *h;
    struct serve_job *job;
    struct serve_reply reply;
    int fd;
    size_t sent; /* bytes of the job's text sent */
    int role_sent, over;
    char *pending;
    size_t pending_len, pending_off;
};

static int client_gone(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static int connection_fd(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, json_t *body,
                                 const char *retry_after)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) return MHD_NO;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (retry_after) MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, retry_after);
    if (status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result send_error(struct MHD_Connection *c, const struct serve_error *e)
{
    return send_json(c, (unsigned)e->status, serve_response_error(e),
                     e->status == MHD_HTTP_TOO_MANY_REQUESTS ? "1" : NULL);
}

static enum MHD_Result fail(struct MHD_Connection *c, int status, const char *type,
                            const char *message)
{
    struct serve_error e;
    serve_error_set(&e, status, type, "%s", message);
    return send_error(c, &e);
}

/* --- auth, health, models ----------------------------------------------------------------- */

/* Compares in time that depends on the lengths only. */
static int same_key(const char *a, const char *b)
{
    size_t n = strlen(a);
    if (n != strlen(b)) return 0;
    unsigned char diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

static int authorized(const struct serve_http *h, struct MHD_Connection *c)
{
    if (h->c.n_keys == 0) return 1;
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!auth || strncmp(auth, "Bearer ", 7)) return 0;
    int ok = 0;
    for (int i = 0; i < h->c.n_keys; i++)
        ok |= same_key(auth + 7, h->c.keys[i]);
    return ok;
}

static enum MHD_Result health(struct serve_http *h, struct MHD_Connection *c)
{
    int running, queued;
    serve_queue_counts(h->c.q, &running, &queued);
    pthread_mutex_lock(&h->c.q->mu);
    int closed = h->c.q->closed;
    pthread_mutex_unlock(&h->c.q->mu);
    return send_json(c, closed ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_OK,
                     json_pack("{s:s, s:i, s:i}", "status", closed ? "draining" : "ok", "running",
                               running, "queued", queued),
                     NULL);
}

static json_t *model_entry(const char *id, const char *parent)
{
    json_t *m = json_pack("{s:s, s:s, s:i, s:s}", "id", id, "object", "model", "created", 0,
                          "owned_by", "memllm");
    if (parent) json_object_set_new(m, "parent", json_string(parent));
    return m;
}

static enum MHD_Result models(struct serve_http *h, struct MHD_Connection *c)
{
    json_t *data = json_array();
    json_array_append_new(data, model_entry(h->c.model_name, NULL));
    for (int i = 0; i < h->c.e->n_adapters && !h->c.e->merged; i++)
        json_array_append_new(data, model_entry(h->c.e->adapter_names[i], h->c.model_name));
    return send_json(c, MHD_HTTP_OK, json_pack("{s:s, s:o}", "object", "list", "data", data), NULL);
}

/* --- generation --------------------------------------------------------------------------- */

/* The engine adapter `model` names: -1 for the base model (or none given),
 * -2 with *e set for an unknown name. */
static int pick_adapter(const struct serve_http *h, const char *model, struct serve_error *e)
{
    if (!model || !strcmp(model, h->c.model_name)) return -1;
    for (int i = 0; i < h->c.e->n_adapters && !h->c.e->merged; i++)
        if (!strcmp(model, h->c.e->adapter_names[i])) return i;
    serve_error_set(e, 404, "not_found_error",
                    "model '%s' is not served (GET /v1/models lists the models)", model);
    return -2;
}

/* Turns the parsed request in j->r into the scheduler request. */
static int prepare(struct serve_http *h, struct serve_job *j, struct serve_error *e)
{
    struct serve_request *r = &j->r;
    struct engine *en = h->c.e;
    int adapter = pick_adapter(h, r->model, e);
    if (adapter == -2) return -1;
    if (r->memory && !h->c.has_memory) {
        serve_error_set(e, 400, "invalid_request_error",
                        "'memory' needs a memory: start memllm serve with --memory DIR");
        return -1;
    }
    char *chat = NULL;
    if (r->route == SERVE_CHAT) {
        struct mm_err err;
        if (!(chat = chat_template_render(h->c.chat, r->messages, r->n_messages, &err))) {
            serve_error_set(e, 400, "invalid_request_error", "%s", err.msg);
            return -1;
        }
    }
    /* A completion's prompt is encoded as memllm generate encodes it; a
     * rendered chat holds its own BOS where the template writes one. */
    const char *text = chat ? chat : r->prompt;
    size_t n = 0;
    struct mm_err err;
    int rc = tok_encode(en->tok, text, strlen(text), chat ? 0 : tok_add_bos_default(en->tok), 1,
                        &j->prompt_ids, &n, &err);
    free(chat);
    if (rc) {
        serve_error_set(e, 400, "invalid_request_error", "the prompt: %s", err.msg);
        return -1;
    }
    if (n == 0 || (long)n >= en->context) {
        serve_error_set(e, 400, "invalid_request_error",
                        "the prompt has %zu tokens; the context holds %d", n, en->context);
        return -1;
    }
    int room = en->context - (int)n;
    int max_tokens = r->max_tokens;
    if (max_tokens == 0)
        max_tokens = h->c.default_max_tokens < room ? h->c.default_max_tokens : room;
    if (max_tokens > room) {
        serve_error_set(e, 400, "invalid_request_error",
                        "the prompt has %zu tokens and max_tokens is %d: the context holds %d", n,
                        max_tokens, en->context);
        return -1;
    }
    j->req.prompt = j->prompt_ids;
    j->req.n_prompt = (int)n;
    j->req.max_tokens = max_tokens;
    j->req.sampling = r->sampling;
    j->req.adapter = adapter;
    j->req.stop = (const char *const *)r->stop;
    j->req.n_stop = r->n_stop;
    if (r->route == SERVE_CHAT) {
        int end = tok_find(en->tok, h->c.chat->end_of_turn);
        if (end >= 0 && end != tok_eos(en->tok)) {
            j->stop_tokens[0] = end;
            j->req.stop_tokens = j->stop_tokens;
            j->req.n_stop_tokens = 1;
        }
    }
    return 0;
}

static void reply_init(struct serve_http *h, struct serve_reply *m, const struct serve_job *j)
{
    m->route = j->r.route;
    snprintf(m->id, sizeof(m->id), "%s-%ld", m->route == SERVE_CHAT ? "chatcmpl" : "cmpl",
             atomic_fetch_add(&h->next_id, 1));
    m->created = (long long)time(NULL);
    m->model = j->r.model ? j->r.model : h->c.model_name;
}

/* Appends one server-sent event holding `body` to the stream's pending
 * bytes. */
static int push_event(struct stream *s, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) return -1;
    size_t n = strlen(text);
    char *p = realloc(s->pending, s->pending_len + n + 8);
    if (!p) {
        free(text);
        return -1;
    }
    s->pending = p;
    memcpy(s->pending + s->pending_len, "data: ", 6);
    memcpy(s->pending + s->pending_len + 6, text, n);
    memcpy(s->pending + s->pending_len + 6 + n, "\n\n", 2);
    s->pending_len += n + 8;
    free(text);
    return 0;
}

static int push_raw(struct stream *s, const char *text)
{
    size_t n = strlen(text);
    char *p = realloc(s->pending, s->pending_len + n);
    if (!p) return -1;
    s->pending = p;
    memcpy(s->pending + s->pending_len, text, n);
    s->pending_len += n;
    return 0;
}

/* The stream's next events: new text, or the end. -1: the client is gone
 * or memory ran out. */
static int next_events(struct stream *s)
{
    struct serve_queue *q = s->h->c.q;
    struct serve_job *j = s->job;
    if (!s->role_sent) {
        s->role_sent = 1;
        if (s->reply.route == SERVE_CHAT)
            return push_event(s, serve_response_chunk(&s->reply, "", 0, 1, NULL));
    }
    while (!serve_job_wait(q, j, s->sent, POLL_MS))
        if (client_gone(s->fd)) return -1;
    pthread_mutex_lock(&q->mu);
    size_t from = s->sent, to = j->out_len;
    int done = j->done;
    char *delta = to > from ? strndup(j->out + from, to - from) : NULL;
    pthread_mutex_unlock(&q->mu);
    if (to > from) {
        if (!delta) return -1;
        s->sent = to;
        int rc = push_event(s, serve_response_chunk(&s->reply, delta, to - from, 0, NULL));
        free(delta);
        return rc;
    }
    if (!done) return 0;
    /* The job is over: nothing it holds changes any more. */
    s->over = 1;
    if (j->error || !j->finish) {
        struct serve_error e;
        serve_error_set(&e, 500, "server_error", "%s", j->error ? j->error : "out of memory");
        if (push_event(s, serve_response_error(&e))) return -1;
    } else {
        if (push_event(s, serve_response_chunk(&s->reply, "", 0, 0, j))) return -1;
        if (j->r.include_usage && push_event(s, serve_response_usage_chunk(&s->reply, j)))
            return -1;
    }
    return push_raw(s, "data: [DONE]\n\n");
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct stream *s = cls;
    while (s->pending_off == s->pending_len) {
        s->pending_len = s->pending_off = 0;
        if (s->over) return MHD_CONTENT_READER_END_OF_STREAM;
        if (next_events(s)) {
            serve_queue_cancel(s->h->c.q, s->job);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
    size_t n = s->pending_len - s->pending_off;
    if (n > max) n = max;
    memcpy(buf, s->pending + s->pending_off, n);
    s->pending_off += n;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    struct stream *s = cls;
    /* Ended early (the client went away): stop generating. */
    if (!s->over) serve_queue_cancel(s->h->c.q, s->job);
    serve_job_release(s->h->c.q, s->job);
    free(s->pending);
    free(s);
}

static enum MHD_Result stream(struct serve_http *h, struct MHD_Connection *c, struct serve_job *j)
{
    struct stream *s = calloc(1, sizeof(*s));
    if (!s) {
        serve_queue_cancel(h->c.q, j);
        serve_job_release(h->c.q, j);
        return fail(c, 500, "server_error", "out of memory");
    }
    s->h = h;
    s->job = j;
    s->fd = connection_fd(c);
    reply_init(h, &s->reply, j);
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, s, stream_free);
    if (!r) {
        stream_free(s);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result answer(struct serve_http *h, struct MHD_Connection *c, struct serve_job *j)
{
    int fd = connection_fd(c);
    while (!serve_job_wait(h->c.q, j, (size_t)-1, POLL_MS))
        if (client_gone(fd)) {
            serve_queue_cancel(h->c.q, j);
            serve_job_release(h->c.q, j);
            return MHD_NO;
        }
    enum MHD_Result rc;
    if (j->error || !j->finish) {
        rc = fail(c, 500, "server_error", j->error ? j->error : "out of memory");
    } else {
        struct serve_reply m;
        reply_init(h, &m, j);
        rc = send_json(c, MHD_HTTP_OK, serve_response_body(&m, j), NULL);
    }
    serve_job_release(h->c.q, j);
    return rc;
}

static enum MHD_Result generate(struct serve_http *h, struct MHD_Connection *c, struct conn *cn,
                                enum serve_route route)
{
    struct serve_job *j = serve_job_new();
    if (!j) return fail(c, 500, "server_error", "out of memory");
    struct serve_error e;
    struct serve_request_limits lim = {.max_tokens = h->c.max_tokens};
    if (serve_request_parse(cn->body ? cn->body : "", cn->len, route, &lim, &j->r, &e) ||
        prepare(h, j, &e)) {
        serve_job_release(h->c.q, j);
        return send_error(c, &e);
    }
    switch (serve_queue_submit(h->c.q, j)) {
    case SERVE_SUBMIT_FULL:
        serve_job_release(h->c.q, j);
        serve_error_set(&e, 429, "rate_limit_error",
                        "the server is at its limit of running and queued requests; retry");
        return send_error(c, &e);
    case SERVE_SUBMIT_CLOSED:
        serve_job_release(h->c.q, j);
        return fail(c, 503, "server_error", "the server is shutting down");
    case SERVE_SUBMIT_OK:
        break;
    }
    pthread_mutex_lock(&h->mu);
    h->in_flight++;
    cn->counted = 1;
    pthread_mutex_unlock(&h->mu);
    return j->r.stream ? stream(h, c, j) : answer(h, c, j);
}

/* --- the connection's life ---------------------------------------------------------------- */

static enum MHD_Result route(struct serve_http *h, struct MHD_Connection *c, struct conn *cn,
                             const char *url, const char *method)
{
    int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    if (!strcmp(url, "/health")) {
        if (!get) return fail(c, 405, "invalid_request_error", "/health takes GET");
        return health(h, c);
    }
    int is_models = !strcmp(url, "/v1/models");
    enum serve_route r = SERVE_COMPLETIONS;
    if (!strcmp(url, "/v1/chat/completions"))
        r = SERVE_CHAT;
    else if (!is_models && strcmp(url, "/v1/completions"))
        return fail(c, 404, "not_found_error", "no such route");
    if (!authorized(h, c))
        return fail(c, 401, "authentication_error",
                    "missing or unknown API key (Authorization: Bearer KEY)");
    if (is_models) {
        if (!get) return fail(c, 405, "invalid_request_error", "/v1/models takes GET");
        return models(h, c);
    }
    if (!post) return fail(c, 405, "invalid_request_error", "this route takes POST");
    return generate(h, c, cn, r);
}

static enum MHD_Result too_large(struct serve_http *h, struct MHD_Connection *c)
{
    struct serve_error e;
    serve_error_set(&e, 413, "invalid_request_error", "the body is larger than %zu bytes",
                    h->c.max_body);
    return send_error(c, &e);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    (void)version;
    struct serve_http *h = cls;
    struct conn *cn = *con_cls;
    if (!cn) {
        if (!(cn = calloc(1, sizeof(*cn)))) return MHD_NO;
        *con_cls = cn;
        const char *cl =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > h->c.max_body) {
            cn->too_large = 1;
            return too_large(h, c);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (cn->too_large || cn->len + *upload_size > h->c.max_body) {
            /* Answered at once; the connection closes without reading the
             * rest. */
            *upload_size = 0;
            if (cn->too_large) return MHD_YES;
            cn->too_large = 1;
            return too_large(h, c);
        }
        if (cn->len + *upload_size + 1 > cn->cap) {
            size_t cap = cn->cap ? cn->cap : 4096;
            while (cap < cn->len + *upload_size + 1)
                cap *= 2;
            char *b = realloc(cn->body, cap);
            if (!b) return MHD_NO;
            cn->body = b;
            cn->cap = cap;
        }
        memcpy(cn->body + cn->len, upload, *upload_size);
        cn->len += *upload_size;
        *upload_size = 0;
        return MHD_YES;
    }
    if (cn->too_large) return MHD_YES;
    return route(h, c, cn, url, method);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode why)
{
    (void)c;
    (void)why;
    struct serve_http *h = cls;
    struct conn *cn = *con_cls;
    if (!cn) return;
    if (cn->counted) {
        pthread_mutex_lock(&h->mu);
        h->in_flight--;
        pthread_cond_broadcast(&h->idle);
        pthread_mutex_unlock(&h->mu);
    }
    free(cn->body);
    free(cn);
    *con_cls = NULL;
}

struct serve_http *serve_http_start(const struct serve_http_config *c, const char *host, int port,
                                    struct mm_err *err)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        mm_err_set(err, "--host %s: not an IPv4 address", host);
        return NULL;
    }
    struct serve_http *h = calloc(1, sizeof(*h));
    if (!h) {
        mm_err_set(err, "serve: out of memory");
        return NULL;
    }
    h->c = *c;
    atomic_init(&h->next_id, 1);
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->idle, NULL);
    /* A thread per connection: a handler may block while its request waits
     * for the engine. ITC lets serve_http_quiesce stop the listening. */
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    h->d =
        MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, handle, h, MHD_OPTION_SOCK_ADDR,
                         (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT,
                         (unsigned)c->max_connections, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
                         MHD_OPTION_NOTIFY_COMPLETED, completed, h, MHD_OPTION_END);
    if (!h->d) {
        mm_err_set(err, "cannot listen on %s:%d (in use, or not an address of this machine?)", host,
                   port);
        serve_http_stop(h);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : port;
    return h;
}

int serve_http_port(const struct serve_http *h)
{
    return h->port;
}

void serve_http_quiesce(struct serve_http *h)
{
    MHD_socket fd = MHD_quiesce_daemon(h->d);
    if (fd != MHD_INVALID_SOCKET) close(fd);
}

int serve_http_wait_idle(struct serve_http *h, int seconds)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += seconds;
    pthread_mutex_lock(&h->mu);
    while (h->in_flight > 0)
        if (pthread_cond_timedwait(&h->idle, &h->mu, &until) == ETIMEDOUT) break;
    int left = h->in_flight;
    pthread_mutex_unlock(&h->mu);
    return left;
}

void serve_http_stop(struct serve_http *h)
{
    if (!h) return;
    if (h->d) MHD_stop_daemon(h->d);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->idle);
    free(h);
}
