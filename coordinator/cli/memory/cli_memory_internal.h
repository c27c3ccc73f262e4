/* Shared by the `memllm memory` subcommands: parsed options and the open
 * memory. */
#ifndef MEMLLM_COORDINATOR_CLI_MEMORY_INTERNAL_H
#define MEMLLM_COORDINATOR_CLI_MEMORY_INTERNAL_H

#include "memory_client.h"

struct cli_memory {
    struct mm_memory *m;
    const char *dir;
    /* The subcommand's positional arguments. */
    int nargs;
    char **args;
    /* Options (cli_memory.c refuses those a subcommand does not take). */
    const char *source; /* --source: provenance of write/replace */
    const char *file;   /* --file: JSONL of facts for write */
    const char *props;  /* --props: Wikidata property labels for import-docred */
    int repair;         /* --repair for verify */
    int all_copies;     /* --copies: dump reverse copies too */
    int times;          /* --times: dump and query print each record's time */
    struct mm_query_options q;
};

int cli_memory_import_docred(struct cli_memory *c);
int cli_memory_write(struct cli_memory *c);
int cli_memory_delete(struct cli_memory *c);
int cli_memory_replace(struct cli_memory *c);
int cli_memory_query(struct cli_memory *c);
int cli_memory_dump(struct cli_memory *c);
int cli_memory_stats(struct cli_memory *c);
int cli_memory_entity(struct cli_memory *c);
int cli_memory_backup(struct cli_memory *c);
int cli_memory_restore(struct cli_memory *c);
int cli_memory_verify(struct cli_memory *c);

/* The embedder for the memory at dir (exists: it has shards here):
 * --embedder's value when given ("fallback" or a model directory), else the
 * memory's recorded one, else all-MiniLM-L6-v2 from the models folder, else
 * the fallback with a warning (cli_memory_embedder.c). */
struct mm_embedder *cli_memory_embedder(const char *option, const char *dir, int exists,
                                        struct mm_err *err);

/* Prints "memllm memory <cmd>: <message>" on stderr; returns 1. */
int cli_memory_fail(const char *cmd, const char *msg);

#endif
