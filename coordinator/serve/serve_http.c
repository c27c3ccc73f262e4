#include "serve_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "serve_health.h"
#include "serve_http_internal.h"
#include "serve_memory.h"
#include "serve_ui.h"

int serve_client_gone(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

int serve_connection_fd(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

enum MHD_Result serve_send_json(struct MHD_Connection *c, unsigned status, json_t *body,
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

enum MHD_Result serve_send_error(struct MHD_Connection *c, const struct serve_error *e)
{
    return serve_send_json(c, (unsigned)e->status, serve_response_error(e),
                           e->status == MHD_HTTP_TOO_MANY_REQUESTS ? "1" : NULL);
}

enum MHD_Result serve_fail(struct MHD_Connection *c, int status, const char *type,
                           const char *message)
{
    struct serve_error e;
    serve_error_set(&e, status, type, "%s", message);
    return serve_send_error(c, &e);
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

/* What the request's key may do: -1 nothing (no key, or not one of
 * ours), 0 read, 1 read and write. Without keys, everything (loopback
 * only). Every key is compared, so the time says nothing of which. */
static int key_role(const struct serve_http *h, struct MHD_Connection *c)
{
    if (h->c.n_keys == 0) return 1;
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!auth || strncmp(auth, "Bearer ", 7)) return -1;
    int role = -1;
    for (int i = 0; i < h->c.n_keys; i++)
        if (same_key(auth + 7, h->c.keys[i].key)) role = h->c.keys[i].writes;
    return role;
}

static enum MHD_Result metrics(struct serve_http *h, struct MHD_Connection *c)
{
    int running, queued;
    serve_queue_counts(h->c.q, &running, &queued);
    char *text = serve_metrics_text(h->c.metrics, running, queued);
    if (!text) return serve_fail(c, 500, "server_error", "out of memory");
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; version=0.0.4");
    enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
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
    return serve_send_json(c, MHD_HTTP_OK, json_pack("{s:s, s:o}", "object", "list", "data", data),
                           NULL);
}

/* The page: static, so it needs no key (what it shows comes from the API,
 * with the key typed into it). */
static enum MHD_Result ui(struct MHD_Connection *c)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        serve_ui_html_len, (void *)serve_ui_html, MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/html; charset=utf-8");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
}

/* --- the connection's life ---------------------------------------------------------------- */

static enum MHD_Result route(struct serve_http *h, struct MHD_Connection *c, struct conn *cn,
                             const char *url, const char *method)
{
    int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    if (!strcmp(url, "/health")) {
        if (!get) return serve_fail(c, 405, "invalid_request_error", "/health takes GET");
        return serve_health(h, c);
    }
    if (!strcmp(url, "/ui")) {
        if (!get) return serve_fail(c, 405, "invalid_request_error", "/ui takes GET");
        return ui(c);
    }
    int is_models = !strcmp(url, "/v1/models"), is_metrics = !strcmp(url, "/metrics");
    int memory_writes = serve_memory_route_writes(url, method);
    enum serve_route r = SERVE_COMPLETIONS;
    if (!strcmp(url, "/v1/chat/completions"))
        r = SERVE_CHAT;
    else if (!is_models && !is_metrics && memory_writes < 0 && strcmp(url, "/v1/completions"))
        return serve_fail(c, 404, "not_found_error", "no such route");
    int role = key_role(h, c);
    if (role < 0)
        return serve_fail(c, 401, "authentication_error",
                          "missing or unknown API key (Authorization: Bearer KEY)");
    if (memory_writes > 0 && role == 0)
        return serve_fail(c, 403, "permission_error",
                          "this API key is read-only; changing the memory needs a read-write key");
    if (is_metrics) {
        if (!get) return serve_fail(c, 405, "invalid_request_error", "/metrics takes GET");
        return metrics(h, c);
    }
    if (memory_writes >= 0) return serve_memory(h, c, cn, url, method);
    if (is_models) {
        if (!get) return serve_fail(c, 405, "invalid_request_error", "/v1/models takes GET");
        return models(h, c);
    }
    if (!post) return serve_fail(c, 405, "invalid_request_error", "this route takes POST");
    return serve_generate(h, c, cn, r);
}

static enum MHD_Result too_large(struct serve_http *h, struct MHD_Connection *c)
{
    struct serve_error e;
    serve_error_set(&e, 413, "invalid_request_error", "the body is larger than %zu bytes",
                    h->c.max_body);
    return serve_send_error(c, &e);
}

/* Counts the request's answer by route and status once it is queued:
 * every answer is queued inside handle(), before its first byte goes out,
 * so a client that reads /metrics after its answer finds it counted. (The
 * completion callback comes after the last byte: too late for that.) A
 * client that went away before its answer was queued has no status: not
 * counted. */
static enum MHD_Result count_answer(struct serve_http *h, struct MHD_Connection *c, struct conn *cn,
                                    enum MHD_Result rc)
{
    if (cn->answered) return rc;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_HTTP_STATUS);
    if (ci && ci->http_status) {
        serve_metrics_request(h->c.metrics, cn->route, ci->http_status);
        cn->answered = 1;
    }
    return rc;
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
        cn->route = serve_metrics_route(url);
        const char *cl =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > h->c.max_body) {
            cn->too_large = 1;
            return count_answer(h, c, cn, too_large(h, c));
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
            return count_answer(h, c, cn, too_large(h, c));
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
    return count_answer(h, c, cn, route(h, c, cn, url, method));
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode why)
{
    (void)why;
    (void)c;
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

/* The whole of a PEM file, NUL-terminated; NULL with err set. */
static char *read_pem(const char *option, const char *path, struct mm_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        mm_err_set(err, "%s %s: %s", option, path, strerror(errno));
        return NULL;
    }
    char *text = NULL;
    size_t len = 0, cap = 0, n;
    char buf[4096];
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
        if (len + n + 1 > cap) {
            cap = 2 * (len + n + 1);
            char *grown = cap <= (1 << 20) ? realloc(text, cap) : NULL;
            if (!grown) {
                mm_err_set(err, "%s %s: larger than 1 MB, not a PEM file", option, path);
                free(text);
                fclose(f);
                return NULL;
            }
            text = grown;
        }
        memcpy(text + len, buf, n);
        len += n;
    }
    int failed = ferror(f);
    fclose(f);
    if (text) text[len] = '\0';
    if (failed || !text || !strstr(text, "-----BEGIN ")) {
        mm_err_set(err, "%s %s: %s", option, path,
                   failed ? "read error" : "not a PEM file (no -----BEGIN line)");
        free(text);
        return NULL;
    }
    return text;
}

static int load_tls(struct serve_http *h, const struct serve_http_config *c, struct mm_err *err)
{
    if (!c->tls_cert || !c->tls_key) {
        mm_err_set(err, "HTTPS needs both --tls-cert and --tls-key");
        return -1;
    }
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        mm_err_set(err, "--tls-cert: this libmicrohttpd was built without TLS");
        return -1;
    }
    if (!(h->tls_cert = read_pem("--tls-cert", c->tls_cert, err)) ||
        !(h->tls_key = read_pem("--tls-key", c->tls_key, err)))
        return -1;
    return 0;
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
    /* HTTPS: the PEM texts are handed to the daemon as options (they end
     * the option list when absent). */
    struct MHD_OptionItem tls[] = {
        {MHD_OPTION_END, 0, NULL}, {MHD_OPTION_END, 0, NULL}, {MHD_OPTION_END, 0, NULL}};
    if (c->tls_cert || c->tls_key) {
        if (load_tls(h, c, err)) {
            serve_http_stop(h);
            return NULL;
        }
        flags |= MHD_USE_TLS;
        tls[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, h->tls_cert};
        tls[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls_key};
    }
    h->d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, handle, h, MHD_OPTION_SOCK_ADDR,
                            (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)c->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)120, MHD_OPTION_NOTIFY_COMPLETED, completed, h,
                            MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
    if (!h->d) {
        mm_err_set(err, "cannot listen on %s:%d (in use, or not an address of this machine?%s)",
                   host, port,
                   h->tls_cert ? " or --tls-cert/--tls-key not a certificate and its key" : "");
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
    free(h->tls_cert);
    free(h->tls_key);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->idle);
    free(h);
}
