/* memllm edit FILE.jsonl: knowledge editing as a batch of fact edits, each
 * recorded as provenance ("edit:<batch>", line number), with an undo record
 * (edit_log.h); memllm edit --undo BATCH restores the memory as it was.
 *
 * One process opens the shards itself; under mpirun
 * (mpirun -np 1+S memllm edit ... --memshards S) rank 0 edits and ranks
 * 1..S serve the shards. Edits are acknowledged only once the write-ahead
 * log is on disk. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_args.h"
#include "cli_memory_internal.h"
#include "cluster.h"
#include "edit_apply.h"
#include "memory_service.h"
#include "triple_text.h"

struct edit_opts {
    const char *file, *undo, *dir, *embedder;
    int memshards;
    struct edit *edits;
    int n_edits;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: memllm edit FILE.jsonl --memory DIR [options]\n"
            "       memllm edit --undo BATCH --memory DIR [options]\n\n"
            "Applies the edits of FILE, one JSON object per line:\n"
            "  {\"op\": \"add\", \"fact\": \"s>>r>>o\"}      store the fact\n"
            "  {\"op\": \"replace\", \"fact\": \"s>>r>>o\"}  remove every (s, r, *), then add\n"
            "  {\"op\": \"delete\", \"fact\": \"s>>r>>o\"}   remove the fact\n"
            "A bad line fails the batch before anything changes. The facts added carry\n"
            "the provenance \"edit:BATCH\" and their line number. The batch id is printed;\n"
            "--undo BATCH restores the facts the batch touched as they were before it\n"
            "(undo the latest batch first when batches touch the same facts).\n\n"
            "Under mpirun: mpirun -np 1+S memllm edit ... --memshards S\n\n"
            "  --memory DIR     the memory (its undo records go to DIR/edits)\n"
            "  --memshards S    shards, at least 1 (default: as on disk, else 1; under\n"
            "                   mpirun: the ranks after rank 0)\n"
            "  --embedder E     fallback | MODEL_DIR (default: the memory's own)\n"
            "  --undo BATCH     undo an edit batch\n");
}

static int parse_args(int argc, char **argv, struct edit_opts *o)
{
    memset(o, 0, sizeof(*o));
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int r;
        if ((r = cli_opt(argc, argv, &i, "--memory", &v))) {
            o->dir = v;
        } else if ((r = cli_opt(argc, argv, &i, "--embedder", &v))) {
            o->embedder = v;
        } else if ((r = cli_opt(argc, argv, &i, "--undo", &v))) {
            o->undo = v;
        } else if ((r = cli_opt(argc, argv, &i, "--memshards", &v))) {
            if (r > 0 && cli_memshards("edit", v, &o->memshards)) return -1;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            fprintf(stderr, "memllm edit: unknown option '%s' (see --help)\n", argv[i]);
            return -1;
        } else if (!o->file) {
            o->file = argv[i];
        } else {
            fprintf(stderr, "memllm edit: one edit file at a time\n");
            return -1;
        }
        if (r < 0) return -1;
    }
    if (!o->dir) {
        fprintf(stderr, "memllm edit: --memory DIR is required\n");
        return -1;
    }
    if (!o->file == !o->undo) {
        fprintf(stderr, "memllm edit: give an edit file or --undo BATCH\n");
        return -1;
    }
    return 0;
}

static void free_edits(struct edit_opts *o)
{
    for (int i = 0; i < o->n_edits; i++)
        mm_triple_text_free(&o->edits[i].t);
    free(o->edits);
    o->edits = NULL;
    o->n_edits = 0;
}

/* Reads every line first: one bad line fails the batch before anything is
 * changed. */
static int read_edits(struct edit_opts *o, struct mm_err *err)
{
    FILE *f = fopen(o->file, "r");
    if (!f) {
        mm_err_set(err, "%s: cannot open", o->file);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, rc = 0, cap_edits = 0;
    while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (strspn(line, " \t\r\n") == (size_t)len) continue;
        json_error_t jerr;
        json_t *j = json_loadb(line, (size_t)len, 0, &jerr);
        struct edit e;
        if (!j) {
            mm_err_set(err, "%s:%d: %s", o->file, lineno, jerr.text);
            rc = -1;
        } else if (edit_from_json(j, lineno, &e, err)) {
            mm_err_prefix(err, "%s:%d", o->file, lineno);
            rc = -1;
        } else {
            if (o->n_edits == cap_edits) {
                cap_edits = cap_edits ? 2 * cap_edits : 64;
                struct edit *g = realloc(o->edits, (size_t)cap_edits * sizeof(*g));
                if (!g) {
                    mm_triple_text_free(&e.t);
                    mm_err_set(err, "out of memory");
                    rc = -1;
                } else {
                    o->edits = g;
                }
            }
            if (rc == 0) o->edits[o->n_edits++] = e;
        }
        json_decref(j);
    }
    free(line);
    fclose(f);
    if (rc == 0 && o->n_edits == 0) {
        mm_err_set(err, "%s: no edits", o->file);
        rc = -1;
    }
    return rc;
}

static int apply_batch(struct mm_memory *m, const struct edit_opts *o, struct mm_err *err)
{
    char id[EDIT_BATCH_ID_MAX];
    struct edit_counts c = {0};
    if (edit_apply(m, o->dir, o->file, o->edits, o->n_edits, id, &c, err)) {
        if (id[0])
            fprintf(stderr,
                    "memllm edit: batch %s stopped part way; memllm edit --undo %s restores "
                    "the memory\n",
                    id, id);
        return -1;
    }
    printf("batch: %s\nadded: %llu\nexisting: %llu\nreplaced: %llu\nremoved: %llu\n"
           "deleted: %llu\nnot_found: %llu\n",
           id, (unsigned long long)c.added, (unsigned long long)c.existing,
           (unsigned long long)c.replaced, (unsigned long long)c.removed,
           (unsigned long long)c.deleted, (unsigned long long)c.not_found);
    return 0;
}

static int undo_batch(struct mm_memory *m, const struct edit_opts *o, struct mm_err *err)
{
    size_t restored, removed;
    if (edit_apply_undo(m, o->dir, o->undo, &restored, &removed, err)) return -1;
    printf("undone: %s\nrestored: %zu\nremoved: %zu\n", o->undo, restored, removed);
    return 0;
}

static int run_edit(struct mm_memory *m, const struct edit_opts *o)
{
    struct mm_err err = {{0}};
    int rc = o->undo ? undo_batch(m, o, &err) : apply_batch(m, o, &err);
    if (rc) fprintf(stderr, "memllm edit: %s\n", err.msg);
    return rc ? 1 : 0;
}

/* The memory's life for this command: shards in this process, or served by
 * ranks 1..S under mpirun while rank 0 edits. */
static int with_memory(struct edit_opts *o)
{
    struct cluster c;
    struct mm_err err = {{0}};
    if (cluster_init(&c, 0, o->memshards ? o->memshards : -1, &err)) {
        if (c.rank == 0) fprintf(stderr, "memllm edit: %s\n", err.msg);
        cluster_finish(&c);
        return 2;
    }
    int on_ranks = c.mpi && c.world > 1, rc = 1;
    uint32_t on_disk = mm_memory_shards_on_disk(o->dir);
    uint32_t shards = on_ranks       ? (uint32_t)c.n_shards
                      : o->memshards ? (uint32_t)o->memshards
                      : on_disk      ? on_disk
                                     : 1;
    /* Rank 0 reads the edits and picks the embedder before any shard opens;
     * every rank learns whether that worked. */
    struct mm_embedder *emb = NULL;
    if (c.rank == 0) {
        if (!o->file || read_edits(o, &err) == 0)
            emb = cli_memory_embedder(o->embedder, o->dir, on_disk > 0, &err);
        if (!emb) fprintf(stderr, "memllm edit: %s\n", err.msg);
    }
    int ok = c.rank != 0 || emb != NULL;
    if (on_ranks) MPI_Bcast(&ok, 1, MPI_INT, 0, c.comm);
    if (!ok) goto out;
    if (c.role == ROLE_SHARD) {
        rc = 0;
        if (mm_memory_serve_shard(o->dir, (uint32_t)c.index, 1, c.comm, 0, &err)) {
            fprintf(stderr, "memllm edit: shard %d (rank %d): %s\n", c.index, c.rank, err.msg);
            cluster_abort(&c, 1);
            rc = 1;
        }
        goto out;
    }
    struct mm_memory *m =
        on_ranks ? mm_memory_open_mpi(c.comm, cluster_first_shard(&c), shards, emb, &err)
                 : mm_memory_open_local(o->dir, shards, emb, 1, &err);
    if (!m) {
        fprintf(stderr, "memllm edit: %s\n", err.msg);
        cluster_abort(&c, 1);
        goto out;
    }
    rc = run_edit(m, o);
    if (mm_memory_close(m, &err)) {
        fprintf(stderr, "memllm edit: %s\n", err.msg);
        rc = 1;
    }
out:
    mm_embedder_free(emb);
    cluster_finish(&c);
    return rc;
}

int cli_edit(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    struct edit_opts o;
    if (parse_args(argc, argv, &o)) return 2;
    int rc = with_memory(&o);
    free_edits(&o);
    return rc;
}
