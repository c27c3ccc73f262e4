/* A memory shard as an MPI rank: receives memllm.Request messages from the
 * coordinator rank, answers each with a memllm.Response, until shutdown.
 * Messages are the packed protobuf bytes, one MPI message each. */
#ifndef MEMLLM_MEMSHARD_SHARD_SERVER_H
#define MEMLLM_MEMSHARD_SHARD_SERVER_H

#include "err.h"
#include "shard.h"

#include <mpi.h>

#define MM_SHARD_TAG_REQUEST 7301
#define MM_SHARD_TAG_RESPONSE 7302

/* Serves `coordinator` on comm until a shutdown request; returns 0 then, -1
 * on an MPI failure or when out of memory. */
int mm_shard_serve_mpi(struct mm_shard *sh, MPI_Comm comm, int coordinator, struct mm_err *err);

#endif
