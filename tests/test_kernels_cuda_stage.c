/* The GPU stage (worker/cuda/forward_cuda.h) end to end on the model
 * fixtures, against HF transformers' logits and greedy tokens (the ones
 * test_model_reference holds the CPU stage to) and against the CPU stage:
 *
 *   - every position's logits of the prompt fed at once, token by token and
 *     in chunks of 7; within 1e-4 of HF where the GPU computes in f32 (f32
 *     weights; half-precision weights on the one-token dot kernels); for
 *     half-precision weights through cuBLAS (activations rounded to bf16 /
 *     f16) top-1 agreement with the CPU stage >= 99%;
 *   - 32 greedy tokens identical to HF's, sampled by the device argmax (only
 *     ids cross to the host);
 *   - with the PEFT adapter applied at run time;
 *   - the layers cut into two GPU stages, hidden states passed between them;
 *   - a rollback: positions fed again after the cache holds them;
 *   - SmolLM2-135M Q4_1 (when deploy/fetch-models.sh has fetched it) against
 *     llama.cpp as test_smollm2_llamacpp holds the CPU: top-1 >= 95%,
 *     perplexity within 1%, and greedy tokens identical.
 * Without a device: the rank-to-device choice reports the missing device,
 * then the test prints SKIP. */
#include <jansson.h>
#include <string.h>
#include <unistd.h>

#include "forward.h"
#include "forward_cuda.h"
#include "kc_internal.h"
#include "lora.h"
#include "model.h"
#include "model_reference.h"
#include "test_kernels_cuda.h"

#define LOGIT_TOL 1e-4
#define MAX_IDS 1024

/* One or two GPU stages (hidden states through the host between them), or
 * the CPU stage. */
struct runner {
    struct stage_cuda *gpu[2];
    int n_gpu;
    struct stage *cpu;
    int vocab, dim;
};

/* Feeds ids into slot 0 from pos0 in chunks; out (may be NULL) gets every
 * position's logits, ids_out (may be NULL) their argmax. */
static void feed(struct runner *r, const int32_t *ids, int n, int pos0, int chunk, int adapter,
                 float *out, int32_t *ids_out)
{
    int32_t pos[MAX_IDS], slot[MAX_IDS], ad[MAX_IDS];
    float *hidden = malloc((size_t)chunk * r->dim * sizeof(float));
    for (int start = 0; start < n; start += chunk) {
        int m = n - start < chunk ? n - start : chunk;
        for (int i = 0; i < m; i++) {
            pos[i] = pos0 + start + i;
            slot[i] = 0;
            ad[i] = adapter;
        }
        struct stage_batch b = {
            .n = m, .tokens = ids + start, .pos = pos, .slot = slot, .adapter = ad};
        struct mm_err err = {{0}};
        float *lo = out ? out + (size_t)start * r->vocab : NULL;
        int32_t *io = ids_out ? ids_out + start : NULL;
        if (r->cpu) {
            REQUIRE(stage_forward(r->cpu, &b, NULL, lo, &err) == 0, "cpu forward: %s", err.msg);
        } else {
            for (int s = 0; s < r->n_gpu; s++) {
                int last = s == r->n_gpu - 1;
                REQUIRE(stage_cuda_forward(r->gpu[s], &b, hidden, last ? lo : NULL,
                                           last ? io : NULL, &err) == 0,
                        "cuda forward: %s", err.msg);
            }
        }
    }
    free(hidden);
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d; /* NaN counts as a failure */
    }
    return m;
}

static int argmax_row(const float *row, int vocab)
{
    return k_argmax(row, vocab);
}

/* Logits of the prompt in chunks of 256, 1 and 7. f32: whether the GPU
 * computes in f32 at every chunk size (f32 weights); half-precision weights
 * (f16 and bf16 dispatch alike) are f32 only where the dispatcher takes the
 * dot kernels. */
static void check_logits(struct runner *g, const struct model_reference *r, int adapter, int f32,
                         const float *want, const float *cpu, const char *what)
{
    size_t count = (size_t)r->n_prompt * r->vocab;
    float *got = malloc(count * sizeof(float));
    static const int chunks[] = {256, 1, 7};
    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        feed(g, r->prompt, r->n_prompt, 0, chunks[c], adapter, got, NULL);
        double d = max_abs_diff(got, want, count);
        if (f32 || kc_matmul_uses_dots(MM_BF16, chunks[c])) {
            CHECKF(d <= LOGIT_TOL, "%s, chunks of %d: max |logit - HF| = %g", what, chunks[c], d);
            continue;
        }
        int agree = 0;
        for (int t = 0; t < r->n_prompt; t++)
            agree += argmax_row(got + (size_t)t * r->vocab, r->vocab) ==
                     argmax_row(cpu + (size_t)t * r->vocab, r->vocab);
        double frac = (double)agree / r->n_prompt;
        printf("%s, chunks of %d: top-1 agreement with the CPU %.4f, max |logit - HF| %g\n", what,
               chunks[c], frac, d);
        CHECKF(frac >= 0.99, "%s, chunks of %d: top-1 agreement %.4f < 0.99", what, chunks[c],
               frac);
    }
    free(got);
}

/* The greedy prompt at once, then one token at a time, sampled on the
 * device. */
static void check_greedy(struct runner *g, const struct model_reference *r, int adapter,
                         const int32_t *want, const char *what)
{
    int n = r->n_greedy_prompt;
    int32_t ids[128], next[64];
    memcpy(ids, r->greedy_prompt, (size_t)n * sizeof(int32_t));
    feed(g, ids, n, 0, n, adapter, NULL, next);
    int same = 1;
    for (int t = 0; t < r->n_greedy; t++) {
        int tok = t == 0 ? next[n - 1] : next[0];
        if (tok != want[t]) {
            fprintf(stderr, "%s: greedy token %d is %d, HF gives %d\n", what, t, tok, want[t]);
            same = 0;
            break;
        }
        ids[n + t] = tok;
        feed(g, &ids[n + t], 1, n + t, 1, adapter, NULL, next);
    }
    CHECKF(same, "%s: greedy continuation differs from HF", what);
}

/* Feeding the prompt's last 5 positions again rolls the cache back to
 * before them: their logits come out as the first time. Token by token,
 * so that half-precision weights take the f32 dot kernels throughout. */
static void check_rollback(struct runner *g, const struct model_reference *r, const char *what)
{
    int n = r->n_prompt, back = 5;
    feed(g, r->prompt, n, 0, 1, -1, NULL, NULL);
    float *got = malloc((size_t)back * r->vocab * sizeof(float));
    feed(g, r->prompt + n - back, back, n - back, 1, -1, got, NULL);
    double d =
        max_abs_diff(got, r->logits + (size_t)(n - back) * r->vocab, (size_t)back * r->vocab);
    CHECKF(d <= LOGIT_TOL, "%s: after a rollback max |logit - HF| = %g", what, d);
    free(got);
}

static struct stage_cuda *open_gpu(const char *path, int begin, int end, struct model **m)
{
    struct mm_err err = {{0}};
    *m = model_load(path, begin, end, &err);
    REQUIRE(*m, "%s", err.msg);
    struct stage_cuda *s = stage_cuda_open(*m, 1, MAX_IDS, 0, &err);
    REQUIRE(s, "%s", err.msg);
    return s;
}

static void run_fixture(const char *name)
{
    char dir[1024], adir[1100], mpath[1100], path[1100];
    test_path("MEMLLM_FIXTURES", "models/", dir, sizeof(dir));
    strncat(dir, name, sizeof(dir) - strlen(dir) - 1);
    snprintf(adir, sizeof(adir), "%s/adapter", dir);
    snprintf(mpath, sizeof(mpath), "%s/model.gguf", dir);
    snprintf(path, sizeof(path), "%s", access(mpath, R_OK) == 0 ? mpath : dir);
    struct model_reference r;
    model_reference_load(dir, &r);
    struct mm_err err = {{0}};

    /* the CPU stage's logits: the reference where the GPU rounds to half */
    struct model *cm = model_load(path, 0, -1, &err);
    REQUIRE(cm, "%s", err.msg);
    int f32 = cm->layers[0].lin[LIN_Q].dtype == MM_F32;
    struct stage cs;
    REQUIRE(stage_init(&cs, cm, 1, MAX_IDS, &err) == 0, "%s", err.msg);
    struct runner cpu = {.cpu = &cs, .vocab = r.vocab, .dim = cm->cfg.dim};
    size_t count = (size_t)r.n_prompt * r.vocab;
    float *cpu_logits = malloc(count * sizeof(float));
    feed(&cpu, r.prompt, r.n_prompt, 0, r.n_prompt, -1, cpu_logits, NULL);

    struct model *m;
    struct runner g = {.n_gpu = 1, .vocab = r.vocab, .dim = cm->cfg.dim};
    g.gpu[0] = open_gpu(path, 0, -1, &m);
    char what[256];
    snprintf(what, sizeof(what), "%s on the GPU", name);
    check_logits(&g, &r, -1, f32, r.logits, cpu_logits, what);
    check_greedy(&g, &r, -1, r.greedy, what);
    check_rollback(&g, &r, what);

    if (r.has_adapter) {
        struct lora_adapter a;
        REQUIRE(lora_load(&a, m, adir, "test", &err) == 0, "%s", err.msg);
        REQUIRE(stage_cuda_add_adapter(g.gpu[0], &a, &err) == 0, "%s", err.msg);
        lora_free(&a);
        float *cpu_lora = malloc(count * sizeof(float));
        REQUIRE(lora_load(&a, cm, adir, "test", &err) == 0, "%s", err.msg);
        cs.adapters = &a;
        cs.n_adapters = 1;
        feed(&cpu, r.prompt, r.n_prompt, 0, r.n_prompt, 0, cpu_lora, NULL);
        snprintf(what, sizeof(what), "%s + LoRA on the GPU", name);
        check_logits(&g, &r, 0, f32, r.logits_lora, cpu_lora, what);
        check_greedy(&g, &r, 0, r.greedy_lora, what);
        cs.adapters = NULL;
        cs.n_adapters = 0;
        lora_free(&a);
        free(cpu_lora);
    }
    stage_cuda_free(g.gpu[0]);
    model_free(m);

    /* two stages: layers [0, L/2) and [L/2, L) */
    int half = cm->cfg.n_layers / 2;
    if (half > 0) {
        struct model *m0, *m1;
        struct runner two = {.n_gpu = 2, .vocab = r.vocab, .dim = cm->cfg.dim};
        two.gpu[0] = open_gpu(path, 0, half, &m0);
        two.gpu[1] = open_gpu(path, half, -1, &m1);
        snprintf(what, sizeof(what), "%s on two GPU stages", name);
        check_logits(&two, &r, -1, f32, r.logits, cpu_logits, what);
        check_greedy(&two, &r, -1, r.greedy, what);
        stage_cuda_free(two.gpu[0]);
        stage_cuda_free(two.gpu[1]);
        model_free(m0);
        model_free(m1);
    }
    stage_free(&cs);
    model_free(cm);
    free(cpu_logits);
    free(r.logits);
    free(r.logits_lora);
}

static int ids_from(json_t *arr, int32_t **out)
{
    size_t n = json_array_size(arr), i;
    json_t *v;
    *out = malloc((n ? n : 1) * sizeof(int32_t));
    json_array_foreach(arr, i, v)(*out)[i] = (int32_t)json_integer_value(v);
    return (int)n;
}

static void run_smollm2(void)
{
    char model_path[1024], ref_path[1024];
    test_path("MEMLLM_MODELS_DIR", "SmolLM2-135M-Instruct.Q4_1.gguf", model_path,
              sizeof(model_path));
    test_path("MEMLLM_FIXTURES", "llamacpp/smollm2_q4_1.json", ref_path, sizeof(ref_path));
    if (access(model_path, R_OK) != 0) {
        printf("SmolLM2 part skipped: %s is absent (run deploy/fetch-models.sh)\n", model_path);
        return;
    }
    json_error_t jerr;
    json_t *ref = json_load_file(ref_path, 0, &jerr);
    REQUIRE(ref, "%s: %s", ref_path, jerr.text);
    int32_t *ids, *top1, *gprompt, *gwant;
    int n_ids = ids_from(json_object_get(ref, "input_ids"), &ids);
    int n_pred = ids_from(json_object_get(ref, "top1"), &top1);
    int n_gprompt = ids_from(json_object_get(ref, "greedy_prompt_ids"), &gprompt);
    int n_gwant = ids_from(json_object_get(ref, "greedy_ids"), &gwant);
    double ref_ppl = json_number_value(json_object_get(ref, "ppl"));
    REQUIRE(n_pred == n_ids - 1 && n_pred > 0 && n_pred <= MAX_IDS, "reference is inconsistent");

    struct model *m;
    struct runner g = {.n_gpu = 1};
    g.gpu[0] = open_gpu(model_path, 0, -1, &m);
    g.vocab = m->cfg.vocab_size;
    g.dim = m->cfg.dim;
    float *logits = malloc((size_t)n_pred * g.vocab * sizeof(float));
    feed(&g, ids, n_pred, 0, 128, -1, logits, NULL);
    int agree = 0;
    double nll = 0.0;
    for (int i = 0; i < n_pred; i++) {
        const float *row = logits + (size_t)i * g.vocab;
        agree += argmax_row(row, g.vocab) == top1[i];
        float max = row[0];
        for (int j = 1; j < g.vocab; j++)
            max = row[j] > max ? row[j] : max;
        double sum = 0.0;
        for (int j = 0; j < g.vocab; j++)
            sum += exp((double)(row[j] - max));
        nll -= (double)(row[ids[i + 1]] - max) - log(sum);
    }
    double ppl = exp(nll / n_pred), agreement = (double)agree / n_pred;
    printf("SmolLM2 Q4_1 on the GPU: top-1 agreement with llama.cpp %.4f, perplexity %.4f vs "
           "%.4f\n",
           agreement, ppl, ref_ppl);
    CHECKF(agreement >= 0.95, "SmolLM2 on the GPU: top-1 agreement %.4f < 0.95", agreement);
    CHECKF(fabs(ppl / ref_ppl - 1.0) <= 0.01, "SmolLM2 on the GPU: perplexity %.4f vs %.4f", ppl,
           ref_ppl);

    struct model_reference r = {
        .n_greedy_prompt = n_gprompt, .n_greedy = n_gwant, .vocab = g.vocab};
    REQUIRE(n_gprompt <= 64 && n_gwant <= 64, "greedy reference too long");
    memcpy(r.greedy_prompt, gprompt, (size_t)n_gprompt * sizeof(int32_t));
    check_greedy(&g, &r, -1, gwant, "SmolLM2 Q4_1 on the GPU");

    stage_cuda_free(g.gpu[0]);
    model_free(m);
    free(logits);
    free(ids);
    free(top1);
    free(gprompt);
    free(gwant);
    json_decref(ref);
}

int main(int argc, char **argv)
{
    REQUIRE(argc > 1, "usage: test_kernels_cuda_stage FIXTURE...");
    if (kc_device_count() == 0) {
        struct mm_err err = {{0}};
        CHECKF(stage_cuda_local_device(&err) == -1 && strstr(err.msg, "no CUDA device"),
               "the device choice without a device: \"%s\"", err.msg);
    } else {
        setenv("OMPI_COMM_WORLD_LOCAL_RANK", "3", 1);
        struct mm_err err = {{0}};
        CHECK(stage_cuda_local_device(&err) == 3 % kc_device_count());
        unsetenv("OMPI_COMM_WORLD_LOCAL_RANK");
    }
    kc_ctx_free(cuda_test_ctx("test_kernels_cuda_stage"));
    for (int i = 1; i < argc; i++)
        run_fixture(argv[i]);
    run_smollm2();
    return check_report("test_kernels_cuda_stage");
}
