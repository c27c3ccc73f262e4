/* The memory finds paraphrases with all-MiniLM-L6-v2 that the fallback
 * embedder cannot: with the paper's thresholds (tau_e 0.7, tau_r 0.85,
 * tau_t 0.7) a query for "wife" finds a fact stored under "spouse" and one
 * for "USA" finds "United States", in both query directions, while an
 * unrelated relation finds nothing; the same memory built with the fallback
 * (hashed trigrams) answers only the exact query. Then the same end to end
 * through the memllm binary: a new memory takes MiniLM by default, later
 * commands use the embedder the memory recorded, and a command that forces
 * another embedder is refused.
 *
 * Needs the model from deploy/fetch-models.sh; prints SKIP without it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "embedder_bert.h"
#include "memory/memory_test_util.h"
#include "memory_client.h"
#include "run_cmd.h"

static const struct mm_fact facts[] = {
    {"Barack Obama", "spouse", "Michelle Obama", {"test", 0, 0}},
    {"United States", "capital", "Washington, D.C.", {"test", 1, 0}},
    {"Dancing on Coral", "author", "Glenda Adams", {"test", 2, 0}},
};
#define N_FACTS (sizeof(facts) / sizeof(facts[0]))

struct expected {
    struct mm_query q;
    const char *answer; /* NULL: no answer */
    int paraphrase;     /* found only by a semantic embedder */
};

static const struct expected queries[] = {
    {{"Barack Obama", "spouse", 0}, "Michelle Obama", 0},
    {{"Barack Obama", "wife", 0}, "Michelle Obama", 1},
    {{"Michelle Obama", "wife", 1}, "Barack Obama", 1},
    {{"USA", "capital", 0}, "Washington, D.C.", 1},
    {{"Barack Obama", "capital", 0}, NULL, 0},
};
#define N_QUERIES (sizeof(queries) / sizeof(queries[0]))

static double similarity(struct mm_embedder *e, const char *a, const char *b)
{
    float *v = malloc(2 * (size_t)e->dim * sizeof(float));
    const char *texts[2] = {a, b};
    struct mm_err err = {{0}};
    REQUIRE(mm_embed(e, texts, 2, v, &err) == 0, "%s", err.msg);
    double dot = 0;
    for (int d = 0; d < e->dim; d++)
        dot += (double)v[d] * v[e->dim + d];
    free(v);
    return dot;
}

/* Writes the facts into a fresh memory and runs the queries; semantic says
 * whether the paraphrases must be found. */
static void run_memory(struct mm_embedder *e, int semantic)
{
    char *dir = test_tmpdir("embedder-memory");
    struct mm_err err = {{0}};
    struct mm_memory *m = mm_memory_open_local(dir, 1, e, 0, &err);
    REQUIRE(m, "%s", err.msg);
    REQUIRE(mm_memory_write(m, facts, N_FACTS, NULL, 0, NULL, &err) == 0, "%s", err.msg);
    struct mm_query q[N_QUERIES];
    for (size_t i = 0; i < N_QUERIES; i++)
        q[i] = queries[i].q;
    struct mm_query_options o;
    mm_query_options_default(&o);
    struct mm_answers a[N_QUERIES];
    REQUIRE(mm_memory_query(m, q, N_QUERIES, &o, a, &err) == 0, "%s", err.msg);
    for (size_t i = 0; i < N_QUERIES; i++) {
        const struct expected *x = &queries[i];
        int want = x->answer && (semantic || !x->paraphrase);
        const char *got = a[i].n ? a[i].a[0].text : "(none)";
        CHECKF(want ? a[i].n == 1 && !strcmp(got, x->answer) : a[i].n == 0,
               "%s: (%s, %s, %s): %zu answers, first %s; want %s", e->name,
               x->q.want_subject ? "?" : x->q.entity, x->q.relation,
               x->q.want_subject ? x->q.entity : "?", a[i].n, got, want ? x->answer : "none");
        printf("%-12s (%s, %s, %s) -> %s", semantic ? "MiniLM" : "fallback",
               x->q.want_subject ? "?" : x->q.entity, x->q.relation,
               x->q.want_subject ? x->q.entity : "?", got);
        if (a[i].n) printf(" (score %.4f)", a[i].a[0].score);
        printf("\n");
    }
    mm_answers_free(a, N_QUERIES);
    REQUIRE(mm_memory_close(m, &err) == 0, "%s", err.msg);
    test_rmtree(dir);
    free(dir);
}

static struct cmd_result memllm(const char *dir, const char *a1, const char *a2, const char *a3)
{
    char bin[1024];
    snprintf(bin, sizeof(bin), "%s", getenv("MEMLLM_BIN"));
    char *argv[] = {bin,         "memory",   (char *)a1, "--memory",
                    (char *)dir, (char *)a2, (char *)a3, NULL};
    return run_cmd(argv, NULL);
}

static void free_result(struct cmd_result *r)
{
    free(r->out);
    free(r->err);
}

static void run_cli(const char *embedder_name)
{
    char *dir = test_tmpdir("embedder-cli");
    char mem[1100];
    snprintf(mem, sizeof(mem), "%s/mem", dir);

    struct cmd_result r = memllm(mem, "write", "United States>>capital>>Washington, D.C.", NULL);
    CHECKF(r.status == 0, "write: %s", r.err);
    free_result(&r);

    r = memllm(mem, "stats", NULL, NULL);
    char want[256];
    snprintf(want, sizeof(want), "embedder: %s\n", embedder_name);
    CHECKF(r.status == 0 && strstr(r.out, want), "stats: %s%s", r.out, r.err);
    free_result(&r);

    r = memllm(mem, "query", "USA>>capital>>", NULL);
    CHECKF(r.status == 0 && strstr(r.out, "Washington, D.C."), "query: %s%s", r.out, r.err);
    printf("memllm memory query \"USA>>capital>>\" (recorded embedder):\n%s", r.out);
    free_result(&r);

    r = memllm(mem, "query", "USA>>capital>>", "--embedder=fallback");
    CHECKF(r.status != 0 && strstr(r.err, "built with embedder"), "forced fallback: %d %s",
           r.status, r.err);
    printf("with --embedder fallback: %s", r.err);
    free_result(&r);

    test_rmtree(dir);
    free(dir);
}

int main(void)
{
    char model_dir[1024], weights[1100];
    test_path("MEMLLM_MODELS_DIR", "all-MiniLM-L6-v2", model_dir, sizeof(model_dir));
    snprintf(weights, sizeof(weights), "%s/model.safetensors", model_dir);
    if (access(weights, R_OK) != 0) {
        printf("SKIP: %s is absent (run deploy/fetch-models.sh)\n", weights);
        return 0;
    }
    struct mm_err err = {{0}};
    struct mm_embedder *minilm = mm_bert_embedder_new(model_dir, &err);
    REQUIRE(minilm, "%s", err.msg);
    struct mm_embedder *fallback = mm_fallback_embedder_new(&err);
    REQUIRE(fallback, "%s", err.msg);

    static const char *const pairs[][2] = {
        {"wife", "spouse"}, {"USA", "United States"}, {"capital", "spouse"}};
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++)
        printf("cosine '%s' vs '%s': MiniLM %.4f, fallback %.4f\n", pairs[i][0], pairs[i][1],
               similarity(minilm, pairs[i][0], pairs[i][1]),
               similarity(fallback, pairs[i][0], pairs[i][1]));

    run_memory(minilm, 1);
    run_memory(fallback, 0);
    run_cli(minilm->name);

    mm_embedder_free(minilm);
    mm_embedder_free(fallback);
    return check_report("test_embedder_memory");
}
