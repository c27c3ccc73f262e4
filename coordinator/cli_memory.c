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
#include "shard_server.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
    {"dump", cli_memory_dump, 0, "[--copies]   every fact, one per line"},
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

static int launched_by_mpirun(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

/* The number of shard-NNN directories the memory has (0 if none). */
static uint32_t shards_on_disk(const char *dir)
{
    uint32_t n = 0;
    char path[4096];
    for (;; n++) {
        snprintf(path, sizeof(path), "%s/shard-%03u", dir, n);
        struct stat sb;
        if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) return n;
    }
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

/* A shard rank: serve shard `index` of the memory until rank 0 is done. */
static int serve(const struct parsed *p, MPI_Comm comm, uint32_t index)
{
    if (mkdir(p->c.dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "memllm memory: shard %u: %s: %s\n", index, p->c.dir, strerror(errno));
        return 1;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/shard-%03u", p->c.dir, index);
    struct mm_err err;
    struct mm_shard_options opt = {.sync = p->sync};
    struct mm_shard *sh = mm_shard_open(path, &opt, &err);
    if (!sh) {
        /* Rank 0 would wait for this shard forever: stop the job. */
        fprintf(stderr, "memllm memory: shard %u: %s\n", index, err.msg);
        MPI_Abort(MPI_COMM_WORLD, 1);
        return 1;
    }
    int rc = mm_shard_serve_mpi(sh, comm, 0, &err);
    if (rc != 0) fprintf(stderr, "memllm memory: shard %u: %s\n", index, err.msg);
    mm_shard_close(sh);
    return rc ? 1 : 0;
}

static int run(struct parsed *p, int mpi, MPI_Comm comm, int rank, int world)
{
    uint32_t on_disk = shards_on_disk(p->c.dir);
    uint32_t S;
    if (mpi && world > 1) {
        S = (uint32_t)(world - 1);
        if (p->memshards && (uint32_t)p->memshards != S) {
            if (rank == 0)
                fprintf(stderr,
                        "memllm memory: --memshards %d, but mpirun started %d shard ranks "
                        "(use -np %d)\n",
                        p->memshards, world - 1, p->memshards + 1);
            return 2;
        }
    } else {
        S = p->memshards ? (uint32_t)p->memshards : on_disk ? on_disk : 1;
    }
    /* Shard ranks may be on other machines: only a single process knows
     * that the memory does not exist. */
    if (!(mpi && world > 1) && !p->sub->writes && on_disk == 0) {
        if (rank == 0)
            fprintf(stderr, "memllm memory %s: no memory at %s\n", p->sub->name, p->c.dir);
        return 1;
    }
    /* Rank 0 chooses the embedder before any shard rank opens its
     * database (it may read shard-000's record), and a failure stops every
     * rank instead of leaving the shards waiting. */
    struct mm_err err;
    struct mm_embedder *emb = NULL;
    if (rank == 0) {
        emb = cli_memory_embedder(p->embedder, p->c.dir, on_disk > 0, &err);
        if (!emb) cli_memory_fail(p->sub->name, err.msg);
    }
    if (mpi && world > 1) {
        int ok = emb != NULL;
        MPI_Bcast(&ok, 1, MPI_INT, 0, comm);
        if (!ok) return 1;
    } else if (!emb) {
        return 1;
    }
    if (rank > 0) return serve(p, comm, (uint32_t)rank - 1);

    p->c.m = mpi && world > 1 ? mm_memory_open_mpi(comm, 1, S, emb, &err)
                              : mm_memory_open_local(p->c.dir, S, emb, p->sync, &err);
    if (!p->c.m) {
        mm_embedder_free(emb);
        return cli_memory_fail(p->sub->name, err.msg);
    }
    int rc = p->sub->run(&p->c);
    if (mm_memory_close(p->c.m, &err) != 0) rc = cli_memory_fail(p->sub->name, err.msg);
    mm_embedder_free(emb);
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
    int mpi = 0, started = 0, rank = 0, world = 1;
    MPI_Comm comm = MPI_COMM_NULL;
    if (launched_by_mpirun()) {
        MPI_Initialized(&mpi);
        if (!mpi) {
            MPI_Init(NULL, NULL);
            started = 1;
        }
        mpi = 1;
        MPI_Comm_dup(MPI_COMM_WORLD, &comm);
        MPI_Comm_rank(comm, &rank);
        MPI_Comm_size(comm, &world);
    }
    int rc = run(&p, mpi, comm, rank, world);
    if (mpi) MPI_Comm_free(&comm);
    if (started) MPI_Finalize();
    free(p.c.args);
    return rc;
}
