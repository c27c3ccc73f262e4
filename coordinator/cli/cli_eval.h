/* The measures of memllm eval (cli_eval.c dispatches to them); argv[0] is
 * the measure's name. */
#ifndef MEMLLM_COORDINATOR_CLI_EVAL_H
#define MEMLLM_COORDINATOR_CLI_EVAL_H

int cli_eval_extract(int argc, char **argv);
int cli_eval_ppl(int argc, char **argv);

#endif
