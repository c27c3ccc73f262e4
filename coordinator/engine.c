#include "engine.h"

#include <stdio.h>
#include <string.h>

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
    while (len > 1 && spec[len - 1] == '/') len--;
    size_t start = len;
    while (start > 0 && spec[start - 1] != '/') start--;
    size_t n = len - start < name_len - 1 ? len - start : name_len - 1;
    memcpy(name, spec + start, n);
    name[n] = 0;
}

int engine_open(struct engine *e, const struct engine_options *o, struct mm_err *err)
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
    e->model = model_load(o->model_path, 0, -1, err);
    if (!e->model) goto fail;
    e->tok = tok_load(o->model_path, err);
    if (!e->tok) goto fail;
    e->vocab = e->model->cfg.vocab_size;
    for (int i = 0; i < o->n_adapters; i++) {
        char name[128];
        const char *dir;
        adapter_name_dir(o->adapters[i], name, sizeof(name), &dir);
        if (lora_load(&e->adapters[i], e->model, dir, name, err)) goto fail;
        e->n_adapters++;
    }
    if (o->merge) {
        if (lora_merge(e->model, &e->adapters[0], err)) goto fail;
        e->merged = 1;
    }
    int ctx = o->context > 0 ? o->context : e->model->cfg.max_positions;
    if (stage_init(&e->stage, e->model, o->n_slots > 0 ? o->n_slots : 1, ctx, err)) goto fail;
    e->context = e->stage.kv.capacity;
    e->stage.adapters = e->merged ? NULL : e->adapters;
    e->stage.n_adapters = e->merged ? 0 : e->n_adapters;
    return 0;
fail:
    engine_close(e);
    return -1;
}

void engine_close(struct engine *e)
{
    stage_free(&e->stage);
    for (int i = 0; i < e->n_adapters; i++) lora_free(&e->adapters[i]);
    if (e->tok) tok_free(e->tok);
    model_free(e->model);
    memset(e, 0, sizeof(*e));
}

int engine_adapter(const struct engine *e, const char *name, struct mm_err *err)
{
    for (int i = 0; i < e->n_adapters; i++)
        if (!strcmp(e->adapters[i].name, name)) {
            if (e->merged) {
                mm_err_set(err, "adapter '%s' is merged into the weights: it is always on", name);
                return -1;
            }
            return i;
        }
    mm_err_set(err, "no adapter named '%s' is loaded", name);
    return -1;
}

int engine_forward(struct engine *e, const struct stage_batch *b, float *logits,
                   struct mm_err *err)
{
    return stage_forward(&e->stage, b, NULL, logits, err);
}
