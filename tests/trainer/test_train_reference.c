/* memllm's LoRA gradients and AdamW steps against PyTorch + PEFT
 * (tools/make_train_reference.py -> tests/fixtures/train/<model>/: grads.safetensors,
 * steps/, logits.safetensors; tools/README.md), on the
 * tiny Mistral (sliding window, GQA, untied head) and the tiny Llama (tied
 * embeddings, rank and alpha patterns), with a loss mask, dropout off, LoRA
 * on every linear layer and the LM head, and MemLLM's three tokens'
 * embedding rows trainable:
 *   - the batch loss and the gradient of every trainable tensor, within
 *     1e-4 of the reference relative to the tensor's largest element;
 *   - `memllm train --init` for 3 AdamW steps (warmup, decay, clipping,
 *     weight decay) writes the tensors PyTorch reaches, within 1e-4 of each
 *     tensor's largest element. Except where an element's gradient is below
 *     1e-4 of its tensor's largest: Adam divides the moment by its own
 *     magnitude, so there a rounding-sized gradient moves the element by up
 *     to the learning rate whichever way its sign falls (2 of tiny-llama's
 *     11840 elements); those must stay within lr x steps. The same from
 *     tiny-llama's GGUF (Q/K rows permuted for llama.cpp's rope).
 *
 *   - inference with an adapter that adapts the LM head and token rows, made
 *     by PEFT (init/) and by memllm train (trained/), gives the logits HF
 *     PEFT gives with it, run time and merged.
 *
 *   test_train_reference MEMLLM_BIN FIXTURES_DIR */
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "forward.h"
#include "lora.h"
#include "optimizer.h"
#include "run_cmd.h"
#include "safetensors.h"
#include "tokenizer.h"
#include "train_data.h"
#include "train_model.h"

static const char *bin, *fixtures;

/* max |a - b| / max |b| over a tensor. */
static double rel_error(const float *a, const struct st_tensor *ref)
{
    const float *b = (const float *)ref->data;
    size_t n = ref->nbytes / sizeof(float);
    double diff = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        diff = d > diff ? d : diff;
        scale = fabs(b[i]) > scale ? fabs(b[i]) : scale;
    }
    return scale > 0 ? diff / scale : diff;
}

/* The reference's tensor `name` (the adapter's names), f32 of `count` values. */
static const struct st_tensor *ref_tensor(const struct st_file *ref, const char *name, size_t count)
{
    const struct st_tensor *t = st_find(ref, name);
    REQUIRE(t && t->dtype == MM_F32 && t->nbytes == count * sizeof(float),
            "reference lacks f32 '%s' of %zu values", name, count);
    return t;
}

/* A fixture model with its tokenizer and the reference's examples. */
struct fixture_run {
    struct model *m;
    struct tokenizer *tok;
    struct train_set set;
};

static void fixture_open(struct fixture_run *f, const char *name, const char *dir)
{
    char path[2048];
    struct mm_err err = {{0}};
    snprintf(path, sizeof(path), "%s/models/%s", fixtures, name);
    f->m = model_load(path, 0, -1, &err);
    REQUIRE(f->m, "%s", err.msg);
    f->tok = tok_load(path, &err);
    REQUIRE(f->tok, "%s", err.msg);
    snprintf(path, sizeof(path), "%s/examples.jsonl", dir);
    REQUIRE(train_set_load(&f->set, path, f->tok, 256, &err) == 0, "%s", err.msg);
}

static void fixture_close(struct fixture_run *f)
{
    train_set_free(&f->set);
    tok_free(f->tok);
    model_free(f->m);
}

static void gradients(const char *name, const char *dir, const struct st_file *ref)
{
    char path[2048];
    struct mm_err err = {{0}};
    struct fixture_run f;
    fixture_open(&f, name, dir);
    struct model *m = f.m;
    const struct train_set set = f.set;
    struct train_params p;
    snprintf(path, sizeof(path), "%s/init", dir);
    REQUIRE(train_params_load(&p, m, path, 0.0f, &err) == 0, "%s", err.msg);
    struct train_model tm;
    REQUIRE(train_model_init(&tm, m, &p, 256, &err) == 0, "%s", err.msg);
    struct grad_sum sum;
    REQUIRE(grad_sum_init(&sum, p.count, &err) == 0, "%s", err.msg);
    float *g = malloc(p.count * sizeof(float));
    double loss_sum = 0;
    for (int i = 0; i < set.n; i++) {
        double loss;
        int n_loss;
        const struct train_example *e = &set.ex[i];
        REQUIRE(train_model_example(&tm, e->tokens, e->target, e->n, (float)(1.0 / set.targets), 0,
                                    g, &loss, &n_loss, &err) == 0,
                "%s", err.msg);
        CHECK(n_loss == e->n_target);
        REQUIRE(grad_sum_add(&sum, g, &err) == 0, "%s", err.msg);
        loss_sum += loss;
    }
    grad_sum_read(&sum, g);
    const struct st_tensor *l = st_find(ref, "loss");
    REQUIRE(l, "reference lacks 'loss'");
    double want = ((const float *)l->data)[0], got = loss_sum / (double)set.targets;
    CHECKF(fabs(got - want) <= 1e-5 * fabs(want), "%s: loss %.7f, PyTorch %.7f", name, got, want);
    for (int i = 0; i < p.n_t; i++) {
        const struct train_tensor *t = &p.t[i];
        size_t count = (size_t)(t->rows * t->cols);
        double e = rel_error(g + t->off, ref_tensor(ref, t->name, count));
        CHECKF(e <= 1e-4, "%s: gradient of %s off by %.3g of its largest element", name, t->name,
               e);
    }
    printf("%s: loss %.6f (PyTorch %.6f), %d gradients checked\n", name, got, want, p.n_t);
    free(g);
    grad_sum_free(&sum);
    train_model_free(&tm);
    train_params_free(&p);
    fixture_close(&f);
}

/* `model` (under models/) trained from the reference's init for 3 steps. */
static void steps(const char *name, const char *model_rel, const char *dir,
                  const struct st_file *grads, const struct st_file *stepped)
{
    char model[2048], init[2048], data[2048], out[] = "/tmp/memllm_trainref_XXXXXX";
    REQUIRE(mkdtemp(out), "mkdtemp");
    snprintf(model, sizeof(model), "%s/models/%s", fixtures, model_rel);
    snprintf(init, sizeof(init), "%s/init", dir);
    snprintf(data, sizeof(data), "%s/examples.jsonl", dir);
    const char *args[] = {
        "train", "--model",  model, "--init",         init,   "--data",          data, "--out",
        out,     "--batch",  "3",   "--epochs",       "4",    "--max-steps",     "3",  "--lr",
        "1e-2",  "--warmup", "1",   "--weight-decay", "0.01", "--max-grad-norm", "1",  "--dropout",
        "0",     "--quiet",  NULL};
    struct cmd_result r = run_memllm(NULL, bin, 0, args, NULL);
    REQUIRE(r.status == 0, "memllm train exited %d: %s", r.status, r.err);
    cmd_result_free(&r);
    char path[2100];
    snprintf(path, sizeof(path), "%s/adapter_model.safetensors", out);
    struct mm_err err = {{0}};
    struct st_file *got = st_open(path, &err);
    REQUIRE(got, "%s", err.msg);
    int checked = 0, excused = 0;
    for (size_t i = 0; i < got->n_tensors; i++) {
        const struct st_tensor *t = &got->tensors[i];
        REQUIRE(t->dtype == MM_F32, "%s is not f32", t->name);
        size_t count = t->nbytes / sizeof(float);
        const float *x = (const float *)t->data;
        const float *want = (const float *)ref_tensor(stepped, t->name, count)->data;
        const float *g = (const float *)ref_tensor(grads, t->name, count)->data;
        double gmax = 0, wmax = 0;
        for (size_t j = 0; j < count; j++) {
            gmax = fabs(g[j]) > gmax ? fabs(g[j]) : gmax;
            wmax = fabs(want[j]) > wmax ? fabs(want[j]) : wmax;
        }
        for (size_t j = 0; j < count; j++) {
            double d = fabs((double)x[j] - want[j]);
            if (d <= 1e-4 * wmax) continue;
            int tiny = fabs(g[j]) < 1e-4 * gmax;
            excused += tiny;
            CHECKF(tiny && d <= 3 * 1e-2, "%s: after 3 steps %s[%zu] is %.8g, PyTorch %.8g", name,
                   t->name, j, (double)x[j], (double)want[j]);
        }
        checked++;
    }
    printf("%s: 3 AdamW steps: %d tensors checked, %d element(s) with a rounding-sized "
           "gradient excused\n",
           name, checked, excused);
    CHECKF(checked == 31, "%s: %d tensors in the trained adapter, PEFT has 31", name, checked);
    st_close(got);
    char cmd[2300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", out);
    CHECK(system(cmd) == 0);
}

/* Largest |memllm - PEFT| logit allowed, as test_model_reference.c's. */
#define LOGIT_TOL 1e-4

/* Example 0's logits through the inference stage with adapter dir `adapter`
 * (at run time, then merged) against PEFT's `key` logits. */
static void inference(const char *name, const char *dir, const char *adapter, const char *key,
                      const struct st_file *ref)
{
    char path[2048];
    struct mm_err err = {{0}};
    struct fixture_run f;
    fixture_open(&f, name, dir);
    struct model *m = f.m;
    const struct train_example *e = &f.set.ex[0];
    int vocab = m->cfg.vocab_size;
    const struct st_tensor *want = st_find(ref, key);
    REQUIRE(want && want->nbytes == (size_t)e->n * vocab * sizeof(float),
            "reference lacks %s for %d tokens", key, e->n);
    struct lora_adapter a;
    snprintf(path, sizeof(path), "%s/%s", dir, adapter);
    REQUIRE(lora_load(&a, m, path, adapter, &err) == 0, "%s", err.msg);
    CHECKF(lora_adapts_ends(&a), "%s/%s: no head LoRA or token rows loaded", name, adapter);
    struct stage s;
    REQUIRE(stage_init(&s, m, 1, 256, &err) == 0, "%s", err.msg);
    float *logits = malloc((size_t)e->n * vocab * sizeof(float));
    int32_t pos[256], slot[256], ad[256];
    for (int merged = 0; merged < 2; merged++) {
        if (merged) REQUIRE(lora_merge(m, &a, &err) == 0, "%s", err.msg);
        s.adapters = merged ? NULL : &a;
        s.n_adapters = merged ? 0 : 1;
        for (int i = 0; i < e->n; i++) {
            pos[i] = i;
            slot[i] = 0;
            ad[i] = merged ? -1 : 0;
        }
        struct stage_batch b = {
            .n = e->n, .tokens = e->tokens, .pos = pos, .slot = slot, .adapter = ad};
        REQUIRE(stage_forward(&s, &b, NULL, logits, &err) == 0, "%s", err.msg);
        double d = max_abs_diff(logits, (const float *)want->data, (size_t)e->n * vocab);
        CHECKF(d <= LOGIT_TOL, "%s with %s%s: max |logit - PEFT| = %g", name, adapter,
               merged ? " merged" : "", d);
        printf("%s with %s%s: max |logit - PEFT| = %.3g\n", name, adapter, merged ? " merged" : "",
               d);
    }
    free(logits);
    stage_free(&s);
    lora_free(&a);
    fixture_close(&f);
}

static struct st_file *open_reference(const char *dir, const char *file)
{
    char path[1400];
    struct mm_err err = {{0}};
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    struct st_file *f = st_open(path, &err);
    REQUIRE(f, "%s", err.msg);
    return f;
}

int main(int argc, char **argv)
{
    REQUIRE(argc == 3, "usage: test_train_reference MEMLLM_BIN FIXTURES_DIR");
    bin = argv[1];
    fixtures = argv[2];
    const char *names[] = {"tiny-mistral", "tiny-llama"};
    for (int i = 0; i < 2; i++) {
        char dir[1200];
        snprintf(dir, sizeof(dir), "%s/train/%s", fixtures, names[i]);
        struct st_file *grads = open_reference(dir, "grads.safetensors");
        struct st_file *stepped = open_reference(dir, "steps/adapter_model.safetensors");
        struct st_file *logits = open_reference(dir, "logits.safetensors");
        gradients(names[i], dir, grads);
        inference(names[i], dir, "init", "init", logits);
        inference(names[i], dir, "trained", "trained", logits);
        steps(names[i], names[i], dir, grads, stepped);
        /* the same Llama as GGUF, whose Q/K rows are permuted for llama.cpp's
         * rope: the adapter it trains must come out in PEFT's order */
        if (i == 1)
            steps("tiny-llama (GGUF)", "tiny-llama-gguf-f32/model.gguf", dir, grads, stepped);
        st_close(logits);
        st_close(stepped);
        st_close(grads);
    }
    return check_report("test_train_reference");
}
