#include "annotate_done.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The ids of finished documents, one per line. */
static int load(struct annotate_done *d, struct mm_err *err)
{
    FILE *f = fopen(d->path, "r");
    if (!f) {
        if (errno == ENOENT) return 0;
        mm_err_set(err, "%s: %s", d->path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;
    while (rc == 0 && (len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] != '\n') break;
        line[len - 1] = 0;
        if (id_set_add(&d->ids, line) < 0) {
            mm_err_set(err, "out of memory");
            rc = -1;
        }
    }
    free(line);
    fclose(f);
    return rc;
}

int annotate_done_open(struct annotate_done *d, const char *dir, struct mm_err *err)
{
    memset(d, 0, sizeof(*d));
    d->fd = -1;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        mm_err_set(err, "%s: %s", dir, strerror(errno));
        return -1;
    }
    snprintf(d->path, sizeof(d->path), "%s/" ANNOTATE_DONE_FILE, dir);
    if (load(d, err)) return -1;
    d->fd = open(d->path, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (d->fd < 0) {
        mm_err_set(err, "%s: %s", d->path, strerror(errno));
        return -1;
    }
    return 0;
}

int annotate_done_record(struct annotate_done *d, const char *id, struct mm_err *err)
{
    size_t len = strlen(id);
    char *line = malloc(len + 1);
    if (!line || id_set_add(&d->ids, id) < 0) {
        free(line);
        mm_err_set(err, "out of memory");
        return -1;
    }
    memcpy(line, id, len);
    line[len] = '\n';
    ssize_t wrote = write(d->fd, line, len + 1);
    free(line);
    if (wrote != (ssize_t)(len + 1) || fsync(d->fd) != 0) {
        mm_err_set(err, "%s: %s", d->path, strerror(errno));
        return -1;
    }
    return 0;
}

void annotate_done_close(struct annotate_done *d)
{
    if (d->fd >= 0) close(d->fd);
    d->fd = -1;
    id_set_free(&d->ids);
}
