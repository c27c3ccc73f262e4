/* The measures of memllm eval (cli_eval.c dispatches to them); argv[0] is
 * the measure's name. */
#ifndef MEMLLM_COORDINATOR_CLI_EVAL_H
#define MEMLLM_COORDINATOR_CLI_EVAL_H

#include <jansson.h>
#include <stddef.h>

#include "cli_args.h"
#include "engine.h"
#include "err.h"

/* The documents a measure reads, and the options that choose them. */
struct cli_eval_docs {
    const char *file;        /* FILE.json, a DocRED / Re-DocRED array */
    const char *props;       /* --props: relation labels; NULL: the built-in table */
    const char *use_adapter; /* --use-adapter NAME */
    int val, seed;           /* --val N --seed S: memllm data's held-out documents */
    json_t *all, *labels;    /* after cli_eval_docs_open: the file, the labels */
    char *chosen;            /* [json_array_size(all)]: the documents measured */
    int n_chosen;
};

/* Consumes FILE.json or one of --use-adapter, --props, --val, --seed at
 * argv[*i]: 1 consumed, 0 not one of them, -1 a bad value (said on
 * stderr, naming cmd). */
int cli_eval_docs_opt(int argc, char **argv, int *i, struct cli_eval_docs *d, const char *cmd);
/* The options of a measure whose model reads the memory (ppl, edit): a
 * model option, a memory option, a query threshold or one of the
 * documents' (cli_eval_docs_opt); as cli_eval_docs_opt. */
int cli_eval_reader_opt(int argc, char **argv, int *i, struct cli_model_opts *model,
                        struct cli_memory_opts *mem, struct cli_eval_docs *d, const char *cmd);
/* Loads the file and the labels and chooses the documents (all of them
 * without --val). */
int cli_eval_docs_open(struct cli_eval_docs *d, struct mm_err *err);
void cli_eval_docs_close(struct cli_eval_docs *d);

/* The adapter a measure runs (an engine adapter index): the one
 * --use-adapter names, else the only one loaded (and not merged), else the
 * base model (-1); -2 (said in err) when several are loaded and none is
 * named. */
int cli_eval_docs_adapter(struct engine *e, const struct cli_eval_docs *d, struct mm_err *err);

int cli_eval_edit(int argc, char **argv);
int cli_eval_extract(int argc, char **argv);
int cli_eval_ppl(int argc, char **argv);

#endif
