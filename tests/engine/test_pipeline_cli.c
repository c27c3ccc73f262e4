/* Layers split into pipeline stages, and memory shards on ranks, give the
 * same output as one process:
 * stages in one process (--stages P) and stages on MPI ranks (mpirun -np
 * 1+P), single prompts and JSONL batches cut into micro-batches, on the
 * tiny Mistral fixture (compared with HF's greedy continuation, with its
 * adapter) and on SmolLM2-135M (30 layers, up to 3 stages). Bad layouts fail
 * with a message naming the problem. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "run_cmd.h"

static char bin[1024], mpirun[1024];

/* argv = [mpirun -np N] memllm generate <args...> */
static struct cmd_result generate(int ranks, const char *const *args)
{
    const char *head[] = {"generate", NULL};
    return run_memllm(mpirun, bin, ranks, head, args);
}

/* Runs `args` with --stages P locally (ranks 0) or under mpirun (1 + P
 * ranks) and checks stdout equals `want`. */
static void expect_same(const char *what, const char *const *args, int stages, int mpi,
                        const char *want)
{
    const char *full[64];
    int n = 0;
    for (; args[n]; n++)
        full[n] = args[n];
    char p[16];
    snprintf(p, sizeof(p), "%d", stages);
    full[n++] = "--stages";
    full[n++] = p;
    full[n] = NULL;
    struct cmd_result r = generate(mpi ? 1 + stages : 0, full);
    CHECKF(r.status == 0, "%s, %d stages%s: exit %d: %s", what, stages, mpi ? " (MPI)" : "",
           r.status, r.err);
    CHECKF(!strcmp(r.out, want), "%s, %d stages%s: output differs:\n%s\nvs one stage:\n%s", what,
           stages, mpi ? " (MPI)" : "", r.out, want);
    cmd_result_free(&r);
}

static int write_all(int fd, const char *text)
{
    return write(fd, text, strlen(text)) == (ssize_t)strlen(text);
}

/* JSONL results with each read's latency taken out of their traces: the one
 * field that differs between runs and layouts, so only it is left out of the
 * comparison. Every read that ran a query must carry it: in all and at each
 * of the `shards` shards, > 0 ms. malloc'd. */
static char *without_latency(const char *what, const char *jsonl, int shards)
{
    size_t cap = strlen(jsonl) + 1, used = 0;
    char *out = malloc(cap);
    REQUIRE(out, "out of memory");
    for (const char *line = jsonl; *line;) {
        size_t len = strcspn(line, "\n");
        json_error_t je;
        json_t *res = json_loadb(line, len, 0, &je);
        REQUIRE(res, "%s: a result is not JSON (%s): %.*s", what, je.text, (int)len, line);
        size_t i;
        json_t *rd;
        json_array_foreach(json_object_get(res, "reads"), i, rd)
        {
            int queried = 0;
            size_t k;
            json_t *q;
            json_array_foreach(json_object_get(rd, "queries"), k, q) queried |=
                json_object_get(q, "answers") != NULL;
            json_t *lat = json_object_get(rd, "latency"), *ms = json_object_get(lat, "shard_ms");
            int ok = json_real_value(json_object_get(lat, "ms")) > 0 &&
                     json_array_size(ms) == (size_t)shards;
            for (k = 0; ok && k < json_array_size(ms); k++)
                ok = json_real_value(json_array_get(ms, k)) > 0;
            CHECKF(!queried || ok, "%s: read %zu without its latency at %d shards: %.*s", what, i,
                   shards, (int)len, line);
            json_object_del(rd, "latency");
        }
        char *text = json_dumps(res, JSON_COMPACT);
        REQUIRE(text, "out of memory");
        size_t n = strlen(text);
        if (used + n + 2 > cap) {
            cap = 2 * (used + n + 2);
            out = realloc(out, cap);
            REQUIRE(out, "out of memory");
        }
        memcpy(out + used, text, n);
        used += n;
        out[used++] = '\n';
        free(text);
        json_decref(res);
        line += len + (line[len] == '\n');
    }
    out[used] = 0;
    return out;
}

static char *reference_output(const char *what, const char *const *args)
{
    struct cmd_result r = generate(0, args);
    REQUIRE(r.status == 0, "%s: exit %d: %s", what, r.status, r.err);
    REQUIRE(strlen(r.out) > 8, "%s: printed too little: '%s'", what, r.out);
    free(r.err);
    return r.out;
}

static void tiny_fixture(const char *fixtures)
{
    char model[1200], adapter[1300];
    snprintf(model, sizeof(model), "%s/models/tiny-mistral", fixtures);
    snprintf(adapter, sizeof(adapter), "%s/adapter", model);
    const char *args[] = {"--model",  model,          "--adapter",
                          adapter,    "--prompt",     "Wilfried \" Willi \" Schneider ( born",
                          "--greedy", "--max-tokens", "24",
                          NULL};
    char *want = reference_output("tiny-mistral", args);
    expect_same("tiny-mistral", args, 2, 0, want);
    expect_same("tiny-mistral", args, 1, 1, want);
    expect_same("tiny-mistral", args, 2, 1, want);
    free(want);
}

static void smollm2(const char *models)
{
    char model[1200];
    snprintf(model, sizeof(model), "%s/SmolLM2-135M-Instruct.Q4_1.gguf", models);
    if (access(model, R_OK) != 0) {
        printf("SKIP: SmolLM2 part: %s is absent (run deploy/fetch-models.sh)\n", model);
        return;
    }
    const char *one[] = {"--model",  model,
                         "--prompt", "The capital of France is",
                         "--greedy", "--max-tokens",
                         "16",       "--threads",
                         "1",        NULL};
    char *want = reference_output("SmolLM2 prompt", one);
    expect_same("SmolLM2 prompt", one, 3, 0, want);
    expect_same("SmolLM2 prompt", one, 2, 1, want);
    expect_same("SmolLM2 prompt", one, 3, 1, want);
    free(want);

    /* Three requests decoded together, cut into micro-batches on the ranks;
     * --layers puts the split points where the even split would not. */
    char in[] = "/tmp/memllm-pipe-XXXXXX";
    int fd = mkstemp(in);
    const char *lines = "{\"prompt\": \"Paris is the capital of\", \"max_tokens\": 12}\n"
                        "{\"prompt\": \"Dancing on Coral is a novel by\", \"max_tokens\": 9}\n"
                        "{\"prompt\": \"The Rhine flows through\", \"max_tokens\": 14}\n";
    REQUIRE(fd >= 0 && write_all(fd, lines), "temp file");
    close(fd);
    const char *batch[] = {"--model", model, "--input",   in,  "--greedy",
                           "--batch", "3",   "--threads", "1", NULL};
    want = reference_output("SmolLM2 batch", batch);
    const char *batch_split[] = {"--model", model,      "--input",   in,  "--greedy",
                                 "--batch", "3",        "--threads", "1", "--micro-batches",
                                 "3",       "--layers", "7,20",      NULL};
    expect_same("SmolLM2 batch", batch_split, 3, 1, want);
    expect_same("SmolLM2 batch", batch_split, 3, 0, want);
    free(want);
    unlink(in);
}

/* The read loop with the memory's shards on ranks P+1..P+S answers as the
 * same shards in one process do. */
static void with_memory(const char *fixtures)
{
    char model[1200];
    snprintf(model, sizeof(model), "%s/models/tiny-mistral", fixtures);
    char dir[] = "/tmp/memllm-pipe-mem-XXXXXX";
    REQUIRE(mkdtemp(dir), "mkdtemp");
    char *write[] = {bin,
                     "memory",
                     "write",
                     "--memory",
                     dir,
                     "--memshards",
                     "2",
                     "--embedder",
                     "fallback",
                     "Dancing on Coral>>author>>Glenda Adams",
                     "Glenda Adams>>country of citizenship>>Australia",
                     NULL};
    struct cmd_result r = run_cmd(write, NULL);
    REQUIRE(r.status == 0, "memory write: %s", r.err);
    cmd_result_free(&r);
    char in[] = "/tmp/memllm-pipe-reads-XXXXXX";
    int fd = mkstemp(in);
    const char *lines =
        "{\"prompt\": \"Dancing on Coral is a novel by ({MEM_READ(Dancing on "
        "Coral>>author>>)-->\"}\n"
        "{\"prompt\": \"The Moon is orbited by ({MEM_READ(The Moon>>satellite>>)-->\"}\n"
        "{\"prompt\": \"She was ({MEM_READ(>>country of citizenship>>Australia;x)-->\"}\n";
    REQUIRE(fd >= 0 && write_all(fd, lines), "temp file");
    close(fd);
    const char *args[] = {"--model",      model, "--memory", dir, "--input",     in,  "--greedy",
                          "--max-tokens", "12",  "--batch",  "3", "--memshards", "2", NULL};
    char *one = reference_output("read loop", args);
    CHECKF(strstr(one, "\"outcome\":\"answered\"") && strstr(one, "\"outcome\":\"no_answer\""),
           "read loop outputs: %s", one);
    CHECKF(strstr(one, "\"latency\":"), "read loop: no latency in the traces: %s", one);
    char *want = without_latency("read loop, one process", one, 2);
    /* 2 stages in one process, then mpirun: 1 coordinator + 2 stages + 2
     * shards, the shards answering the reads over MPI. */
    const char *full[64];
    int n = 0;
    for (; args[n]; n++)
        full[n] = args[n];
    full[n++] = "--stages";
    full[n++] = "2";
    full[n] = NULL;
    for (int ranks = 0; ranks <= 5; ranks += 5) {
        const char *how = ranks ? "read loop under mpirun" : "read loop, 2 stages";
        struct cmd_result m = generate(ranks, full);
        CHECKF(m.status == 0, "%s: exit %d: %s", how, m.status, m.err);
        char *got = without_latency(how, m.out, 2);
        CHECKF(!strcmp(got, want), "%s differs:\n%s\nvs\n%s", how, m.out, one);
        free(got);
        cmd_result_free(&m);
    }
    free(want);
    free(one);
    unlink(in);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    REQUIRE(system(cmd) == 0, "cleanup");
}

static void bad_layouts(const char *fixtures)
{
    char model[1200];
    snprintf(model, sizeof(model), "%s/models/tiny-mistral", fixtures);
    struct {
        int ranks;
        const char *args[12];
        const char *says;
    } cases[] = {
        {0,
         {"--model", model, "--prompt", "x", "--stages", "3", NULL},
         "3 stages for a model of 2 layers"},
        {0,
         {"--model", model, "--prompt", "x", "--stages", "2", "--layers", "1,1", NULL},
         "split points"},
        {0,
         {"--model", model, "--prompt", "x", "--stages", "2", "--layers", "2", NULL},
         "no layers"},
        {2, {"--model", model, "--prompt", "x", "--stages", "2", NULL}, "need mpirun -np 3"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cmd_result r = generate(cases[i].ranks, cases[i].args);
        CHECKF(r.status != 0, "case %zu: exit 0", i);
        CHECKF(strstr(r.err, cases[i].says) != NULL, "case %zu: stderr '%s' lacks '%s'", i, r.err,
               cases[i].says);
        cmd_result_free(&r);
    }
}

int main(int argc, char **argv)
{
    REQUIRE(argc == 2, "usage: test_pipeline_cli MPIRUN");
    snprintf(mpirun, sizeof(mpirun), "%s", argv[1]);
    snprintf(bin, sizeof(bin), "%s", getenv("MEMLLM_BIN"));
    char fixtures[1024], models[1024];
    test_path("MEMLLM_FIXTURES", ".", fixtures, sizeof(fixtures));
    test_path("MEMLLM_MODELS_DIR", ".", models, sizeof(models));
    tiny_fixture(fixtures);
    smollm2(models);
    with_memory(fixtures);
    bad_layouts(fixtures);
    return check_report("test_pipeline_cli");
}
