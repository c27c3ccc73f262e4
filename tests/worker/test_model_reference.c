/* The forward pass against HF transformers: every position's logits of the
 * tiny random-weight fixtures (tools/make_model_fixtures.py) within 1e-4, and
 * identical greedy continuations, with and without the PEFT adapter, with the
 * adapter applied at run time and merged, and with the prompt fed in one
 * batch or in chunks that continue the KV cache. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "model_reference.h"
#include "forward.h"
#include "lora.h"
#include "model.h"

#define LOGIT_TOL 1e-4

/* Feeds `ids` into slot 0 from position `pos0` in chunks of `chunk`,
 * collecting every position's logits into out (may be NULL). */
static void feed(struct stage *s, const int32_t *ids, int n, int pos0, int chunk, int adapter,
                 float *out)
{
    int32_t pos[256], slot[256], ad[256];
    int vocab = s->model->cfg.vocab_size;
    for (int start = 0; start < n; start += chunk) {
        int m = n - start < chunk ? n - start : chunk;
        for (int i = 0; i < m; i++) {
            pos[i] = pos0 + start + i;
            slot[i] = 0;
            ad[i] = adapter;
        }
        float *logits = malloc((size_t)m * vocab * sizeof(float));
        struct stage_batch b = {
            .n = m, .tokens = ids + start, .pos = pos, .slot = slot, .adapter = ad};
        struct mm_err err = {{0}};
        REQUIRE(stage_forward(s, &b, NULL, logits, &err) == 0, "forward: %s", err.msg);
        if (out) memcpy(out + (size_t)start * vocab, logits, (size_t)m * vocab * sizeof(float));
        free(logits);
    }
}

static void check_logits(struct stage *s, const struct model_reference *r, int adapter,
                         const float *want, const char *what)
{
    size_t count = (size_t)r->n_prompt * r->vocab;
    float *got = malloc(count * sizeof(float));
    static const int chunks[] = {256, 1, 7};
    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        feed(s, r->prompt, r->n_prompt, 0, chunks[c], adapter, got);
        double d = max_abs_diff(got, want, count);
        CHECKF(d <= LOGIT_TOL, "%s, chunks of %d: max |logit - HF| = %g", what, chunks[c], d);
    }
    free(got);
}

static void check_greedy(struct stage *s, const struct model_reference *r, int adapter,
                         const int32_t *want, const char *what)
{
    int vocab = s->model->cfg.vocab_size, n = r->n_greedy_prompt;
    int32_t ids[128];
    memcpy(ids, r->greedy_prompt, (size_t)n * sizeof(int32_t));
    float *logits = malloc((size_t)n * vocab * sizeof(float));
    feed(s, ids, n, 0, n, adapter, logits);
    int same = 1;
    for (int t = 0; t < r->n_greedy; t++) {
        int next = k_argmax(t == 0 ? logits + (size_t)(n - 1) * vocab : logits, vocab);
        if (next != want[t]) {
            fprintf(stderr, "%s: greedy token %d is %d, HF gives %d\n", what, t, next, want[t]);
            same = 0;
            break;
        }
        ids[n + t] = next;
        feed(s, &ids[n + t], 1, n + t, 1, adapter, logits);
    }
    CHECKF(same, "%s: greedy continuation differs from HF", what);
    free(logits);
}

static void run_fixture(const char *name)
{
    char dir[1024], adir[1100], mpath[1100];
    test_path("MEMLLM_FIXTURES", "models/", dir, sizeof(dir));
    strncat(dir, name, sizeof(dir) - strlen(dir) - 1);
    snprintf(adir, sizeof(adir), "%s/adapter", dir);
    struct model_reference r;
    model_reference_load(dir, &r);
    /* HF fixtures are directories; llama.cpp ones are a model.gguf inside. */
    snprintf(mpath, sizeof(mpath), "%s/model.gguf", dir);
    struct mm_err err = {{0}};
    struct model *m = model_load(access(mpath, R_OK) == 0 ? mpath : dir, 0, -1, &err);
    REQUIRE(m, "%s", err.msg);
    CHECK(m->cfg.vocab_size == r.vocab);
    char what[256];
    if (!r.has_adapter) {
        struct stage s;
        REQUIRE(stage_init(&s, m, 1, 256, &err) == 0, "%s", err.msg);
        snprintf(what, sizeof(what), "%s", name);
        check_logits(&s, &r, -1, r.logits, what);
        check_greedy(&s, &r, -1, r.greedy, what);
        stage_free(&s);
        model_free(m);
        free(r.logits);
        return;
    }
    struct lora_adapter a;
    REQUIRE(lora_load(&a, m, adir, "test", &err) == 0, "%s", err.msg);
    struct stage s;
    REQUIRE(stage_init(&s, m, 1, 256, &err) == 0, "%s", err.msg);
    s.adapters = &a;
    s.n_adapters = 1;

    snprintf(what, sizeof(what), "%s base", name);
    check_logits(&s, &r, -1, r.logits, what);
    check_greedy(&s, &r, -1, r.greedy, what);
    snprintf(what, sizeof(what), "%s + LoRA", name);
    check_logits(&s, &r, 0, r.logits_lora, what);
    check_greedy(&s, &r, 0, r.greedy_lora, what);

    /* Merged: the base weights become W + scale B A; no adapter at run time. */
    REQUIRE(lora_merge(m, &a, &err) == 0, "%s", err.msg);
    s.n_adapters = 0;
    snprintf(what, sizeof(what), "%s + merged LoRA", name);
    check_logits(&s, &r, -1, r.logits_lora, what);
    check_greedy(&s, &r, -1, r.greedy_lora, what);
    stage_free(&s);
    lora_free(&a);
    model_free(m);
    free(r.logits);
    free(r.logits_lora);
}

int main(int argc, char **argv)
{
    REQUIRE(argc > 1, "usage: test_model_reference FIXTURE...");
    for (int i = 1; i < argc; i++)
        run_fixture(argv[i]);
    return check_report("test_model_reference");
}
