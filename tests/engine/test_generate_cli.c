/* memllm generate and memllm ppl end to end, running the real binary on the
 * tiny-mistral fixture: the text equals HF's greedy continuation (with and
 * without the adapter, one prompt and JSONL with continuous batching), stop
 * strings cut the text, perplexity equals the one of HF's logits, and bad
 * input fails with a message naming it. Prefix sharing: requests with a
 * common system prompt give the same bytes with sharing, without it, and
 * with a cache budget too small for them (evicting). */
#include <jansson.h>
#include <math.h>
#include <string.h>

#include "check.h"
#include "run_cmd.h"
#include "tokenizer.h"

static char bin[1024], model[1024], adapter[1100];

struct fixture {
    char *prompt; /* text of the greedy prompt (without BOS) */
    char *want, *want_lora;
    char *full_prompt;      /* the 64-token reference text */
    int32_t stop_token;     /* a token of HF's greedy continuation ... */
    char *want_before_stop; /* ... and the text before its first occurrence */
    double ppl;             /* of HF's logits over full_prompt */
};

static int32_t *ids_of(json_t *arr, size_t *n)
{
    size_t i;
    json_t *v;
    *n = json_array_size(arr);
    int32_t *ids = malloc(*n * sizeof(int32_t));
    json_array_foreach(arr, i, v) ids[i] = (int32_t)json_integer_value(v);
    return ids;
}

static double reference_ppl(const char *logits_path, const int32_t *ids, size_t n, int vocab)
{
    FILE *f = fopen(logits_path, "rb");
    REQUIRE(f, "cannot open %s", logits_path);
    float *row = malloc((size_t)vocab * sizeof(float));
    double nll = 0.0;
    for (size_t t = 0; t + 1 < n; t++) {
        REQUIRE(fread(row, sizeof(float), (size_t)vocab, f) == (size_t)vocab, "short logits");
        double max = row[0], sum = 0.0;
        for (int i = 1; i < vocab; i++)
            max = row[i] > max ? row[i] : max;
        for (int i = 0; i < vocab; i++)
            sum += exp(row[i] - max);
        nll -= row[ids[t + 1]] - max - log(sum);
    }
    fclose(f);
    free(row);
    return exp(nll / (double)(n - 1));
}

static void load_fixture(struct fixture *fx)
{
    char path[1200];
    snprintf(path, sizeof(path), "%s/reference.json", model);
    json_error_t jerr;
    json_t *ref = json_load_file(path, 0, &jerr);
    REQUIRE(ref, "%s: %s", path, jerr.text);
    struct mm_err err = {{0}};
    struct tokenizer *tok = tok_load(model, &err);
    REQUIRE(tok, "%s", err.msg);
    size_t n_prompt, n_greedy, n_lora, n_full;
    int32_t *prompt = ids_of(json_object_get(ref, "greedy_prompt_ids"), &n_prompt);
    int32_t *greedy = ids_of(json_object_get(ref, "greedy_ids"), &n_greedy);
    int32_t *lora = ids_of(json_object_get(json_object_get(ref, "adapter"), "greedy_ids"), &n_lora);
    int32_t *full = ids_of(json_object_get(ref, "prompt_ids"), &n_full);
    REQUIRE(prompt[0] == tok_bos(tok), "the fixture's prompts start with BOS");
    fx->prompt = tok_decode(tok, prompt + 1, n_prompt - 1, 1, &err);
    fx->full_prompt = tok_decode(tok, full + 1, n_full - 1, 1, &err);
    /* What the CLI prints: the continuation decoded after the prompt. */
    struct tok_decoder d;
    char *bufs[2] = {NULL, NULL};
    const int32_t *conts[2] = {greedy, lora};
    size_t lens[2] = {n_greedy, n_lora};
    size_t cap = tok_decoder_max_out(tok);
    for (int k = 0; k < 2; k++) {
        tok_decoder_init(&d, tok);
        d.at_start = 0;
        bufs[k] = calloc(lens[k] * cap + cap + 1, 1);
        size_t len = 0;
        for (size_t i = 0; i < lens[k]; i++)
            len += (size_t)tok_decoder_push(&d, conts[k][i], bufs[k] + len, cap);
        len += (size_t)tok_decoder_flush(&d, bufs[k] + len, cap);
    }
    fx->want = bufs[0];
    fx->want_lora = bufs[1];
    size_t first = 0;
    fx->stop_token = greedy[4];
    while (greedy[first] != fx->stop_token)
        first++;
    tok_decoder_init(&d, tok);
    d.at_start = 0;
    fx->want_before_stop = calloc(first * cap + cap + 1, 1);
    size_t len = 0;
    for (size_t i = 0; i < first; i++)
        len += (size_t)tok_decoder_push(&d, greedy[i], fx->want_before_stop + len, cap);
    tok_decoder_flush(&d, fx->want_before_stop + len, cap);
    snprintf(path, sizeof(path), "%s/logits.f32", model);
    fx->ppl = reference_ppl(path, full, n_full, tok_n_vocab(tok));
    free(prompt);
    free(greedy);
    free(lora);
    free(full);
    tok_free(tok);
    json_decref(ref);
}

static char *with_newline(const char *s)
{
    char *r = malloc(strlen(s) + 2);
    sprintf(r, "%s\n", s);
    return r;
}

static void check_single_prompt(const struct fixture *fx)
{
    char *want = with_newline(fx->want);
    char *argv[] = {bin,        "generate",     "--model", model,       "--prompt", fx->prompt,
                    "--greedy", "--max-tokens", "32",      "--threads", "1",        NULL};
    struct cmd_result r = run_cmd(argv, NULL);
    CHECKF(r.status == 0, "exit %d: %s", r.status, r.err);
    CHECKF(strcmp(r.out, want) == 0, "got '%s', HF greedy '%s'", r.out, fx->want);
    cmd_result_free(&r);
    free(want);

    /* The same with the adapter: the only adapter loaded is used. */
    want = with_newline(fx->want_lora);
    char *argv2[] = {bin,        "generate", "--model",  model,          "--adapter", adapter,
                     "--prompt", fx->prompt, "--greedy", "--max-tokens", "32",        NULL};
    r = run_cmd(argv2, NULL);
    CHECKF(r.status == 0, "exit %d: %s", r.status, r.err);
    CHECKF(strcmp(r.out, want) == 0, "with adapter: got '%s', HF greedy '%s'", r.out,
           fx->want_lora);
    cmd_result_free(&r);
    free(want);

    /* A stop string cuts the text just before it. */
    size_t cut = strlen(fx->want) / 2;
    char stop[8] = {0};
    memcpy(stop, fx->want + cut, 3);
    char *hit = strstr(fx->want, stop);
    char *argv3[] = {bin,        "generate",     "--model", model,    "--prompt", fx->prompt,
                     "--greedy", "--max-tokens", "32",      "--stop", stop,       NULL};
    r = run_cmd(argv3, NULL);
    CHECKF(r.status == 0, "exit %d: %s", r.status, r.err);
    CHECKF(strlen(r.out) == (size_t)(hit - fx->want) + 1 &&
               !strncmp(r.out, fx->want, (size_t)(hit - fx->want)),
           "stop '%s': got '%s'", stop, r.out);
    cmd_result_free(&r);

    /* A stop token ends the text before it. */
    char id[16];
    snprintf(id, sizeof(id), "%d", fx->stop_token);
    want = with_newline(fx->want_before_stop);
    char *argv4[] = {bin,        "generate",     "--model", model,          "--prompt", fx->prompt,
                     "--greedy", "--max-tokens", "32",      "--stop-token", id,         NULL};
    r = run_cmd(argv4, NULL);
    CHECKF(r.status == 0, "exit %d: %s", r.status, r.err);
    CHECKF(!strcmp(r.out, want), "stop token %s: got '%s', want '%s'", id, r.out, want);
    cmd_result_free(&r);
    free(want);
}

static void check_jsonl(const struct fixture *fx)
{
    char in_path[] = "/tmp/memllm-gen-XXXXXX";
    int fd = mkstemp(in_path);
    REQUIRE(fd >= 0, "mkstemp");
    FILE *f = fdopen(fd, "w");
    /* Three requests decoded together: base, adapter, base again with a
     * different length, so sequences join and leave at different steps. */
    const char *adapters[3] = {NULL, "lora", NULL};
    const int lens[3] = {32, 32, 5};
    for (int i = 0; i < 3; i++) {
        json_t *o = json_pack("{s:s, s:i, s:i, s:b}", "prompt", fx->prompt, "id", 100 + i,
                              "max_tokens", lens[i], "greedy", 1);
        /* null: the base model, although one adapter is loaded (the default). */
        json_object_set_new(o, "adapter", adapters[i] ? json_string(adapters[i]) : json_null());
        json_dumpf(o, f, JSON_COMPACT);
        fputc('\n', f);
        json_decref(o);
    }
    fclose(f);
    char spec[1200];
    snprintf(spec, sizeof(spec), "lora=%s", adapter);
    char *argv[] = {bin,       "generate", "--model", model, "--adapter",  spec,
                    "--input", in_path,    "--batch", "3",   "--logprobs", NULL};
    struct cmd_result r = run_cmd(argv, NULL);
    CHECKF(r.status == 0, "exit %d: %s", r.status, r.err);
    char *line = r.out;
    for (int i = 0; i < 3 && line; i++) {
        char *nl = strchr(line, '\n');
        REQUIRE(nl, "result %d missing: '%s'", i, r.out);
        json_error_t jerr;
        json_t *res = json_loadb(line, (size_t)(nl - line), 0, &jerr);
        REQUIRE(res, "result %d is not JSON: %s", i, jerr.text);
        CHECK(json_integer_value(json_object_get(res, "id")) == 100 + i);
        CHECK(json_integer_value(json_object_get(res, "generated_tokens")) == lens[i]);
        CHECK(json_array_size(json_object_get(res, "logprobs")) == (size_t)lens[i]);
        CHECK(!strcmp(json_string_value(json_object_get(res, "finish_reason")), "length"));
        const char *text = json_string_value(json_object_get(res, "text"));
        const char *want = i == 1 ? fx->want_lora : fx->want;
        if (lens[i] == 32)
            CHECKF(text && !strcmp(text, want), "request %d: '%s' vs HF '%s'", i, text, want);
        else
            CHECKF(text && !strncmp(text, want, strlen(text)), "request %d: '%s'", i, text);
        json_decref(res);
        line = nl + 1;
    }
    cmd_result_free(&r);
    unlink(in_path);
}

/* Runs generate over in_path with the extra options; returns stdout,
 * stderr in *log. */
static char *generate_jsonl(const char *in_path, const char *opt, const char *value, char **log)
{
    char spec[1200];
    snprintf(spec, sizeof(spec), "lora=%s", adapter);
    char *argv[] = {bin,       "generate",      "--model", model, "--adapter", spec,
                    "--input", (char *)in_path, "--batch", "3",   (char *)opt, (char *)value,
                    NULL};
    struct cmd_result r = run_cmd(argv, NULL);
    REQUIRE(r.status == 0, "generate %s %s: exit %d: %s", opt ? opt : "", value ? value : "",
            r.status, r.err);
    *log = r.err;
    return r.out;
}

/* "prefix cache: R of T prompt tokens reused, K prefixes kept, E evicted" */
static void prefix_figures(const char *log, long *reused, long *evicted)
{
    const char *p = strstr(log, "prefix cache: ");
    long total, kept;
    REQUIRE(p && sscanf(p,
                        "prefix cache: %ld of %ld prompt tokens reused, %ld prefixes kept, "
                        "%ld evicted",
                        reused, &total, &kept, evicted) == 4,
            "no prefix cache figures in: %s", log);
}

static void check_shared_prefix(void)
{
    char in_path[] = "/tmp/memllm-gen-prefix-XXXXXX";
    int fd = mkstemp(in_path);
    REQUIRE(fd >= 0, "mkstemp");
    FILE *f = fdopen(fd, "w");
    /* Eight requests, three at a time: the later ones find the system
     * prompt in a running sequence or parked by a finished one; greedy and
     * sampled, base and adapter (whose keys differ: never shared across). */
    const char *system = "You are a careful assistant. Answer in one short sentence and cite "
                         "the facts you read from memory. ";
    for (int i = 0; i < 8; i++) {
        char prompt[400];
        snprintf(prompt, sizeof(prompt), "%sQuestion %d: where is city number %d?", system, i,
                 i * 7);
        json_t *o = json_pack("{s:s, s:i, s:i}", "prompt", prompt, "id", i, "max_tokens", 12 + i);
        if (i % 2) {
            json_object_set_new(o, "temperature", json_real(0.8));
            json_object_set_new(o, "seed", json_integer(40 + i));
        } else {
            json_object_set_new(o, "greedy", json_true());
        }
        json_object_set_new(o, "adapter", i % 3 == 2 ? json_string("lora") : json_null());
        json_dumpf(o, f, JSON_COMPACT);
        fputc('\n', f);
        json_decref(o);
    }
    fclose(f);
    char *log_on, *log_off, *log_small;
    char *on = generate_jsonl(in_path, NULL, NULL, &log_on);
    char *off = generate_jsonl(in_path, "--no-prefix-cache", NULL, &log_off);
    char *small = generate_jsonl(in_path, "--kv-cache-mb", "0.06", &log_small);
    CHECKF(!strcmp(on, off), "with prefix sharing:\n%s\nwithout:\n%s", on, off);
    CHECKF(!strcmp(small, off), "with a small prefix cache:\n%s\nwithout:\n%s", small, off);
    long reused, evicted;
    prefix_figures(log_on, &reused, &evicted);
    CHECKF(reused >= 7 * 30, "only %ld prompt tokens reused", reused);
    prefix_figures(log_small, &reused, &evicted);
    CHECKF(evicted > 0, "a budget of about 120 tokens evicted nothing (%ld reused)", reused);
    CHECKF(!strstr(log_off, "prefix cache:"), "--no-prefix-cache still shares: %s", log_off);
    free(on);
    free(off);
    free(small);
    free(log_on);
    free(log_off);
    free(log_small);
    unlink(in_path);
}

static void check_ppl(const struct fixture *fx)
{
    char path[] = "/tmp/memllm-ppl-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0 && write(fd, fx->full_prompt, strlen(fx->full_prompt)) > 0, "temp file");
    close(fd);
    char *argv[] = {bin, "ppl", "--model", model, "--window", "64", path, NULL};
    struct cmd_result r = run_cmd(argv, NULL);
    CHECKF(r.status == 0, "exit %d: %s", r.status, r.err);
    double ppl = 0.0;
    const char *p = strstr(r.out, "ppl: ");
    CHECKF(p && sscanf(p, "ppl: %lf", &ppl) == 1, "output '%s'", r.out);
    CHECKF(fabs(ppl / fx->ppl - 1.0) < 1e-4, "ppl %f, HF logits give %f", ppl, fx->ppl);
    CHECK(strstr(r.out, "tokens: 63\n") != NULL);
    cmd_result_free(&r);
    unlink(path);
}

static void expect_failure(char *const argv[], const char *what, const char *in_stderr)
{
    struct cmd_result r = run_cmd(argv, NULL);
    CHECKF(r.status != 0 && r.status < 128, "%s: exit %d", what, r.status);
    CHECKF(strstr(r.err, in_stderr) != NULL, "%s: stderr '%s' lacks '%s'", what, r.err, in_stderr);
    CHECKF(r.out[0] == 0, "%s: printed '%s'", what, r.out);
    cmd_result_free(&r);
}

static void check_errors(const struct fixture *fx)
{
    char *too_long[] = {bin, "generate", "--model",  model, "--context",
                        "8", "--prompt", fx->prompt, NULL};
    expect_failure(too_long, "prompt longer than the context", "context holds 8");
    char *missing[] = {bin,        "generate", "--model", "/nonexistent/model.gguf",
                       "--prompt", "x",        NULL};
    expect_failure(missing, "missing model", "/nonexistent/model.gguf");
    char *bad_opt[] = {bin, "generate", "--model", model, "--prompt", "x", "--frobnicate", NULL};
    expect_failure(bad_opt, "unknown option", "--frobnicate");
    char *bad_num[] = {bin, "generate", "--model", model, "--prompt", "x", "--top-p", "2", NULL};
    expect_failure(bad_num, "bad top-p", "--top-p");
    char *no_adapter[] = {bin, "generate",      "--model", model, "--prompt",
                          "x", "--use-adapter", "mr",      NULL};
    expect_failure(no_adapter, "unknown adapter", "no adapter named 'mr'");

    char path[] = "/tmp/memllm-bad-XXXXXX";
    int fd = mkstemp(path);
    const char *lines = "{\"prompt\": \"a\"}\n{\"prompt\": 3}\n";
    REQUIRE(fd >= 0 && write(fd, lines, strlen(lines)) > 0, "temp file");
    close(fd);
    char where[300];
    snprintf(where, sizeof(where), "%s:2", path);
    char *bad_jsonl[] = {bin, "generate", "--model", model, "--input", path, NULL};
    expect_failure(bad_jsonl, "bad JSONL line", where);
    unlink(path);
}

int main(void)
{
    snprintf(bin, sizeof(bin), "%s", getenv("MEMLLM_BIN"));
    test_path("MEMLLM_FIXTURES", "models/tiny-mistral", model, sizeof(model));
    snprintf(adapter, sizeof(adapter), "%s/adapter", model);
    struct fixture fx;
    load_fixture(&fx);
    check_single_prompt(&fx);
    check_jsonl(&fx);
    check_shared_prefix();
    check_ppl(&fx);
    check_errors(&fx);
    free(fx.prompt);
    free(fx.full_prompt);
    free(fx.want);
    free(fx.want_lora);
    free(fx.want_before_stop);
    return check_report("test_generate_cli");
}
