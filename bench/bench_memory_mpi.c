/* Memory-read latency through shard ranks: run under mpirun -np 1+S, rank 0
 * the client, ranks 1..S serving a shard each. Re-DocRED dev is imported,
 * then single queries are timed one at a time from rank 0 (after a warm-up
 * pass), p50 / p99 / mean in ms; then the same memory as S shards in rank
 * 0's own process, in the same run. The fallback embedder (hashed
 * trigrams) keeps a model's time out of the figures: they are the shards'
 * and the transport's. Where the shard ranks run, and over what (shared
 * memory on one host, TCP across hosts), is mpirun's: bench/bench_hosts.sh
 * runs both. Prints 'name: value' lines (rank 0).
 *
 *   mpirun -np 1+S bench_memory_mpi [--docred FILE] [--passes N] [--memshards S]
 * (--memshards, as deploy/run-hosts.sh passes it, must be the shard ranks.) */
#include "memory_client.h"
#include "memory_client_docred.h"
#include "shard.h"
#include "shard_server.h"

#include <ftw.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die(const char *what, const struct mm_err *err)
{
    fprintf(stderr, "bench_memory_mpi: %s: %s\n", what, err->msg);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "bench_memory_mpi: out of memory (%zu bytes)\n", n);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    return p;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rmtree(const char *dir)
{
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int import_doc(void *ctx, const struct mm_docred_doc *doc)
{
    struct mm_err err;
    if (doc->nfacts &&
        mm_memory_write(ctx, doc->facts, doc->nfacts, doc->aliases, doc->naliases, NULL, &err))
        die("import", &err);
    return 0;
}

/* Every 7th fact of each document as a query (s, r, ?), up to 500. */
struct collect {
    struct mm_query q[500];
    int n;
};

static int collect_queries(void *ctx, const struct mm_docred_doc *doc)
{
    struct collect *c = ctx;
    for (size_t i = 0; i < doc->nfacts && c->n < 500; i += 7) {
        c->q[c->n].entity = strdup(doc->facts[i].s);
        c->q[c->n].relation = strdup(doc->facts[i].r);
        c->q[c->n].want_subject = 0;
        c->n++;
    }
    return 0;
}

/* Imports the documents into m, times passes x n single queries (after one
 * pass of warm-up) and prints their p50, p99 and mean as NAME_*_ms. */
static void measure(struct mm_memory *m, const char *docred, const struct collect *c, int passes,
                    const char *name)
{
    struct mm_err err;
    size_t ndocs;
    if (mm_docred_each(docred, NULL, import_doc, m, &ndocs, &err) != 0) die(docred, &err);
    struct mm_query_options o;
    mm_query_options_default(&o);
    int timed = passes * c->n;
    double *t = xmalloc((size_t)timed * sizeof(*t)), sum = 0;
    for (int pass = -1; pass < passes; pass++)
        for (int i = 0; i < c->n; i++) {
            struct mm_answers a;
            double t0 = now();
            if (mm_memory_query(m, &c->q[i], 1, &o, &a, &err) != 0) die("query", &err);
            double ms = (now() - t0) * 1e3;
            mm_answers_free(&a, 1);
            if (pass >= 0) t[pass * c->n + i] = ms;
        }
    for (int i = 0; i < timed; i++)
        sum += t[i];
    qsort(t, (size_t)timed, sizeof(*t), cmp_double);
    printf("%s_p50_ms: %.3f\n%s_p99_ms: %.3f\n%s_mean_ms: %.3f\n", name, t[timed / 2], name,
           t[(timed * 99) / 100], name, sum / timed);
    free(t);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, world;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    char docred[4096];
    const char *data = getenv("MEMLLM_DATA");
    snprintf(docred, sizeof(docred), "%s/redocred/dev_revised.json",
             data && data[0] ? data : MEMLLM_DATA_DIR);
    int passes = 5, memshards = world - 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--docred") && i + 1 < argc)
            snprintf(docred, sizeof(docred), "%s", argv[++i]);
        else if (!strcmp(argv[i], "--passes") && i + 1 < argc)
            passes = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--memshards") && i + 1 < argc)
            memshards = atoi(argv[++i]);
        else {
            if (rank == 0)
                fprintf(stderr, "usage: mpirun -np 1+S bench_memory_mpi [--docred FILE] "
                                "[--passes N] [--memshards S]\n");
            MPI_Finalize();
            return 2;
        }
    }
    if (world < 2 || passes < 1 || memshards != world - 1) {
        if (rank == 0)
            fprintf(stderr, "bench_memory_mpi: needs 2 ranks or more, --passes >= 1 and "
                            "--memshards (as deploy/run-hosts.sh gives it) = ranks - 1\n");
        MPI_Finalize();
        return 2;
    }
    /* Rank 0's scratch directory, where every shard rank opens its shard
     * (the hosts of a test share the filesystem). */
    char dir[256] = "";
    if (rank == 0) {
        snprintf(dir, sizeof(dir), "/tmp/memllm-bench-mpi-XXXXXX");
        char ranks[300];
        if (!mkdtemp(dir) || snprintf(ranks, sizeof(ranks), "%s/ranks", dir) < 0 ||
            mkdir(ranks, 0700) != 0) {
            perror("scratch directory");
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
    }
    MPI_Bcast(dir, sizeof(dir), MPI_CHAR, 0, MPI_COMM_WORLD);
    struct mm_err err;
    if (rank > 0) {
        char path[512];
        snprintf(path, sizeof(path), "%s/ranks/shard-%03d", dir, rank - 1);
        struct mm_shard *sh = mm_shard_open(path, NULL, &err);
        if (!sh || mm_shard_serve_mpi(sh, MPI_COMM_WORLD, 0, &err)) die(path, &err);
        mm_shard_close(sh);
        MPI_Finalize();
        return 0;
    }
    uint32_t shards = (uint32_t)world - 1;
    struct mm_embedder *emb = mm_fallback_embedder_new(&err);
    if (!emb) die("fallback embedder", &err);
    static struct collect c;
    size_t ndocs;
    if (mm_docred_each(docred, NULL, collect_queries, &c, &ndocs, &err) != 0) die(docred, &err);
    printf("shards: %u\nqueries: %d x %d passes\n", shards, c.n, passes);

    struct mm_memory *m = mm_memory_open_mpi(MPI_COMM_WORLD, 1, shards, emb, &err);
    if (!m) die("open through the shard ranks", &err);
    measure(m, docred, &c, passes, "ranks");
    if (mm_memory_close(m, &err) != 0) die("close", &err);

    char local[512];
    snprintf(local, sizeof(local), "%s/local", dir);
    m = mm_memory_open_local(local, shards, emb, 0, &err);
    if (!m) die("open in this process", &err);
    measure(m, docred, &c, passes, "in_process");
    if (mm_memory_close(m, &err) != 0) die("close", &err);

    for (int i = 0; i < c.n; i++) {
        free((char *)c.q[i].entity);
        free((char *)c.q[i].relation);
    }
    mm_embedder_free(emb);
    rmtree(dir);
    MPI_Finalize();
    return 0;
}
