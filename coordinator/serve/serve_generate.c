/* A generation request's exchange with the engine thread: parse, render
 * the chat template, tokenize, check the lengths, submit to the queue, then
 * wait for the whole answer or hand over to the stream. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "progress.h"
#include "serve_http_internal.h"

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

void serve_reply_init(struct serve_http *h, struct serve_reply *m, const struct serve_job *j)
{
    m->route = j->r.route;
    snprintf(m->id, sizeof(m->id), "%s-%ld", m->route == SERVE_CHAT ? "chatcmpl" : "cmpl",
             atomic_fetch_add(&h->next_id, 1));
    m->created = (long long)time(NULL);
    m->model = j->r.model ? j->r.model : h->c.model_name;
}

/* Appends one server-sent event holding `body` to the stream's pending
 * bytes. */

static enum MHD_Result answer(struct serve_http *h, struct MHD_Connection *c, struct serve_job *j)
{
    int fd = serve_connection_fd(c);
    while (!serve_job_wait(h->c.q, j, (size_t)-1, POLL_MS))
        if (serve_client_gone(fd)) {
            serve_queue_cancel(h->c.q, j);
            serve_job_release(h->c.q, j);
            return MHD_NO;
        }
    enum MHD_Result rc;
    if (j->error || !j->finish) {
        rc = serve_fail(c, 500, "server_error", j->error ? j->error : "out of memory");
    } else {
        struct serve_reply m;
        serve_reply_init(h, &m, j);
        rc = serve_send_json(c, MHD_HTTP_OK, serve_response_body(&m, j), NULL);
    }
    serve_job_release(h->c.q, j);
    return rc;
}

enum MHD_Result serve_generate(struct serve_http *h, struct MHD_Connection *c, struct conn *cn,
                               enum serve_route route)
{
    struct serve_job *j = serve_job_new();
    if (!j) return serve_fail(c, 500, "server_error", "out of memory");
    struct serve_error e;
    struct serve_request_limits lim = {.max_tokens = h->c.max_tokens};
    if (serve_request_parse(cn->body ? cn->body : "", cn->len, route, &lim, &j->r, &e) ||
        prepare(h, j, &e)) {
        serve_job_release(h->c.q, j);
        return serve_send_error(c, &e);
    }
    j->submitted = progress_now();
    switch (serve_queue_submit(h->c.q, j)) {
    case SERVE_SUBMIT_FULL:
        serve_job_release(h->c.q, j);
        serve_error_set(&e, 429, "rate_limit_error",
                        "the server is at its limit of running and queued requests; retry");
        return serve_send_error(c, &e);
    case SERVE_SUBMIT_CLOSED:
        serve_job_release(h->c.q, j);
        return serve_fail(c, 503, "server_error", "the server is shutting down");
    case SERVE_SUBMIT_OK:
        serve_metrics_tokens(h->c.metrics, j->req.n_prompt, 0);
        break;
    }
    pthread_mutex_lock(&h->mu);
    h->in_flight++;
    cn->counted = 1;
    pthread_mutex_unlock(&h->mu);
    return j->r.stream ? serve_stream(h, c, j) : answer(h, c, j);
}
