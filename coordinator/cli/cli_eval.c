/* memllm eval: MemLLM's evaluation (DESIGN.md §7). Each measure is a
 * subcommand that prints one "name: value" line per figure. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cli_args.h"
#include "cli_eval.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: memllm eval MEASURE FILE.json [options]\n"
                 "       (memllm eval MEASURE --help for its arguments and options)\n\n"
                 "MemLLM's evaluation on DocRED / Re-DocRED documents; each measure prints\n"
                 "one 'name: value' line per figure.\n\n"
                 "commands:\n"
                 "  extract   the MW model's facts against the documents' gold relations:\n"
                 "            precision, recall, F1\n"
                 "  ppl       perplexity by token class (overall, entity, target) with no\n"
                 "            reads, gold reads or the model's own reads\n");
}

int cli_eval(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "extract")) return cli_eval_extract(argc - 1, argv + 1);
    if (!strcmp(argv[1], "ppl")) return cli_eval_ppl(argc - 1, argv + 1);
    /* --help anywhere with no measure named first: the list of measures */
    if (argv[1][0] == '-' && cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "memllm eval: unknown measure '%s' (see memllm eval --help)\n", argv[1]);
    return 2;
}
