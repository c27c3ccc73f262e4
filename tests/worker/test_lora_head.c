/* A PEFT adapter that adapts the model's ends: LoRA on the LM head and
 * trainable token rows (tools/make_adapter_head_fixtures.py), on tiny-llama
 * (tied embeddings: PEFT ties the head to the new rows) and tiny-mistral
 * (untied). For each:
 *
 *   - every prompt position's logits within 1e-4 of HF PEFT's, the prompt fed
 *     at once, token by token and in chunks of 7, at run time and merged
 *     (lora_merge), on one stage and on two (the first holding the rows, the
 *     last the head's LoRA and, tied, the rows again); the same from
 *     tiny-llama's GGUF (Q/K rows permuted, token_embd as the head);
 *   - batch invariance with the adapter per row: the prompt with the adapter
 *     and without it in one batch, only some rows asking for logits, gives
 *     each row the logits of its sequence alone, bit for bit;
 *   - a token not among the trainable ones is unaffected: the first stage's
 *     output for every vocabulary token alone is the base model's bit for
 *     bit, and differs exactly for the trainable ones; merged, it is the
 *     run-time adapter's;
 *   - adapter_config.json forms: the object form {"embed_tokens": ids} loads
 *     as the list does; ids outside the vocabulary, ids that do not match the
 *     rows tensor, and rows of a module's own (an untied head, a tied head
 *     with other ids) are refused with an error naming the problem. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "forward.h"
#include "lora.h"
#include "model.h"
#include "model_reference.h"

#define LOGIT_TOL 1e-4
#define MAX_TOKENS 256

struct fixture {
    const char *name;
    char dir[1024], adapter[1100];
    char model[1100]; /* what model_load opens: dir, or a GGUF of the same weights */
    struct model_reference ref;
    float *peft; /* PEFT's logits with the adapter [n_prompt, vocab] */
    json_t *ids; /* the adapter's trainable_token_indices */
};

static void fixture_load(struct fixture *f, const char *name)
{
    f->name = name;
    test_path("MEMLLM_FIXTURES", "models/", f->dir, sizeof(f->dir));
    strncat(f->dir, name, sizeof(f->dir) - strlen(f->dir) - 1);
    snprintf(f->adapter, sizeof(f->adapter), "%s/adapter-head", f->dir);
    snprintf(f->model, sizeof(f->model), "%s", f->dir);
    model_reference_load(f->dir, &f->ref);
    f->peft = model_reference_f32(f->adapter, "logits.f32", (size_t)f->ref.n_prompt * f->ref.vocab);
    char path[1200];
    snprintf(path, sizeof(path), "%s/adapter_config.json", f->adapter);
    json_error_t jerr;
    json_t *cfg = json_load_file(path, 0, &jerr);
    REQUIRE(cfg, "%s: %s", path, jerr.text);
    f->ids = json_incref(json_object_get(cfg, "trainable_token_indices"));
    json_decref(cfg);
    REQUIRE(json_array_size(f->ids) == 4, "%s: 4 trainable_token_indices expected", path);
}

static void fixture_free(struct fixture *f)
{
    free(f->ref.logits);
    free(f->ref.logits_lora);
    free(f->peft);
    json_decref(f->ids);
}

/* One or two stages (hidden states passed between them), each with its own
 * copy of the adapter loaded for its layers. */
struct pipeline {
    struct model *model[2];
    struct lora_adapter adapter[2];
    struct stage stage[2];
    int n;
};

static void pipeline_open(struct pipeline *p, const struct fixture *f, int n_stages, int n_slots)
{
    static const int cuts[2][3] = {{0, -1, 0}, {0, 1, -1}};
    struct mm_err err = {{0}};
    memset(p, 0, sizeof(*p));
    p->n = n_stages;
    for (int i = 0; i < n_stages; i++) {
        p->model[i] = model_load(f->model, cuts[n_stages - 1][i], cuts[n_stages - 1][i + 1], &err);
        REQUIRE(p->model[i], "%s", err.msg);
        REQUIRE(lora_load(&p->adapter[i], p->model[i], f->adapter, "head", &err) == 0, "%s",
                err.msg);
        REQUIRE(stage_init(&p->stage[i], p->model[i], n_slots, MAX_TOKENS, &err) == 0, "%s",
                err.msg);
        p->stage[i].adapters = &p->adapter[i];
        p->stage[i].n_adapters = 1;
    }
}

static void pipeline_merge(struct pipeline *p)
{
    struct mm_err err = {{0}};
    for (int i = 0; i < p->n; i++) {
        REQUIRE(lora_merge(p->model[i], &p->adapter[i], &err) == 0, "%s", err.msg);
        p->stage[i].adapters = NULL;
        p->stage[i].n_adapters = 0;
    }
}

static void pipeline_close(struct pipeline *p)
{
    for (int i = 0; i < p->n; i++) {
        stage_free(&p->stage[i]);
        lora_free(&p->adapter[i]);
        model_free(p->model[i]);
    }
}

static void pipeline_forward(struct pipeline *p, const struct stage_batch *b, float *logits)
{
    struct mm_err err = {{0}};
    float *hidden = malloc((size_t)b->n * p->model[0]->cfg.dim * sizeof(float));
    REQUIRE(hidden, "out of memory");
    for (int i = 0; i < p->n; i++)
        REQUIRE(stage_forward(&p->stage[i], b, hidden, logits, &err) == 0, "%s", err.msg);
    free(hidden);
}

/* The prompt into slot 0 from position 0 in chunks of `chunk`, every
 * position's logits into out [n_prompt, vocab]. */
static void feed(struct pipeline *p, const struct model_reference *r, int chunk, int adapter,
                 float *out)
{
    int32_t pos[MAX_TOKENS], slot[MAX_TOKENS], ad[MAX_TOKENS];
    for (int start = 0; start < r->n_prompt; start += chunk) {
        int n = r->n_prompt - start < chunk ? r->n_prompt - start : chunk;
        for (int i = 0; i < n; i++) {
            pos[i] = start + i;
            slot[i] = 0;
            ad[i] = adapter;
        }
        struct stage_batch b = {
            .n = n, .tokens = r->prompt + start, .pos = pos, .slot = slot, .adapter = ad};
        pipeline_forward(p, &b, out + (size_t)start * r->vocab);
    }
}

static void check_against_peft(struct pipeline *p, const struct fixture *f, int adapter,
                               const char *what)
{
    static const int chunks[] = {MAX_TOKENS, 1, 7};
    size_t count = (size_t)f->ref.n_prompt * f->ref.vocab;
    float *got = malloc(count * sizeof(float));
    REQUIRE(got, "out of memory");
    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        feed(p, &f->ref, chunks[c], adapter, got);
        double d = max_abs_diff(got, f->peft, count);
        CHECKF(d <= LOGIT_TOL, "%s, %s, chunks of %d: max |logit - PEFT| = %g", f->name, what,
               chunks[c], d);
    }
    free(got);
}

/* The prompt twice in one batch, slots 0 and 1, one with the adapter and
 * one without (base_first picks the order), logits for every third row and
 * each sequence's last: each row's logits must be its sequence's alone. */
static void check_mixed_batch(const struct fixture *f, int base_first)
{
    const struct model_reference *r = &f->ref;
    size_t count = (size_t)r->n_prompt * r->vocab;
    float *alone[2] = {malloc(count * sizeof(float)), malloc(count * sizeof(float))};
    float *mixed = malloc(2 * count * sizeof(float));
    REQUIRE(alone[0] && alone[1] && mixed, "out of memory");
    struct pipeline p;
    pipeline_open(&p, f, 1, 2);
    feed(&p, r, MAX_TOKENS, -1, alone[0]);
    feed(&p, r, MAX_TOKENS, 0, alone[1]);

    int n = 2 * r->n_prompt;
    int32_t tokens[2 * MAX_TOKENS], pos[2 * MAX_TOKENS], slot[2 * MAX_TOKENS], ad[2 * MAX_TOKENS];
    uint8_t wants[2 * MAX_TOKENS];
    for (int i = 0; i < n; i++) {
        int seq = i / r->n_prompt, at = i % r->n_prompt;
        tokens[i] = r->prompt[at];
        pos[i] = at;
        slot[i] = seq;
        ad[i] = (seq == 0) == base_first ? -1 : 0;
        wants[i] = at % 3 == 0 || at == r->n_prompt - 1;
    }
    struct stage_batch b = {
        .n = n, .tokens = tokens, .pos = pos, .slot = slot, .adapter = ad, .logits = wants};
    pipeline_forward(&p, &b, mixed);
    int row = 0, same = 1;
    for (int i = 0; i < n; i++) {
        if (!wants[i]) continue;
        const float *want = alone[ad[i] + 1] + (size_t)(i % r->n_prompt) * r->vocab;
        same &= memcmp(mixed + (size_t)row * r->vocab, want, (size_t)r->vocab * sizeof(float)) == 0;
        row++;
    }
    CHECKF(same, "%s: %s first: a row's logits in a mixed batch differ from its sequence's alone",
           f->name, base_first ? "base" : "adapter");
    pipeline_close(&p);
    free(alone[0]);
    free(alone[1]);
    free(mixed);
}

static int is_trainable(const struct lora_adapter *a, int32_t token)
{
    for (int i = 0; i < a->n_rows; i++)
        if (a->row_ids[i] == token) return 1;
    return 0;
}

/* The first stage's output of every vocabulary token alone at position 0,
 * with adapter `adapter`, into out [vocab, dim]. */
static void first_stage_per_token(struct pipeline *p, int adapter, float *out)
{
    struct mm_err err = {{0}};
    int dim = p->model[0]->cfg.dim;
    for (int32_t t = 0; t < p->model[0]->cfg.vocab_size; t++) {
        int32_t pos = 0, slot = 0;
        struct stage_batch b = {
            .n = 1, .tokens = &t, .pos = &pos, .slot = &slot, .adapter = &adapter};
        REQUIRE(stage_forward(&p->stage[0], &b, out + (size_t)t * dim, NULL, &err) == 0, "%s",
                err.msg);
    }
}

/* Two stages: what each loads, the logits at run time, the untouched
 * tokens, then all of it merged. */
static void check_two_stages(const struct fixture *f, int tied)
{
    struct pipeline p;
    pipeline_open(&p, f, 2, 1);
    const struct lora_adapter *first = &p.adapter[0], *last = &p.adapter[1];
    CHECKF(first->n_rows == 4 && !first->head.a.data, "%s: the first stage holds the rows only",
           f->name);
    CHECKF(last->head.a.data && last->n_rows == (tied ? 4 : 0),
           "%s: the last stage holds the head's LoRA and, tied, the rows (%d rows)", f->name,
           last->n_rows);
    check_against_peft(&p, f, 0, "two stages");

    int vocab = p.model[0]->cfg.vocab_size, dim = p.model[0]->cfg.dim;
    size_t count = (size_t)vocab * dim;
    float *base = malloc(count * sizeof(float)), *adapted = malloc(count * sizeof(float));
    float *merged = malloc(count * sizeof(float));
    REQUIRE(base && adapted && merged, "out of memory");
    first_stage_per_token(&p, -1, base);
    first_stage_per_token(&p, 0, adapted);
    int changed = 0, wrong = 0;
    for (int t = 0; t < vocab; t++) {
        int differs = memcmp(base + (size_t)t * dim, adapted + (size_t)t * dim,
                             (size_t)dim * sizeof(float)) != 0;
        changed += differs;
        wrong += differs != is_trainable(first, t);
    }
    CHECKF(wrong == 0 && changed == first->n_rows,
           "%s: %d tokens changed by the adapter, %d of them not trainable or trainable and "
           "unchanged",
           f->name, changed, wrong);

    pipeline_merge(&p);
    check_against_peft(&p, f, -1, "two stages, merged");
    first_stage_per_token(&p, -1, merged);
    CHECKF(memcmp(merged, adapted, count * sizeof(float)) == 0,
           "%s: the merged first stage differs from the adapter at run time", f->name);
    pipeline_close(&p);
    free(base);
    free(adapted);
    free(merged);
}

/* A copy of the adapter whose adapter_config.json has trainable_token_indices
 * = ids (the rows tensor by symlink), in a new temporary folder. */
static void adapter_variant(const struct fixture *f, json_t *ids, char *dir)
{
    strcpy(dir, "/tmp/memllm-lora-head-XXXXXX");
    REQUIRE(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
    char src[1200], dst[1200];
    snprintf(src, sizeof(src), "%s/adapter_model.safetensors", f->adapter);
    char *abs_src = realpath(src, NULL);
    REQUIRE(abs_src, "%s: %s", src, strerror(errno));
    snprintf(dst, sizeof(dst), "%s/adapter_model.safetensors", dir);
    REQUIRE(symlink(abs_src, dst) == 0, "symlink %s: %s", dst, strerror(errno));
    free(abs_src);
    snprintf(src, sizeof(src), "%s/adapter_config.json", f->adapter);
    json_error_t jerr;
    json_t *cfg = json_load_file(src, 0, &jerr);
    REQUIRE(cfg, "%s: %s", src, jerr.text);
    json_object_set_new(cfg, "trainable_token_indices", ids);
    snprintf(dst, sizeof(dst), "%s/adapter_config.json", dir);
    REQUIRE(json_dump_file(cfg, dst, 0) == 0, "cannot write %s", dst);
    json_decref(cfg);
}

static void remove_variant(const char *dir)
{
    char path[1200];
    snprintf(path, sizeof(path), "%s/adapter_model.safetensors", dir);
    CHECK(unlink(path) == 0);
    snprintf(path, sizeof(path), "%s/adapter_config.json", dir);
    CHECK(unlink(path) == 0);
    CHECK(rmdir(dir) == 0);
}

/* Loads the adapter with trainable_token_indices = ids (taken) on the whole
 * model: it must fail with an error containing `error`, or (error NULL)
 * load the fixture's ids. */
static void check_config_form(const struct fixture *f, struct model *m, json_t *ids,
                              const char *error)
{
    char dir[64];
    adapter_variant(f, ids, dir);
    struct lora_adapter a;
    struct mm_err err = {{0}};
    int rc = lora_load(&a, m, dir, "variant", &err);
    if (error) {
        CHECKF(rc != 0 && strstr(err.msg, error), "%s: expected an error with '%s', got '%s'",
               f->name, error, rc ? err.msg : "success");
    } else {
        CHECKF(rc == 0, "%s: %s", f->name, err.msg);
        if (rc == 0) {
            int same = a.n_rows == (int)json_array_size(f->ids);
            for (int i = 0; same && i < a.n_rows; i++)
                same = a.row_ids[i] == json_integer_value(json_array_get(f->ids, (size_t)i));
            CHECKF(same, "%s: the object form loads other ids than the list", f->name);
            lora_free(&a);
        }
    }
    remove_variant(dir);
}

static json_t *ids_copy(const struct fixture *f)
{
    json_t *ids = json_deep_copy(f->ids);
    REQUIRE(ids, "out of memory");
    return ids;
}

static void check_config_forms(const struct fixture *f, int tied)
{
    struct mm_err err = {{0}};
    struct model *m = model_load(f->model, 0, -1, &err);
    REQUIRE(m, "%s", err.msg);
    check_config_form(f, m, json_pack("{s:o}", "embed_tokens", ids_copy(f)), NULL);
    check_config_form(f, m, json_pack("{s:o}", "model.embed_tokens", ids_copy(f)), NULL);
    json_t *ids = ids_copy(f);
    json_array_set_new(ids, 3, json_integer(m->cfg.vocab_size));
    check_config_form(f, m, ids, "trainable_token_indices[3] is not a token id below 512");
    ids = ids_copy(f);
    json_array_remove(ids, 3);
    check_config_form(f, m, ids, "has shape [4, 64], the base model implies [3, 64]");
    check_config_form(f, m, json_integer(1), "neither a list nor an object");
    if (tied) {
        check_config_form(
            f, m, json_pack("{s:o,s:o}", "embed_tokens", ids_copy(f), "lm_head", ids_copy(f)),
            NULL);
        ids = ids_copy(f);
        json_array_remove(ids, 0);
        check_config_form(f, m, json_pack("{s:o,s:o}", "embed_tokens", ids_copy(f), "lm_head", ids),
                          "other ids than the embedding");
    } else {
        check_config_form(
            f, m, json_pack("{s:o,s:o}", "embed_tokens", ids_copy(f), "lm_head", ids_copy(f)),
            "trainable_token_indices for 'lm_head' is not supported");
    }
    model_free(m);
}

static void run_fixture(const char *name, int tied)
{
    struct fixture f;
    fixture_load(&f, name);
    struct pipeline p;
    pipeline_open(&p, &f, 1, 1);
    CHECKF(p.model[0]->cfg.tied_embeddings == tied, "%s: tied_embeddings %d", name,
           p.model[0]->cfg.tied_embeddings);
    CHECKF(p.adapter[0].head.a.data && p.adapter[0].n_rows == 4,
           "%s: the head's LoRA and 4 token rows loaded", name);
    int trainable = 0;
    for (int i = 0; i < f.ref.n_prompt; i++)
        trainable += is_trainable(&p.adapter[0], f.ref.prompt[i]);
    CHECKF(trainable > 0 && trainable < f.ref.n_prompt,
           "%s: %d of the prompt's tokens are trainable: the prompt must have both kinds", name,
           trainable);
    /* the adapter changes the logits by far more than the tolerance */
    CHECK(max_abs_diff(f.ref.logits, f.peft, (size_t)f.ref.n_prompt * f.ref.vocab) > 0.5);
    check_against_peft(&p, &f, 0, "one stage");
    pipeline_merge(&p);
    check_against_peft(&p, &f, -1, "one stage, merged");
    pipeline_close(&p);

    check_mixed_batch(&f, 0);
    check_mixed_batch(&f, 1);
    check_two_stages(&f, tied);
    check_config_forms(&f, tied);
    fixture_free(&f);
}

/* tiny-llama's GGUF (Q/K rows permuted for llama.cpp's rope; token_embd is
 * the head) with tiny-llama's adapter: the embedding and head are not
 * permuted, so the rows and the head's LoRA apply as stored. */
static void run_gguf(void)
{
    struct fixture f;
    fixture_load(&f, "tiny-llama");
    f.name = "tiny-llama-gguf-f32";
    test_path("MEMLLM_FIXTURES", "models/tiny-llama-gguf-f32/model.gguf", f.model, sizeof(f.model));
    for (int stages = 1; stages <= 2; stages++) {
        struct pipeline p;
        pipeline_open(&p, &f, stages, 1);
        CHECK(p.model[0]->gguf && p.model[0]->cfg.tied_embeddings);
        check_against_peft(&p, &f, 0, stages == 1 ? "one stage" : "two stages");
        pipeline_merge(&p);
        check_against_peft(&p, &f, -1, stages == 1 ? "one stage, merged" : "two stages, merged");
        pipeline_close(&p);
    }
    fixture_free(&f);
}

int main(void)
{
    run_fixture("tiny-llama", 1);
    run_gguf();
    run_fixture("tiny-mistral", 0);
    return check_report("test_lora_head");
}
