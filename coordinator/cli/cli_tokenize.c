/* memllm tokenize: the token ids of the text on stdin, as the model's
 * tokenizer gives them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_args.h"
#include "read_all.h"
#include "tokenizer.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: memllm tokenize --model PATH [--no-bos] [--no-special] < text\n\n"
            "Prints the token ids of the text on stdin, separated by spaces, then a newline.\n\n"
            "  --model PATH   GGUF file (vocabulary-only ones too), tokenizer.json, or a\n"
            "                 model directory holding tokenizer.json (required)\n"
            "  --no-bos       do not add BOS (and [SEP] for BERT) even where the tokenizer\n"
            "                 adds it by default\n"
            "  --no-special   treat special tokens in the text (<|im_start|>, ...) as plain\n"
            "                 text\n");
}

int cli_tokenize(int argc, char **argv)
{
    const char *model = NULL;
    int bos = 1, special = 1;
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "--no-bos")) {
            bos = 0;
        } else if (!strcmp(argv[i], "--no-special")) {
            special = 0;
        } else if ((r = cli_opt(argc, argv, &i, "--model", &model))) {
            if (r < 0) return 2;
        } else {
            fprintf(stderr, "memllm tokenize: unexpected argument '%s' (see --help)\n", argv[i]);
            return 2;
        }
    }
    if (!model) {
        fprintf(stderr, "memllm tokenize: --model is required (see --help)\n");
        return 2;
    }

    struct mm_err err = {{0}};
    struct tokenizer *t = tok_load(model, &err);
    if (!t) {
        fprintf(stderr, "memllm tokenize: %s\n", err.msg);
        return 1;
    }
    size_t len;
    char *text = read_all(stdin, "stdin", &len, &err);
    if (!text) {
        fprintf(stderr, "memllm tokenize: %s\n", err.msg);
        tok_free(t);
        return 1;
    }
    int32_t *ids;
    size_t n;
    int rc = tok_encode(t, text, len, bos && tok_add_bos_default(t), special, &ids, &n, &err);
    free(text);
    if (rc) {
        fprintf(stderr, "memllm tokenize: %s\n", err.msg);
        tok_free(t);
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        printf(i ? " %d" : "%d", ids[i]);
    printf("\n");
    free(ids);
    tok_free(t);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "memllm tokenize: cannot write stdout\n");
        return 1;
    }
    return 0;
}
