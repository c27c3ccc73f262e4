/* Backups: a checkpoint is a RocksDB checkpoint of the shard, a directory
 * that RocksDB opens like any database, whose files are copies: RocksDB
 * hard-links the immutable SST files where it can, and those are then
 * copied apart (unshare_files). Restoring copies such a directory next to
 * the shard, swaps the two with renames, and reopens; if the checkpoint
 * turns out not to be this shard's, the old directory is put back. A shard
 * whose database cannot be opened (a corrupt file; mm_shard_options'
 * open_damaged) is restored the same way. */
#include "shard_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "remove_tree.h"

static int check_path(const char *what, const char *path, struct shard_status *st)
{
    if (path[0] == '\0')
        return shard_fail(st, MEMLLM__STATUS__STATUS_INVALID_ARGUMENT, "%s: empty", what);
    if (strlen(path) > 4000)
        return shard_fail(st, MEMLLM__STATUS__STATUS_INVALID_ARGUMENT, "%s: path too long", what);
    for (const unsigned char *p = (const unsigned char *)path; *p; p++)
        if (*p < 0x20)
            return shard_fail(st, MEMLLM__STATUS__STATUS_INVALID_ARGUMENT,
                              "%s: control character in path", what);
    return 0;
}

static int copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY);
    if (in < 0) return -1;
    int out = open(to, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (out < 0) {
        close(in);
        return -1;
    }
    char buf[1 << 16];
    ssize_t n;
    int rc = 0;
    while ((n = read(in, buf, sizeof(buf))) > 0) {
        for (ssize_t done = 0; done < n;) {
            ssize_t w = write(out, buf + done, (size_t)(n - done));
            if (w < 0) {
                rc = -1;
                break;
            }
            done += w;
        }
        if (rc) break;
    }
    if (n < 0 || fsync(out) != 0) rc = -1;
    close(in);
    if (close(out) != 0) rc = -1;
    return rc;
}

/* RocksDB's checkpoint hard-links the shard's SST files when both are on one
 * file system: the backup would share the shard's blocks, and a byte that
 * rots or is overwritten in a shard's file would be in its backup too. Each
 * file with another link is replaced by a copy of its own. */
static int unshare_files(const char *dir, struct shard_status *st)
{
    DIR *d = opendir(dir);
    if (!d)
        return shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "checkpoint: %s: %s", dir,
                          strerror(errno));
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char path[8192], copy[8200];
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= sizeof(path)) {
            rc = shard_fail(st, MEMLLM__STATUS__STATUS_INVALID_ARGUMENT,
                            "checkpoint: %s: path too long", dir);
            break;
        }
        struct stat sb;
        if (lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_nlink < 2) continue;
        snprintf(copy, sizeof(copy), "%s.copy", path);
        if (copy_file(path, copy) != 0 || rename(copy, path) != 0) {
            int errnum = errno;
            unlink(copy);
            rc = shard_fail(st,
                            errnum == ENOSPC || errnum == EDQUOT ? MEMLLM__STATUS__STATUS_NO_SPACE
                                                                 : MEMLLM__STATUS__STATUS_STORAGE,
                            "checkpoint: copying %s: %s", path, strerror(errnum));
        }
    }
    closedir(d);
    return rc;
}

int shard_checkpoint(struct mm_shard *sh, const char *dir, struct shard_status *st)
{
    if (check_path("checkpoint: dir", dir, st) != 0) return -1;
    struct stat sb;
    if (stat(dir, &sb) == 0)
        return shard_fail(st, MEMLLM__STATUS__STATUS_INVALID_ARGUMENT,
                          "checkpoint: %s already exists", dir);
    /* A checkpoint flushes the memtables: a write to the database. */
    if (shard_check_writable(sh, "checkpoint", st) != 0) return -1;
    char *rerr = NULL;
    rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(sh->db, &rerr);
    if (!rerr) {
        /* 0: always flush the memtables, so the checkpoint needs no WAL. */
        rocksdb_checkpoint_create(cp, dir, 0, &rerr);
        rocksdb_checkpoint_object_destroy(cp);
    }
    if (rerr) {
        char what[4200];
        snprintf(what, sizeof(what), "checkpoint %s", dir);
        return shard_storage_error(sh, rerr, what, st);
    }
    /* A half-copied checkpoint is no backup: removed. */
    if (unshare_files(dir, st) != 0) {
        remove_tree(dir);
        return -1;
    }
    return 0;
}

/* Copies the regular files of a checkpoint (it has no subdirectories). */
static int copy_checkpoint(const char *from, const char *to, struct shard_status *st)
{
    DIR *d = opendir(from);
    if (!d)
        return shard_fail(st, MEMLLM__STATUS__STATUS_INVALID_ARGUMENT, "restore: %s: %s", from,
                          strerror(errno));
    if (mkdir(to, 0755) != 0) {
        closedir(d);
        return shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "restore: %s: %s", to,
                          strerror(errno));
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char src[8192], dst[8192];
        if ((size_t)snprintf(src, sizeof(src), "%s/%s", from, e->d_name) >= sizeof(src) ||
            (size_t)snprintf(dst, sizeof(dst), "%s/%s", to, e->d_name) >= sizeof(dst)) {
            rc = shard_fail(st, MEMLLM__STATUS__STATUS_INVALID_ARGUMENT,
                            "restore: %s: path too long", from);
            break;
        }
        struct stat sb;
        if (stat(src, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
        if (copy_file(src, dst) != 0)
            rc = shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "restore: copying %s: %s", src,
                            strerror(errno));
    }
    closedir(d);
    return rc;
}

int shard_restore(struct mm_shard *sh, const char *dir, struct shard_status *st)
{
    if (check_path("restore: dir", dir, st) != 0) return -1;
    char tmp[8192], old[8192];
    snprintf(tmp, sizeof(tmp), "%s.restoring", sh->dir);
    snprintf(old, sizeof(old), "%s.replaced", sh->dir);
    if (remove_tree(tmp) != 0 || remove_tree(old) != 0)
        return shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "restore: cannot clear %s: %s", tmp,
                          strerror(errno));
    if (copy_checkpoint(dir, tmp, st) != 0) {
        remove_tree(tmp);
        return -1;
    }
    /* The place the backup's shard must have: this shard's, or for a
     * shard whose database could not be opened, the one Hello gave it. */
    uint32_t index = sh->index, count = sh->count;
    char *embedder = strdup(sh->embedder ? sh->embedder : "");
    int dim = sh->dim, configured = sh->configured || sh->placed;
    if (!embedder) return shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "out of memory");

    shard_close_db(sh);
    if (rename(sh->dir, old) != 0 || rename(tmp, sh->dir) != 0) {
        shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "restore: swapping %s: %s", sh->dir,
                   strerror(errno));
        rename(old, sh->dir);
        free(embedder);
        shard_reload(sh, st);
        return -1;
    }
    int rc = shard_reload(sh, st);
    if (rc == 0 && configured &&
        (!sh->configured || sh->index != index || sh->count != count || sh->dim != dim ||
         strcmp(sh->embedder, embedder) != 0))
        rc = shard_fail(st, MEMLLM__STATUS__STATUS_MISMATCH,
                        "restore: %s is not a checkpoint of shard %u of %u (embedder %s)", dir,
                        index, count, embedder);
    free(embedder);
    if (rc != 0) {
        struct shard_status ignored = {0};
        shard_close_db(sh);
        remove_tree(sh->dir);
        rename(old, sh->dir);
        /* A damaged shard stays as it was, and says so. */
        if (shard_reload(sh, &ignored) != 0) sh->closed_why = ignored.err;
        return -1;
    }
    sh->closed_why.msg[0] = '\0';
    remove_tree(old);
    return 0;
}
