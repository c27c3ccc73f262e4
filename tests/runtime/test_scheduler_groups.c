/* The scheduler's groups (scheduler.h, engine.flow_groups) on the tiny
 * Mistral fixture: the same requests run with the slots in 1, 2 and 3
 * groups, each group stepping on its own (an engine_submit per group; this
 * in-process engine fuses the batches pending at a collect into one
 * forward), give every request the same tokens, text, finish and
 * log-probabilities, bit for bit. On the way sequences join and leave at
 * their group's boundary, prompts are read in chunks, prefixes are shared
 * and parked, and hooks insert text and roll sequences back, as the MemLLM
 * loops do. A hook that fails while other groups are in flight leaves the
 * engine clean: nothing in flight, and the next run gives the same outputs. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "engine.h"
#include "scheduler.h"

enum { SLOTS = 4, N_REQ = 10, MAX_TOKENS = 24, PREFIX = 40 };

struct outcome {
    int32_t tokens[PREFIX + 64 + 3 * MAX_TOKENS];
    int n_tokens, n_generated;
    float logprobs[MAX_TOKENS];
    char text[4096];
    const char *finish;
};

struct run_ctx {
    struct engine *e;
    struct outcome out[N_REQ];
    int inserted[N_REQ], rolled[N_REQ];
    int fail_index;    /* a request whose hook fails at its 3rd token, -1: none */
    int max_in_flight; /* batches in the stages while a group samples */
};

static int before_sample(void *ctx, struct gen_sequence *s, const float *logits, struct mm_err *err)
{
    (void)logits;
    struct run_ctx *c = ctx;
    int f = engine_in_flight(c->e);
    c->max_in_flight = f > c->max_in_flight ? f : c->max_in_flight;
    if (s->index == c->fail_index && s->n_generated == 3) {
        mm_err_set(err, "request %d: the hook fails", s->index);
        return -1;
    }
    return 0;
}

/* Odd requests get three tokens inserted after their 4th (a memory read's
 * answer); every third rolls its last two tokens back once after its 6th. */
static int on_token(void *ctx, struct gen_sequence *s, int32_t token, const char *piece, size_t len,
                    struct mm_err *err)
{
    (void)token, (void)piece, (void)len;
    struct run_ctx *c = ctx;
    const int i = s->index;
    if (s->finish) return 0;
    if (i % 2 == 1 && s->n_generated == 4 && !c->inserted[i]) {
        const int32_t answer[3] = {77, 78, 79};
        c->inserted[i] = 1;
        return gen_sequence_insert(s, answer, 3, "[answer]", 8, err);
    }
    if (i % 3 == 0 && s->n_generated == 6 && !c->rolled[i]) {
        c->rolled[i] = 1;
        gen_sequence_truncate(s, s->n_tokens - 2);
    }
    return 0;
}

static int on_finish(void *ctx, struct gen_sequence *s, struct mm_err *err)
{
    struct run_ctx *c = ctx;
    struct outcome *o = &c->out[s->index];
    if ((size_t)s->n_tokens > sizeof(o->tokens) / sizeof(o->tokens[0]) ||
        s->n_generated > MAX_TOKENS || s->text_len >= sizeof(o->text)) {
        mm_err_set(err, "request %d: longer than the test keeps", s->index);
        return -1;
    }
    memcpy(o->tokens, s->tokens, (size_t)s->n_tokens * sizeof(int32_t));
    o->n_tokens = s->n_tokens;
    memcpy(o->logprobs, s->logprobs, (size_t)s->n_generated * sizeof(float));
    o->n_generated = s->n_generated;
    memcpy(o->text, s->text, s->text_len + 1);
    o->finish = s->finish;
    return 0;
}

static int32_t prompts[N_REQ][PREFIX + 8];
static struct gen_request reqs[N_REQ];

/* Prompts that share a prefix of 20 to 38 tokens with one another, then
 * differ; lengths and budgets vary, so sequences leave at different steps
 * and queued ones join. Even requests are greedy, odd ones sample. */
static void make_requests(void)
{
    for (int i = 0; i < N_REQ; i++) {
        int shared = 20 + 2 * i, n = shared + 1 + i % 4;
        for (int k = 0; k < n; k++)
            prompts[i][k] = (int32_t)(k < shared ? 10 + k : 300 + 17 * i + k);
        reqs[i] = (struct gen_request){.prompt = prompts[i],
                                       .n_prompt = n,
                                       .max_tokens = 5 + (7 * i) % 13,
                                       .sampling = {.greedy = i % 2 == 0,
                                                    .temperature = 0.8f,
                                                    .top_k = 20,
                                                    .top_p = 0.9f,
                                                    .seed = 1000u + (uint64_t)i},
                                       .adapter = -1};
    }
}

/* Runs every request with the slots in `groups` groups; returns the
 * scheduler's result, err set on failure. */
static int run(struct engine *e, int groups, struct run_ctx *c, int fail_index, struct mm_err *err)
{
    memset(c, 0, sizeof(*c));
    c->e = e;
    c->fail_index = fail_index;
    e->flow_groups = groups;
    struct scheduler_hooks h = {
        .before_sample = before_sample, .on_token = on_token, .on_finish = on_finish, .ctx = c};
    /* 12 tokens a step: 4 per group at G = 3, so prompts go in chunks */
    return scheduler_run(e, reqs, N_REQ, 12, &h, err);
}

static void check_same(const struct run_ctx *a, const struct run_ctx *b, const char *what)
{
    for (int i = 0; i < N_REQ; i++) {
        const struct outcome *x = &a->out[i], *y = &b->out[i];
        CHECKF(x->finish && y->finish && !strcmp(x->finish, y->finish), "%s: request %d: finish",
               what, i);
        CHECKF(x->n_tokens == y->n_tokens &&
                   !memcmp(x->tokens, y->tokens, (size_t)x->n_tokens * sizeof(int32_t)),
               "%s: request %d: other tokens (%d vs %d)", what, i, x->n_tokens, y->n_tokens);
        CHECKF(x->n_generated == y->n_generated &&
                   !memcmp(x->logprobs, y->logprobs, (size_t)x->n_generated * sizeof(float)),
               "%s: request %d: other log-probabilities", what, i);
        CHECKF(!strcmp(x->text, y->text), "%s: request %d: '%s' vs '%s'", what, i, x->text,
               y->text);
    }
}

int main(void)
{
    char dir[1024];
    test_path("MEMLLM_FIXTURES", "models/tiny-mistral", dir, sizeof(dir));
    struct engine_options o = {.model_path = dir, .n_slots = SLOTS};
    struct engine e;
    struct mm_err err = {{0}};
    REQUIRE(engine_open(&e, &o, &err) == 0, "%s", err.msg);
    CHECK(e.flow_groups == 1); /* stages in this process: whole steps */
    make_requests();

    static struct run_ctx one, other;
    REQUIRE(run(&e, 1, &one, -1, &err) == 0, "one group: %s", err.msg);
    CHECKF(one.max_in_flight == 0, "one group: %d batches in flight while sampling",
           one.max_in_flight);
    int inserted = 0, rolled = 0;
    for (int i = 0; i < N_REQ; i++) {
        inserted += one.inserted[i];
        rolled += one.rolled[i];
    }
    CHECKF(inserted >= 3 && rolled >= 2, "the hooks edited little: %d inserts, %d rollbacks",
           inserted, rolled);
    CHECKF(e.prefix_stats.reused_tokens > 0, "no prefix was shared");

    for (int g = 2; g <= 3; g++) {
        char what[64];
        snprintf(what, sizeof(what), "%d groups", g);
        REQUIRE(run(&e, g, &other, -1, &err) == 0, "%s: %s", what, err.msg);
        check_same(&one, &other, what);
        /* while a group samples, the others' batches wait in the engine */
        CHECKF(other.max_in_flight == g - 1, "%s: at most %d batches in flight while sampling",
               what, other.max_in_flight);
    }

    /* A hook fails with the other groups in flight: the run ends with its
     * error, nothing stays in flight, and the engine runs on as new. */
    CHECK(run(&e, 3, &other, 5, &err) == -1 && strstr(err.msg, "request 5: the hook fails"));
    CHECKF(engine_in_flight(&e) == 0, "%d batches left in flight", engine_in_flight(&e));
    err = (struct mm_err){{0}};
    REQUIRE(run(&e, 3, &other, -1, &err) == 0, "after a failed run: %s", err.msg);
    check_same(&one, &other, "3 groups, after a failed run");

    engine_close(&e);
    return check_report("test_scheduler_groups");
}
