/* A stage this process computes: its layers, adapters and KV cache, on the
 * CPU (worker/forward.h) or on a GPU (worker/cuda/forward_cuda.h). Both run
 * the same batch rules, so callers never ask which. */
#include "engine.h"

#include <string.h>

#ifdef MEMLLM_HAVE_CUDA
#include "forward_cuda.h"
#endif

void engine_adapter_name_dir(const char *spec, char *name, size_t name_len, const char **dir)
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

/* The GPU this rank uses (its node-local rank's), the weights and the
 * unmerged adapters uploaded, the KV cache on the device; batch-invariant
 * numerics unless fast (--cuda-fast). */
static int open_gpu(struct engine_stage *st, int n_adapters, int n_slots, int context, int fast,
                    struct mm_err *err)
{
#ifdef MEMLLM_HAVE_CUDA
    int device = stage_cuda_local_device(err);
    if (device < 0) {
        mm_err_prefix(err, "--device cuda");
        return -1;
    }
    st->gpu = stage_cuda_open(st->model, n_slots, context, device, err);
    if (!st->gpu) return -1;
    kc_ctx_set_numerics(stage_cuda_context(st->gpu),
                        fast ? KC_NUMERICS_FAST : KC_NUMERICS_INVARIANT);
    for (int i = 0; i < n_adapters; i++)
        if (stage_cuda_add_adapter(st->gpu, &st->adapters[i], err)) return -1;
    return 0;
#else
    (void)st;
    (void)n_adapters;
    (void)n_slots;
    (void)context;
    (void)fast;
    mm_err_set(err, "--device cuda: this memllm was built without the CUDA backend (nvcc was "
                    "not found when it was built)");
    return -1;
#endif
}

void engine_stage_close(struct engine_stage *st)
{
#ifdef MEMLLM_HAVE_CUDA
    stage_cuda_free(st->gpu);
#endif
    stage_free(&st->stage);
    for (int i = 0; i < st->n_adapters; i++)
        lora_free(&st->adapters[i]);
    model_free(st->model);
    memset(st, 0, sizeof(*st));
}

int engine_stage_open(struct engine_stage *st, const struct engine_options *o, int begin, int end,
                      int n_slots, int context, struct mm_err *err)
{
    memset(st, 0, sizeof(*st));
    st->model = model_load(o->model_path, begin, end, err);
    if (!st->model) return -1;
    for (int i = 0; i < o->n_adapters; i++) {
        char name[ENGINE_ADAPTER_NAME];
        const char *dir;
        engine_adapter_name_dir(o->adapters[i], name, sizeof(name), &dir);
        if (lora_load(&st->adapters[i], st->model, dir, name, err)) goto fail;
        st->n_adapters++;
    }
    if (o->merge && lora_merge(st->model, &st->adapters[0], err)) goto fail;
    int live_adapters = o->merge ? 0 : st->n_adapters;
    if (o->device == ENGINE_DEVICE_CUDA) {
        if (open_gpu(st, live_adapters, n_slots, context, o->cuda_fast, err)) goto fail;
        return 0;
    }
    if (stage_init(&st->stage, st->model, n_slots, context, err)) goto fail;
    st->stage.adapters = live_adapters ? st->adapters : NULL;
    st->stage.n_adapters = live_adapters;
    return 0;
fail:
    engine_stage_close(st);
    return -1;
}

int engine_stage_kv_share(struct engine_stage *st, int dst, int src, int len, struct mm_err *err)
{
#ifdef MEMLLM_HAVE_CUDA
    if (st->gpu) return stage_cuda_kv_share(st->gpu, dst, src, len, err);
#endif
    return stage_kv_share(&st->stage, dst, src, len, err);
}

int engine_stage_forward(struct engine_stage *st, const struct stage_batch *b, float *hidden,
                         float *logits, struct mm_err *err)
{
#ifdef MEMLLM_HAVE_CUDA
    if (st->gpu) return stage_cuda_forward(st->gpu, b, hidden, logits, NULL, err);
#endif
    return stage_forward(&st->stage, b, hidden, logits, err);
}
