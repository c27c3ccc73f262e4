/* memllm --device cuda against --device cpu, end to end through the real
 * binary: greedy text from one prompt and from a JSONL batch decoded side by
 * side (several KV-cache slots in one step), with a LoRA adapter, with bf16
 * and GGUF weights, and with two stages in one process, must be the same
 * on the GPU as on the CPU, in the default (batch-invariant) numerics and
 * with --cuda-fast.
 *
 * Batch invariance on the GPU (the default numerics): a JSONL batch with
 * --logprobs (greedy and seeded sampling, a LoRA request, a sliding-window
 * model) prints the same results, log-probabilities included, whatever
 * --batch, with two stages in one process, under mpirun with two stage
 * ranks and 1, 2 or 3 micro-batches (when mpirun is found: MPIEXEC, else
 * PATH), and each request run alone prints what it printed in the batch.
 *
 * Everywhere, bad --device values and a GPU run without a usable GPU fail
 * with a message naming the problem, and --cuda-fast is accepted (and
 * ignored) on the CPU; the GPU comparison then prints SKIP. */
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "run_cmd.h"

static char bin[1024], fixtures[1024], mpirun[1024];

/* [mpirun ... -np ranks] memllm generate on the model fixture `name` with
 * args and --device dev. */
static struct cmd_result generate_ranks(int ranks, const char *name, const char *dev,
                                        const char *const *args)
{
    char model[1200];
    snprintf(model, sizeof(model), "%s/models/%s", fixtures, name);
    const char *head[] = {"generate", "--model", model, "--device", dev, NULL};
    return run_memllm(mpirun, bin, ranks, head, args);
}

static struct cmd_result generate(const char *name, const char *dev, const char *const *args)
{
    return generate_ranks(0, name, dev, args);
}

/* 0: the GPU run failed as it must without a GPU; 1: a GPU ran it. */
static int gpu_present(void)
{
    const char *args[] = {"--prompt", "Hello", "--greedy", "--max-tokens", "4", NULL};
    struct cmd_result r = generate("tiny-llama", "cuda", args);
    int ran = r.status == 0;
    if (!ran) {
        CHECKF(r.status == 1, "--device cuda without a GPU: exit %d, want 1", r.status);
        CHECKF(strstr(r.err, "--device cuda") &&
                   (strstr(r.err, "no CUDA device") || strstr(r.err, "without the CUDA backend")),
               "--device cuda without a GPU: unclear error '%s'", r.err);
        CHECKF(r.out[0] == 0, "--device cuda without a GPU printed '%s'", r.out);
    }
    cmd_result_free(&r);
    return ran;
}

static void bad_device(void)
{
    const char *args[] = {"--prompt", "Hello", NULL};
    struct cmd_result r = generate("tiny-llama", "tpu", args);
    CHECKF(r.status == 2 && strstr(r.err, "--device") && strstr(r.err, "tpu"),
           "--device tpu: exit %d, '%s'", r.status, r.err);
    cmd_result_free(&r);
}

/* --cuda-fast is a model option on every device (the CPU ignores it). */
static void fast_flag_on_cpu(void)
{
    const char *plain[] = {"--prompt", "Hello", "--greedy", "--max-tokens", "4", NULL};
    const char *fast[] = {"--cuda-fast",  "--prompt", "Hello", "--greedy",
                          "--max-tokens", "4",        NULL};
    struct cmd_result a = generate("tiny-llama", "cpu", plain),
                      b = generate("tiny-llama", "cpu", fast);
    CHECKF(b.status == 0, "--cuda-fast on the CPU: exit %d: %s", b.status, b.err);
    CHECKF(a.status == 0 && !strcmp(a.out, b.out), "--cuda-fast changed the CPU's text: %s vs %s",
           b.out, a.out);
    cmd_result_free(&a);
    cmd_result_free(&b);
}

/* The same command on both devices prints the same text. */
static void expect_same(const char *what, const char *model, const char *const *args)
{
    struct cmd_result cpu = generate(model, "cpu", args), gpu = generate(model, "cuda", args);
    CHECKF(cpu.status == 0 && strlen(cpu.out) > 8, "%s on the CPU: exit %d: %s", what, cpu.status,
           cpu.err);
    CHECKF(gpu.status == 0, "%s on the GPU: exit %d: %s", what, gpu.status, gpu.err);
    CHECKF(!strcmp(cpu.out, gpu.out), "%s: the GPU printed\n%s\nthe CPU\n%s", what, gpu.out,
           cpu.out);
    cmd_result_free(&cpu);
    cmd_result_free(&gpu);
}

/* The same command on both devices prints the same text, in the GPU's
 * default numerics and with --cuda-fast. */
static void expect_same_both(const char *what, const char *model, const char *const *args)
{
    expect_same(what, model, args);
    const char *fast[40];
    int n = 0;
    fast[n++] = "--cuda-fast";
    for (int i = 0; args[i] && n < 39; i++)
        fast[n++] = args[i];
    fast[n] = NULL;
    char fwhat[200];
    snprintf(fwhat, sizeof(fwhat), "%s, --cuda-fast", what);
    struct cmd_result cpu = generate(model, "cpu", args), gpu = generate(model, "cuda", fast);
    CHECKF(gpu.status == 0, "%s on the GPU: exit %d: %s", fwhat, gpu.status, gpu.err);
    CHECKF(!strcmp(cpu.out, gpu.out), "%s: the GPU printed\n%s\nthe CPU\n%s", fwhat, gpu.out,
           cpu.out);
    cmd_result_free(&cpu);
    cmd_result_free(&gpu);
}

static void compare_devices(void)
{
    char adapter[1300], input[] = "/tmp/memllm-device-XXXXXX";
    snprintf(adapter, sizeof(adapter), "%s/models/tiny-mistral/adapter", fixtures);
    const char *prompt[] = {"--prompt", "Wilfried \" Willi \" Schneider ( born",
                            "--greedy", "--max-tokens",
                            "32",       NULL};
    expect_same_both("tiny-mistral", "tiny-mistral", prompt);
    expect_same_both("tiny-llama-bf16", "tiny-llama-bf16", prompt);
    expect_same_both("tiny-llama-gguf-f32", "tiny-llama-gguf-f32/model.gguf", prompt);
    const char *lora[] = {"--adapter", adapter,        "--prompt", "The Eiffel Tower is in",
                          "--greedy",  "--max-tokens", "32",       NULL};
    expect_same_both("tiny-mistral + LoRA", "tiny-mistral", lora);
    const char *stages[] = {"--stages",     "2",  "--prompt", "The Eiffel Tower is in", "--greedy",
                            "--max-tokens", "32", NULL};
    expect_same_both("tiny-mistral, 2 stages", "tiny-mistral", stages);

    int fd = mkstemp(input);
    REQUIRE(fd >= 0, "mkstemp");
    const char *lines = "{\"prompt\": \"Once upon a time\", \"max_tokens\": 20, \"greedy\": true}\n"
                        "{\"prompt\": \"The capital of France\", \"max_tokens\": 28, "
                        "\"greedy\": true}\n"
                        "{\"prompt\": \"A\", \"max_tokens\": 9, \"greedy\": true}\n"
                        "{\"prompt\": \"In 1912 the ship\", \"max_tokens\": 24, "
                        "\"greedy\": true, \"adapter\": \"adapter\"}\n";
    REQUIRE(write(fd, lines, strlen(lines)) == (ssize_t)strlen(lines), "write %s", input);
    close(fd);
    const char *batch[] = {"--adapter", adapter, "--input", input, "--batch", "3", NULL};
    expect_same_both("tiny-mistral JSONL batch of 3", "tiny-mistral", batch);
    unlink(input);
}

/* out with every "index":N removed (a request run alone is index 0). */
static char *without_index(const char *out)
{
    char *r = malloc(strlen(out) + 1), *w = r;
    for (const char *p = out; *p;) {
        if (!strncmp(p, "\"index\":", 8)) {
            p += 8;
            while (*p >= '0' && *p <= '9')
                p++;
            if (*p == ',') p++;
            continue;
        }
        *w++ = *p++;
    }
    *w = 0;
    return r;
}

/* Line i (0-based) of text, without its newline; "" past the end. */
static char *line_of(const char *text, int i)
{
    const char *p = text;
    for (; i > 0 && p; i--) {
        p = strchr(p, '\n');
        if (p) p++;
    }
    if (!p) p = "";
    size_t n = strcspn(p, "\n");
    char *r = malloc(n + 1);
    memcpy(r, p, n);
    r[n] = 0;
    return r;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    REQUIRE(f && fputs(text, f) >= 0 && fclose(f) == 0, "cannot write %s", path);
}

/* mpirun from MPIEXEC, else the first on PATH; 0 when there is none. */
static int find_mpirun(void)
{
    const char *e = getenv("MPIEXEC");
    if (e && *e && access(e, X_OK) == 0) {
        snprintf(mpirun, sizeof(mpirun), "%s", e);
        return 1;
    }
    const char *path = getenv("PATH");
    while (path && *path) {
        size_t n = strcspn(path, ":");
        snprintf(mpirun, sizeof(mpirun), "%.*s/mpirun", (int)n, path);
        if (n && access(mpirun, X_OK) == 0) return 1;
        path += n + (path[n] == ':');
    }
    mpirun[0] = 0;
    return 0;
}

/* Batch invariance of the GPU stage through the CLI (see the top). */
static void batch_invariance(void)
{
    enum { REQUESTS = 5 };
    static const char *const requests[REQUESTS] = {
        "{\"id\": \"a\", \"prompt\": \"Once upon a time\", \"max_tokens\": 20, \"greedy\": true}",
        "{\"id\": \"b\", \"prompt\": \"The capital of France is a city that\", \"max_tokens\": 28, "
        "\"temperature\": 0.9, \"top_k\": 40, \"seed\": 7}",
        "{\"id\": \"c\", \"prompt\": \"A\", \"max_tokens\": 9, \"greedy\": true}",
        "{\"id\": \"d\", \"prompt\": \"In 1912 the ship\", \"max_tokens\": 24, \"greedy\": true, "
        "\"adapter\": \"adapter\"}",
        "{\"id\": \"e\", \"prompt\": \"Wilfried Schneider was born in a small town near the "
        "river, and\", \"max_tokens\": 30, \"temperature\": 1.2, \"seed\": 11}",
    };
    char dir[] = "/tmp/memllm-invariant-XXXXXX", adapter[1300], all[200], one[REQUESTS][200];
    REQUIRE(mkdtemp(dir), "mkdtemp");
    snprintf(adapter, sizeof(adapter), "%s/models/tiny-mistral/adapter", fixtures);
    char text[4096] = "";
    for (int i = 0; i < REQUESTS; i++) {
        strncat(text, requests[i], sizeof(text) - strlen(text) - 2);
        strcat(text, "\n");
        snprintf(one[i], sizeof(one[i]), "%s/one%d.jsonl", dir, i);
        char line[1024];
        snprintf(line, sizeof(line), "%s\n", requests[i]);
        write_text(one[i], line);
    }
    snprintf(all, sizeof(all), "%s/all.jsonl", dir);
    write_text(all, text);

    /* the reference: every request in one step (--batch 5) */
    const char *ref_args[] = {"--adapter",  adapter,   "--input", all,
                              "--logprobs", "--batch", "5",       NULL};
    struct cmd_result ref = generate("tiny-mistral", "cuda", ref_args);
    REQUIRE(ref.status == 0, "JSONL batch of 5 on the GPU: exit %d: %s", ref.status, ref.err);
    CHECKF(strstr(ref.out, "\"logprobs\"") != NULL, "no logprobs in '%s'", ref.out);
    char *want = without_index(ref.out);

    static const char *const batches[] = {"1", "2", "3", "4"};
    for (size_t b = 0; b < sizeof(batches) / sizeof(batches[0]); b++) {
        const char *args[] = {"--adapter",  adapter,   "--input",  all,
                              "--logprobs", "--batch", batches[b], NULL};
        struct cmd_result r = generate("tiny-mistral", "cuda", args);
        char *got = without_index(r.out);
        CHECKF(r.status == 0 && !strcmp(got, want),
               "--batch %s on the GPU (exit %d: %s) printed\n%s\n--batch 5 printed\n%s", batches[b],
               r.status, r.err, r.out, ref.out);
        free(got);
        cmd_result_free(&r);
    }
    const char *stages[] = {"--adapter", adapter, "--input",  all, "--logprobs",
                            "--batch",   "3",     "--stages", "2", NULL};
    struct cmd_result r2 = generate("tiny-mistral", "cuda", stages);
    char *got2 = without_index(r2.out);
    CHECKF(r2.status == 0 && !strcmp(got2, want),
           "two stages in one process on the GPU (exit %d: %s) printed\n%s\none printed\n%s",
           r2.status, r2.err, r2.out, ref.out);
    free(got2);
    cmd_result_free(&r2);

    for (int i = 0; i < REQUESTS; i++) {
        const char *args[] = {"--adapter", adapter, "--input", one[i], "--logprobs", NULL};
        struct cmd_result r = generate("tiny-mistral", "cuda", args);
        char *got = without_index(r.out), *line = line_of(want, i);
        got[strcspn(got, "\n")] = 0;
        CHECKF(r.status == 0 && !strcmp(got, line),
               "request %d alone on the GPU (exit %d: %s) printed\n%s\nin the batch\n%s", i,
               r.status, r.err, r.out, line);
        free(got);
        free(line);
        cmd_result_free(&r);
    }

    if (find_mpirun()) {
        static const char *const micro[] = {"1", "2", "3"};
        for (size_t m = 0; m < sizeof(micro) / sizeof(micro[0]); m++) {
            const char *args[] = {"--adapter",  adapter,           "--input", all,
                                  "--logprobs", "--batch",         "5",       "--stages",
                                  "2",          "--micro-batches", micro[m],  NULL};
            struct cmd_result r = generate_ranks(3, "tiny-mistral", "cuda", args);
            char *got = without_index(r.out);
            CHECKF(r.status == 0 && !strcmp(got, want),
                   "mpirun, 2 stage ranks, %s micro-batches on the GPU (exit %d: %s) "
                   "printed\n%s\none process printed\n%s",
                   micro[m], r.status, r.err, r.out, ref.out);
            free(got);
            cmd_result_free(&r);
        }
    } else {
        printf("test_device_cli: no mpirun (MPIEXEC or PATH): the micro-batch runs are left out\n");
    }
    free(want);
    cmd_result_free(&ref);
    for (int i = 0; i < REQUESTS; i++)
        unlink(one[i]);
    unlink(all);
    rmdir(dir);
}

int main(void)
{
    const char *b = getenv("MEMLLM_BIN"), *f = getenv("MEMLLM_FIXTURES");
    REQUIRE(b && f, "MEMLLM_BIN and MEMLLM_FIXTURES must be set (run under ctest)");
    snprintf(bin, sizeof(bin), "%s", b);
    snprintf(fixtures, sizeof(fixtures), "%s", f);
    bad_device();
    fast_flag_on_cpu();
    if (!gpu_present()) {
        if (check_failures == 0) printf("test_device_cli: SKIP: no CUDA device\n");
        return check_report("test_device_cli");
    }
    compare_devices();
    batch_invariance();
    return check_report("test_device_cli");
}
