/* A shard rank killed with SIGKILL under a stream of acknowledged writes
 * (driven by tests/memory/mpi_crash.sh):
 *
 *   mpirun -np 3 test_memory_mpi_crash write DIR   rank 0 writes facts one by
 *       one through shard ranks 1 and 2 and appends the number of each
 *       acknowledged fact to DIR/acked; each shard rank writes its pid to
 *       DIR/pid-N so the driver can kill it
 *   mpirun -np 3 test_memory_mpi_crash check DIR   the shard ranks reopen
 *       their directories; rank 0 checks that every acknowledged fact is
 *       there, both copies, and that verify --repair leaves none broken */
#include "memory/memory_test_util.h"
#include "shard_server.h"

#include <unistd.h>

static void fact_texts(long i, char *s, char *o, size_t n)
{
    snprintf(s, n, "Rank Crash Subject %ld", i);
    snprintf(o, n, "Rank Crash Object %ld", i);
}

static int serve(const char *dir, int rank)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/pid-%d", dir, rank);
    FILE *f = fopen(path, "w");
    REQUIRE(f, "cannot write %s", path);
    fprintf(f, "%ld\n", (long)getpid());
    fclose(f);
    snprintf(path, sizeof(path), "%s/shard-%03d", dir, rank - 1);
    struct mm_err err;
    struct mm_shard *sh = mm_shard_open(path, NULL, &err);
    REQUIRE(sh, "%s", err.msg);
    REQUIRE(mm_shard_serve_mpi(sh, MPI_COMM_WORLD, 0, &err) == 0, "%s", err.msg);
    mm_shard_close(sh);
    return 0;
}

static void write_forever(struct mm_memory *m, const char *dir)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/acked", dir);
    FILE *acked = fopen(path, "w");
    REQUIRE(acked, "cannot write %s", path);
    struct mm_err err;
    /* The driver kills a shard rank; mpirun then ends this rank too. The
     * bound only stops a run whose driver went away. */
    for (long i = 0; i < 1000000; i++) {
        char s[64], o[64];
        fact_texts(i, s, o, sizeof(s));
        struct mm_fact f = {s, "rank crash relation", o, {"mpi crash test", (int)(i % 1000), 0}};
        REQUIRE(mm_memory_write(m, &f, 1, NULL, 0, NULL, &err) == 0, "%s", err.msg);
        fprintf(acked, "%ld\n", i);
        fflush(acked);
    }
    fclose(acked);
}

static void check(struct mm_memory *m, const char *dir)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/acked", dir);
    FILE *acked = fopen(path, "r");
    REQUIRE(acked, "cannot read %s", path);
    long last = -1, i;
    while (fscanf(acked, "%ld", &i) == 1)
        last = i;
    fclose(acked);
    REQUIRE(last >= 0, "no acknowledged writes in %s", path);
    struct mm_query_options o;
    mm_query_options_default(&o);
    struct mm_err err;
    long missing = 0;
    for (long k = 0; k <= last; k++) {
        char s[64], ob[64];
        fact_texts(k, s, ob, sizeof(s));
        struct mm_query q[2] = {{s, "rank crash relation", 0}, {ob, "rank crash relation", 1}};
        struct mm_answers a[2];
        REQUIRE(mm_memory_query(m, q, 2, &o, a, &err) == 0, "%s", err.msg);
        int fwd = a[0].n >= 1 && strcmp(a[0].a[0].text, ob) == 0 && a[0].a[0].exact;
        int rev = a[1].n >= 1 && strcmp(a[1].a[0].text, s) == 0 && a[1].a[0].exact;
        missing += !fwd || !rev;
        mm_answers_free(a, 2);
    }
    CHECKF(missing == 0, "%ld of %ld acknowledged facts lost a copy", missing, last + 1);
    struct mm_verify_report v;
    REQUIRE(mm_memory_verify(m, 0, &v, &err) == 0, "%s", err.msg);
    CHECK(v.forward >= (uint64_t)last + 1 && v.forward <= (uint64_t)last + 2);
    CHECK(v.missing_reverse + v.orphan_reverse <= 1);
    REQUIRE(mm_memory_verify(m, 1, &v, &err) == 0, "%s", err.msg);
    REQUIRE(mm_memory_verify(m, 0, &v, &err) == 0, "%s", err.msg);
    CHECK(v.missing_reverse == 0 && v.orphan_reverse == 0 && v.forward == v.reverse);
    printf("%ld writes acknowledged before the shard rank was killed; all present\n", last + 1);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, world;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    REQUIRE(argc == 3 && (!strcmp(argv[1], "write") || !strcmp(argv[1], "check")),
            "usage: %s write|check DIR", argv[0]);
    REQUIRE(world >= 2, "run under mpirun with at least 2 ranks");
    const char *dir = argv[2];
    if (rank > 0) {
        serve(dir, rank);
        MPI_Finalize();
        return 0;
    }
    struct mm_err err;
    struct mm_embedder *e = mm_fallback_embedder_new(&err);
    REQUIRE(e, "%s", err.msg);
    struct mm_memory *m = mm_memory_open_mpi(MPI_COMM_WORLD, 1, (uint32_t)world - 1, e, &err);
    REQUIRE(m, "%s", err.msg);
    if (!strcmp(argv[1], "write"))
        write_forever(m, dir);
    else
        check(m, dir);
    REQUIRE(mm_memory_close(m, &err) == 0, "%s", err.msg);
    mm_embedder_free(e);
    int rc = check_report("test_memory_mpi_crash");
    MPI_Finalize();
    return rc;
}
