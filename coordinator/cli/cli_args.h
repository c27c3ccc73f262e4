/* Command-line parsing shared by the subcommands: "--name value" and
 * "--name=value" options, flags, and numbers checked against a range.
 * Problems are reported on stderr naming the option. */
#ifndef MEMLLM_COORDINATOR_CLI_ARGS_H
#define MEMLLM_COORDINATOR_CLI_ARGS_H

#include "cluster.h"
#include "engine.h"
#include "memllm_write.h"
#include "memory_client.h"

/* If argv[*i] is option `name`: stores its value, advances *i past it and
 * returns 1; returns -1 when the value is missing; 0 if it is another
 * option. */
int cli_opt(int argc, char **argv, int *i, const char *name, const char **value);

int cli_int(const char *name, const char *text, long lo, long hi, int *out);
int cli_float(const char *name, const char *text, double lo, double hi, float *out);
/* "a,b,c": up to cap positive integers. */
int cli_int_list(const char *name, const char *text, int *out, int cap, int *n);

/* Options every model-running command takes. */
struct cli_model_opts {
    struct engine_options engine;
    int threads;
};

/* Consumes one model option at argv[*i] (--model, --adapter, --merge,
 * --context, --threads, --device, --cuda-fast, --stages, --layers, --micro-batches). Returns 1 if
 * consumed, 0 if not a model option, -1 on a bad value. */
int cli_model_opt(int argc, char **argv, int *i, struct cli_model_opts *o);
/* Applies --threads and checks --model was given. */
int cli_model_ready(const char *cmd, struct cli_model_opts *o);

/* --help or -h anywhere among argv[1..]: the command prints its usage on
 * stdout and exits 0, whatever else is wrong with the command line. */
int cli_wants_help(int argc, char **argv);

/* The memory a model command uses (the MemLLM read and write loops). */
struct cli_memory_opts {
    const char *dir;      /* --memory DIR; NULL: no memory */
    int shards;           /* --memshards S; -1: not given (as many as on disk, or 1);
                           * 0: no memory */
    const char *embedder; /* --embedder; NULL: the memory's, else the default */
    int sync;             /* --sync: fsync the WAL before a write is acknowledged */
    struct mm_query_options q;
};

void cli_memory_opts_default(struct cli_memory_opts *o);
/* Consumes one memory option at argv[*i] (--memory, --memshards,
 * --embedder, --sync); as cli_model_opt. */
int cli_memory_opt(int argc, char **argv, int *i, struct cli_memory_opts *o);
/* Consumes one query threshold at argv[*i] (--tau-e, --tau-r, --tau-t,
 * --qthr), for commands that read the memory; as cli_model_opt. */
int cli_query_opt(int argc, char **argv, int *i, struct mm_query_options *q);
/* Consumes one option of the write loop at argv[*i] (--delay,
 * --max-tokens, --repeats), for the commands that run it; as
 * cli_model_opt. */
int cli_write_opt(int argc, char **argv, int *i, struct mw_options *o);
/* Checks the memory options of command `cmd` once all are parsed. With
 * `required` the command needs a memory: --memory DIR must be given and
 * --memshards 0 (no memory) is refused. Without, --memshards 0 runs
 * without a memory and contradicts --memory, and --memshards S >= 1 needs
 * --memory. Returns -1 after printing the problem. */
int cli_memory_ready(const char *cmd, const struct cli_memory_opts *o, int required);
/* The value of --memshards: an integer in [0, 4096]. `needs_memory`: the
 * name of a command that cannot run without a memory ("edit", "memory
 * query"), which refuses 0; NULL: 0 is accepted (no memory). */
int cli_memshards(const char *needs_memory, const char *text, int *out);

/* The life of a command that runs the model: under mpirun, stage ranks
 * serve their layers, shard ranks their shard, and the coordinator runs
 * `job`; run directly, `job` runs with every stage and shard in this
 * process. mem: NULL for a command without memory (then m is NULL).
 * Returns the exit status. */
typedef int (*cli_job_fn)(struct engine *e, struct mm_memory *m, const struct cluster *c, void *arg,
                          struct mm_err *err);
int cli_run_with_engine(const char *cmd, struct cli_model_opts *o,
                        const struct cli_memory_opts *mem, cli_job_fn job, void *arg);

#define CLI_MODEL_HELP                                                                             \
    "  --model PATH         GGUF file or HF model directory (required)\n"                          \
    "  --adapter [NAME=]DIR load a PEFT LoRA adapter (repeatable)\n"                               \
    "  --merge              fold the single adapter into the weights\n"                            \
    "  --context N          context length (default: the model's)\n"                               \
    "  --threads N          compute threads (default: all cores)\n"                                \
    "  --device cpu|cuda    where the stages compute (cuda: the GPU of each stage's\n"             \
    "                       node-local rank; default cpu)\n"                                       \
    "  --cuda-fast          GPU kernels picked by batch shape: faster prefill, but a\n"            \
    "                       token's logits then depend on what shares its step\n"                  \
    "                       (default: batch-invariant)\n"                                          \
    "  --stages P           pipeline stages (under mpirun: ranks 1..P; default 1)\n"               \
    "  --layers A,B,...     first layer of stages 2..P (default: an even split)\n"                 \
    "  --micro-batches M    micro-batches per step on MPI stages (default P)\n"                    \
    "  --kv-cache-mb N      keys and values of finished sequences kept for prompts\n"              \
    "                       that start the same way (default 256)\n"                               \
    "  --no-prefix-cache    compute every prompt whole (no prefix sharing)\n"

/* The memory options of a model command: --memory and --memshards for a
 * command where the memory is optional (CLI_MEMORY_OPTIONAL_HELP) or
 * required (CLI_MEMORY_REQUIRED_HELP), then CLI_MEMORY_HELP, and
 * CLI_QUERY_HELP where the command reads the memory. */
#define CLI_MEMORY_OPTIONAL_HELP                                                                   \
    "  --memory DIR         the memory (RocksDB shards in DIR; default: none)\n"                   \
    "  --memshards S        memory shards (default: as on disk, else 1); under\n"                  \
    "                       mpirun, ranks P+1..P+S serve them (without the option\n"               \
    "                       the coordinator opens them itself); 0: no memory, as\n"                \
    "                       without --memory (which it then refuses)\n"

#define CLI_MEMORY_REQUIRED_HELP                                                                   \
    "  --memory DIR         the memory (RocksDB shards in DIR; required)\n"                        \
    "  --memshards S        memory shards, at least 1 (default: as on disk, else\n"                \
    "                       1); under mpirun, ranks P+1..P+S serve them (without\n"                \
    "                       the option the coordinator opens them itself)\n"

#define CLI_MEMORY_HELP                                                                            \
    "  --embedder E         fallback | MODEL_DIR (default: the memory's own)\n"                    \
    "  --sync               fsync the memory's write-ahead log before a write is\n"                \
    "                       acknowledged (survives power loss, not only a crash)\n"

#define CLI_WRITE_HELP                                                                             \
    "  --delay N            late stopping: cut points compared (default 5, 0: stop\n"              \
    "                       at the first \"})\")\n"                                                \
    "  --max-tokens N       tokens written per sentence (default 256)\n"                           \
    "  --repeats N          end a write once N items in a row repeat earlier ones\n"               \
    "                       (default 1, 0: never)\n"

#define CLI_QUERY_HELP                                                                             \
    "  --tau-e X, --tau-r X, --tau-t X, --qthr N\n"                                                \
    "                       query thresholds and cap (default 0.7, 0.85, 0.7, 30)\n"

#endif
