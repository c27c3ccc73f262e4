/* memllm tokenize (cli_tokenize, called in-process with stdin and stdout
 * redirected to files): prints the reference ids (HF for the tiny-mistral
 * fixture, llama.cpp's vocab test vectors for a vocabulary-only GGUF), with
 * and without BOS and special tokens; usage errors exit non-zero. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "cli.h"

static char out_path[256], in_path[256];

/* Runs `memllm tokenize args...` on `input`; returns the exit status and
 * what it printed on stdout. */
static int run(const char *input, size_t len, char *out, size_t cap, int argc, char **argv)
{
    FILE *f = fopen(in_path, "wb");
    REQUIRE(f, "cannot write %s", in_path);
    fwrite(input, 1, len, f);
    fclose(f);
    fflush(stdout);
    int saved_out = dup(STDOUT_FILENO), saved_in = dup(STDIN_FILENO);
    REQUIRE(freopen(out_path, "w", stdout) && freopen(in_path, "r", stdin), "cannot redirect");
    int rc = cli_tokenize(argc, argv);
    fflush(stdout);
    dup2(saved_out, STDOUT_FILENO);
    dup2(saved_in, STDIN_FILENO);
    close(saved_out);
    close(saved_in);
    clearerr(stdin);
    f = fopen(out_path, "rb");
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = 0;
    fclose(f);
    return rc;
}

/* Line i (0-based) of a file, without its newline. */
static void file_line(const char *path, size_t i, char *line, size_t cap)
{
    FILE *f = fopen(path, "rb");
    REQUIRE(f, "cannot open %s", path);
    for (size_t k = 0; k <= i; k++)
        REQUIRE(fgets(line, (int)cap, f), "%s has no line %zu", path, i);
    fclose(f);
    line[strcspn(line, "\n")] = 0;
}

static size_t count_lines(const char *path)
{
    FILE *f = fopen(path, "rb");
    REQUIRE(f, "cannot open %s", path);
    size_t n = 0;
    int c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

/* Index of the line that is exactly `text`. */
static size_t find_line(const char *path, const char *text)
{
    static char line[65536];
    FILE *f = fopen(path, "rb");
    REQUIRE(f, "cannot open %s", path);
    for (size_t i = 0; fgets(line, sizeof(line), f); i++) {
        line[strcspn(line, "\n")] = 0;
        if (strcmp(line, text) == 0) {
            fclose(f);
            return i;
        }
    }
    REQUIRE(0, "%s has no line '%s'", path, text);
    return 0;
}

int main(void)
{
    snprintf(out_path, sizeof(out_path), "/tmp/memllm_tok_cli_%d.out", (int)getpid());
    snprintf(in_path, sizeof(in_path), "/tmp/memllm_tok_cli_%d.in", (int)getpid());
    char model[1024], path[1100], want[65536], got[65536], text[4096];

    /* Text 0 of sentences.txt (a Re-DocRED sentence, no escapes in it). */
    file_line(test_path("MEMLLM_FIXTURES", "tokenizer/sentences.txt", path, sizeof(path)), 0, text,
              sizeof(text));
    file_line(test_path("MEMLLM_FIXTURES", "tokenizer/tiny-mistral.ids", path, sizeof(path)), 0,
              want, sizeof(want));
    test_path("MEMLLM_FIXTURES", "models/tiny-mistral", model, sizeof(model));
    char *args[] = {"tokenize", "--model", model, NULL, NULL};
    CHECK(run(text, strlen(text), got, sizeof(got), 3, args) == 0);
    strcat(want, "\n");
    CHECKF(strcmp(got, want) == 0, "tiny-mistral: '%s' instead of '%s'", got, want);

    /* --no-bos drops the reference's leading BOS ("1 "). */
    args[3] = "--no-bos";
    CHECK(run(text, strlen(text), got, sizeof(got), 4, args) == 0);
    CHECKF(strncmp(want, "1 ", 2) == 0 && strcmp(got, want + 2) == 0, "--no-bos: '%s'", got);

    /* --no-special: "<s>" in the text is plain text, as HF's
     * encode_special_tokens (the plain references, for the hand-written
     * texts at the end of sentences.txt, also have no BOS). */
    const char *special_text = "<s>Hello</s> <unk> <|endoftext|>";
    test_path("MEMLLM_FIXTURES", "tokenizer/sentences.txt", path, sizeof(path));
    size_t n_texts = count_lines(path), k = find_line(path, special_text);
    test_path("MEMLLM_FIXTURES", "tokenizer/tiny-mistral.plain.ids", path, sizeof(path));
    file_line(path, k - (n_texts - count_lines(path)), want, sizeof(want));
    strcat(want, "\n");
    char *plain_args[] = {"tokenize", "--no-special", "--model", model, "--no-bos"};
    CHECK(run(special_text, strlen(special_text), got, sizeof(got), 5, plain_args) == 0);
    CHECKF(strcmp(got, want) == 0, "--no-special: '%s' instead of '%s'", got, want);

    /* A vocabulary-only GGUF: llama.cpp's first vector, "ied 4 ½ months"
     * (its .out line starts with a space). */
    test_path("MEMLLM_DATA", "vocab/ggml-vocab-llama-spm.gguf", model, sizeof(model));
    snprintf(path, sizeof(path), "%s.out", model);
    file_line(path, 0, want, sizeof(want));
    memmove(want, want + 1, strlen(want));
    strcat(want, "\n");
    char *gguf_args[] = {"tokenize", "--model", model, "--no-bos"};
    const char *ied = "ied 4 \xC2\xBD months";
    CHECK(run(ied, strlen(ied), got, sizeof(got), 4, gguf_args) == 0);
    CHECKF(strcmp(got, want) == 0, "GGUF: '%s' instead of '%s'", got, want);
    /* By default the llama vocabulary adds BOS (id 1). */
    CHECK(run(ied, strlen(ied), got, sizeof(got), 3, gguf_args) == 0);
    CHECKF(strncmp(got, "1 ", 2) == 0 && strcmp(got + 2, want) == 0, "GGUF with BOS: '%s'", got);

    /* Usage and errors. */
    char *help[] = {"tokenize", "--help"};
    CHECK(run("", 0, got, sizeof(got), 2, help) == 0 && strstr(got, "usage: memllm tokenize"));
    char *none[] = {"tokenize"};
    CHECK(run("x", 1, got, sizeof(got), 1, none) == 2 && got[0] == 0);
    char *missing_value[] = {"tokenize", "--model"};
    CHECK(run("x", 1, got, sizeof(got), 2, missing_value) == 2);
    char *unknown[] = {"tokenize", "--model", model, "--frobnicate"};
    CHECK(run("x", 1, got, sizeof(got), 4, unknown) == 2);
    char *bad_model[] = {"tokenize", "--model", "/nonexistent/model"};
    CHECK(run("x", 1, got, sizeof(got), 3, bad_model) == 1 && got[0] == 0);

    unlink(out_path);
    unlink(in_path);
    return check_report("test_tokenizer_cli");
}
