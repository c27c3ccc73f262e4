/* A memory shard: one RocksDB database holding a partition of the entities
 * (those whose home is this shard), their names and embeddings, every
 * relation type, and the triple copies kept under its entities, with their
 * provenance. DESIGN.md §3 and §4.
 *
 * The shard speaks the protocol of proto/memory.proto: mm_shard_handle()
 * takes the bytes of a memllm.Request and returns those of a memllm.Response.
 * That is the whole interface; in-process clients call it directly, and
 * shard_server.c serves it over MPI. Every request is one atomic RocksDB
 * write batch with the write-ahead log on: when the response says OK, a
 * restarted shard has the write. */
#ifndef MEMLLM_MEMSHARD_SHARD_H
#define MEMLLM_MEMSHARD_SHARD_H

#include "ann.h"
#include "err.h"

#include <stddef.h>
#include <stdint.h>

struct mm_shard;

struct mm_shard_options {
    /* fsync the write-ahead log before acknowledging a write: survives a
     * machine crash, not only a process crash (slower). */
    int sync;
    /* Approximate entity search (ann.h): zero fields take the defaults;
     * ann.min_rows = UINT32_MAX keeps every search exact. Its graph is saved
     * in the shard's directory as memllm-names.hnsw. */
    struct mm_ann_options ann;
    /* For a restore: a database that RocksDB cannot open or read at open (a
     * corrupt file) still gives a shard, without a database, which answers
     * Hello, Restore and Shutdown and refuses the rest with the open's
     * error; restoring a backup replaces it. */
    int open_damaged;
};

/* Opens (creating if needed) the shard database in dir. The shard takes its
 * place in a memory (index, count, embedder) with the first Hello. */
struct mm_shard *mm_shard_open(const char *dir, const struct mm_shard_options *opt,
                               struct mm_err *err);
void mm_shard_close(struct mm_shard *sh);

/* Executes one request. Always produces a response (errors travel inside
 * it); *resp is malloc'ed. Returns 1 after a shutdown request, 0 otherwise,
 * -1 when out of memory (no response). */
int mm_shard_handle(struct mm_shard *sh, const uint8_t *req, size_t req_len, uint8_t **resp,
                    size_t *resp_len);

/* The approximate entity index indexes new names in the background. Waits
 * until it covers every name row and returns its status: 0, or -1 when the
 * shard has no approximate index running (too few names, disabled, not
 * configured, or it failed to start: err says why when it failed). */
int mm_shard_ann_wait(struct mm_shard *sh, struct mm_ann_status *st, struct mm_err *err);

#endif
