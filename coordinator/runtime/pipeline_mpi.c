#include "pipeline_mpi.h"

#include <stdlib.h>
#include <string.h>

#include "progress.h"

enum {
    TAG_BATCH = 201,
    TAG_HIDDEN = 202,
    TAG_RESULT = 203,
    TAG_LOGITS = 204,
    TAG_ERROR = 205,
    TAG_STATS = 206,
    TAG_READY = 207
};
enum { KIND_BATCH = 1, KIND_STOP = 2, KIND_ERROR = 3, KIND_STATS = 4, KIND_KV_SHARE = 5 };
enum { H_KIND, H_N, H_N_LOGITS, H_HAS_ADAPTER, H_HAS_WANT, H_LEN };
enum { H_SHARE_DST = H_N, H_SHARE_SRC = H_N_LOGITS, H_SHARE_LEN = H_HAS_ADAPTER };

/* A micro-batch sent to the first stage whose logits have not come back:
 * its message stays untouched until the non-blocking send completes. */
struct in_flight {
    int32_t *meta;
    size_t cap;
    MPI_Request req;
};

struct pipeline_mpi {
    MPI_Comm comm;
    int first_rank, n_stages, dim, vocab, micro_batches;
    /* Submissions in flight, oldest at head: a ring, as results come back
     * first in, first out. */
    struct in_flight *ring;
    int ring_cap, head, count;
    int broken; /* a stage failed: the ranks are out of step */
    struct pipeline_mpi_stats stats;
};

static size_t meta_len(int n)
{
    return H_LEN + 5 * (size_t)n;
}

static void pack(int32_t *m, const struct stage_batch *b, int from, int n)
{
    int n_logits = 0;
    for (int i = from; i < from + n; i++)
        n_logits += !b->logits || b->logits[i];
    m[H_KIND] = KIND_BATCH;
    m[H_N] = n;
    m[H_N_LOGITS] = n_logits;
    m[H_HAS_ADAPTER] = b->adapter != NULL;
    m[H_HAS_WANT] = b->logits != NULL;
    int32_t *p = m + H_LEN;
    memcpy(p, b->tokens + from, (size_t)n * sizeof(int32_t));
    memcpy(p + n, b->pos + from, (size_t)n * sizeof(int32_t));
    memcpy(p + 2 * n, b->slot + from, (size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++) {
        p[3 * n + i] = b->adapter ? b->adapter[from + i] : -1;
        p[4 * n + i] = !b->logits || b->logits[from + i];
    }
}

/* The batch a packed message describes (pointers into it). */
static void unpack(int32_t *m, struct stage_batch *b, uint8_t *want)
{
    int n = m[H_N];
    int32_t *p = m + H_LEN;
    for (int i = 0; i < n; i++)
        want[i] = (uint8_t)p[4 * n + i];
    *b = (struct stage_batch){.n = n,
                              .tokens = p,
                              .pos = p + n,
                              .slot = p + 2 * n,
                              .adapter = m[H_HAS_ADAPTER] ? p + 3 * n : NULL,
                              .logits = m[H_HAS_WANT] ? want : NULL};
}

struct pipeline_mpi *pipeline_mpi_open(MPI_Comm comm, int first_rank, int n_stages, int dim,
                                       int vocab, int micro_batches, struct mm_err *err)
{
    int size;
    MPI_Comm_size(comm, &size);
    if (first_rank + n_stages > size) {
        mm_err_set(err, "%d stages from rank %d need %d ranks, mpirun started %d", n_stages,
                   first_rank, first_rank + n_stages, size);
        return NULL;
    }
    struct pipeline_mpi *p = calloc(1, sizeof(*p));
    if (!p) {
        mm_err_set(err, "out of memory");
        return NULL;
    }
    *p = (struct pipeline_mpi){.comm = comm,
                               .first_rank = first_rank,
                               .n_stages = n_stages,
                               .dim = dim,
                               .vocab = vocab,
                               .micro_batches = micro_batches > 0 ? micro_batches : 1};
    /* Each stage says when its layers are loaded, so that the pipeline is
     * open only once every stage can answer: a server then listens, and its
     * /health probe asks, stages that are there (not ones still loading
     * their weights). A stage that fails to load stops the job instead. */
    for (int i = 0; i < n_stages; i++) {
        int32_t index;
        if (MPI_Recv(&index, 1, MPI_INT32_T, first_rank + i, TAG_READY, comm, MPI_STATUS_IGNORE) !=
                MPI_SUCCESS ||
            index != i) {
            mm_err_set(err, "pipeline: stage %d (rank %d) did not say it is ready", i,
                       first_rank + i);
            free(p);
            return NULL;
        }
    }
    return p;
}

/* An error text sent by a stage rank. */
static void receive_error(struct pipeline_mpi *p, int source, int len, struct mm_err *err)
{
    char text[MM_ERR_LEN];
    if (len >= (int)sizeof(text)) len = (int)sizeof(text) - 1;
    MPI_Recv(text, len, MPI_CHAR, source, TAG_ERROR, p->comm, MPI_STATUS_IGNORE);
    text[len] = 0;
    mm_err_set(err, "stage rank %d: %s", source, text);
}

/* Takes the next result off the last stage into logits (NULL: thrown
 * away). Returns its row count, or -1 with err set and the pipeline
 * broken. */
static int receive_result(struct pipeline_mpi *p, float *logits, struct mm_err *err)
{
    const int last = p->first_rank + p->n_stages - 1;
    struct in_flight *f = &p->ring[p->head];
    int32_t h[H_LEN];
    MPI_Status st;
    if (MPI_Recv(h, H_LEN, MPI_INT32_T, MPI_ANY_SOURCE, TAG_RESULT, p->comm, &st) != MPI_SUCCESS) {
        mm_err_set(err, "pipeline: receiving a result failed");
        goto broken;
    }
    if (h[H_KIND] == KIND_ERROR) {
        receive_error(p, st.MPI_SOURCE, h[H_N], err);
        goto broken;
    }
    /* A row count other than the one sent would overrun the caller's rows. */
    if (st.MPI_SOURCE != last || h[H_N_LOGITS] != f->meta[H_N_LOGITS]) {
        mm_err_set(err, "pipeline: unexpected result from rank %d", st.MPI_SOURCE);
        goto broken;
    }
    size_t n = (size_t)h[H_N_LOGITS] * (size_t)p->vocab;
    float *into = logits ? logits : malloc((n ? n : 1) * sizeof(float));
    if (!into) {
        mm_err_set(err, "pipeline: out of memory");
        goto broken;
    }
    int rc = MPI_Recv(into, (int)n, MPI_FLOAT, last, TAG_LOGITS, p->comm, MPI_STATUS_IGNORE);
    if (!logits) free(into);
    if (rc != MPI_SUCCESS || MPI_Wait(&f->req, MPI_STATUS_IGNORE) != MPI_SUCCESS) {
        mm_err_set(err, "pipeline: receiving logits failed");
        goto broken;
    }
    p->head = (p->head + 1) % p->ring_cap;
    p->count--;
    return h[H_N_LOGITS];
broken:
    p->broken = 1;
    return -1;
}

void pipeline_mpi_close(struct pipeline_mpi *p)
{
    /* Results nobody collected are taken off the last stage, which would
     * otherwise wait to send them. */
    struct mm_err err = {{0}};
    while (!p->broken && p->count > 0)
        receive_result(p, NULL, &err);
    /* After a failed step the stages are out of step with the coordinator
     * and may wait for each other: stop the whole job instead. */
    if (p->broken) MPI_Abort(p->comm, 1);
    int32_t stop[H_LEN] = {[H_KIND] = KIND_STOP};
    MPI_Send(stop, H_LEN, MPI_INT32_T, p->first_rank, TAG_BATCH, p->comm);
    for (int i = 0; i < p->ring_cap; i++)
        free(p->ring[i].meta);
    free(p->ring);
    free(p);
}

/* Cuts the batch into at most `m` pieces of about equal token counts, only
 * between sequences (a sequence's tokens must stay together). */
static int cut_micro_batches(const struct stage_batch *b, int m, int *starts)
{
    int runs = 0;
    for (int i = 0; i < b->n; i++)
        runs += i == 0 || b->slot[i] != b->slot[i - 1];
    if (m > runs) m = runs;
    int k = 0;
    starts[k++] = 0;
    for (int i = 1; i < b->n && k < m; i++)
        if (b->slot[i] != b->slot[i - 1] && (long)i * m >= (long)b->n * k) starts[k++] = i;
    starts[k] = b->n;
    return k;
}

/* The ring entry after the newest, holding `len` values; the ring doubles
 * when full (unrolled oldest first, so the order stays). */
static struct in_flight *ring_next(struct pipeline_mpi *p, size_t len, struct mm_err *err)
{
    if (p->count == p->ring_cap) {
        int cap = p->ring_cap ? 2 * p->ring_cap : 8;
        struct in_flight *r = malloc((size_t)cap * sizeof(*r));
        if (!r) goto oom;
        for (int i = 0; i < p->count; i++)
            r[i] = p->ring[(p->head + i) % p->ring_cap];
        for (int i = p->count; i < cap; i++)
            r[i] = (struct in_flight){.req = MPI_REQUEST_NULL};
        free(p->ring);
        p->ring = r;
        p->ring_cap = cap;
        p->head = 0;
    }
    struct in_flight *f = &p->ring[(p->head + p->count) % p->ring_cap];
    if (len > f->cap) {
        int32_t *m = realloc(f->meta, len * sizeof(int32_t));
        if (!m) goto oom;
        f->meta = m;
        f->cap = len;
    }
    return f;
oom:
    mm_err_set(err, "pipeline: out of memory");
    return NULL;
}

/* Rows [from, from + n) of b as one micro-batch to the first stage. */
static int submit_rows(struct pipeline_mpi *p, const struct stage_batch *b, int from, int n,
                       struct mm_err *err)
{
    if (p->broken) {
        mm_err_set(err, "pipeline: a stage failed earlier");
        return -1;
    }
    struct in_flight *f = ring_next(p, meta_len(n), err);
    if (!f) return -1;
    pack(f->meta, b, from, n);
    if (MPI_Isend(f->meta, (int)meta_len(n), MPI_INT32_T, p->first_rank, TAG_BATCH, p->comm,
                  &f->req) != MPI_SUCCESS) {
        mm_err_set(err, "pipeline: sending a micro-batch to stage 0 failed");
        p->broken = 1;
        return -1;
    }
    p->count++;
    p->stats.micro_batches++;
    return 0;
}

int pipeline_mpi_submit(struct pipeline_mpi *p, const struct stage_batch *b, struct mm_err *err)
{
    return submit_rows(p, b, 0, b->n, err);
}

int pipeline_mpi_collect(struct pipeline_mpi *p, float *logits, struct mm_err *err)
{
    if (p->broken) {
        mm_err_set(err, "pipeline: a stage failed earlier");
        return -1;
    }
    if (p->count == 0) {
        mm_err_set(err, "pipeline: nothing submitted to collect");
        return -1;
    }
    return receive_result(p, logits, err);
}

int pipeline_mpi_in_flight(const struct pipeline_mpi *p)
{
    return p->count;
}

int pipeline_mpi_forward(struct pipeline_mpi *p, const struct stage_batch *b, float *logits,
                         struct mm_err *err)
{
    if (p->count > 0) {
        mm_err_set(err, "pipeline: a whole-step forward while %d submissions are in flight",
                   p->count);
        return -1;
    }
    double t0 = progress_now();
    int starts[p->micro_batches + 1];
    int k = cut_micro_batches(b, p->micro_batches, starts);
    for (int j = 0; j < k; j++)
        if (submit_rows(p, b, starts[j], starts[j + 1] - starts[j], err)) {
            /* Part of the step is on its way: the ranks and this step
             * disagree, as after a stage's failure. */
            p->broken = 1;
            return -1;
        }
    /* Results come back in order: a stage takes micro-batches first in,
     * first out, and MPI keeps the order of messages between two ranks. */
    size_t row = 0;
    for (int j = 0; j < k; j++) {
        int got = receive_result(p, logits + row * (size_t)p->vocab, err);
        if (got < 0) return -1;
        row += (size_t)got;
    }
    p->stats.steps++;
    p->stats.seconds += progress_now() - t0;
    return 0;
}

void pipeline_mpi_get_stats(const struct pipeline_mpi *p, struct pipeline_mpi_stats *st)
{
    *st = p->stats;
}

int pipeline_mpi_kv_share(struct pipeline_mpi *p, int dst, int src, int len, struct mm_err *err)
{
    if (p->broken) {
        mm_err_set(err, "pipeline: a stage failed earlier");
        return -1;
    }
    int32_t m[H_LEN] = {
        [H_KIND] = KIND_KV_SHARE, [H_SHARE_DST] = dst, [H_SHARE_SRC] = src, [H_SHARE_LEN] = len};
    if (MPI_Send(m, H_LEN, MPI_INT32_T, p->first_rank, TAG_BATCH, p->comm) != MPI_SUCCESS) {
        mm_err_set(err, "pipeline: sending a KV share to stage 0 failed");
        return -1;
    }
    return 0;
}

int pipeline_mpi_stage_stats(struct pipeline_mpi *p, struct pipeline_stage_stats *out,
                             struct mm_err *err)
{
    /* The last stage's answer would queue behind results nobody takes. */
    if (p->count > 0) {
        mm_err_set(err, "pipeline: stage figures asked while %d submissions are in flight",
                   p->count);
        return -1;
    }
    int32_t ask[H_LEN] = {[H_KIND] = KIND_STATS};
    MPI_Send(ask, H_LEN, MPI_INT32_T, p->first_rank, TAG_BATCH, p->comm);
    for (int i = 0; i < p->n_stages; i++) {
        double v[4];
        if (MPI_Recv(v, 4, MPI_DOUBLE, p->first_rank + i, TAG_STATS, p->comm, MPI_STATUS_IGNORE) !=
            MPI_SUCCESS) {
            mm_err_set(err, "pipeline: no figures from stage %d", i);
            return -1;
        }
        out[i] = (struct pipeline_stage_stats){
            .micro_batches = (long)v[0], .compute_s = v[1], .wait_s = v[2], .sent_bytes = v[3]};
    }
    return 0;
}

/* --- the stage rank --------------------------------------------------------------------- */

/* One outgoing micro-batch of a stage: its message and activations (the
 * last stage: its result header and logits) stay untouched until the
 * non-blocking sends of them complete. */
struct out_slot {
    int32_t *meta;
    float *data;
    size_t meta_cap, data_cap;
    MPI_Request req[2];
};

static int out_reserve(struct out_slot *o, size_t meta, size_t data)
{
    MPI_Waitall(2, o->req, MPI_STATUSES_IGNORE);
    if (meta > o->meta_cap) {
        int32_t *m = realloc(o->meta, meta * sizeof(int32_t));
        if (!m) return -1;
        o->meta = m;
        o->meta_cap = meta;
    }
    if (data > o->data_cap) {
        float *d = realloc(o->data, data * sizeof(float));
        if (!d) return -1;
        o->data = d;
        o->data_cap = data;
    }
    return 0;
}

static void send_error(MPI_Comm comm, int coordinator, const char *msg)
{
    int32_t h[H_LEN] = {[H_KIND] = KIND_ERROR, [H_N] = (int32_t)strlen(msg)};
    MPI_Send(h, H_LEN, MPI_INT32_T, coordinator, TAG_RESULT, comm);
    MPI_Send(msg, (int)strlen(msg), MPI_CHAR, coordinator, TAG_ERROR, comm);
}

int pipeline_mpi_serve(struct engine_stage *s, MPI_Comm comm, int coordinator, int first_rank,
                       int index, int n_stages, struct mm_err *err)
{
    const int prev = index == 0 ? coordinator : first_rank + index - 1;
    const int next = index == n_stages - 1 ? -1 : first_rank + index + 1;
    const int dim = s->model->cfg.dim, vocab = s->model->cfg.vocab_size;
    struct out_slot out[2] = {{.req = {MPI_REQUEST_NULL, MPI_REQUEST_NULL}},
                              {.req = {MPI_REQUEST_NULL, MPI_REQUEST_NULL}}};
    int32_t *in = NULL;
    float *in_hidden = NULL;
    uint8_t *want = NULL;
    size_t in_cap = 0, hidden_cap = 0;
    int rc = -1, turn = 0;
    struct pipeline_stage_stats stats = {0};
    const int32_t ready = index;
    MPI_Send(&ready, 1, MPI_INT32_T, coordinator, TAG_READY, comm);
    for (;;) {
        MPI_Status st;
        int count;
        double t_wait = progress_now();
        MPI_Probe(prev, TAG_BATCH, comm, &st);
        stats.wait_s += progress_now() - t_wait;
        MPI_Get_count(&st, MPI_INT32_T, &count);
        if ((size_t)count > in_cap) {
            free(in);
            free(want);
            in_cap = (size_t)count;
            in = malloc(in_cap * sizeof(int32_t));
            want = malloc(in_cap);
            if (!in || !want) goto oom;
        }
        MPI_Recv(in, count, MPI_INT32_T, prev, TAG_BATCH, comm, MPI_STATUS_IGNORE);
        if (in[H_KIND] == KIND_STOP) {
            if (next >= 0) MPI_Send(in, H_LEN, MPI_INT32_T, next, TAG_BATCH, comm);
            rc = 0;
            break;
        }
        if (in[H_KIND] == KIND_STATS) {
            double v[4] = {(double)stats.micro_batches, stats.compute_s, stats.wait_s,
                           stats.sent_bytes};
            MPI_Send(v, 4, MPI_DOUBLE, coordinator, TAG_STATS, comm);
            if (next >= 0) MPI_Send(in, H_LEN, MPI_INT32_T, next, TAG_BATCH, comm);
            continue;
        }
        if (in[H_KIND] == KIND_KV_SHARE) {
            struct mm_err serr = {{0}};
            /* The coordinator finds out at its next step, and stops the job:
             * a stage that could not share is out of step with the others. */
            if (engine_stage_kv_share(s, in[H_SHARE_DST], in[H_SHARE_SRC], in[H_SHARE_LEN], &serr))
                send_error(comm, coordinator, serr.msg);
            if (next >= 0) MPI_Send(in, H_LEN, MPI_INT32_T, next, TAG_BATCH, comm);
            continue;
        }
        struct stage_batch b;
        unpack(in, &b, want);
        size_t h = (size_t)b.n * (size_t)dim;
        if (h > hidden_cap) {
            free(in_hidden);
            hidden_cap = h;
            if (!(in_hidden = malloc(hidden_cap * sizeof(float)))) goto oom;
        }
        if (index > 0)
            MPI_Recv(in_hidden, (int)h, MPI_FLOAT, prev, TAG_HIDDEN, comm, MPI_STATUS_IGNORE);
        /* The outgoing slot is taken before computing: the last stage
         * writes its logits straight into it. */
        struct out_slot *o = &out[turn];
        turn ^= 1;
        size_t out_len = next < 0 ? (size_t)in[H_N_LOGITS] * (size_t)vocab : h;
        if (out_reserve(o, next < 0 ? H_LEN : (size_t)count, out_len)) goto oom;
        struct mm_err ferr = {{0}};
        double t_compute = progress_now();
        int failed = engine_stage_forward(s, &b, in_hidden, next < 0 ? o->data : NULL, &ferr);
        stats.compute_s += progress_now() - t_compute;
        stats.micro_batches++;
        if (failed) {
            /* The coordinator gives up on the step and stops the job. */
            send_error(comm, coordinator, ferr.msg);
            continue;
        }
        if (next < 0) {
            /* Sent without waiting: this stage computes the next micro-batch
             * while the coordinator samples from these logits. */
            memset(o->meta, 0, H_LEN * sizeof(int32_t));
            o->meta[H_KIND] = KIND_BATCH;
            o->meta[H_N] = b.n;
            o->meta[H_N_LOGITS] = in[H_N_LOGITS];
            MPI_Isend(o->meta, H_LEN, MPI_INT32_T, coordinator, TAG_RESULT, comm, &o->req[0]);
            MPI_Isend(o->data, (int)out_len, MPI_FLOAT, coordinator, TAG_LOGITS, comm, &o->req[1]);
            stats.sent_bytes += (double)out_len * sizeof(float);
            continue;
        }
        memcpy(o->meta, in, (size_t)count * sizeof(int32_t));
        memcpy(o->data, in_hidden, h * sizeof(float));
        MPI_Isend(o->meta, count, MPI_INT32_T, next, TAG_BATCH, comm, &o->req[0]);
        MPI_Isend(o->data, (int)h, MPI_FLOAT, next, TAG_HIDDEN, comm, &o->req[1]);
        stats.sent_bytes += (double)h * sizeof(float);
    }
    goto out;
oom:
    mm_err_set(err, "stage %d: out of memory", index);
out:
    for (int i = 0; i < 2; i++) {
        MPI_Waitall(2, out[i].req, MPI_STATUSES_IGNORE);
        free(out[i].meta);
        free(out[i].data);
    }
    free(in);
    free(want);
    free(in_hidden);
    return rc;
}
