/* `memllm memory SUBCOMMAND ...`: fill, query, edit, back up and check a
 * memory (DESIGN.md §3, §4).
 *
 * One process: the S shards are opened in this process. Under mpirun
 * (`mpirun -np 1+S memllm memory ... --memshards S`) rank 0 runs the command
 * and ranks 1..S each serve one shard, in DIR/shard-NNN on their machine.
 * MPI is started only when the process was launched by mpirun, so the same
 * binary runs alone. */
#include "cli.h"
#include "cli_args.h"
#include "cli_memory_internal.h"
#include "cluster.h"
#include "memory_service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct subcommand {
    const char *name;
    int (*run)(struct cli_memory *c);
    int writes; /* may create the memory */
    const char *usage;
};

static const struct subcommand subcommands[] = {
    {"import-docred", cli_memory_import_docred, 1,
     "FILE.json [--props FILE]   gold triples of DocRED/Re-DocRED documents"},
    {"write", cli_memory_write, 1, "\"s>>r>>o\" ... | --file FACTS.jsonl [--source NAME]"},
    {"query", cli_memory_query, 0,
     "\"s>>r>>\" | \">>r>>o\" ... [--tau-e X --tau-r X --tau-t X --qthr N]"},
    {"delete", cli_memory_delete, 0, "\"s>>r>>o\" ...   remove facts (both copies)"},
    {"replace", cli_memory_replace, 1, "\"s>>r>>o\" [--source NAME]   (s, r, *) becomes (s, r, o)"},
    {"dump", cli_memory_dump, 0,
     "[--copies] [--times]   every fact, one per line (--times: each source's time, ms)"},
    {"stats", cli_memory_stats, 0, "  one 'name: value' line per figure"},
    {"entity", cli_memory_entity, 0, "TEXT   the entities named TEXT, with aliases"},
    {"backup", cli_memory_backup, 0, "DIR   RocksDB checkpoints of every shard"},
    {"restore", cli_memory_restore, 0, "DIR   replace the memory with a backup"},
    {"verify", cli_memory_verify, 0, "[--repair]   both copies of every fact exist"},
};
#define N_SUBCOMMANDS (sizeof(subcommands) / sizeof(subcommands[0]))

static void usage(FILE *out)
{
    fprintf(out, "usage: memllm memory COMMAND --memory DIR [options]\n\ncommands:\n");
    for (size_t i = 0; i < N_SUBCOMMANDS; i++)
        fprintf(out, "  %-14s %s\n", subcommands[i].name, subcommands[i].usage);
    fprintf(out, "\noptions of every command:\n"
                 "  --memory DIR     the memory's directory (created on first write)\n"
                 "  --memshards S    number of shards (default: as the memory has, or 1;\n"
                 "                   under mpirun: the number of ranks after rank 0)\n"
                 "  --sync           fsync the write-ahead log before acknowledging writes\n"
                 "  --embedder E     'fallback' (hashed trigrams) or a sentence-transformers\n"
                 "                   model directory; default: the one the memory was built\n"
                 "                   with, and for a new memory all-MiniLM-L6-v2 from\n"
                 "                   $MEMLLM_MODELS_DIR (else ./models) when present, else\n"
                 "                   the fallback\n");
}

int cli_memory_fail(const char *cmd, const char *msg)
{
    fprintf(stderr, "memllm memory %s: %s\n", cmd, msg);
    return 1;
}

struct parsed {
    const struct subcommand *sub;
    struct cli_memory c;
    int memshards; /* 0: not given */
    int sync;
    const char *embedder; /* --embedder; NULL: not given */
};

static int parse(int argc, char **argv, struct parsed *p)
{
    memset(p, 0, sizeof(*p));
    mm_query_options_default(&p->c.q);
    p->c.source = "cli";
    for (size_t i = 0; i < N_SUBCOMMANDS; i++)
        if (!strcmp(argv[1], subcommands[i].name)) p->sub = &subcommands[i];
    if (!p->sub) {
        fprintf(stderr, "memllm memory: unknown command '%s'\n\n", argv[1]);
        usage(stderr);
        return -1;
    }
    p->c.args = calloc((size_t)argc, sizeof(char *));
    if (!p->c.args) return -1;
    for (int i = 2; i < argc; i++) {
        const char *v = NULL;
        int r, qthr;
        if ((r = cli_opt(argc, argv, &i, "--memory", &v))) {
            p->c.dir = v;
        } else if ((r = cli_opt(argc, argv, &i, "--memshards", &v))) {
            if (r > 0 && cli_int("--memshards", v, 1, 4096, &p->memshards)) return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--embedder", &v))) {
            p->embedder = v;
        } else if ((r = cli_opt(argc, argv, &i, "--source", &v))) {
            p->c.source = v;
        } else if ((r = cli_opt(argc, argv, &i, "--file", &v))) {
            p->c.file = v;
        } else if ((r = cli_opt(argc, argv, &i, "--props", &v))) {
            p->c.props = v;
        } else if ((r = cli_opt(argc, argv, &i, "--tau-e", &v))) {
            if (r > 0 && cli_float("--tau-e", v, -1, 1, &p->c.q.tau_e)) return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--tau-r", &v))) {
            if (r > 0 && cli_float("--tau-r", v, -1, 1, &p->c.q.tau_r)) return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--tau-t", &v))) {
            if (r > 0 && cli_float("--tau-t", v, -1, 1, &p->c.q.tau_t)) return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--qthr", &v))) {
            if (r > 0) {
                if (cli_int("--qthr", v, 1, 100000, &qthr)) return -1;
                p->c.q.qthr = (uint32_t)qthr;
            }
        } else if (!strcmp(argv[i], "--sync")) {
            p->sync = 1;
        } else if (!strcmp(argv[i], "--repair")) {
            p->c.repair = 1;
        } else if (!strcmp(argv[i], "--copies")) {
            p->c.all_copies = 1;
        } else if (!strcmp(argv[i], "--times")) {
            p->c.times = 1;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            fprintf(stderr, "memllm memory %s: unknown option '%s'\n", p->sub->name, argv[i]);
            return -1;
        } else {
            p->c.args[p->c.nargs++] = argv[i];
        }
        if (r < 0) return -1;
    }
    if (!p->c.dir) {
        fprintf(stderr, "memllm memory %s: --memory DIR is required\n", p->sub->name);
        return -1;
    }
    return 0;
}

static int run(struct parsed *p)
{
    struct mm_err err = {{0}};
    struct cluster c;
    if (cluster_init(&c, 0, p->memshards ? p->memshards : -1, &err)) {
        if (c.rank == 0) fprintf(stderr, "memllm memory %s: %s\n", p->sub->name, err.msg);
        cluster_finish(&c);
        return 2;
    }
    int on_ranks = c.mpi && c.world > 1, rc = 1;
    uint32_t on_disk = mm_memory_shards_on_disk(p->c.dir);
    uint32_t S = on_ranks       ? (uint32_t)c.n_shards
                 : p->memshards ? (uint32_t)p->memshards
                 : on_disk      ? on_disk
                                : 1;
    /* Shard ranks may be on other machines: only a single process knows
     * that the memory does not exist. */
    if (!on_ranks && !p->sub->writes && on_disk == 0) {
        fprintf(stderr, "memllm memory %s: no memory at %s\n", p->sub->name, p->c.dir);
        goto out;
    }
    /* Rank 0 chooses the embedder before any shard rank opens its
     * database (it may read shard-000's record), and a failure stops every
     * rank instead of leaving the shards waiting. */
    struct mm_embedder *emb = NULL;
    if (c.rank == 0) {
        emb = cli_memory_embedder(p->embedder, p->c.dir, on_disk > 0, &err);
        if (!emb) cli_memory_fail(p->sub->name, err.msg);
    }
    int ok = c.rank != 0 || emb != NULL;
    if (on_ranks) MPI_Bcast(&ok, 1, MPI_INT, 0, c.comm);
    if (!ok) goto out;
    if (c.role == ROLE_SHARD) {
        rc = 0;
        if (mm_memory_serve_shard(p->c.dir, (uint32_t)c.index, p->sync, c.comm, 0, &err)) {
            fprintf(stderr, "memllm memory: shard %d (rank %d): %s\n", c.index, c.rank, err.msg);
            /* Rank 0 would wait for this shard forever: stop the job. */
            cluster_abort(&c, 1);
            rc = 1;
        }
        goto out;
    }
    p->c.m = on_ranks ? mm_memory_open_mpi(c.comm, cluster_first_shard(&c), S, emb, &err)
                      : mm_memory_open_local(p->c.dir, S, emb, p->sync, &err);
    if (!p->c.m) {
        mm_embedder_free(emb);
        rc = cli_memory_fail(p->sub->name, err.msg);
        goto out;
    }
    rc = p->sub->run(&p->c);
    if (mm_memory_close(p->c.m, &err) != 0) rc = cli_memory_fail(p->sub->name, err.msg);
    mm_embedder_free(emb);
out:
    cluster_finish(&c);
    return rc;
}

int cli_memory(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    struct parsed p;
    if (parse(argc, argv, &p) != 0) {
        free(p.c.args);
        return 2;
    }
    int rc = run(&p);
    free(p.c.args);
    return rc;
}
