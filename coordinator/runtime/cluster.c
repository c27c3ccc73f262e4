#include "cluster.h"

#include <stdlib.h>
#include <string.h>

static int launched_by_mpirun(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

/* One process as rank 0 of 1, or, launched by mpirun, MPI started and
 * this rank's place in the world. */
static void start(struct cluster *c, int threads)
{
    memset(c, 0, sizeof(*c));
    c->comm = MPI_COMM_NULL;
    c->world = 1;
    c->role = ROLE_COORDINATOR;
    if (!launched_by_mpirun()) return;
    int initialized;
    MPI_Initialized(&initialized);
    if (!initialized) {
        /* Threads for the heartbeat (heartbeat.h) where ranks have roles,
         * unless it is turned off here: MPI then takes no locks (a setting
         * that is no number is the coordinator's to report). */
        int provided;
        double bound;
        struct mm_err ignored;
        if (threads && (heartbeat_bound(&bound, &ignored) || bound > 0))
            MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, &provided);
        else
            MPI_Init(NULL, NULL);
        c->started = 1;
    }
    c->mpi = 1;
    MPI_Comm_dup(MPI_COMM_WORLD, &c->comm);
    MPI_Comm_rank(c->comm, &c->rank);
    MPI_Comm_size(c->comm, &c->world);
}

int cluster_init(struct cluster *c, int n_stages, int n_shards, struct mm_err *err)
{
    start(c, 1);
    c->n_stages = n_stages > 0 ? n_stages : 0;
    c->n_shards = n_shards > 0 ? n_shards : 0;
    if (!c->mpi) return 0;
    if (n_shards < 0 && c->world > c->n_stages) c->n_shards = c->world - 1 - c->n_stages;
    if (c->world != 1 + c->n_stages + c->n_shards) {
        mm_err_set(err,
                   "--stages %d and --memshards %d need mpirun -np %d (1 coordinator + %d "
                   "stages + %d shards), not %d",
                   c->n_stages, c->n_shards, 1 + c->n_stages + c->n_shards, c->n_stages,
                   c->n_shards, c->world);
        return -1;
    }
    double bound = 0;
    if (c->rank == 0 && heartbeat_bound(&bound, err)) bound = -1;
    if (heartbeat_start(c->comm, c->n_stages, bound, &c->heartbeat, err)) return -1;
    if (c->rank == 0) return 0;
    if (c->rank <= c->n_stages) {
        c->role = ROLE_STAGE;
        c->index = c->rank - 1;
    } else {
        c->role = ROLE_SHARD;
        c->index = c->rank - 1 - c->n_stages;
    }
    return 0;
}

int cluster_init_peers(struct cluster *c)
{
    start(c, 0);
    return 0;
}

void cluster_finish(struct cluster *c)
{
    heartbeat_stop(c->heartbeat);
    c->heartbeat = NULL;
    if (c->mpi) MPI_Comm_free(&c->comm);
    if (c->started) MPI_Finalize();
    c->mpi = c->started = 0;
}

void cluster_abort(const struct cluster *c, int status)
{
    if (c->mpi) MPI_Abort(MPI_COMM_WORLD, status);
}
