/* Opening the memory for a job, wherever its shards live: in this process
 * (the embedded default) or on MPI shard ranks, which serve until the job
 * closes the memory. Shared by every command that uses a memory. */
#ifndef MEMLLM_COORDINATOR_MEMORY_SERVICE_H
#define MEMLLM_COORDINATOR_MEMORY_SERVICE_H

#include <mpi.h>
#include <stdint.h>

#include "memory_client.h"

/* The number of shard-NNN directories of the memory at dir (0: none). */
uint32_t mm_memory_shards_on_disk(const char *dir);

/* A shard rank's life: opens dir/shard-<index> (creating dir) and serves
 * the coordinator until it closes the memory. */
int mm_memory_serve_shard(const char *dir, uint32_t index, int sync, MPI_Comm comm, int coordinator,
                          struct mm_err *err);
/* The same for a restore's shard rank: a database that cannot be opened (a
 * corrupt file) is served all the same, taking only the restore
 * (mm_memory_open_local_to_restore). */
int mm_memory_serve_shard_to_restore(const char *dir, uint32_t index, int sync, MPI_Comm comm,
                                     int coordinator, struct mm_err *err);

#endif
