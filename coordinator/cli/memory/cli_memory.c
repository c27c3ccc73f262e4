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

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Options a subcommand takes beyond those of every subcommand (--memory,
 * --memshards, --sync, --embedder); any other is refused. */
enum {
    OPT_SOURCE = 1 << 0, /* --source NAME */
    OPT_FILE = 1 << 1,   /* --file FACTS.jsonl */
    OPT_PROPS = 1 << 2,  /* --props FILE */
    OPT_QUERY = 1 << 3,  /* --tau-e, --tau-r, --tau-t, --qthr */
    OPT_REPAIR = 1 << 4, /* --repair */
    OPT_COPIES = 1 << 5, /* --copies */
    OPT_TIMES = 1 << 6,  /* --times */
};

static const struct option_help {
    unsigned flag;
    const char *text;
} option_help[] = {
    {OPT_FILE,
     "  --file FACTS.jsonl  one fact per line: {\"triple\": \"s>>r>>o\"} or {\"subject\",\n"
     "                      \"relation\", \"object\"}, with optional \"source\" and\n"
     "                      \"sentence\"\n"},
    {OPT_SOURCE, "  --source NAME    the facts' provenance (default: cli)\n"},
    {OPT_PROPS, "  --props FILE     Wikidata property labels, a JSON object id -> label\n"
                "                   (default: the labels built into memllm)\n"},
    {OPT_QUERY, "  --tau-e X, --tau-r X, --tau-t X, --qthr N\n"
                "                   entity, relation and answer similarity thresholds, and\n"
                "                   the cap on answers (default 0.7, 0.85, 0.7, 30)\n"},
    {OPT_TIMES, "  --times          print each source's time (ms since the epoch) after it\n"},
    {OPT_COPIES, "  --copies         print the reverse copies too\n"},
    {OPT_REPAIR, "  --repair         add missing reverse copies, remove orphan ones\n"},
};

/* What `memllm memory --help` and `memllm memory NAME --help` print come
 * from this table only. */
struct subcommand {
    const char *name;
    int (*run)(struct cli_memory *c);
    int writes;       /* may create the memory */
    const char *args; /* positional arguments, for the usage line */
    unsigned options; /* OPT_* */
    const char *summary;
};

static const struct subcommand subcommands[] = {
    {"import-docred", cli_memory_import_docred, 1, "FILE.json", OPT_PROPS,
     "store the gold triples of DocRED/Re-DocRED documents"},
    {"write", cli_memory_write, 1, "(\"s>>r>>o\"... | --file FACTS.jsonl)", OPT_FILE | OPT_SOURCE,
     "store facts"},
    {"query", cli_memory_query, 0, "\"s>>r>>\" | \">>r>>o\"...", OPT_QUERY | OPT_TIMES,
     "answer queries: the objects of s under r, or the subjects with r to o"},
    {"delete", cli_memory_delete, 0, "\"s>>r>>o\"...", 0, "remove facts (both copies)"},
    {"replace", cli_memory_replace, 1, "\"s>>r>>o\"", OPT_SOURCE, "(s, r, *) becomes (s, r, o)"},
    {"dump", cli_memory_dump, 0, "", OPT_COPIES | OPT_TIMES, "every fact, one per line"},
    {"stats", cli_memory_stats, 0, "", 0, "one 'name: value' line per figure"},
    {"entity", cli_memory_entity, 0, "TEXT", 0, "the entities named TEXT, with their aliases"},
    {"backup", cli_memory_backup, 0, "DIR", 0, "RocksDB checkpoints of every shard into DIR"},
    {"restore", cli_memory_restore, 0, "DIR", 0, "replace the memory with the backup in DIR"},
    {"verify", cli_memory_verify, 0, "", OPT_REPAIR,
     "check that both copies of every fact exist (exit 1 if not)"},
};
#define N_SUBCOMMANDS (sizeof(subcommands) / sizeof(subcommands[0]))

static void common_options(FILE *out)
{
    fprintf(out, "  --memory DIR     the memory's directory (created on first write)\n"
                 "  --memshards S    number of shards, at least 1 (default: as the memory\n"
                 "                   has, or 1; under mpirun: the number of ranks after\n"
                 "                   rank 0)\n"
                 "  --sync           fsync the write-ahead log before acknowledging writes\n"
                 "  --embedder E     'fallback' (hashed trigrams) or a sentence-transformers\n"
                 "                   model directory; default: the one the memory was built\n"
                 "                   with, and for a new memory all-MiniLM-L6-v2 from\n"
                 "                   $MEMLLM_MODELS_DIR (else the repository's models/) when\n"
                 "                   present, else the fallback\n");
}

static void usage(FILE *out)
{
    fprintf(out, "usage: memllm memory COMMAND [ARGS] --memory DIR [options]\n"
                 "       (memllm memory COMMAND --help for its arguments and options)\n\n"
                 "Fills, queries, edits, backs up and checks a triple memory.\n"
                 "Under mpirun: mpirun -np 1+S memllm memory ... --memshards S\n\n"
                 "commands:\n");
    for (size_t i = 0; i < N_SUBCOMMANDS; i++)
        fprintf(out, "  %-14s %s\n", subcommands[i].name, subcommands[i].summary);
    fprintf(out, "\noptions of every command:\n");
    common_options(out);
}

static void sub_usage(FILE *out, const struct subcommand *sub)
{
    fprintf(out, "usage: memllm memory %s%s%s --memory DIR [options]\n\n%c%s.\n", sub->name,
            sub->args[0] ? " " : "", sub->args, toupper((unsigned char)sub->summary[0]),
            sub->summary + 1);
    if (sub->options) {
        fprintf(out, "\noptions:\n");
        for (size_t i = 0; i < sizeof(option_help) / sizeof(option_help[0]); i++)
            if (sub->options & option_help[i].flag) fputs(option_help[i].text, out);
    }
    fprintf(out, "\noptions of every memory command:\n");
    common_options(out);
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

static const struct subcommand *find_subcommand(const char *name)
{
    for (size_t i = 0; i < N_SUBCOMMANDS; i++)
        if (!strcmp(name, subcommands[i].name)) return &subcommands[i];
    return NULL;
}

static int parse(int argc, char **argv, struct parsed *p)
{
    memset(p, 0, sizeof(*p));
    mm_query_options_default(&p->c.q);
    p->c.source = "cli";
    p->sub = find_subcommand(argv[1]);
    if (!p->sub) {
        fprintf(stderr, "memllm memory: unknown command '%s'\n\n", argv[1]);
        usage(stderr);
        return -1;
    }
    const struct subcommand *sub = p->sub;
    char name[64];
    snprintf(name, sizeof(name), "memory %s", sub->name);
    p->c.args = calloc((size_t)argc, sizeof(char *));
    if (!p->c.args) return -1;
    for (int i = 2; i < argc; i++) {
        const char *v = NULL;
        int r = 0;
        unsigned has = sub->options;
        /* An option the subcommand does not take falls through to "unknown". */
        if ((r = cli_opt(argc, argv, &i, "--memory", &v))) {
            p->c.dir = v;
        } else if ((r = cli_opt(argc, argv, &i, "--memshards", &v))) {
            if (r > 0 && cli_memshards(name, v, &p->memshards)) return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--embedder", &v))) {
            p->embedder = v;
        } else if ((has & OPT_SOURCE) && (r = cli_opt(argc, argv, &i, "--source", &v))) {
            p->c.source = v;
        } else if ((has & OPT_FILE) && (r = cli_opt(argc, argv, &i, "--file", &v))) {
            p->c.file = v;
        } else if ((has & OPT_PROPS) && (r = cli_opt(argc, argv, &i, "--props", &v))) {
            p->c.props = v;
        } else if ((has & OPT_QUERY) && (r = cli_query_opt(argc, argv, &i, &p->c.q))) {
        } else if (!strcmp(argv[i], "--sync")) {
            p->sync = 1;
        } else if ((has & OPT_REPAIR) && !strcmp(argv[i], "--repair")) {
            p->c.repair = 1;
        } else if ((has & OPT_COPIES) && !strcmp(argv[i], "--copies")) {
            p->c.all_copies = 1;
        } else if ((has & OPT_TIMES) && !strcmp(argv[i], "--times")) {
            p->c.times = 1;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            fprintf(stderr, "memllm %s: unknown option '%s' (see memllm %s --help)\n", name,
                    argv[i], name);
            return -1;
        } else {
            p->c.args[p->c.nargs++] = argv[i];
        }
        if (r < 0) return -1;
    }
    if (!p->c.dir) {
        fprintf(stderr, "memllm %s: --memory DIR is required (see --help)\n", name);
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
    /* A restore replaces a memory that may be too damaged to open (a
     * corrupt file): its shards open all the same, for the restore only,
     * and the embedder's name, when shard-000 cannot tell it, is the one
     * the backup records. */
    int restoring = p->sub->run == cli_memory_restore;
    struct mm_embedder *emb = NULL;
    if (c.rank == 0) {
        emb = cli_memory_embedder(p->embedder, p->c.dir, on_disk > 0, &err);
        struct mm_err backup_err;
        if (!emb && restoring && p->c.nargs == 1)
            emb = cli_memory_embedder(p->embedder, p->c.args[0], 1, &backup_err);
        if (!emb) cli_memory_fail(p->sub->name, err.msg);
    }
    int ok = c.rank != 0 || emb != NULL;
    if (on_ranks) MPI_Bcast(&ok, 1, MPI_INT, 0, c.comm);
    if (!ok) goto out;
    if (c.role == ROLE_SHARD) {
        rc = 0;
        uint32_t index = (uint32_t)c.index;
        if (restoring ? mm_memory_serve_shard_to_restore(p->c.dir, index, p->sync, c.comm, 0, &err)
                      : mm_memory_serve_shard(p->c.dir, index, p->sync, c.comm, 0, &err)) {
            fprintf(stderr, "memllm memory: shard %d (rank %d): %s\n", c.index, c.rank, err.msg);
            /* Rank 0 would wait for this shard forever: stop the job. */
            cluster_abort(&c, 1);
            rc = 1;
        }
        goto out;
    }
    p->c.m = on_ranks    ? mm_memory_open_mpi(c.comm, cluster_first_shard(&c), S, emb, &err)
             : restoring ? mm_memory_open_local_to_restore(p->c.dir, S, emb, p->sync, &err)
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
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    /* --help anywhere: the subcommand's usage when argv[1] names one, the
     * list of subcommands when argv[1] is an option; an unknown subcommand
     * stays an error. */
    if (cli_wants_help(argc, argv)) {
        const struct subcommand *sub = find_subcommand(argv[1]);
        if (sub) {
            sub_usage(stdout, sub);
            return 0;
        }
        if (argv[1][0] == '-') {
            usage(stdout);
            return 0;
        }
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
