/* The CUDA trainer (worker/train/cuda) against PyTorch + PEFT and against
 * the CPU trainer, on the fixtures test_train_reference uses (the tiny
 * Mistral: sliding window, GQA, untied head; the tiny Llama: tied
 * embeddings, rank and alpha patterns; LoRA on every linear layer and the
 * LM head, MemLLM's three token rows trainable, a loss mask):
 *   - the batch loss within 1e-5 and every LoRA gradient within 1e-4 of
 *     PEFT's (relative to the tensor's largest element), as the CPU test;
 *   - with dropout 0.1, each example's gradients within 1e-4 of the CPU
 *     trainer's (both draw the same masks), and on tiny-llama's GGUF too;
 *   - an example run twice gives the same bits; the forward alone gives
 *     the loss the training run gave;
 *   - bad examples (a token outside the vocabulary, too long) are refused.
 * Without a device it prints SKIP.
 *
 *   test_train_cuda FIXTURES_DIR */
#include <string.h>

#include "check.h"
#include "kernels_cuda.h"
#include "optimizer.h"
#include "safetensors.h"
#include "tokenizer.h"
#include "train_data.h"
#include "train_model.h"
#include "train_model_cuda.h"

static const char *fixtures;

struct fixture {
    struct model *m;
    struct train_set set;
};

static void fixture_open(struct fixture *f, const char *model, const char *train)
{
    char path[2048];
    struct mm_err err = {{0}};
    snprintf(path, sizeof(path), "%s/models/%s", fixtures, model);
    f->m = model_load(path, 0, -1, &err);
    REQUIRE(f->m, "%s", err.msg);
    struct tokenizer *tok = tok_load(path, &err);
    REQUIRE(tok, "%s", err.msg);
    snprintf(path, sizeof(path), "%s/train/%s/examples.jsonl", fixtures, train);
    REQUIRE(train_set_load(&f->set, path, tok, 256, &err) == 0, "%s", err.msg);
    tok_free(tok);
}

static void fixture_close(struct fixture *f)
{
    train_set_free(&f->set);
    model_free(f->m);
}

static void load_params(struct train_params *p, const struct model *m, const char *train,
                        float dropout)
{
    char path[2048];
    struct mm_err err = {{0}};
    snprintf(path, sizeof(path), "%s/train/%s/init", fixtures, train);
    REQUIRE(train_params_load(p, m, path, dropout, &err) == 0, "%s", err.msg);
}

/* max |a - b| / max |b| over n values. */
static double rel_error(const float *a, const float *b, size_t n)
{
    double diff = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        diff = d > diff ? d : diff;
        scale = fabs(b[i]) > scale ? fabs(b[i]) : scale;
    }
    return scale > 0 ? diff / scale : diff;
}

static void against_peft(const char *name)
{
    char path[2048];
    struct mm_err err = {{0}};
    struct fixture f;
    fixture_open(&f, name, name);
    struct train_params p;
    load_params(&p, f.m, name, 0.0f);
    struct train_model_cuda *gpu = train_model_cuda_init(f.m, &p, 256, 0, &err);
    REQUIRE(gpu, "%s", err.msg);
    struct grad_sum sum;
    REQUIRE(grad_sum_init(&sum, p.count, &err) == 0, "%s", err.msg);
    float *g = malloc(p.count * sizeof(float)), *g2 = malloc(p.count * sizeof(float));
    REQUIRE(g && g2, "out of memory");
    double loss_sum = 0;
    for (int i = 0; i < f.set.n; i++) {
        const struct train_example *e = &f.set.ex[i];
        double loss, loss2, loss_fwd;
        int n_loss;
        float scale = (float)(1.0 / f.set.targets);
        REQUIRE(train_model_cuda_example(gpu, e->tokens, e->target, e->n, scale, 0, g, &loss,
                                         &n_loss, &err) == 0,
                "%s", err.msg);
        CHECK(n_loss == e->n_target);
        REQUIRE(train_model_cuda_example(gpu, e->tokens, e->target, e->n, scale, 0, g2, &loss2,
                                         &n_loss, &err) == 0,
                "%s", err.msg);
        CHECKF(loss == loss2 && !memcmp(g, g2, p.count * sizeof(float)),
               "%s: example %d run twice gave different bits", name, i);
        REQUIRE(train_model_cuda_example(gpu, e->tokens, e->target, e->n, 1.0f, 0, NULL, &loss_fwd,
                                         &n_loss, &err) == 0,
                "%s", err.msg);
        CHECKF(loss_fwd == loss, "%s: example %d: forward alone %.9g, training %.9g", name, i,
               loss_fwd, loss);
        REQUIRE(grad_sum_add(&sum, g, &err) == 0, "%s", err.msg);
        loss_sum += loss;
    }
    grad_sum_read(&sum, g);
    snprintf(path, sizeof(path), "%s/train/%s/grads.safetensors", fixtures, name);
    struct st_file *ref = st_open(path, &err);
    REQUIRE(ref, "%s", err.msg);
    const struct st_tensor *l = st_find(ref, "loss");
    REQUIRE(l, "reference lacks 'loss'");
    double want = ((const float *)l->data)[0], got = loss_sum / (double)f.set.targets;
    CHECKF(fabs(got - want) <= 1e-5 * fabs(want), "%s: loss %.7f, PyTorch %.7f", name, got, want);
    for (int i = 0; i < p.n_t; i++) {
        const struct train_tensor *t = &p.t[i];
        size_t count = (size_t)(t->rows * t->cols);
        const struct st_tensor *rt = st_find(ref, t->name);
        REQUIRE(rt && rt->dtype == MM_F32 && rt->nbytes == count * sizeof(float),
                "reference lacks f32 '%s'", t->name);
        double e = rel_error(g + t->off, (const float *)rt->data, count);
        CHECKF(e <= 1e-4, "%s: GPU gradient of %s off by %.3g of its largest element", name,
               t->name, e);
    }
    printf("%s: GPU loss %.6f (PyTorch %.6f), %d gradients checked\n", name, got, want, p.n_t);

    /* bad examples */
    const struct train_example *e = &f.set.ex[0];
    int32_t *bad = malloc((size_t)e->n * sizeof(int32_t));
    REQUIRE(bad, "out of memory");
    memcpy(bad, e->tokens, (size_t)e->n * sizeof(int32_t));
    bad[1] = f.m->cfg.vocab_size;
    double loss;
    int n_loss;
    err.msg[0] = 0;
    CHECK(train_model_cuda_example(gpu, bad, e->target, e->n, 1.0f, 0, g, &loss, &n_loss, &err) ==
              -1 &&
          strstr(err.msg, "outside the vocabulary"));
    err.msg[0] = 0;
    CHECK(train_model_cuda_example(gpu, e->tokens, e->target, 257, 1.0f, 0, g, &loss, &n_loss,
                                   &err) == -1 &&
          strstr(err.msg, "must have 2 to 256"));
    free(bad);
    st_close(ref);
    free(g);
    free(g2);
    grad_sum_free(&sum);
    train_model_cuda_free(gpu);
    train_params_free(&p);
    fixture_close(&f);
}

/* Each example's gradients with dropout on, GPU against CPU. */
static void against_cpu(const char *model, const char *train)
{
    struct mm_err err = {{0}};
    struct fixture f;
    fixture_open(&f, model, train);
    struct train_params p;
    load_params(&p, f.m, train, 0.1f);
    struct train_model cpu;
    REQUIRE(train_model_init(&cpu, f.m, &p, 256, &err) == 0, "%s", err.msg);
    struct train_model_cuda *gpu = train_model_cuda_init(f.m, &p, 256, 0, &err);
    REQUIRE(gpu, "%s", err.msg);
    float *gc = malloc(p.count * sizeof(float)), *gg = malloc(p.count * sizeof(float));
    REQUIRE(gc && gg, "out of memory");
    double worst = 0;
    for (int i = 0; i < f.set.n; i++) {
        const struct train_example *e = &f.set.ex[i];
        double lc, lg;
        int nc, ng;
        uint64_t key = 0x1234 + (uint64_t)i;
        REQUIRE(train_model_example(&cpu, e->tokens, e->target, e->n, 0.01f, key, gc, &lc, &nc,
                                    &err) == 0,
                "%s", err.msg);
        REQUIRE(train_model_cuda_example(gpu, e->tokens, e->target, e->n, 0.01f, key, gg, &lg, &ng,
                                         &err) == 0,
                "%s", err.msg);
        CHECKF(nc == ng && fabs(lc - lg) <= 1e-5 * fabs(lc),
               "%s: example %d: loss CPU %.7f, GPU %.7f", model, i, lc, lg);
        for (int t = 0; t < p.n_t; t++) {
            size_t count = (size_t)(p.t[t].rows * p.t[t].cols);
            double e = rel_error(gg + p.t[t].off, gc + p.t[t].off, count);
            worst = e > worst ? e : worst;
            CHECKF(e <= 1e-4, "%s, dropout 0.1: example %d: %s off by %.3g", model, i, p.t[t].name,
                   e);
        }
    }
    printf("%s, dropout 0.1: GPU within %.2g of the CPU trainer over %d examples\n", model, worst,
           f.set.n);
    free(gc);
    free(gg);
    train_model_cuda_free(gpu);
    train_model_free(&cpu);
    train_params_free(&p);
    fixture_close(&f);
}

int main(int argc, char **argv)
{
    REQUIRE(argc == 2, "usage: test_train_cuda FIXTURES_DIR");
    fixtures = argv[1];
    if (kc_device_count() == 0) {
        struct mm_err err = {{0}};
        struct fixture f;
        fixture_open(&f, "tiny-llama", "tiny-llama");
        struct train_params p;
        load_params(&p, f.m, "tiny-llama", 0.0f);
        struct train_model_cuda *gpu = train_model_cuda_init(f.m, &p, 256, 0, &err);
        CHECKF(gpu == NULL && err.msg[0], "no device, yet the CUDA trainer opened: \"%s\"",
               err.msg);
        train_params_free(&p);
        fixture_close(&f);
        printf("test_train_cuda: SKIP: no CUDA device (%s)\n", err.msg);
        return check_report("test_train_cuda");
    }
    against_peft("tiny-mistral");
    against_peft("tiny-llama");
    against_cpu("tiny-mistral", "tiny-mistral");
    against_cpu("tiny-llama", "tiny-llama");
    against_cpu("tiny-llama-gguf-f32/model.gguf", "tiny-llama");
    return check_report("test_train_cuda");
}
