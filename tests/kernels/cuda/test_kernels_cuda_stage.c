/* The GPU stage (worker/cuda/forward_cuda.h) end to end on the model
 * fixtures, against HF transformers' logits and greedy tokens (the ones
 * test_model_reference holds the CPU stage to) and against the CPU stage,
 * in the invariant numerics (the default) and in the fast ones:
 *
 *   - every position's logits of the prompt fed at once, token by token and
 *     in chunks of 7; within 1e-4 of HF where the GPU computes in f32 (f32
 *     weights; half-precision weights on the dot kernels: every chunk in
 *     the invariant numerics, one token in the fast ones); for
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
 *
 * Batch invariance (the invariant numerics), bit for bit: the logits of
 * every prompt position fed token by token (each a one-token decode step)
 * against the prompt fed at once and in chunks of 2, 7 and 64; after a
 * rollback, by one token or by a prefill chunk, and after a rollback to
 * the start; in mixed batches of several sequences (slots), each with its
 * own chunking per step, one of them through the LoRA adapter where the
 * fixture has one; on two stages; on a stage opened again (a restart);
 * and SmolLM2 Q4_1's logits in chunks of 128 against token by token; a slot
 * that shares another's prefix (stage_cuda_kv_share) and computes the rest.
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
#define SLOTS 4

/* One or two GPU stages (hidden states through the host between them), or
 * the CPU stage. */
struct runner {
    struct stage_cuda *gpu[2];
    int n_gpu;
    struct stage *cpu;
    int vocab, dim;
};

/* One batch through the runner: out (may be NULL) gets every row's
 * logits, ids_out (may be NULL) their argmax. */
static void run_batch(struct runner *r, const struct stage_batch *b, float *out, int32_t *ids_out)
{
    float *hidden = malloc((size_t)b->n * r->dim * sizeof(float));
    struct mm_err err = {{0}};
    if (r->cpu) {
        REQUIRE(stage_forward(r->cpu, b, NULL, out, &err) == 0, "cpu forward: %s", err.msg);
    } else {
        for (int s = 0; s < r->n_gpu; s++) {
            int last = s == r->n_gpu - 1;
            REQUIRE(stage_cuda_forward(r->gpu[s], b, hidden, last ? out : NULL,
                                       last ? ids_out : NULL, &err) == 0,
                    "cuda forward: %s", err.msg);
        }
    }
    free(hidden);
}

/* Feeds ids into `slot` from pos0 in chunks; out (may be NULL) gets every
 * position's logits, ids_out (may be NULL) their argmax. */
static void feed_slot(struct runner *r, const int32_t *ids, int n, int pos0, int chunk, int adapter,
                      int slot_id, float *out, int32_t *ids_out)
{
    int32_t pos[MAX_IDS], slot[MAX_IDS], ad[MAX_IDS];
    for (int start = 0; start < n; start += chunk) {
        int m = n - start < chunk ? n - start : chunk;
        for (int i = 0; i < m; i++) {
            pos[i] = pos0 + start + i;
            slot[i] = slot_id;
            ad[i] = adapter;
        }
        struct stage_batch b = {
            .n = m, .tokens = ids + start, .pos = pos, .slot = slot, .adapter = ad};
        run_batch(r, &b, out ? out + (size_t)start * r->vocab : NULL,
                  ids_out ? ids_out + start : NULL);
    }
}

static void feed(struct runner *r, const int32_t *ids, int n, int pos0, int chunk, int adapter,
                 float *out, int32_t *ids_out)
{
    feed_slot(r, ids, n, pos0, chunk, adapter, 0, out, ids_out);
}

/* Rows (of vocab floats) of a and b that differ in any bit. */
static int rows_differ(const float *a, const float *b, int rows, int vocab)
{
    int bad = 0;
    for (int i = 0; i < rows; i++)
        bad += memcmp(a + (size_t)i * vocab, b + (size_t)i * vocab,
                      (size_t)vocab * sizeof(float)) != 0;
    return bad;
}

static int argmax_row(const float *row, int vocab)
{
    return k_argmax(row, vocab);
}

/* Logits of the prompt in chunks of 256, 1 and 7. f32: whether the GPU
 * computes in f32 at every chunk size (f32 weights); half-precision weights
 * (f16 and bf16 dispatch alike) are f32 only where the dispatcher takes the
 * dot kernels (always in the invariant numerics). */
static void check_logits(struct runner *g, const struct model_reference *r, int adapter, int f32,
                         const float *want, const float *cpu, const char *what)
{
    size_t count = (size_t)r->n_prompt * r->vocab;
    float *got = malloc(count * sizeof(float));
    static const int chunks[] = {256, 1, 7};
    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        feed(g, r->prompt, r->n_prompt, 0, chunks[c], adapter, got, NULL);
        double d = max_abs_diff(got, want, count);
        if (f32 || kc_matmul_uses_dots(stage_cuda_context(g->gpu[0]), MM_BF16, chunks[c])) {
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

/* Prefix sharing (stage_cuda_kv_share): slot 1 takes slot 0's first k
 * positions and is fed the rest of the prompt token by token; its logits
 * are the token-by-token reference's, bit for bit; a share of more than
 * slot 0 holds is refused. One GPU stage. */
static void check_share(struct runner *g, const struct model_reference *r, const float *alone,
                        const char *what)
{
    int n = r->n_prompt, k = n / 2 + 3;
    struct mm_err err = {{0}};
    feed_slot(g, r->prompt, n, 0, n, -1, 0, NULL, NULL);
    REQUIRE(stage_cuda_kv_share(g->gpu[0], 1, 0, k, &err) == 0, "%s: %s", what, err.msg);
    float *got = malloc((size_t)(n - k) * r->vocab * sizeof(float));
    feed_slot(g, r->prompt + k, n - k, k, 1, -1, 1, got, NULL);
    int bad = rows_differ(got, alone + (size_t)k * r->vocab, n - k, r->vocab);
    CHECKF(bad == 0, "%s: after sharing %d positions, %d of %d differ", what, k, bad, n - k);
    CHECKF(stage_cuda_kv_share(g->gpu[0], 2, 0, n + 1, &err) != 0,
           "%s: a share past slot 0's length was taken", what);
    free(got);
}

static struct stage_cuda *open_gpu(const char *path, int begin, int end, struct model **m,
                                   enum kc_numerics numerics)
{
    struct mm_err err = {{0}};
    *m = model_load(path, begin, end, &err);
    REQUIRE(*m, "%s", err.msg);
    struct stage_cuda *s = stage_cuda_open(*m, SLOTS, MAX_IDS, 0, &err);
    REQUIRE(s, "%s", err.msg);
    CHECK(kc_ctx_numerics(stage_cuda_context(s)) == KC_NUMERICS_INVARIANT); /* the default */
    kc_ctx_set_numerics(stage_cuda_context(s), numerics);
    return s;
}

/* The prompt's logits fed token by token into slot 0 (each position a
 * one-token decode step), the invariant numerics' reference: [n, vocab]. */
static float *token_by_token(struct runner *g, const struct model_reference *r, int adapter)
{
    float *out = malloc((size_t)r->n_prompt * r->vocab * sizeof(float));
    REQUIRE(out, "out of memory");
    feed(g, r->prompt, r->n_prompt, 0, 1, adapter, out, NULL);
    return out;
}

/* Batch invariance on one runner (see the top of the file), bit for bit
 * against `alone` (token_by_token, base model) and, with an adapter,
 * alone_lora (adapter 0). */
static void check_invariance(struct runner *g, const struct model_reference *r, const float *alone,
                             const float *alone_lora, const char *what)
{
    int n = r->n_prompt, vocab = r->vocab, bad;
    float *got = malloc((size_t)n * vocab * sizeof(float));
    REQUIRE(got, "out of memory");
    static const int chunks[] = {256, 64, 7, 2};
    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        feed(g, r->prompt, n, 0, chunks[c], -1, got, NULL);
        bad = rows_differ(got, alone, n, vocab);
        CHECKF(bad == 0,
               "%s, invariant: chunks of %d: %d of %d positions differ from token by token", what,
               chunks[c], bad, n);
    }
    /* rollbacks: the last 5 positions again as one chunk, then token by
     * token, then everything from the start as one prefill */
    int back = n < 5 ? n : 5;
    feed(g, r->prompt + n - back, back, n - back, back, -1, got, NULL);
    bad = rows_differ(got, alone + (size_t)(n - back) * vocab, back, vocab);
    CHECKF(bad == 0, "%s, invariant: a rollback of %d as one chunk: %d positions differ", what,
           back, bad);
    feed(g, r->prompt + n - back, back, n - back, 1, -1, got, NULL);
    bad = rows_differ(got, alone + (size_t)(n - back) * vocab, back, vocab);
    CHECKF(bad == 0, "%s, invariant: a rollback of %d token by token: %d positions differ", what,
           back, bad);
    feed(g, r->prompt, n, 0, n, -1, got, NULL);
    bad = rows_differ(got, alone, n, vocab);
    CHECKF(bad == 0, "%s, invariant: a rollback to the start: %d positions differ", what, bad);

    /* Several sequences per step: slot 0 the prompt (base model), slot 1
     * another sequence q (base), slot 2 the prompt through the adapter (or
     * the base model without one); each step takes a few tokens of each,
     * in a different order and chunking per slot. q's reference: fed token
     * by token alone into slot 3. */
    int32_t q[MODEL_REFERENCE_MAX_PROMPT];
    for (int i = 0; i < n; i++)
        q[i] = r->prompt[(i * 7 + 3) % n];
    float *alone_q = malloc((size_t)n * vocab * sizeof(float));
    REQUIRE(alone_q, "out of memory");
    feed_slot(g, q, n, 0, 1, -1, 3, alone_q, NULL);
    const float *ref_lora = alone_lora ? alone_lora : alone;
    int adapter2 = alone_lora ? 0 : -1;
    int done[3] = {0, 0, 0};
    static const int step[3] = {1, 3, 5}, first_step[3] = {9, 20, 1};
    static const int order[2][3] = {{1, 0, 2}, {2, 0, 1}};
    int32_t tokens[64], pos[64], slot[64], ad[64];
    float *out = malloc((size_t)64 * vocab * sizeof(float));
    REQUIRE(out, "out of memory");
    int steps = 0, bad_rows = 0;
    while (done[0] < n || done[1] < n || done[2] < n) {
        int m = 0;
        for (int k = 0; k < 3; k++) {
            int sl = order[steps % 2][k];
            int take = steps == 0 ? first_step[sl] : step[sl];
            if (take > n - done[sl]) take = n - done[sl];
            for (int i = 0; i < take; i++, m++) {
                int p = done[sl] + i;
                tokens[m] = sl == 1 ? q[p] : r->prompt[p];
                pos[m] = p;
                slot[m] = sl;
                ad[m] = sl == 2 ? adapter2 : -1;
            }
        }
        struct stage_batch b = {.n = m, .tokens = tokens, .pos = pos, .slot = slot, .adapter = ad};
        run_batch(g, &b, out, NULL);
        for (int i = 0; i < m; i++) {
            const float *want = (slot[i] == 1   ? alone_q
                                 : slot[i] == 2 ? ref_lora
                                                : alone) +
                                (size_t)pos[i] * vocab;
            bad_rows += memcmp(out + (size_t)i * vocab, want, (size_t)vocab * sizeof(float)) != 0;
        }
        for (int k = 0; k < m; k++)
            done[slot[k]] = pos[k] + 1;
        steps++;
    }
    CHECKF(bad_rows == 0,
           "%s, invariant: %d positions of three sequences batched together%s differ from each "
           "alone",
           what, bad_rows, alone_lora ? " (one through the adapter)" : "");
    free(out);
    free(alone_q);
    free(got);
}

/* One numerics on a fixture: the checks against HF and the CPU, and in
 * the invariant numerics the bitwise ones. */
static void run_fixture_numerics(const char *name, const char *path, const char *adir,
                                 const struct model_reference *r, struct model *cm,
                                 const float *cpu_logits, const float *cpu_lora,
                                 enum kc_numerics numerics)
{
    int invariant = numerics == KC_NUMERICS_INVARIANT;
    int f32 = cm->layers[0].lin[LIN_Q].dtype == MM_F32;
    const char *mode = invariant ? "" : ", fast numerics";
    struct mm_err err = {{0}};
    struct model *m;
    struct runner g = {.n_gpu = 1, .vocab = r->vocab, .dim = cm->cfg.dim};
    g.gpu[0] = open_gpu(path, 0, -1, &m, numerics);
    char what[256];
    snprintf(what, sizeof(what), "%s on the GPU%s", name, mode);
    check_logits(&g, r, -1, f32, r->logits, cpu_logits, what);
    check_greedy(&g, r, -1, r->greedy, what);
    float *alone = NULL, *alone_lora = NULL;
    if (invariant) {
        alone = token_by_token(&g, r, -1);
        check_share(&g, r, alone, what);
    } else
        check_rollback(&g, r, what);

    if (r->has_adapter) {
        struct lora_adapter a;
        REQUIRE(lora_load(&a, m, adir, "test", &err) == 0, "%s", err.msg);
        REQUIRE(stage_cuda_add_adapter(g.gpu[0], &a, &err) == 0, "%s", err.msg);
        lora_free(&a);
        snprintf(what, sizeof(what), "%s + LoRA on the GPU%s", name, mode);
        check_logits(&g, r, 0, f32, r->logits_lora, cpu_lora, what);
        check_greedy(&g, r, 0, r->greedy_lora, what);
        if (invariant) alone_lora = token_by_token(&g, r, 0);
    }
    if (invariant) {
        snprintf(what, sizeof(what), "%s on the GPU", name);
        check_invariance(&g, r, alone, alone_lora, what);
    }
    stage_cuda_free(g.gpu[0]);
    model_free(m);

    /* two stages: layers [0, L/2) and [L/2, L) */
    int half = cm->cfg.n_layers / 2;
    if (half > 0) {
        struct model *m0, *m1;
        struct runner two = {.n_gpu = 2, .vocab = r->vocab, .dim = cm->cfg.dim};
        two.gpu[0] = open_gpu(path, 0, half, &m0, numerics);
        two.gpu[1] = open_gpu(path, half, -1, &m1, numerics);
        snprintf(what, sizeof(what), "%s on two GPU stages%s", name, mode);
        check_logits(&two, r, -1, f32, r->logits, cpu_logits, what);
        check_greedy(&two, r, -1, r->greedy, what);
        if (invariant) {
            float *got = token_by_token(&two, r, -1);
            int bad = rows_differ(got, alone, r->n_prompt, r->vocab);
            CHECKF(bad == 0, "%s: %d of %d positions differ from one stage's", what, bad,
                   r->n_prompt);
            check_invariance(&two, r, got, NULL, what);
            free(got);
        }
        stage_cuda_free(two.gpu[0]);
        stage_cuda_free(two.gpu[1]);
        model_free(m0);
        model_free(m1);
    }
    if (invariant) {
        /* a restart: a stage opened again, the prompt at once */
        struct runner again = {.n_gpu = 1, .vocab = r->vocab, .dim = cm->cfg.dim};
        again.gpu[0] = open_gpu(path, 0, -1, &m, numerics);
        float *got = malloc((size_t)r->n_prompt * r->vocab * sizeof(float));
        feed(&again, r->prompt, r->n_prompt, 0, r->n_prompt, -1, got, NULL);
        int bad = rows_differ(got, alone, r->n_prompt, r->vocab);
        CHECKF(bad == 0, "%s on a stage opened again: %d of %d positions differ", name, bad,
               r->n_prompt);
        free(got);
        stage_cuda_free(again.gpu[0]);
        model_free(m);
    }
    free(alone);
    free(alone_lora);
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
    struct stage cs;
    REQUIRE(stage_init(&cs, cm, 1, MAX_IDS, &err) == 0, "%s", err.msg);
    struct runner cpu = {.cpu = &cs, .vocab = r.vocab, .dim = cm->cfg.dim};
    size_t count = (size_t)r.n_prompt * r.vocab;
    float *cpu_logits = malloc(count * sizeof(float));
    feed(&cpu, r.prompt, r.n_prompt, 0, r.n_prompt, -1, cpu_logits, NULL);
    float *cpu_lora = NULL;
    if (r.has_adapter) {
        struct lora_adapter a;
        cpu_lora = malloc(count * sizeof(float));
        REQUIRE(lora_load(&a, cm, adir, "test", &err) == 0, "%s", err.msg);
        cs.adapters = &a;
        cs.n_adapters = 1;
        feed(&cpu, r.prompt, r.n_prompt, 0, r.n_prompt, 0, cpu_lora, NULL);
        cs.adapters = NULL;
        cs.n_adapters = 0;
        lora_free(&a);
    }

    run_fixture_numerics(name, path, adir, &r, cm, cpu_logits, cpu_lora, KC_NUMERICS_INVARIANT);
    run_fixture_numerics(name, path, adir, &r, cm, cpu_logits, cpu_lora, KC_NUMERICS_FAST);

    stage_free(&cs);
    model_free(cm);
    free(cpu_logits);
    free(cpu_lora);
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

static void run_smollm2(enum kc_numerics numerics)
{
    const char *what = numerics == KC_NUMERICS_INVARIANT ? "SmolLM2 Q4_1 on the GPU"
                                                         : "SmolLM2 Q4_1 on the GPU, fast numerics";
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
    g.gpu[0] = open_gpu(model_path, 0, -1, &m, numerics);
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
    printf("%s: top-1 agreement with llama.cpp %.4f, perplexity %.4f vs %.4f\n", what, agreement,
           ppl, ref_ppl);
    CHECKF(agreement >= 0.95, "%s: top-1 agreement %.4f < 0.95", what, agreement);
    CHECKF(fabs(ppl / ref_ppl - 1.0) <= 0.01, "%s: perplexity %.4f vs %.4f", what, ppl, ref_ppl);
    if (numerics == KC_NUMERICS_INVARIANT) {
        /* the first positions token by token: the chunks of 128's bits */
        int k = n_pred < 160 ? n_pred : 160;
        float *tok = malloc((size_t)k * g.vocab * sizeof(float));
        feed(&g, ids, k, 0, 1, -1, tok, NULL);
        int bad = rows_differ(tok, logits, k, g.vocab);
        CHECKF(bad == 0,
               "%s: %d of the first %d positions token by token differ from chunks of 128", what,
               bad, k);
        free(tok);
    }

    struct model_reference r = {
        .n_greedy_prompt = n_gprompt, .n_greedy = n_gwant, .vocab = g.vocab};
    REQUIRE(n_gprompt <= 64 && n_gwant <= 64, "greedy reference too long");
    memcpy(r.greedy_prompt, gprompt, (size_t)n_gprompt * sizeof(int32_t));
    check_greedy(&g, &r, -1, gwant, what);

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
    run_smollm2(KC_NUMERICS_INVARIANT);
    run_smollm2(KC_NUMERICS_FAST);
    return check_report("test_kernels_cuda_stage");
}
