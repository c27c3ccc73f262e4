/* memllm: one binary, many subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cli_args.h"

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
    {"data", cli_data, "MemLLM training examples from DocRED / Re-DocRED documents"},
    {"eval", cli_eval, "MemLLM's evaluation: extraction F1, perplexity with and without memory"},
    {"train", cli_train,
     "LoRA finetuning on MemLLM training examples (data parallel under mpirun)"},
    {"serve", cli_serve, "an OpenAI-compatible HTTP service: completions, chat, MemLLM reads"},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

/* Lists the commands (tests/cli/test_cli_help.c reads this list to run every
 * command's --help). */
static void usage(FILE *out)
{
    fprintf(out, "usage: memllm <command> [options]   (memllm <command> --help for its options)\n\n"
                 "commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(name, commands[i].name)) return &commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    /* memllm help [COMMAND [SUBCOMMAND]]: as memllm [COMMAND [SUBCOMMAND]] --help. */
    if (!strcmp(argv[1], "help")) {
        if (argc == 2) {
            usage(stdout);
            return 0;
        }
        const struct command *cmd = find_command(argv[2]);
        if (!cmd) {
            fprintf(stderr, "memllm help: unknown command '%s'\n\n", argv[2]);
            usage(stderr);
            return 2;
        }
        char *help[8] = {NULL};
        int n = 0;
        for (int i = 2; i < argc && n < 6; i++)
            help[n++] = argv[i];
        help[n++] = "--help";
        return cmd->run(n, help);
    }
    const struct command *cmd = find_command(argv[1]);
    if (cmd) return cmd->run(argc - 1, argv + 1);
    /* --help anywhere wins, unless argv[1] names no command: then that is
     * the error. */
    if (argv[1][0] == '-' && cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "memllm: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
