/* memllm --device cuda against --device cpu, end to end through the real
 * binary: greedy text from one prompt and from a JSONL batch decoded side by
 * side (several KV-cache slots in one step), with a LoRA adapter, with bf16
 * and GGUF weights, and with two stages in one process, must be the same
 * on the GPU as on the CPU. Everywhere, bad --device values and a GPU run
 * without a usable GPU fail with a message naming the problem; the GPU
 * comparison then prints SKIP. */
#include <string.h>

#include "check.h"
#include "run_cmd.h"

static char bin[1024], fixtures[1024];

/* memllm generate on the model fixture `name` with args and --device dev. */
static struct cmd_result generate(const char *name, const char *dev, const char *const *args)
{
    char model[1200];
    snprintf(model, sizeof(model), "%s/models/%s", fixtures, name);
    char *argv[40];
    int n = 0;
    argv[n++] = bin;
    argv[n++] = "generate";
    argv[n++] = "--model";
    argv[n++] = model;
    argv[n++] = "--device";
    argv[n++] = (char *)dev;
    for (int i = 0; args[i]; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    return run_cmd(argv, NULL);
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

static void compare_devices(void)
{
    char adapter[1300], input[] = "/tmp/memllm-device-XXXXXX";
    snprintf(adapter, sizeof(adapter), "%s/models/tiny-mistral/adapter", fixtures);
    const char *prompt[] = {"--prompt", "Wilfried \" Willi \" Schneider ( born",
                            "--greedy", "--max-tokens",
                            "32",       NULL};
    expect_same("tiny-mistral", "tiny-mistral", prompt);
    expect_same("tiny-llama-bf16", "tiny-llama-bf16", prompt);
    expect_same("tiny-llama-gguf-f32", "tiny-llama-gguf-f32/model.gguf", prompt);
    const char *lora[] = {"--adapter", adapter,        "--prompt", "The Eiffel Tower is in",
                          "--greedy",  "--max-tokens", "32",       NULL};
    expect_same("tiny-mistral + LoRA", "tiny-mistral", lora);
    const char *stages[] = {"--stages",     "2",  "--prompt", "The Eiffel Tower is in", "--greedy",
                            "--max-tokens", "32", NULL};
    expect_same("tiny-mistral, 2 stages", "tiny-mistral", stages);

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
    expect_same("tiny-mistral JSONL batch of 3", "tiny-mistral", batch);
    unlink(input);
}

int main(void)
{
    const char *b = getenv("MEMLLM_BIN"), *f = getenv("MEMLLM_FIXTURES");
    REQUIRE(b && f, "MEMLLM_BIN and MEMLLM_FIXTURES must be set (run under ctest)");
    snprintf(bin, sizeof(bin), "%s", b);
    snprintf(fixtures, sizeof(fixtures), "%s", f);
    bad_device();
    if (!gpu_present()) {
        if (check_failures == 0) printf("test_device_cli: SKIP: no CUDA device\n");
        return check_report("test_device_cli");
    }
    compare_devices();
    return check_report("test_device_cli");
}
