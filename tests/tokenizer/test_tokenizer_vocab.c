/* llama.cpp's tokenizer test vectors (tests/test-tokenizer-0 in llama.cpp):
 * for each vocabulary-only GGUF, the inputs in <vocab>.inp (separated by
 * "\n__ggml_vocab_test__\n") must encode to the ids on the matching line of
 * <vocab>.out. As llama.cpp's test, encoding adds no BOS/EOS
 * (add_special = false) and does not parse special tokens. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "read_file.h"
#include "gguf.h"
#include "tokenizer.h"

/* Parses one line of space-separated ids; returns the count. */
static size_t parse_ids(const char *line, size_t len, int32_t *ids, size_t cap)
{
    size_t n = 0, i = 0;
    while (i < len) {
        while (i < len && line[i] == ' ')
            i++;
        if (i == len) break;
        REQUIRE(n < cap, "too many ids on a line");
        ids[n++] = (int32_t)strtol(line + i, NULL, 10);
        while (i < len && line[i] != ' ')
            i++;
    }
    return n;
}

static void run_vocab(const char *name)
{
    char path[1024], inp_path[1100], out_path[1100];
    test_path("MEMLLM_DATA", name, path, sizeof(path));
    snprintf(inp_path, sizeof(inp_path), "%s.inp", path);
    snprintf(out_path, sizeof(out_path), "%s.out", path);

    struct mm_err err = {{0}};
    struct gguf_file *g = gguf_open(path, &err);
    REQUIRE(g, "%s", err.msg);
    struct tokenizer *t = tok_load_gguf(g, &err);
    gguf_close(g);
    REQUIRE(t, "%s", err.msg);

    size_t inp_len, out_len;
    char *inp = must_read_file(inp_path, &inp_len), *out = must_read_file(out_path, &out_len);
    static const char sep[] = "\n__ggml_vocab_test__\n";
    size_t pos = 0, out_pos = 0, n_cases = 0, n_ok = 0;
    int32_t *want = malloc(65536 * sizeof(*want));
    while (pos < inp_len) {
        char *next = strstr(inp + pos, sep);
        size_t end = next ? (size_t)(next - inp) : inp_len;
        REQUIRE(out_pos < out_len, "%s: more inputs than output lines", name);
        char *nl = memchr(out + out_pos, '\n', out_len - out_pos);
        size_t line_end = nl ? (size_t)(nl - out) : out_len;
        size_t n_want = parse_ids(out + out_pos, line_end - out_pos, want, 65536);
        out_pos = line_end + 1;

        int32_t *ids;
        size_t n_ids;
        int rc = tok_encode(t, inp + pos, end - pos, 0, 0, &ids, &n_ids, &err);
        CHECKF(rc == 0, "%s", err.msg);
        int same = rc == 0 && n_ids == n_want && memcmp(ids, want, n_ids * sizeof(*ids)) == 0;
        CHECKF(same, "%s: case %zu '%.*s': %zu ids, want %zu", name, n_cases, (int)(end - pos),
               inp + pos, n_ids, n_want);
        if (!same && rc == 0) {
            fprintf(stderr, "  got: ");
            for (size_t i = 0; i < n_ids; i++)
                fprintf(stderr, "%d ", ids[i]);
            fprintf(stderr, "\n  want:");
            for (size_t i = 0; i < n_want; i++)
                fprintf(stderr, " %d", want[i]);
            fprintf(stderr, "\n");
        }
        n_ok += same;
        n_cases++;
        if (rc == 0) free(ids);
        pos = next ? end + strlen(sep) : inp_len;
    }
    CHECKF(out_pos >= out_len, "%s: more output lines than inputs", name);
    printf("%s: %zu/%zu cases identical\n", name, n_ok, n_cases);
    free(want);
    free(inp);
    free(out);
    tok_free(t);
}

int main(void)
{
    run_vocab("vocab/ggml-vocab-llama-spm.gguf");
    run_vocab("vocab/ggml-vocab-gpt-2.gguf");
    run_vocab("vocab/ggml-vocab-bert-bge.gguf");
    return check_report("test_tokenizer_vocab");
}
