/* The GPU stage and a PEFT adapter on the LM head and token rows
 * (tools/make_adapter_head_fixtures.py; test_lora_head holds the CPU stage
 * to it), on tiny-llama (tied embeddings) and tiny-mistral (untied), on one
 * stage and on two:
 *
 *   - stage_cuda_add_adapter refuses the adapter, naming it and what it
 *     does not apply, on every stage that would need it (the first for the
 *     rows, the last for the head's LoRA and, tied, the rows), rather than
 *     run without those parts;
 *   - merged (lora_merge: f32 copies of the embedding and the head, no
 *     longer one matrix for tiny-llama), the GPU stage gives every prompt
 *     position's logits within 1e-4 of HF PEFT's, the prompt fed at once and
 *     token by token.
 *
 * Without a device it prints SKIP. */
#include <string.h>

#include "forward_cuda.h"
#include "lora.h"
#include "model.h"
#include "model_reference.h"
#include "test_kernels_cuda.h"

#define LOGIT_TOL 1e-4
#define MAX_TOKENS 256

struct gpu_pipeline {
    struct model *model[2];
    struct stage_cuda *stage[2];
    int n;
};

/* The prompt into slot 0 from position 0 in chunks of `chunk` through the
 * stages, every position's logits into out [n_prompt, vocab]. */
static void feed(struct gpu_pipeline *p, const struct model_reference *r, int chunk, float *out)
{
    struct mm_err err = {{0}};
    int32_t pos[MAX_TOKENS], slot[MAX_TOKENS];
    float *hidden = malloc((size_t)MAX_TOKENS * p->model[0]->cfg.dim * sizeof(float));
    REQUIRE(hidden, "out of memory");
    for (int start = 0; start < r->n_prompt; start += chunk) {
        int n = r->n_prompt - start < chunk ? r->n_prompt - start : chunk;
        for (int i = 0; i < n; i++) {
            pos[i] = start + i;
            slot[i] = 0;
        }
        struct stage_batch b = {.n = n, .tokens = r->prompt + start, .pos = pos, .slot = slot};
        for (int i = 0; i < p->n; i++)
            REQUIRE(stage_cuda_forward(p->stage[i], &b, hidden, out + (size_t)start * r->vocab,
                                       NULL, &err) == 0,
                    "%s", err.msg);
    }
    free(hidden);
}

static void run(const char *name, int n_stages)
{
    static const int cuts[2][3] = {{0, -1, 0}, {0, 1, -1}};
    char dir[1024], adapter[1100];
    test_path("MEMLLM_FIXTURES", "models/", dir, sizeof(dir));
    strncat(dir, name, sizeof(dir) - strlen(dir) - 1);
    snprintf(adapter, sizeof(adapter), "%s/adapter-head", dir);
    struct model_reference r;
    model_reference_load(dir, &r);
    size_t count = (size_t)r.n_prompt * r.vocab;
    float *peft = model_reference_f32(adapter, "logits.f32", count);
    float *got = malloc(count * sizeof(float));
    REQUIRE(got, "out of memory");

    struct gpu_pipeline p = {.n = n_stages};
    struct mm_err err = {{0}};
    for (int i = 0; i < n_stages; i++) {
        struct model *m = model_load(dir, cuts[n_stages - 1][i], cuts[n_stages - 1][i + 1], &err);
        REQUIRE(m, "%s", err.msg);
        struct lora_adapter a;
        REQUIRE(lora_load(&a, m, adapter, "head-and-rows", &err) == 0, "%s", err.msg);
        CHECKF(lora_adapts_ends(&a), "%s, stage %d of %d: nothing of the head or rows loaded", name,
               i, n_stages);
        struct stage_cuda *gpu = stage_cuda_open(m, 1, MAX_TOKENS, 0, &err);
        REQUIRE(gpu, "%s", err.msg);
        struct mm_err refused = {{0}};
        int rc = stage_cuda_add_adapter(gpu, &a, &refused);
        CHECKF(rc != 0 && strstr(refused.msg, "'head-and-rows'") &&
                   strstr(refused.msg, "LM head or token rows"),
               "%s, stage %d of %d: adding the adapter: %s", name, i, n_stages,
               rc ? refused.msg : "accepted");
        stage_cuda_free(gpu);

        REQUIRE(lora_merge(m, &a, &err) == 0, "%s", err.msg);
        lora_free(&a);
        p.model[i] = m;
        p.stage[i] = stage_cuda_open(m, 1, MAX_TOKENS, 0, &err);
        REQUIRE(p.stage[i], "%s", err.msg);
    }
    static const int chunks[] = {MAX_TOKENS, 1};
    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        feed(&p, &r, chunks[c], got);
        double d = max_abs_diff(got, peft, count);
        CHECKF(d <= LOGIT_TOL,
               "%s merged on %d GPU stage(s), chunks of %d: max |logit - PEFT| = %g", name,
               n_stages, chunks[c], d);
    }
    for (int i = 0; i < n_stages; i++) {
        stage_cuda_free(p.stage[i]);
        model_free(p.model[i]);
    }
    free(got);
    free(peft);
    free(r.logits);
    free(r.logits_lora);
}

int main(void)
{
    kc_ctx_free(cuda_test_ctx("test_lora_head_cuda"));
    for (int stages = 1; stages <= 2; stages++) {
        run("tiny-llama", stages);
        run("tiny-mistral", stages);
    }
    return check_report("test_lora_head_cuda");
}
