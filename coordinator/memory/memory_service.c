#include "memory_service.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "shard.h"
#include "shard_server.h"

uint32_t mm_memory_shards_on_disk(const char *dir)
{
    uint32_t n = 0;
    char path[4096];
    for (;; n++) {
        snprintf(path, sizeof(path), "%s/shard-%03u", dir, n);
        struct stat sb;
        if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) return n;
    }
}

static int serve_shard(const char *dir, uint32_t index, const struct mm_shard_options *opt,
                       MPI_Comm comm, int coordinator, struct mm_err *err)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        mm_err_set(err, "%s: %s", dir, strerror(errno));
        return -1;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/shard-%03u", dir, index);
    struct mm_shard *sh = mm_shard_open(path, opt, err);
    if (!sh) return -1;
    int rc = mm_shard_serve_mpi(sh, comm, coordinator, err);
    mm_shard_close(sh);
    return rc;
}

int mm_memory_serve_shard(const char *dir, uint32_t index, int sync, MPI_Comm comm, int coordinator,
                          struct mm_err *err)
{
    struct mm_shard_options opt = {.sync = sync};
    return serve_shard(dir, index, &opt, comm, coordinator, err);
}

int mm_memory_serve_shard_to_restore(const char *dir, uint32_t index, int sync, MPI_Comm comm,
                                     int coordinator, struct mm_err *err)
{
    struct mm_shard_options opt = {.sync = sync, .open_damaged = 1};
    return serve_shard(dir, index, &opt, comm, coordinator, err);
}
