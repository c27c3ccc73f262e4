/* In-process transport: the S shards are opened in this process and each
 * request goes straight to mm_shard_handle. Requests still travel as packed
 * protobuf bytes, so one process behaves exactly like S shard ranks. */
#include "memory_client_internal.h"
#include "progress.h"
#include "shard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct local_transport {
    struct mm_transport base;
    struct mm_shard **shard;
};

static int local_exchange(struct mm_transport *t, uint8_t *const *req, const size_t *req_len,
                          uint8_t **resp, size_t *resp_len, double *seconds, struct mm_err *err)
{
    struct local_transport *lt = (struct local_transport *)t;
    for (uint32_t j = 0; j < t->shards; j++) {
        if (!req[j]) continue;
        /* In one process a shard's latency is its own handling: there is no
         * wire to cross. */
        double t0 = progress_now();
        if (mm_shard_handle(lt->shard[j], req[j], req_len[j], &resp[j], &resp_len[j]) < 0) {
            mm_err_set(err, "shard %u: out of memory", j);
            return -1;
        }
        if (seconds) seconds[j] += progress_now() - t0;
    }
    return 0;
}

static int local_close(struct mm_transport *t, struct mm_err *err)
{
    (void)err;
    struct local_transport *lt = (struct local_transport *)t;
    for (uint32_t j = 0; j < t->shards; j++)
        mm_shard_close(lt->shard[j]);
    free(lt->shard);
    free(lt);
    return 0;
}

struct mm_transport *mm_transport_local(const char *dir, uint32_t shards, int sync,
                                        int open_damaged, struct mm_err *err)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        mm_err_set(err, "%s: %s", dir, strerror(errno));
        return NULL;
    }
    struct local_transport *lt = calloc(1, sizeof(*lt));
    if (lt) lt->shard = calloc(shards, sizeof(*lt->shard));
    if (!lt || !lt->shard) {
        if (lt) free(lt);
        mm_err_set(err, "out of memory");
        return NULL;
    }
    lt->base.exchange = local_exchange;
    lt->base.close = local_close;
    lt->base.shards = shards;
    struct mm_shard_options opt = {.sync = sync, .open_damaged = open_damaged};
    for (uint32_t j = 0; j < shards; j++) {
        size_t len = strlen(dir) + 32;
        char *path = malloc(len);
        if (!path) {
            mm_err_set(err, "out of memory");
        } else {
            snprintf(path, len, "%s/shard-%03u", dir, j);
            lt->shard[j] = mm_shard_open(path, &opt, err);
            free(path);
        }
        if (!lt->shard[j]) {
            lt->base.shards = j;
            local_close(&lt->base, NULL);
            return NULL;
        }
    }
    return &lt->base;
}
