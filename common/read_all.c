#include "read_all.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

char *read_all(FILE *f, const char *name, size_t *len, struct mm_err *err)
{
    /* A stream may be a pipe (stdin): read until its end, doubling. */
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *grown = realloc(buf, cap *= 2);
            if (!grown) free(buf);
            buf = grown;
        }
    }
    if (!buf || ferror(f)) {
        mm_err_set(err, "%s: %s", name, buf ? "read error" : "out of memory");
        free(buf);
        return NULL;
    }
    buf[n] = 0; /* n < cap: the loop grows the buffer whenever it fills */
    *len = n;
    return buf;
}

char *read_all_file(const char *path, size_t *len, struct mm_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        mm_err_set(err, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = read_all(f, path, len, err);
    fclose(f);
    return buf;
}
