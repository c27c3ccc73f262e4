#include "shard_server.h"

#include <limits.h>
#include <stdlib.h>

int mm_shard_serve_mpi(struct mm_shard *sh, MPI_Comm comm, int coordinator, struct mm_err *err)
{
    for (;;) {
        MPI_Status status;
        int count;
        if (MPI_Probe(coordinator, MM_SHARD_TAG_REQUEST, comm, &status) != MPI_SUCCESS ||
            MPI_Get_count(&status, MPI_BYTE, &count) != MPI_SUCCESS) {
            mm_err_set(err, "shard server: MPI probe from rank %d failed", coordinator);
            return -1;
        }
        uint8_t *req = malloc(count ? (size_t)count : 1);
        if (!req) {
            mm_err_set(err, "shard server: out of memory for a %d-byte request", count);
            return -1;
        }
        if (MPI_Recv(req, count, MPI_BYTE, coordinator, MM_SHARD_TAG_REQUEST, comm,
                     MPI_STATUS_IGNORE) != MPI_SUCCESS) {
            free(req);
            mm_err_set(err, "shard server: MPI receive from rank %d failed", coordinator);
            return -1;
        }
        uint8_t *resp;
        size_t resp_len;
        int rc = mm_shard_handle(sh, req, (size_t)count, &resp, &resp_len);
        free(req);
        if (rc < 0) {
            mm_err_set(err, "shard server: out of memory answering a request");
            return -1;
        }
        if (resp_len > INT_MAX) {
            free(resp);
            mm_err_set(err, "shard server: response of %zu bytes is too large for MPI", resp_len);
            return -1;
        }
        int sent =
            MPI_Send(resp, (int)resp_len, MPI_BYTE, coordinator, MM_SHARD_TAG_RESPONSE, comm);
        free(resp);
        if (sent != MPI_SUCCESS) {
            mm_err_set(err, "shard server: MPI send to rank %d failed", coordinator);
            return -1;
        }
        if (rc == 1) return 0;
    }
}
