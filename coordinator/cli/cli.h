/* The memllm subcommands. Each takes the arguments after its name
 * (argv[0] is the subcommand) and returns the process exit status. */
#ifndef MEMLLM_COORDINATOR_CLI_H
#define MEMLLM_COORDINATOR_CLI_H

int cli_generate(int argc, char **argv);
int cli_tokenize(int argc, char **argv);
int cli_ppl(int argc, char **argv);
int cli_memory(int argc, char **argv);
int cli_annotate(int argc, char **argv);
int cli_edit(int argc, char **argv);
int cli_data(int argc, char **argv);
int cli_train(int argc, char **argv);
int cli_eval(int argc, char **argv);
int cli_serve(int argc, char **argv);

#endif
