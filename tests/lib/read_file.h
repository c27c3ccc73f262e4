/* A whole file into memory, for the tests: its bytes with a NUL after them
 * (so text can be read as a string) and, where len is not NULL, its size. */
#ifndef MEMLLM_TESTS_READ_FILE_H
#define MEMLLM_TESTS_READ_FILE_H

#include <stdio.h>
#include <stdlib.h>

#include "check.h"

/* The stream from its start; NULL when it cannot be read. */
static inline char *read_stream(FILE *f, size_t *len)
{
    if (fseek(f, 0, SEEK_END) != 0) return NULL;
    long n = ftell(f);
    if (n < 0) return NULL;
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    if (!buf) return NULL;
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    if (len) *len = (size_t)n;
    return buf;
}

/* NULL when the file is missing or cannot be read. */
static inline char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = read_stream(f, len);
    fclose(f);
    return buf;
}

/* A file the test cannot go on without: a failed REQUIRE where it cannot
 * be read. */
static inline char *must_read_file(const char *path, size_t *len)
{
    char *buf = read_file(path, len);
    REQUIRE(buf, "cannot read %s", path);
    return buf;
}

#endif
