#include "serve.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "serve_engine.h"
#include "serve_http.h"

struct signals {
    pthread_t thread;
    struct serve_http *http;
    struct serve_queue *q;
};

/* Signals reach whichever thread does not block them (the compute
 * threads started with the engine do not), so the handler only writes the
 * signal's number into a pipe that the signal thread reads; 0 tells the
 * thread to end. */
static int signal_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    char c = (char)sig;
    ssize_t n = write(signal_pipe[1], &c, 1);
    (void)n;
}

static void *signal_thread(void *arg)
{
    struct signals *s = arg;
    int draining = 0;
    for (;;) {
        char c;
        ssize_t n = read(signal_pipe[0], &c, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0 || c == 0) return NULL;
        if (draining) continue;
        draining = 1;
        fprintf(stderr, "memllm serve: %s: draining (no new requests; those taken finish)\n",
                strsignal(c));
        serve_http_quiesce(s->http);
        serve_queue_close(s->q);
    }
}

int serve_run(struct engine *e, struct mm_memory *m, const struct serve_options *o,
              struct mm_err *err)
{
    struct chat_template chat;
    if (chat_template_load(&chat, o->model_path, e->tok, err))
        fprintf(stderr, "memllm serve: %s; /v1/chat/completions is refused\n", err->msg);
    struct serve_queue q;
    if (serve_queue_init(&q, e->n_slots, o->max_queue, err)) {
        chat_template_free(&chat);
        return -1;
    }
    struct serve_metrics metrics;
    if (serve_metrics_init(&metrics, e->n_slots, e->context)) {
        mm_err_set(err, "serve: out of memory");
        serve_queue_destroy(&q);
        chat_template_free(&chat);
        return -1;
    }
    metrics.memory = m;
    struct serve_annotator annotator;
    serve_annotator_init(&annotator, e, m, o->memory_dir, e->n_slots);
    struct serve_engine se = {.e = e,
                              .q = &q,
                              .metrics = &metrics,
                              .annotator = m ? &annotator : NULL,
                              .max_batch_tokens = 512};
    if (m && !(se.reader = memllm_reader_new(e, m, &o->q, e->n_slots, err))) {
        serve_annotator_destroy(&annotator);
        serve_metrics_destroy(&metrics);
        serve_queue_destroy(&q);
        chat_template_free(&chat);
        return -1;
    }
    /* A client that hangs up must not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    if (pipe(signal_pipe)) {
        mm_err_set(err, "serve: cannot make a pipe for signals");
        memllm_reader_free(se.reader);
        serve_annotator_destroy(&annotator);
        serve_metrics_destroy(&metrics);
        serve_queue_destroy(&q);
        chat_template_free(&chat);
        return -1;
    }
    struct sigaction sa = {.sa_handler = on_signal}, old_term, old_int;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGINT, &sa, &old_int);

    struct serve_http_config hc = {
        .e = e,
        .q = &q,
        .chat = &chat,
        .has_memory = m != NULL,
        .memory = m,
        .memory_dir = o->memory_dir,
        .query = &o->q,
        .metrics = &metrics,
        .annotator = se.annotator,
        .model_name = o->model_name,
        .keys = o->keys,
        .n_keys = o->n_keys,
        .max_body = o->max_body,
        .max_tokens = o->max_tokens,
        .default_max_tokens = o->default_max_tokens,
        /* Room for every running and queued request and many more clients
         * at once, each of which gets its answer (a 429 when the queue is
         * full). Past the limit, libmicrohttpd closes a new connection
         * without an HTTP answer (the client sees a reset), so the limit is
         * set well above the queue; a thread each, and a file descriptor. */
        .max_connections = 2 * (e->n_slots + o->max_queue) + 512,
        .health_timeout_ms = 1000 * o->health_timeout,
        .tls_cert = o->tls_cert,
        .tls_key = o->tls_key,
    };
    int rc = -1;
    struct signals sig = {.q = &q};
    if (!(sig.http = serve_http_start(&hc, o->host, o->port, err))) goto out;
    printf("memllm serve: listening on %s://%s:%d%s\n", o->tls_cert ? "https" : "http", o->host,
           serve_http_port(sig.http), o->n_keys ? "" : " (loopback only: no --api-keys)");
    fflush(stdout);
    if (pthread_create(&sig.thread, NULL, signal_thread, &sig)) {
        mm_err_set(err, "serve: cannot start the signal thread");
        serve_http_stop(sig.http);
        goto out;
    }
    rc = serve_engine_run(&se, err);
    if (rc) {
        /* Clients are told (500); no new ones come. */
        serve_http_quiesce(sig.http);
    }
    int left = serve_http_wait_idle(sig.http, o->drain_seconds);
    if (left)
        fprintf(stderr, "memllm serve: %d responses still unsent after %d s\n", left,
                o->drain_seconds);
    char quit = 0;
    if (write(signal_pipe[1], &quit, 1) != 1) pthread_cancel(sig.thread);
    pthread_join(sig.thread, NULL);
    serve_http_stop(sig.http);
    if (rc == 0) fprintf(stderr, "memllm serve: drained, stopped\n");
out:
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGINT, &old_int, NULL);
    close(signal_pipe[0]);
    close(signal_pipe[1]);
    memllm_reader_free(se.reader);
    serve_annotator_destroy(&annotator);
    serve_metrics_destroy(&metrics);
    serve_queue_destroy(&q);
    chat_template_free(&chat);
    return rc;
}
