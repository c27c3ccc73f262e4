/* memllm: one binary, many subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"generate", cli_generate, "generate text from a prompt or a JSONL file of prompts"},
    {"tokenize", cli_tokenize, "print the token ids of the text on stdin"},
    {"ppl", cli_ppl, "perplexity of a text file"},
    {"memory", cli_memory, "fill, query, edit, back up and check a triple memory"},
    {"annotate", cli_annotate, "write the facts of a corpus into the memory (MemLLM write loop)"},
    {"edit", cli_edit, "add, replace and delete facts as an undoable batch"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: memllm <command> [options]   (memllm <command> --help for its options)\n\n"
                 "commands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "memllm: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
