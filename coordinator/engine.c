#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline_mpi.h"

static void adapter_name_dir(const char *spec, char *name, size_t name_len, const char **dir)
{
    const char *eq = strchr(spec, '=');
    if (eq) {
        size_t n = (size_t)(eq - spec) < name_len - 1 ? (size_t)(eq - spec) : name_len - 1;
        memcpy(name, spec, n);
        name[n] = 0;
        *dir = eq + 1;
        return;
    }
    *dir = spec;
    size_t len = strlen(spec);
    while (len > 1 && spec[len - 1] == '/')
        len--;
    size_t start = len;
    while (start > 0 && spec[start - 1] != '/')
        start--;
    size_t n = len - start < name_len - 1 ? len - start : name_len - 1;
    memcpy(name, spec + start, n);
    name[n] = 0;
}

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
        adapter_name_dir(o->adapters[i], e->adapter_names[i], ENGINE_ADAPTER_NAME, &dir);
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
    e->context =
        o->context > 0 && o->context < e->cfg.max_positions ? o->context : e->cfg.max_positions;
    e->tok = tok_load(o->model_path, err);
    return e->tok ? 0 : -1;
}

static void stage_close(struct engine_stage *st)
{
    stage_free(&st->stage);
    for (int i = 0; i < st->n_adapters; i++)
        lora_free(&st->adapters[i]);
    model_free(st->model);
    memset(st, 0, sizeof(*st));
}

/* Loads layers [begin, end), the adapters' parts for them, and the cache. */
static int stage_open(struct engine_stage *st, const struct engine_options *o, int begin, int end,
                      int n_slots, int context, struct mm_err *err)
{
    memset(st, 0, sizeof(*st));
    st->model = model_load(o->model_path, begin, end, err);
    if (!st->model) return -1;
    for (int i = 0; i < o->n_adapters; i++) {
        char name[ENGINE_ADAPTER_NAME];
        const char *dir;
        adapter_name_dir(o->adapters[i], name, sizeof(name), &dir);
        if (lora_load(&st->adapters[i], st->model, dir, name, err)) goto fail;
        st->n_adapters++;
    }
    if (o->merge && lora_merge(st->model, &st->adapters[0], err)) goto fail;
    if (stage_init(&st->stage, st->model, n_slots, context, err)) goto fail;
    st->stage.adapters = o->merge ? NULL : st->adapters;
    st->stage.n_adapters = o->merge ? 0 : st->n_adapters;
    return 0;
fail:
    stage_close(st);
    return -1;
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
        if (stage_open(&e->local[i], o, e->layer_begin[i], e->layer_begin[i + 1], e->n_slots,
                       e->context, err))
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
    e->mpi = pipeline_mpi_open(comm, first_rank, e->n_stages, e->cfg.dim, e->vocab,
                               o->micro_batches > 0 ? o->micro_batches : e->n_stages, err);
    if (!e->mpi) goto fail;
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
    } else if (stage_open(&st, o, layout.layer_begin[index], layout.layer_begin[index + 1],
                          layout.n_slots, layout.context, err) == 0) {
        rc = pipeline_mpi_serve(&st.stage, comm, coordinator, first_rank, index, layout.n_stages,
                                err);
        stage_close(&st);
    }
    engine_close(&layout);
    return rc;
}

void engine_close(struct engine *e)
{
    if (e->mpi) pipeline_mpi_close(e->mpi);
    if (e->local)
        for (int i = 0; i < e->n_stages; i++)
            stage_close(&e->local[i]);
    free(e->local);
    free(e->hidden);
    if (e->tok) tok_free(e->tok);
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

int engine_forward(struct engine *e, const struct stage_batch *b, float *logits, struct mm_err *err)
{
    if (e->mpi) return pipeline_mpi_forward(e->mpi, b, logits, err);
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
        if (stage_forward(&e->local[i].stage, b, e->hidden, logits, err)) return -1;
    return 0;
}
