/* The MemLLM read loop inside decoding, on real model files without
 * MemLLM training (the tiny Mistral fixture, and SmolLM2-135M when
 * fetched): a prompt that ends in a read call gets the memory's answer and
 * "})" inserted and decoding goes on; a call with no answer rolls back to
 * exactly the state of a fresh run on the truncated prefix (identical
 * next-token logits) with the call's first token banned; a second read cuts
 * the first one's span out of the context; a repeated call and malformed
 * queries are handled as DESIGN.md §2 says. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "engine.h"
#include "memllm_read.h"
#include "memory_client.h"
#include "scheduler.h"

struct probe {
    struct memllm_reader *reader;
    /* the rollback case: logits of the first sample after the rollback */
    int rolled_back_to; /* context length after the rollback, 0: none yet */
    float *logits_after;
    int32_t banned;
    /* the injection case: a second call is put in the context as if the
     * model had written it, once the first read is answered */
    const char *inject;
    int injected;
    /* what the sequence looked like at the end */
    int32_t *tokens;
    int n_tokens, n_generated;
    char *text;
};

static struct engine *eng;
static int vocab;

static int before(void *ctx, struct gen_sequence *s, const float *logits, struct mm_err *err)
{
    struct probe *p = ctx;
    if (p->rolled_back_to && !p->logits_after && s->n_tokens == p->rolled_back_to) {
        p->logits_after = malloc((size_t)vocab * sizeof(float));
        memcpy(p->logits_after, logits, (size_t)vocab * sizeof(float));
        p->banned = s->n_banned == 1 ? s->banned[0] : -1;
    }
    int rc = memllm_read_before_sample(p->reader, s, logits, err);
    if (rc == 1 && s->n_tokens < s->req->n_prompt) p->rolled_back_to = s->n_tokens;
    if (rc == 0 && p->inject && !p->injected && s->n_generated >= 2) {
        /* The model "writes" a second call: its tokens as if sampled. */
        int32_t *ids;
        size_t n;
        REQUIRE(tok_encode(eng->tok, p->inject, strlen(p->inject), 0, 1, &ids, &n, err) == 0, "%s",
                err->msg);
        REQUIRE(gen_sequence_insert(s, ids, (int)n, p->inject, strlen(p->inject), err) == 0, "%s",
                err->msg);
        free(ids);
        p->injected = 1;
        rc = memllm_read_on_token(p->reader, s, s->tokens[s->n_tokens - 1], "", 0, err);
        return rc < 0 ? -1 : 1;
    }
    return rc;
}

static int on_token(void *ctx, struct gen_sequence *s, int32_t token, const char *piece, size_t len,
                    struct mm_err *err)
{
    struct probe *p = ctx;
    return memllm_read_on_token(p->reader, s, token, piece, len, err);
}

static int on_finish(void *ctx, struct gen_sequence *s, struct mm_err *err)
{
    (void)err;
    struct probe *p = ctx;
    p->n_tokens = s->n_tokens;
    p->tokens = malloc((size_t)s->n_tokens * sizeof(int32_t));
    memcpy(p->tokens, s->tokens, (size_t)s->n_tokens * sizeof(int32_t));
    p->n_generated = s->n_generated;
    p->text = strdup(s->text);
    return 0;
}

static int32_t *encode(const char *text, size_t *n, int bos)
{
    struct mm_err err = {{0}};
    int32_t *ids;
    REQUIRE(tok_encode(eng->tok, text, strlen(text), bos, 1, &ids, n, &err) == 0, "%s", err.msg);
    return ids;
}

static void run(struct mm_memory *m, const char *prompt, int max_tokens, struct probe *p)
{
    struct mm_err err = {{0}};
    struct mm_query_options q;
    mm_query_options_default(&q);
    p->reader = memllm_reader_new(eng, m, &q, 1, &err);
    REQUIRE(p->reader, "%s", err.msg);
    size_t n;
    int32_t *ids = encode(prompt, &n, tok_add_bos_default(eng->tok));
    struct gen_request req = {.prompt = ids,
                              .n_prompt = (int)n,
                              .max_tokens = max_tokens,
                              .adapter = -1,
                              .sampling = {.greedy = 1}};
    struct scheduler_hooks h = {
        .before_sample = before, .on_token = on_token, .on_finish = on_finish, .ctx = p};
    REQUIRE(scheduler_run(eng, &req, 1, 64, &h, &err) == 0, "%s", err.msg);
    free(ids);
}

static const char *outcome(const struct probe *p, size_t i)
{
    json_t *entry = json_array_get(memllm_reader_trace(p->reader, 0), i);
    return entry ? json_string_value(json_object_get(entry, "outcome")) : "(none)";
}

static void probe_free(struct probe *p)
{
    memllm_reader_free(p->reader);
    free(p->logits_after);
    free(p->tokens);
    free(p->text);
}

static int contains_ids(const int32_t *hay, int n, const int32_t *needle, int k)
{
    for (int i = 0; i + k <= n; i++)
        if (!memcmp(hay + i, needle, (size_t)k * sizeof(int32_t))) return 1;
    return 0;
}

static void answered_at_prompt_end(struct mm_memory *m, const char *name)
{
    const char *prompt = "Dancing on Coral is a novel by ({MEM_READ(Dancing on Coral>>author>>)-->";
    struct probe p = {0};
    run(m, prompt, 8, &p);
    CHECKF(!strcmp(outcome(&p, 0), "answered"), "%s: outcome %s", name, outcome(&p, 0));
    CHECKF(!strncmp(p.text, "Glenda Adams})", 14), "%s: text '%s'", name, p.text);
    CHECKF(p.n_generated == 8, "%s: decoding stopped after %d tokens", name, p.n_generated);
    /* The context is the prompt, the answer and "})" as the tokenizer
     * encodes them, then the sampled tokens. */
    size_t np, na;
    int32_t *pi = encode(prompt, &np, tok_add_bos_default(eng->tok));
    int32_t *ai = encode("Glenda Adams})", &na, 0);
    CHECK(p.n_tokens == (int)(np + na) + 8);
    CHECKF(!memcmp(p.tokens, pi, np * sizeof(int32_t)) &&
               !memcmp(p.tokens + np, ai, na * sizeof(int32_t)),
           "%s: the context is not prompt + answer", name);
    char *plain = memllm_strip_api(p.text);
    CHECKF(strstr(plain, "Glenda") == NULL && strlen(plain) > 0, "%s: without API: '%s'", name,
           plain);
    free(plain);
    free(pi);
    free(ai);
    probe_free(&p);
}

static void rollback_equals_fresh_run(struct mm_memory *m, const char *name)
{
    const char *prompt = "The Moon is orbited by ({MEM_READ(The Moon>>satellite>>)-->";
    struct probe p = {0};
    run(m, prompt, 4, &p);
    CHECKF(!strcmp(outcome(&p, 0), "no_answer"), "%s: outcome %s", name, outcome(&p, 0));
    REQUIRE(p.rolled_back_to > 0 && p.logits_after, "%s: no rollback seen", name);
    int start = p.rolled_back_to;
    size_t np;
    int32_t *pi = encode(prompt, &np, tok_add_bos_default(eng->tok));
    CHECKF(p.banned == pi[start], "%s: banned %d, the call began with %d", name, p.banned,
           pi[start]);
    /* Nothing of the call is left in the context. */
    CHECK(!memcmp(p.tokens, pi, (size_t)start * sizeof(int32_t)));
    CHECK(p.tokens[start] != pi[start]);

    /* A fresh run on the truncated prefix, fed as the rolled-back sequence
     * was: the prompt up to the last kept token, then that token alone. */
    struct engine fresh;
    struct engine_options o = {.model_path = eng->local[0].model->path, .n_slots = 1};
    struct mm_err err = {{0}};
    REQUIRE(engine_open(&fresh, &o, &err) == 0, "%s", err.msg);
    float *logits = malloc((size_t)vocab * sizeof(float));
    int32_t pos[256], slot[256] = {0};
    for (int i = 0; i < start; i++)
        pos[i] = i;
    struct stage_batch b1 = {.n = start - 1, .tokens = pi, .pos = pos, .slot = slot};
    struct stage_batch b2 = {
        .n = 1, .tokens = pi + start - 1, .pos = pos + start - 1, .slot = slot};
    float *scratch = malloc((size_t)start * vocab * sizeof(float));
    REQUIRE(engine_forward(&fresh, &b1, scratch, &err) == 0, "%s", err.msg);
    REQUIRE(engine_forward(&fresh, &b2, logits, &err) == 0, "%s", err.msg);
    CHECKF(!memcmp(logits, p.logits_after, (size_t)vocab * sizeof(float)),
           "%s: next-token logits after the rollback differ from a fresh run", name);
    engine_close(&fresh);
    free(scratch);
    free(logits);
    free(pi);
    probe_free(&p);
}

static void second_read_cuts_the_first(struct mm_memory *m, const char *name)
{
    const char *prompt = "Dancing on Coral is a novel by ({MEM_READ(Dancing on Coral>>author>>)-->";
    struct probe p = {.inject = " who was from ({MEM_READ(no separators here;Glenda "
                                "Adams>>country of citizenship>>)-->"};
    run(m, prompt, 6, &p);
    CHECKF(!strcmp(outcome(&p, 0), "answered") && !strcmp(outcome(&p, 1), "answered"),
           "%s: outcomes %s, %s", name, outcome(&p, 0), outcome(&p, 1));
    size_t na, nb;
    int32_t *first = encode("Glenda Adams})", &na, 0);
    int32_t *second = encode("Australia})", &nb, 0);
    CHECKF(!contains_ids(p.tokens, p.n_tokens, first, (int)na),
           "%s: the first read's answer is still in the context", name);
    CHECKF(contains_ids(p.tokens, p.n_tokens, second, (int)nb),
           "%s: the second read's answer is not in the context", name);
    /* The text keeps the whole history. */
    CHECKF(strstr(p.text, "Glenda Adams})") && strstr(p.text, "Australia})"), "%s: text '%s'", name,
           p.text);
    json_t *qs = json_object_get(json_array_get(memllm_reader_trace(p.reader, 0), 1), "queries");
    CHECKF(json_array_size(qs) == 2 && json_object_get(json_array_get(qs, 0), "skipped"),
           "%s: the malformed query was not skipped", name);
    free(first);
    free(second);
    probe_free(&p);

    /* The same call again: dropped as a repeat. */
    struct probe r = {.inject = " ({MEM_READ(Dancing on Coral>>author>>)-->"};
    run(m, prompt, 6, &r);
    CHECKF(!strcmp(outcome(&r, 1), "repeat"), "%s: outcome %s", name, outcome(&r, 1));
    probe_free(&r);
}

static void scenario(const char *model, const char *name)
{
    struct mm_err err = {{0}};
    static struct engine e;
    struct engine_options o = {.model_path = model, .n_slots = 1};
    REQUIRE(engine_open(&e, &o, &err) == 0, "%s", err.msg);
    eng = &e;
    vocab = e.vocab;
    char dir[] = "/tmp/memllm-read-XXXXXX";
    REQUIRE(mkdtemp(dir), "mkdtemp");
    struct mm_embedder *emb = mm_fallback_embedder_new(&err);
    struct mm_memory *m = mm_memory_open_local(dir, 1, emb, 0, &err);
    REQUIRE(m, "%s", err.msg);
    struct mm_fact facts[] = {
        {"Dancing on Coral", "author", "Glenda Adams", {"test", 0, 0}},
        {"Glenda Adams", "country of citizenship", "Australia", {"test", 1, 0}},
    };
    REQUIRE(mm_memory_write(m, facts, 2, NULL, 0, NULL, &err) == 0, "%s", err.msg);
    answered_at_prompt_end(m, name);
    rollback_equals_fresh_run(m, name);
    second_read_cuts_the_first(m, name);
    REQUIRE(mm_memory_close(m, &err) == 0, "%s", err.msg);
    mm_embedder_free(emb);
    engine_close(&e);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    REQUIRE(system(cmd) == 0, "cleanup");
}

int main(void)
{
    char tiny[1024], smol[1024];
    test_path("MEMLLM_FIXTURES", "models/tiny-mistral", tiny, sizeof(tiny));
    scenario(tiny, "tiny-mistral");
    test_path("MEMLLM_MODELS_DIR", "SmolLM2-135M-Instruct.Q4_1.gguf", smol, sizeof(smol));
    if (access(smol, R_OK) == 0)
        scenario(smol, "SmolLM2");
    else
        printf("SKIP: SmolLM2 part: %s is absent (run deploy/fetch-models.sh)\n", smol);
    return check_report("test_memllm_read");
}
