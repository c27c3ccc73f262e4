/* A job's answer as server-sent events: the chat's role first, then each
 * piece of text as the engine publishes it, the finish reason (and usage
 * when asked), and "data: [DONE]". A client that hangs up has its job
 * cancelled. */
#include <stdlib.h>
#include <string.h>

#include "serve_http_internal.h"

/* One streamed response. */
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
        if (serve_client_gone(s->fd)) return -1;
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

enum MHD_Result serve_stream(struct serve_http *h, struct MHD_Connection *c, struct serve_job *j)
{
    struct stream *s = calloc(1, sizeof(*s));
    if (!s) {
        serve_queue_cancel(h->c.q, j);
        serve_job_release(h->c.q, j);
        return serve_fail(c, 500, "server_error", "out of memory");
    }
    s->h = h;
    s->job = j;
    s->fd = serve_connection_fd(c);
    serve_reply_init(h, &s->reply, j);
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
