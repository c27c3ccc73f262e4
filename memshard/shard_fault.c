/* Storage faults: a failed RocksDB write names the shard's directory and
 * the cause (a full disk, a read-only or failing file system), and latches.
 *
 * RocksDB 7.8 (Debian 12) aborts the process, an assertion in
 * WritableFileWriter (sync_without_flush_called_), when a file writer that
 * has seen an error is written again: the write-ahead log after a failed
 * append, the info LOG after a failed line. So once a write, flush or
 * checkpoint of a shard's database failed, the shard issues no more writes
 * to it (reads go on) until the memory is opened again; closing is safe,
 * as a database with its write-ahead log on flushes nothing at close. On
 * a disk with almost no room, where opening would write RocksDB's LOG
 * header and such a failed write would follow, a shard opens its database
 * for reading only (RocksDB then writes nothing) and refuses writes the
 * same way. */
#include "shard_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>

/* Opening writes the LOG header, an OPTIONS file and, when it recovers a
 * write-ahead log, a table: below this, a shard opens for reading only. */
#define SHARD_MIN_FREE_BYTES (1u << 20)

static const struct {
    int errnum;
    const char *cause;
    Memllm__Status code;
} causes[] = {
    {ENOSPC, "no space left on device", MEMLLM__STATUS__STATUS_NO_SPACE},
    {EDQUOT, "disk quota exceeded", MEMLLM__STATUS__STATUS_NO_SPACE},
    {EROFS, "read-only file system", MEMLLM__STATUS__STATUS_IO_FAULT},
    {EIO, "input/output error", MEMLLM__STATUS__STATUS_IO_FAULT},
};

int shard_storage_error(struct mm_shard *sh, char *rerr, const char *what, struct shard_status *st)
{
    /* The cause, from the system's message that RocksDB's carries. */
    const char *cause = "storage error";
    Memllm__Status code = MEMLLM__STATUS__STATUS_IO_FAULT;
    for (size_t i = 0; i < sizeof(causes) / sizeof(causes[0]); i++)
        if (strstr(rerr, strerror(causes[i].errnum))) {
            cause = causes[i].cause;
            code = causes[i].code;
            break;
        }
    shard_fail(st, code, "%s: %s: %s: %s", sh->dir, cause, what, rerr);
    if (!sh->faulted) {
        sh->faulted = 1;
        sh->fault_code = code;
        sh->fault_cause = cause;
        sh->fault_why = "after a failed write, until the memory is opened again";
        mm_err_set(&sh->fault_detail, "%s: %s", what, rerr);
    }
    rocksdb_free(rerr);
    return -1;
}

int shard_check_writable(struct mm_shard *sh, const char *what, struct shard_status *st)
{
    if (!sh->faulted) return 0;
    return shard_fail(st, sh->fault_code, "%s: %s: %s refused %s (%s)", sh->dir, sh->fault_cause,
                      what, sh->fault_why, sh->fault_detail.msg);
}

int shard_check_space(struct mm_shard *sh)
{
    /* The shard's directory, or the memory's one above it before the
     * database is created. */
    char parent[4096];
    const char *path = sh->dir;
    struct statvfs sv;
    int rc = statvfs(path, &sv);
    if (rc != 0 && errno == ENOENT && strlen(sh->dir) < sizeof(parent)) {
        strcpy(parent, sh->dir);
        char *slash = strrchr(parent, '/');
        if (slash) *slash = '\0';
        path = slash && slash != parent ? parent : ".";
        rc = statvfs(path, &sv);
    }
    /* Where the file system cannot say, RocksDB's own errors will. */
    if (rc != 0) return 0;
    unsigned long long avail = (unsigned long long)sv.f_bavail * sv.f_frsize;
    if (avail >= SHARD_MIN_FREE_BYTES) return 0;
    sh->faulted = 1;
    sh->fault_code = MEMLLM__STATUS__STATUS_NO_SPACE;
    sh->fault_cause = "no space left on device";
    sh->fault_why = "as the shard is open for reading only";
    mm_err_set(&sh->fault_detail, "%llu KiB free on %s; a shard needs %u KiB to write", avail >> 10,
               path, SHARD_MIN_FREE_BYTES >> 10);
    return -1;
}
