#include "serve_health.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pipeline_mpi.h"
#include "serve_http_internal.h"

/* A part's state, as the engine thread notes it. */
enum part { NOT_ASKED, ASKING, ANSWERED, FAILED };

struct health_probe {
    struct serve_memop op;
    struct serve_http *h;
    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cond;
    int done, refs;
    /* The stages (asked together) and each shard. */
    enum part stages;
    struct pipeline_stage_stats *stage_stats; /* [n_stages], under mpirun */
    int stage_figures;                        /* stage_stats were asked */
    int n_stages, n_shards;
    enum part *shard;
    struct mm_memory_stats *shard_stats;
    struct mm_err stages_err, *shard_err;
};

static void probe_release(struct health_probe *p)
{
    pthread_mutex_lock(&p->mu);
    int last = --p->refs == 0;
    pthread_mutex_unlock(&p->mu);
    if (!last) return;
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cond);
    free(p->stage_stats);
    free(p->shard);
    free(p->shard_stats);
    free(p->shard_err);
    free(p);
}

static void note(struct health_probe *p, enum part *at, enum part state)
{
    pthread_mutex_lock(&p->mu);
    *at = state;
    pthread_mutex_unlock(&p->mu);
}

/* The probe, on the engine thread. Every part's answer is noted as it
 * comes, so that a check that stops waiting still tells which answered. */
static int run_probe(void *arg, struct mm_err *err)
{
    (void)err;
    struct health_probe *p = arg;
    struct engine *e = p->h->c.e;
    note(p, &p->stages, ASKING);
    struct mm_err serr = {{0}};
    /* Under the flowing schedule (scheduler.h) the probe may run between a
     * group's logits and its next batch, with other groups' batches still
     * in the stages: a batch has then just come back through every stage,
     * which is their answer. Their figures are asked only with none in
     * flight: the last stage would send them behind results not yet taken. */
    const int figures = e->mpi && engine_in_flight(e) == 0;
    int rc = figures ? pipeline_mpi_stage_stats(e->mpi, p->stage_stats, &serr) : 0;
    pthread_mutex_lock(&p->mu);
    p->stage_figures = figures;
    p->stages = rc ? FAILED : ANSWERED;
    p->stages_err = serr;
    pthread_mutex_unlock(&p->mu);
    for (int j = 0; j < p->n_shards; j++) {
        note(p, &p->shard[j], ASKING);
        struct mm_memory_stats st;
        serr = (struct mm_err){{0}};
        rc = mm_memory_shard_stats(p->h->c.memory, (uint32_t)j, &st, &serr);
        pthread_mutex_lock(&p->mu);
        p->shard[j] = rc ? FAILED : ANSWERED;
        p->shard_stats[j] = st;
        p->shard_err[j] = serr;
        pthread_mutex_unlock(&p->mu);
    }
    return 0;
}

/* The engine thread is done with the probe (or the queue failed it). */
static void probe_finished(struct serve_memop *op)
{
    struct health_probe *p = op->arg;
    pthread_mutex_lock(&p->mu);
    p->done = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->mu);
    struct serve_http *h = p->h;
    pthread_mutex_lock(&h->mu);
    if (h->probe == p) h->probe = NULL;
    pthread_mutex_unlock(&h->mu);
    probe_release(p);
}

static struct health_probe *probe_new(struct serve_http *h)
{
    struct health_probe *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    p->h = h;
    p->refs = 1;
    p->n_stages = h->c.e->n_stages > 0 ? h->c.e->n_stages : 1;
    p->n_shards = h->c.memory ? (int)mm_memory_shards(h->c.memory) : 0;
    size_t s = (size_t)p->n_shards + 1;
    p->stage_stats = calloc((size_t)p->n_stages, sizeof(*p->stage_stats));
    p->shard = calloc(s, sizeof(*p->shard));
    p->shard_stats = calloc(s, sizeof(*p->shard_stats));
    p->shard_err = calloc(s, sizeof(*p->shard_err));
    pthread_mutex_init(&p->mu, NULL);
    /* Timed on the monotonic clock: a wall-clock jump must not stretch it. */
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cond, &attr);
    pthread_condattr_destroy(&attr);
    p->op = (struct serve_memop){.run = run_probe, .arg = p, .finished = probe_finished};
    if (!p->stage_stats || !p->shard || !p->shard_stats || !p->shard_err) {
        probe_release(p);
        return NULL;
    }
    return p;
}

/* The probe in flight, joined, or a new one posted to the engine thread;
 * held once by the caller. NULL with *draining set when the queue is
 * closed, or not set when out of memory. */
static struct health_probe *probe_get(struct serve_http *h, int *draining)
{
    *draining = 0;
    pthread_mutex_lock(&h->mu);
    struct health_probe *p = h->probe;
    if (p) {
        pthread_mutex_lock(&p->mu);
        p->refs++;
        pthread_mutex_unlock(&p->mu);
        pthread_mutex_unlock(&h->mu);
        return p;
    }
    if (!(p = probe_new(h))) {
        pthread_mutex_unlock(&h->mu);
        return NULL;
    }
    p->refs = 2; /* the caller's and the engine thread's (probe_finished) */
    h->probe = p;
    pthread_mutex_unlock(&h->mu);
    if (serve_queue_memop_post(h->c.q, &p->op)) {
        /* Closed: the engine will not run it. Checks that joined it
         * meanwhile stop waiting; the engine's hold goes with it. */
        pthread_mutex_lock(&p->mu);
        p->done = 1;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->mu);
        pthread_mutex_lock(&h->mu);
        h->probe = NULL;
        pthread_mutex_unlock(&h->mu);
        probe_release(p);
        probe_release(p);
        *draining = 1;
        return NULL;
    }
    return p;
}

static const char *part_status(enum part s, int done)
{
    switch (s) {
    case ANSWERED:
        return "ok";
    case FAILED:
        return "error";
    case ASKING:
        return "no answer";
    default:
        return done ? "error" : "not asked";
    }
}

/* The parts as the probe saw them (p->mu held); *error: the first failure. */
static json_t *stages_json(struct health_probe *p, char *error, size_t len)
{
    struct engine *e = p->h->c.e;
    json_t *list = json_array();
    for (int i = 0; i < p->n_stages; i++) {
        json_t *st = json_pack("{s:i, s:[i, i], s:b, s:s}", "stage", i, "layers", e->layer_begin[i],
                               e->layer_begin[i + 1], "local", e->mpi == NULL, "status",
                               part_status(p->stages, p->done));
        if (p->stages == ANSWERED && p->stage_figures) {
            json_object_set_new(st, "micro_batches", json_integer(p->stage_stats[i].micro_batches));
            json_object_set_new(st, "compute_seconds", json_real(p->stage_stats[i].compute_s));
        }
        if (p->stages == FAILED) json_object_set_new(st, "error", json_string(p->stages_err.msg));
        json_array_append_new(list, st);
    }
    if (p->stages != ANSWERED && !*error)
        snprintf(error, len, "pipeline stages: %s",
                 p->stages == FAILED ? p->stages_err.msg : part_status(p->stages, p->done));
    return list;
}

static json_t *shards_json(struct health_probe *p, char *error, size_t len)
{
    json_t *list = json_array();
    for (int j = 0; j < p->n_shards; j++) {
        json_t *sh =
            json_pack("{s:i, s:s}", "shard", j, "status", part_status(p->shard[j], p->done));
        if (p->shard[j] == ANSWERED) {
            json_object_set_new(sh, "entities",
                                json_integer((json_int_t)p->shard_stats[j].entities));
            json_object_set_new(sh, "triples", json_integer((json_int_t)p->shard_stats[j].triples));
        }
        if (p->shard[j] == FAILED)
            json_object_set_new(sh, "error", json_string(p->shard_err[j].msg));
        if (p->shard[j] != ANSWERED && !*error)
            snprintf(error, len, "memory shard %d: %s", j,
                     p->shard[j] == FAILED ? p->shard_err[j].msg
                                           : part_status(p->shard[j], p->done));
        json_array_append_new(list, sh);
    }
    return list;
}

/* Waits for the probe until the deadline (the monotonic clock). */
static void probe_wait(struct health_probe *p, int ms)
{
    struct timespec until = serve_deadline(ms);
    pthread_mutex_lock(&p->mu);
    while (!p->done)
        if (pthread_cond_timedwait(&p->cond, &p->mu, &until) == ETIMEDOUT) break;
    pthread_mutex_unlock(&p->mu);
}

enum MHD_Result serve_health(struct serve_http *h, struct MHD_Connection *c)
{
    int draining;
    struct health_probe *p = probe_get(h, &draining);
    if (!p && !draining) return serve_fail(c, 500, "server_error", "out of memory");
    if (p) probe_wait(p, h->c.health_timeout_ms);
    int running, queued;
    serve_queue_counts(h->c.q, &running, &queued);
    pthread_mutex_lock(&h->c.q->mu);
    draining = draining || h->c.q->closed;
    pthread_mutex_unlock(&h->c.q->mu);
    json_t *body =
        json_pack("{s:s, s:i, s:i}", "status", "ok", "running", running, "queued", queued);
    char error[sizeof(struct mm_err) + 64] = "";
    if (p) {
        pthread_mutex_lock(&p->mu);
        json_object_set_new(body, "stages", stages_json(p, error, sizeof(error)));
        json_object_set_new(body, "shards", shards_json(p, error, sizeof(error)));
        if (!*error && !p->done) snprintf(error, sizeof(error), "the probe did not end");
        pthread_mutex_unlock(&p->mu);
        probe_release(p);
    }
    if (draining && !*error) snprintf(error, sizeof(error), "the server is shutting down");
    if (*error) {
        json_object_set_new(body, "status", json_string(draining ? "draining" : "unavailable"));
        json_object_set_new(body, "error", json_string(error));
    }
    return serve_send_json(c, *error ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_OK, body, NULL);
}
