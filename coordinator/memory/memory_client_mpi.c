/* MPI transport: shard j is rank first_rank + j of the communicator, running
 * mm_shard_serve_mpi(). A round posts every request (non-blocking sends)
 * before it waits for the responses, so the shards work in parallel. */
#include "memory_client_internal.h"
#include "progress.h"
#include "shard_server.h"

#include <limits.h>
#include <stdlib.h>

struct mpi_transport {
    struct mm_transport base;
    MPI_Comm comm;
    int first_rank;
};

/* Receives shard j's response, already announced by status. */
static int receive(struct mpi_transport *mt, uint32_t j, const MPI_Status *status, uint8_t **resp,
                   size_t *resp_len, struct mm_err *err)
{
    int rank = mt->first_rank + (int)j, count;
    if (MPI_Get_count(status, MPI_BYTE, &count) != MPI_SUCCESS) {
        mm_err_set(err, "shard %u (rank %d): no response over MPI", j, rank);
        return -1;
    }
    *resp = malloc(count ? (size_t)count : 1);
    if (!*resp) {
        mm_err_set(err, "out of memory for a %d-byte response", count);
        return -1;
    }
    if (MPI_Recv(*resp, count, MPI_BYTE, rank, MM_SHARD_TAG_RESPONSE, mt->comm,
                 MPI_STATUS_IGNORE) != MPI_SUCCESS) {
        mm_err_set(err, "shard %u (rank %d): receiving its response failed", j, rank);
        return -1;
    }
    *resp_len = (size_t)count;
    return 0;
}

static int mpi_exchange(struct mm_transport *t, uint8_t *const *req, const size_t *req_len,
                        uint8_t **resp, size_t *resp_len, double *seconds, struct mm_err *err)
{
    struct mpi_transport *mt = (struct mpi_transport *)t;
    uint32_t S = t->shards;
    MPI_Request *pending = malloc(S * sizeof(*pending));
    double *sent = malloc(S * sizeof(*sent));
    if (!pending || !sent) {
        free(pending);
        free(sent);
        mm_err_set(err, "out of memory");
        return -1;
    }
    int rc = 0;
    uint32_t waiting = 0;
    for (uint32_t j = 0; j < S; j++) {
        pending[j] = MPI_REQUEST_NULL;
        if (!req[j]) continue;
        sent[j] = progress_now();
        if (req_len[j] > INT_MAX ||
            MPI_Isend(req[j], (int)req_len[j], MPI_BYTE, mt->first_rank + (int)j,
                      MM_SHARD_TAG_REQUEST, mt->comm, &pending[j]) != MPI_SUCCESS) {
            mm_err_set(err, "shard %u: cannot send a %zu-byte request over MPI", j, req_len[j]);
            rc = -1;
            break;
        }
        waiting++;
    }
    /* Responses are taken as they come, not in shard order, so that each
     * shard's latency ends when its own response is in, not when the shards
     * before it have answered. */
    uint8_t *done = calloc(S, 1);
    if (rc == 0 && !done) {
        mm_err_set(err, "out of memory");
        rc = -1;
    }
    while (rc == 0 && waiting > 0) {
        for (uint32_t j = 0; j < S && rc == 0; j++) {
            if (!req[j] || done[j]) continue;
            int rank = mt->first_rank + (int)j, ready;
            MPI_Status status;
            if (MPI_Iprobe(rank, MM_SHARD_TAG_RESPONSE, mt->comm, &ready, &status) != MPI_SUCCESS) {
                mm_err_set(err, "shard %u (rank %d): no response over MPI", j, rank);
                rc = -1;
            } else if (ready) {
                rc = receive(mt, j, &status, &resp[j], &resp_len[j], err);
                if (seconds) seconds[j] += progress_now() - sent[j];
                done[j] = 1;
                waiting--;
            }
        }
    }
    MPI_Waitall((int)S, pending, MPI_STATUSES_IGNORE);
    free(done);
    free(sent);
    free(pending);
    return rc;
}

static int mpi_close(struct mm_transport *t, struct mm_err *err)
{
    struct mpi_transport *mt = (struct mpi_transport *)t;
    Memllm__Empty empty = MEMLLM__EMPTY__INIT;
    Memllm__Request req = MEMLLM__REQUEST__INIT;
    req.command_case = MEMLLM__REQUEST__COMMAND_SHUTDOWN;
    req.shutdown = &empty;
    uint8_t buf[16];
    size_t len = memllm__request__pack(&req, buf);
    uint32_t S = t->shards;
    uint8_t **reqs = calloc(S, sizeof(*reqs));
    size_t *lens = calloc(S, sizeof(*lens));
    uint8_t **resp = calloc(S, sizeof(*resp));
    size_t *resp_len = calloc(S, sizeof(*resp_len));
    int rc = -1;
    if (reqs && lens && resp && resp_len) {
        for (uint32_t j = 0; j < S; j++) {
            reqs[j] = buf;
            lens[j] = len;
        }
        rc = mpi_exchange(t, reqs, lens, resp, resp_len, NULL, err);
        for (uint32_t j = 0; j < S; j++)
            free(resp[j]);
    } else {
        mm_err_set(err, "out of memory");
    }
    free(reqs);
    free(lens);
    free(resp);
    free(resp_len);
    free(mt);
    return rc;
}

struct mm_transport *mm_transport_mpi(MPI_Comm comm, int first_rank, uint32_t shards,
                                      struct mm_err *err)
{
    int size;
    MPI_Comm_size(comm, &size);
    if (first_rank < 0 || (int64_t)first_rank + shards > size) {
        mm_err_set(err, "MPI: shard ranks %d..%lld do not exist in a world of %d ranks", first_rank,
                   (long long)first_rank + shards - 1, size);
        return NULL;
    }
    struct mpi_transport *mt = calloc(1, sizeof(*mt));
    if (!mt) {
        mm_err_set(err, "out of memory");
        return NULL;
    }
    mt->base.exchange = mpi_exchange;
    mt->base.close = mpi_close;
    mt->base.shards = shards;
    mt->comm = comm;
    mt->first_rank = first_rank;
    return &mt->base;
}
