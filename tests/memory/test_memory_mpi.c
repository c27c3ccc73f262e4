/* Run as `mpirun -np 4`: ranks 1..3 serve one shard each; rank 0 builds the
 * comparison memory through them and, separately, in one process with one
 * shard, and checks that both give the same answers and hold the same facts. */
#include "memory/memory_compare.h"
#include "shard_server.h"

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, world;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    REQUIRE(world >= 2, "run under mpirun with at least 2 ranks (got %d)", world);
    char dir[256] = "";
    if (rank == 0) {
        char *d = test_tmpdir("mpi");
        snprintf(dir, sizeof(dir), "%s", d);
        free(d);
    }
    MPI_Bcast(dir, sizeof(dir), MPI_CHAR, 0, MPI_COMM_WORLD);
    struct mm_err err;
    if (rank > 0) {
        char path[512];
        snprintf(path, sizeof(path), "%s/shard-%03d", dir, rank - 1);
        struct mm_shard *sh = mm_shard_open(path, NULL, &err);
        REQUIRE(sh, "%s", err.msg);
        REQUIRE(mm_shard_serve_mpi(sh, MPI_COMM_WORLD, 0, &err) == 0, "%s", err.msg);
        mm_shard_close(sh);
        MPI_Finalize();
        return 0;
    }
    struct mm_embedder *e = mm_fallback_embedder_new(&err);
    REQUIRE(e, "%s", err.msg);
    static char answers[2][1 << 17];
    char *dumps[2];

    struct mm_memory *m = mm_memory_open_mpi(MPI_COMM_WORLD, 1, (uint32_t)world - 1, e, &err);
    REQUIRE(m, "%s", err.msg);
    write_compare_memory(m);
    compare_answers(m, answers[0], sizeof(answers[0]));
    dumps[0] = compare_dump(m);
    struct mm_verify_report v;
    REQUIRE(mm_memory_verify(m, 0, &v, &err) == 0, "%s", err.msg);
    CHECK(v.forward == v.reverse && v.missing_reverse == 0 && v.misplaced == 0);
    REQUIRE(mm_memory_close(m, &err) == 0, "%s", err.msg);

    char *local = test_tmpdir("mpi-local");
    m = mm_memory_open_local(local, 1, e, 0, &err);
    REQUIRE(m, "%s", err.msg);
    write_compare_memory(m);
    compare_answers(m, answers[1], sizeof(answers[1]));
    dumps[1] = compare_dump(m);
    REQUIRE(mm_memory_close(m, &err) == 0, "%s", err.msg);

    CHECK(strlen(answers[0]) > 1000);
    if (strcmp(answers[0], answers[1]) != 0)
        fprintf(stderr, "MPI answers:\n%s\none-process answers:\n%s\n", answers[0], answers[1]);
    CHECK(strcmp(answers[0], answers[1]) == 0);
    CHECK(strcmp(dumps[0], dumps[1]) == 0);
    free(dumps[0]);
    free(dumps[1]);
    test_rmtree(dir);
    test_rmtree(local);
    free(local);
    mm_embedder_free(e);
    int rc = check_report("test_memory_mpi");
    MPI_Finalize();
    return rc;
}
