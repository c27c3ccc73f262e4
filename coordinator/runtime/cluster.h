/* Which role this process plays (DESIGN.md §4).
 *
 * Launched by mpirun, rank 0 is the coordinator, ranks 1..P the pipeline
 * stages and ranks P+1..P+S the memory shards; the job needs exactly 1+P+S
 * ranks. Run directly, the one process is the coordinator and runs every
 * stage and shard itself. */
#ifndef MEMLLM_COORDINATOR_CLUSTER_H
#define MEMLLM_COORDINATOR_CLUSTER_H

#include <mpi.h>

#include "err.h"
#include "heartbeat.h"

enum cluster_role { ROLE_COORDINATOR, ROLE_STAGE, ROLE_SHARD };

struct cluster {
    int mpi;     /* launched by mpirun */
    int started; /* this code called MPI_Init */
    MPI_Comm comm;
    int rank, world;
    int n_stages, n_shards;
    enum cluster_role role;
    int index; /* the stage's or the shard's number, from 0 */
    /* Watches for ranks that stop answering (heartbeat.h); NULL: none. */
    struct heartbeat *heartbeat;
};

/* Starts MPI when launched by mpirun and works out this rank's role for P
 * stages (0 for a command without a model) and S shards (-1: every rank
 * after the stages). Under mpirun the coordinator then stops the job when
 * a stage or shard rank stops answering for MEMLLM_FAIL_SECONDS (default
 * 30; heartbeat.h). */
int cluster_init(struct cluster *c, int n_stages, int n_shards, struct mm_err *err);
void cluster_finish(struct cluster *c);

/* For data-parallel jobs (memllm train): starts MPI when launched by
 * mpirun; every rank is a peer doing its share of the same work (role
 * coordinator, no stages or shards). */
int cluster_init_peers(struct cluster *c);

/* Rank of stage 0 and of shard 0 (meaningful under MPI). */
static inline int cluster_first_stage(const struct cluster *c)
{
    (void)c;
    return 1;
}
static inline int cluster_first_shard(const struct cluster *c)
{
    return 1 + c->n_stages;
}

/* Stops every rank at once: a rank that failed would otherwise leave the
 * others waiting for it. */
void cluster_abort(const struct cluster *c, int status);

#endif
