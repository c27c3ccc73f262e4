/* memllm eval: MemLLM's evaluation (DESIGN.md §7). Each measure is a
 * subcommand that prints one "name: value" line per figure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_args.h"
#include "cli_eval.h"
#include "memory_client_docred.h"
#include "train_examples.h"

int cli_eval_docs_opt(int argc, char **argv, int *i, struct cli_eval_docs *d, const char *cmd)
{
    const char *v;
    int r;
    if ((r = cli_opt(argc, argv, i, "--use-adapter", &v)))
        return r < 0 ? -1 : (d->use_adapter = v, 1);
    if ((r = cli_opt(argc, argv, i, "--props", &v))) return r < 0 ? -1 : (d->props = v, 1);
    if ((r = cli_opt(argc, argv, i, "--val", &v)))
        return r < 0 || cli_int("--val", v, 1, 1 << 30, &d->val) ? -1 : 1;
    if ((r = cli_opt(argc, argv, i, "--seed", &v)))
        return r < 0 || cli_int("--seed", v, 0, 0x7fffffff, &d->seed) ? -1 : 1;
    if (argv[*i][0] == '-') return 0;
    if (d->file) {
        fprintf(stderr, "memllm eval %s: unexpected argument '%s' (see --help)\n", cmd, argv[*i]);
        return -1;
    }
    d->file = argv[*i];
    return 1;
}

int cli_eval_docs_open(struct cli_eval_docs *d, struct mm_err *err)
{
    json_error_t jerr;
    d->all = json_load_file(d->file, 0, &jerr);
    if (!json_is_array(d->all)) {
        mm_err_set(err, "%s: %s", d->file, d->all ? "not a JSON array of documents" : jerr.text);
        return -1;
    }
    if (!(d->labels = mm_docred_props(d->props, err))) return -1;
    size_t n = json_array_size(d->all);
    if (d->val > 0 && (size_t)d->val >= n) {
        mm_err_set(err, "%s: --val %d leaves no training document of %zu", d->file, d->val, n);
        return -1;
    }
    d->chosen = d->val > 0 ? examples_validation_set(n, d->val, d->seed) : malloc(n ? n : 1);
    if (!d->chosen) {
        mm_err_set(err, "out of memory");
        return -1;
    }
    if (d->val == 0) memset(d->chosen, 1, n);
    d->n_chosen = d->val > 0 ? d->val : (int)n;
    return 0;
}

void cli_eval_docs_close(struct cli_eval_docs *d)
{
    free(d->chosen);
    json_decref(d->labels);
    json_decref(d->all);
    d->chosen = NULL;
    d->labels = d->all = NULL;
}

int cli_eval_reader_opt(int argc, char **argv, int *i, struct cli_model_opts *model,
                        struct cli_memory_opts *mem, struct cli_eval_docs *d, const char *cmd)
{
    int r;
    if ((r = cli_model_opt(argc, argv, i, model)) || (r = cli_memory_opt(argc, argv, i, mem)) ||
        (r = cli_query_opt(argc, argv, i, &mem->q)))
        return r;
    return cli_eval_docs_opt(argc, argv, i, d, cmd);
}

int cli_eval_docs_adapter(struct engine *e, const struct cli_eval_docs *d, struct mm_err *err)
{
    if (d->use_adapter) return engine_adapter(e, d->use_adapter, err);
    if (e->n_adapters > 1 && !e->merged) {
        mm_err_set(err, "%d adapters loaded: name the one to measure with --use-adapter",
                   e->n_adapters);
        return -2;
    }
    return e->n_adapters == 1 && !e->merged ? 0 : -1;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: memllm eval MEASURE FILE.json [options]\n"
                 "       (memllm eval MEASURE --help for its arguments and options)\n\n"
                 "MemLLM's evaluation on DocRED / Re-DocRED documents; each measure prints\n"
                 "one 'name: value' line per figure.\n\n"
                 "commands:\n"
                 "  edit      counterfactual knowledge edits through the memory: reliability,\n"
                 "            generality and locality after T sequential edits, and undo\n"
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
    if (!strcmp(argv[1], "edit")) return cli_eval_edit(argc - 1, argv + 1);
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
