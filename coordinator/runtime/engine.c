#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline_mpi.h"

/* Everything the coordinator knows without loading weights: the tokenizer,
 * the hyper-parameters, the adapter names and the layer split. */
static int open_common(struct engine *e, const struct engine_options *o, struct mm_err *err)
{
    memset(e, 0, sizeof(*e));
    if (o->n_adapters > ENGINE_MAX_ADAPTERS) {
        mm_err_set(err, "at most %d adapters can be loaded", ENGINE_MAX_ADAPTERS);
        return -1;
    }
    if (o->merge && o->n_adapters != 1) {
        mm_err_set(err, "--merge needs exactly one adapter");
        return -1;
    }
    if (model_read_config(o->model_path, &e->cfg, err)) return -1;
    const int L = e->cfg.n_layers, P = o->n_stages > 0 ? o->n_stages : 1;
    if (P > L || P > ENGINE_MAX_STAGES) {
        mm_err_set(err, "%d stages for a model of %d layers (at most %d stages)", P, L,
                   L < ENGINE_MAX_STAGES ? L : ENGINE_MAX_STAGES);
        return -1;
    }
    if (o->n_split && o->n_split != P - 1) {
        mm_err_set(err, "--layers gives %d split points, %d stages need %d", o->n_split, P, P - 1);
        return -1;
    }
    e->n_stages = P;
    for (int i = 0; i <= P; i++)
        e->layer_begin[i] = o->n_split && i > 0 && i < P ? o->split[i - 1] : i * L / P;
    for (int i = 0; i < P; i++)
        if (e->layer_begin[i] >= e->layer_begin[i + 1]) {
            mm_err_set(err,
                       "--layers: stage %d would hold no layers (split points must rise "
                       "strictly inside 1..%d)",
                       i, L - 1);
            return -1;
        }
    for (int i = 0; i < o->n_adapters; i++) {
        const char *dir;
        engine_adapter_name_dir(o->adapters[i], e->adapter_names[i], ENGINE_ADAPTER_NAME, &dir);
        for (int j = 0; j < i; j++)
            if (!strcmp(e->adapter_names[i], e->adapter_names[j])) {
                mm_err_set(err, "two adapters are named '%s' (use NAME=DIR)", e->adapter_names[i]);
                return -1;
            }
    }
    e->n_adapters = o->n_adapters;
    e->merged = o->merge;
    e->vocab = e->cfg.vocab_size;
    e->n_slots = o->n_slots > 0 ? o->n_slots : 1;
    e->flow_groups = 1;
    e->context =
        o->context > 0 && o->context < e->cfg.max_positions ? o->context : e->cfg.max_positions;
    /* GPU stages share by copying rows (stage_cuda_kv_share), code that has
     * not yet run on a device: prefix sharing stays off there until
     * test_kernels_cuda_stage has passed on one. */
    if (!o->no_prefix_cache && o->device == ENGINE_DEVICE_CPU) {
        e->cache_slots = e->n_slots;
        int64_t token_bytes = 2 * (int64_t)e->cfg.n_layers * model_config_kv_dim(&e->cfg) * 4;
        double budget = (o->kv_cache_mb > 0 ? o->kv_cache_mb : 256.0) * (1 << 20);
        if (prefix_cache_init(&e->prefix, e->n_slots, e->cache_slots,
                              (int64_t)(budget / (double)token_bytes), err))
            return -1;
    }
    e->tok = tok_load(o->model_path, err);
    return e->tok ? 0 : -1;
}

int engine_open(struct engine *e, const struct engine_options *o, struct mm_err *err)
{
    if (open_common(e, o, err)) goto fail;
    e->local = calloc((size_t)e->n_stages, sizeof(*e->local));
    if (!e->local) {
        mm_err_set(err, "out of memory");
        goto fail;
    }
    for (int i = 0; i < e->n_stages; i++)
        if (engine_stage_open(&e->local[i], o, e->layer_begin[i], e->layer_begin[i + 1],
                              e->n_slots + e->cache_slots, e->context, err))
            goto fail;
    return 0;
fail:
    engine_close(e);
    return -1;
}

int engine_open_mpi(struct engine *e, const struct engine_options *o, MPI_Comm comm, int first_rank,
                    struct mm_err *err)
{
    if (open_common(e, o, err)) goto fail;
    const int m = o->micro_batches > 0 ? o->micro_batches : e->n_stages;
    e->mpi = pipeline_mpi_open(comm, first_rank, e->n_stages, e->cfg.dim, e->vocab, m, err);
    if (!e->mpi) goto fail;
    e->flow_groups = m < e->n_slots ? m : e->n_slots;
    return 0;
fail:
    engine_close(e);
    return -1;
}

int engine_serve_stage(const struct engine_options *o, int index, MPI_Comm comm, int coordinator,
                       int first_rank, struct mm_err *err)
{
    struct engine layout;
    if (open_common(&layout, o, err)) {
        engine_close(&layout);
        return -1;
    }
    struct engine_stage st;
    int rc = -1;
    if (index < 0 || index >= layout.n_stages) {
        mm_err_set(err, "stage %d of %d", index, layout.n_stages);
    } else if (engine_stage_open(&st, o, layout.layer_begin[index], layout.layer_begin[index + 1],
                                 layout.n_slots + layout.cache_slots, layout.context, err) == 0) {
        rc = pipeline_mpi_serve(&st, comm, coordinator, first_rank, index, layout.n_stages, err);
        engine_stage_close(&st);
    }
    engine_close(&layout);
    return rc;
}

/* A batch submitted to local stages (its rows copied), or a KV share
 * behind one. */
struct engine_op {
    int is_share;
    int n, has_adapter, has_want;
    int32_t *rows; /* tokens, positions, slots, adapters: 4 n */
    uint8_t *want; /* n */
    int rows_cap;
    int dst, src, len;
    /* Run ahead as part of engine_fused: its logits are engine_fused's
     * rows from fused_row on. */
    int done;
    size_t fused_row;
};

/* Batches at the head of the ring run as one forward: their rows one after
 * another, and the logits of all of them, until each is collected. */
struct engine_fused {
    int32_t *rows; /* tokens, positions, slots, adapters: 4 n */
    uint8_t *want;
    int rows_cap;
    float *logits;
    size_t logits_cap; /* rows */
};

/* The ring entry after the newest, for n rows; the ring doubles when full
 * (unrolled oldest first, so the order stays). */
static struct engine_op *op_next(struct engine *e, int n, struct mm_err *err)
{
    if (e->ops_count == e->ops_cap) {
        int cap = e->ops_cap ? 2 * e->ops_cap : 8;
        struct engine_op *r = calloc((size_t)cap, sizeof(*r));
        if (!r) goto oom;
        for (int i = 0; i < e->ops_count; i++)
            r[i] = e->ops[(e->ops_head + i) % e->ops_cap];
        free(e->ops);
        e->ops = r;
        e->ops_cap = cap;
        e->ops_head = 0;
    }
    struct engine_op *op = &e->ops[(e->ops_head + e->ops_count) % e->ops_cap];
    /* At least one row, so that an empty batch copies to real buffers. */
    if (n < 1) n = 1;
    if (n > op->rows_cap) {
        int32_t *rows = realloc(op->rows, 4 * (size_t)n * sizeof(int32_t));
        if (!rows) goto oom;
        op->rows = rows;
        uint8_t *want = realloc(op->want, (size_t)n);
        if (!want) goto oom;
        op->want = want;
        op->rows_cap = n;
    }
    return op;
oom:
    mm_err_set(err, "engine: out of memory");
    return NULL;
}

static void ops_free(struct engine *e)
{
    for (int i = 0; i < e->ops_cap; i++) {
        free(e->ops[i].rows);
        free(e->ops[i].want);
    }
    free(e->ops);
    if (e->fused) {
        free(e->fused->rows);
        free(e->fused->want);
        free(e->fused->logits);
        free(e->fused);
    }
}

void engine_close(struct engine *e)
{
    if (e->mpi) pipeline_mpi_close(e->mpi);
    ops_free(e);
    if (e->local)
        for (int i = 0; i < e->n_stages; i++)
            engine_stage_close(&e->local[i]);
    free(e->local);
    free(e->hidden);
    if (e->tok) tok_free(e->tok);
    prefix_cache_free(&e->prefix);
    memset(e, 0, sizeof(*e));
}

int engine_adapter(const struct engine *e, const char *name, struct mm_err *err)
{
    for (int i = 0; i < e->n_adapters; i++)
        if (!strcmp(e->adapter_names[i], name)) {
            if (e->merged) {
                mm_err_set(err, "adapter '%s' is merged into the weights: it is always on", name);
                return -1;
            }
            return i;
        }
    mm_err_set(err, "no adapter named '%s' is loaded", name);
    return -1;
}

static int local_kv_share(struct engine *e, int dst, int src, int len, struct mm_err *err)
{
    for (int i = 0; i < e->n_stages; i++)
        if (engine_stage_kv_share(&e->local[i], dst, src, len, err)) return -1;
    return 0;
}

int engine_kv_share(struct engine *e, int dst, int src, int len, struct mm_err *err)
{
    if (e->mpi) return pipeline_mpi_kv_share(e->mpi, dst, src, len, err);
    if (e->ops_count == 0) return local_kv_share(e, dst, src, len, err);
    /* Batches submitted before it have not run yet: it waits behind them. */
    struct engine_op *op = op_next(e, 0, err);
    if (!op) return -1;
    op->is_share = 1;
    op->dst = dst;
    op->src = src;
    op->len = len;
    e->ops_count++;
    return 0;
}

int engine_kv_memory(const struct engine *e, int64_t *paged, int64_t *contiguous)
{
    *paged = *contiguous = 0;
    if (!e->local) return -1;
    for (int i = 0; i < e->n_stages; i++) {
        if (e->local[i].gpu) return -1;
        int64_t p, c;
        kv_cache_memory(&e->local[i].stage.kv, e->n_slots, &p, &c);
        *paged += p;
        *contiguous += c;
    }
    return 0;
}

/* The batch through the stages in this process. */
static int local_forward(struct engine *e, const struct stage_batch *b, float *logits,
                         struct mm_err *err)
{
    if (e->n_stages > 1 && b->n > e->hidden_cap) {
        float *h = realloc(e->hidden, (size_t)b->n * (size_t)e->cfg.dim * sizeof(float));
        if (!h) {
            mm_err_set(err, "forward: out of memory");
            return -1;
        }
        e->hidden = h;
        e->hidden_cap = b->n;
    }
    for (int i = 0; i < e->n_stages; i++)
        if (engine_stage_forward(&e->local[i], b, e->hidden, logits, err)) return -1;
    return 0;
}

int engine_forward(struct engine *e, const struct stage_batch *b, float *logits, struct mm_err *err)
{
    if (e->mpi) return pipeline_mpi_forward(e->mpi, b, logits, err);
    if (e->ops_count > 0) {
        mm_err_set(err, "forward: a whole-step forward while %d submissions are in flight",
                   e->ops_batches);
        return -1;
    }
    return local_forward(e, b, logits, err);
}

int engine_submit(struct engine *e, const struct stage_batch *b, struct mm_err *err)
{
    if (e->mpi) return pipeline_mpi_submit(e->mpi, b, err);
    struct engine_op *op = op_next(e, b->n, err);
    if (!op) return -1;
    const size_t n = (size_t)b->n;
    *op = (struct engine_op){.n = b->n,
                             .has_adapter = b->adapter != NULL,
                             .has_want = b->logits != NULL,
                             .rows = op->rows,
                             .want = op->want,
                             .rows_cap = op->rows_cap};
    memcpy(op->rows, b->tokens, n * sizeof(int32_t));
    memcpy(op->rows + n, b->pos, n * sizeof(int32_t));
    memcpy(op->rows + 2 * n, b->slot, n * sizeof(int32_t));
    if (b->adapter) memcpy(op->rows + 3 * n, b->adapter, n * sizeof(int32_t));
    if (b->logits) memcpy(op->want, b->logits, n);
    e->ops_count++;
    e->ops_batches++;
    return 0;
}

static struct engine_op *op_at(const struct engine *e, int i)
{
    return &e->ops[(e->ops_head + i) % e->ops_cap];
}

static struct engine_op *op_pop(struct engine *e)
{
    struct engine_op *op = op_at(e, 0);
    e->ops_head = (e->ops_head + 1) % e->ops_cap;
    e->ops_count--;
    return op;
}

static int op_logit_rows(const struct engine_op *op)
{
    int rows = 0;
    for (int i = 0; i < op->n; i++)
        rows += !op->has_want || op->want[i];
    return rows;
}

/* The batches from the oldest that can run as one: up to the first KV
 * share (it must come between them), the first without adapters beside
 * one with them, or the first with a slot of the ones before (a sequence's
 * rows must stay together). seen: one flag per slot, zeroed. */
static int fusable(const struct engine *e, uint8_t *seen)
{
    const int slots = e->n_slots + e->cache_slots;
    int k = 0;
    for (; k < e->ops_count; k++) {
        const struct engine_op *op = op_at(e, k);
        if (op->is_share || op->has_adapter != op_at(e, 0)->has_adapter) break;
        int clash = 0;
        for (int i = 0; i < op->n && !clash; i++) {
            int32_t s = op->rows[2 * (size_t)op->n + i];
            clash = s < 0 || s >= slots || seen[s];
        }
        if (clash) break;
        for (int i = 0; i < op->n; i++)
            seen[op->rows[2 * (size_t)op->n + i]] = 1;
    }
    return k;
}

static int fused_reserve(struct engine *e, int n, size_t logit_rows)
{
    struct engine_fused *f = e->fused;
    if (!f && !(f = e->fused = calloc(1, sizeof(*f)))) return -1;
    if (n > f->rows_cap) {
        int32_t *rows = realloc(f->rows, 4 * (size_t)n * sizeof(int32_t));
        if (!rows) return -1;
        f->rows = rows;
        uint8_t *want = realloc(f->want, (size_t)n);
        if (!want) return -1;
        f->want = want;
        f->rows_cap = n;
    }
    if (logit_rows > f->logits_cap) {
        float *l = realloc(f->logits, logit_rows * (size_t)e->vocab * sizeof(float));
        if (!l) return -1;
        f->logits = l;
        f->logits_cap = logit_rows;
    }
    return 0;
}

/* Runs the first k batches as one forward into engine_fused and marks
 * them done. On failure nothing is marked: the oldest then runs alone,
 * which gives its own error or logits (a rejected batch leaves the caches
 * as they were). */
static int run_fused(struct engine *e, int k)
{
    int n = 0;
    size_t logit_rows = 0;
    for (int j = 0; j < k; j++) {
        n += op_at(e, j)->n;
        logit_rows += (size_t)op_logit_rows(op_at(e, j));
    }
    if (fused_reserve(e, n, logit_rows)) return -1;
    struct engine_fused *f = e->fused;
    const size_t N = (size_t)n;
    size_t at = 0, row = 0;
    for (int j = 0; j < k; j++) {
        const struct engine_op *op = op_at(e, j);
        const size_t m = (size_t)op->n;
        for (int part = 0; part < 4; part++)
            memcpy(f->rows + part * N + at, op->rows + part * m, m * sizeof(int32_t));
        for (size_t i = 0; i < m; i++)
            f->want[at + i] = !op->has_want || op->want[i];
        at += m;
    }
    struct stage_batch b = {.n = n,
                            .tokens = f->rows,
                            .pos = f->rows + N,
                            .slot = f->rows + 2 * N,
                            .adapter = op_at(e, 0)->has_adapter ? f->rows + 3 * N : NULL,
                            .logits = f->want};
    struct mm_err ignored = {{0}};
    if (local_forward(e, &b, f->logits, &ignored)) return -1;
    for (int j = 0; j < k; j++) {
        struct engine_op *op = op_at(e, j);
        op->done = 1;
        op->fused_row = row;
        row += (size_t)op_logit_rows(op);
    }
    return 0;
}

int engine_collect(struct engine *e, float *logits, struct mm_err *err)
{
    if (e->mpi) return pipeline_mpi_collect(e->mpi, logits, err);
    if (e->ops_batches == 0) {
        mm_err_set(err, "engine: nothing submitted to collect");
        return -1;
    }
    /* The oldest op is a batch: shares are queued only behind one, and run
     * as soon as the batch before them has. */
    struct engine_op *op = op_at(e, 0);
    int rc = 0;
    if (!op->done) {
        uint8_t *seen = calloc((size_t)(e->n_slots + e->cache_slots), 1);
        int k = seen ? fusable(e, seen) : 1;
        free(seen);
        if (k < 2 || run_fused(e, k)) {
            const size_t n = (size_t)op->n;
            struct stage_batch b = {.n = op->n,
                                    .tokens = op->rows,
                                    .pos = op->rows + n,
                                    .slot = op->rows + 2 * n,
                                    .adapter = op->has_adapter ? op->rows + 3 * n : NULL,
                                    .logits = op->has_want ? op->want : NULL};
            rc = local_forward(e, &b, logits, err);
        }
    }
    const int rows = op_logit_rows(op);
    if (op->done)
        memcpy(logits, e->fused->logits + op->fused_row * (size_t)e->vocab,
               (size_t)rows * (size_t)e->vocab * sizeof(float));
    op_pop(e);
    e->ops_batches--;
    while (e->ops_count > 0 && op_at(e, 0)->is_share) {
        struct engine_op *s = op_pop(e);
        if (rc == 0 && local_kv_share(e, s->dst, s->src, s->len, err)) rc = -1;
    }
    return rc ? -1 : rows;
}

int engine_in_flight(const struct engine *e)
{
    return e->mpi ? pipeline_mpi_in_flight(e->mpi) : e->ops_batches;
}
