/* Ranks that stop answering while their host stays up (a stopped process,
 * a hung one): every stage and shard rank sends the coordinator a small
 * message each interval from a thread of its own, and the coordinator stops
 * the whole job (MPI_Abort) when a rank has sent none for three quarters
 * of the bound, less where that leaves Open MPI too little time to end the
 * job (the job is then gone within it), naming its role and host. Its
 * waits for stage results and shard replies need no deadline of their own:
 * a rank computing a long step still beats, a stopped one does not. A host
 * that is lost altogether is Open MPI's to see (deploy/run-hosts.sh).
 *
 * Needs MPI_THREAD_MULTIPLE (the beats travel while the main threads use
 * MPI); cluster_init asks for it. */
#ifndef MEMLLM_COORDINATOR_HEARTBEAT_H
#define MEMLLM_COORDINATOR_HEARTBEAT_H

#include <mpi.h>

#include "err.h"

struct heartbeat;

/* The bound, in seconds: MEMLLM_FAIL_SECONDS (a positive number; 0 turns
 * the watch off), default 30. The coordinator's counts; a rank where it is
 * 0 starts MPI without threads, and then none is watched. */
int heartbeat_bound(double *seconds, struct mm_err *err);

/* Collective over comm: rank 0 watches, the others beat, every
 * min(1, bound / 8) seconds; bound is rank 0's (heartbeat_bound, or < 0
 * when that failed: then every rank returns -1). Ranks 1..n_stages are
 * stages, the rest shards (for the error's wording). *out is NULL when
 * nothing is watched: a bound of 0, one rank, or an MPI without threads. */
int heartbeat_start(MPI_Comm comm, int n_stages, double bound, struct heartbeat **out,
                    struct mm_err *err);

/* A beating rank sends its last beat, which tells the coordinator it is
 * done; the coordinator waits for every rank's (at most the bound: one that
 * hangs before its end stops the job too). Frees h; NULL does nothing. */
void heartbeat_stop(struct heartbeat *h);

#endif
