/* Shared by the memory client's source files: the client's state, the
 * transports, and the request/response round trip. */
#ifndef MEMLLM_COORDINATOR_MEMORY_CLIENT_INTERNAL_H
#define MEMLLM_COORDINATOR_MEMORY_CLIENT_INTERNAL_H

#include <stdatomic.h>

#include "arena.h"
#include "id_map.h"
#include "memory.pb-c.h"
#include "memory_client.h"

/* Moves packed requests to shards and packed responses back. */
struct mm_transport {
    /* For every shard j with req[j] != NULL: sends req[j] and receives
     * resp[j] (malloc'ed). All requests are sent before any response is
     * awaited, so the shards work at the same time. seconds[j] (when
     * seconds is not NULL) gains shard j's latency: from sending its request
     * to having its response. */
    int (*exchange)(struct mm_transport *t, uint8_t *const *req, const size_t *req_len,
                    uint8_t **resp, size_t *resp_len, double *seconds, struct mm_err *err);
    /* Stops the shards and frees the transport. */
    int (*close)(struct mm_transport *t, struct mm_err *err);
    uint32_t shards;
};

/* open_damaged: mm_shard_options' (a restore's). */
struct mm_transport *mm_transport_local(const char *dir, uint32_t shards, int sync,
                                        int open_damaged, struct mm_err *err);
struct mm_transport *mm_transport_mpi(MPI_Comm comm, int first_rank, uint32_t shards,
                                      struct mm_err *err);

struct mm_memory {
    struct mm_transport *t;
    struct mm_embedder *emb;
    uint32_t shards;
    /* Entity and relation ids this client wrote with their embeddings, so
     * that later writes need neither embed nor ship them again. Entities
     * and relation types are never removed but by a restore, which empties
     * this; a shard that lacks one anyway (another client restored it)
     * answers STATUS_NOT_FOUND, and the write is sent again whole. */
    struct id_map stored;
    Memllm__Status refused; /* of the last round's first refusing shard */
    /* Requests sent to each shard ([shards]; mm_memory_shard_requests):
     * atomic, as a service's metrics read them from another thread. */
    _Atomic uint64_t *shard_reads, *shard_writes;
    /* Set by mm_memory_query_timed for the length of its call: each round
     * adds shard j's latency to round_s[j]. NULL otherwise. */
    double *round_s;
};

/* One round trip: sends req[j] to every shard j where it is set and decodes
 * the responses into resp[j] (free with memllm__response__free_unpacked).
 * A shard's error status fails the call with "shard j: <its message>" and
 * is kept in m->refused; all responses are still freed then. */
int client_round(struct mm_memory *m, Memllm__Request *const *req, Memllm__Response **resp,
                 struct mm_err *err);
void client_free_responses(struct mm_memory *m, Memllm__Response **resp);

/* Embeds n texts into a malloc'ed n x dim array. */
float *client_embed(struct mm_memory *m, const char *const *texts, size_t n, struct mm_err *err);

#endif
