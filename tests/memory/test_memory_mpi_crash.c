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
        crash_fact_texts("Rank Crash", i, s, o, sizeof(s));
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
    expect_acknowledged_kept(m, "Rank Crash", "rank crash relation", last);
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
