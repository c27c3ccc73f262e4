/* A whole file into memory, for the tests: common/read_all.h's readers
 * (the bytes with a NUL after them and, where len is not NULL, their
 * count), with the tests' ways of failing. */
#ifndef MEMLLM_TESTS_READ_FILE_H
#define MEMLLM_TESTS_READ_FILE_H

#include <stdio.h>

#include "check.h"
#include "read_all.h"

/* The stream from its start; NULL when it cannot be read. */
static inline char *read_stream(FILE *f, size_t *len)
{
    size_t n;
    struct mm_err err = {{0}};
    rewind(f);
    char *buf = read_all(f, "stream", &n, &err);
    if (buf && len) *len = n;
    return buf;
}

/* NULL when the file is missing or cannot be read. */
static inline char *read_file(const char *path, size_t *len)
{
    size_t n;
    struct mm_err err = {{0}};
    char *buf = read_all_file(path, &n, &err);
    if (buf && len) *len = n;
    return buf;
}

/* A file the test cannot go on without: a failed REQUIRE naming the file
 * and the cause where it cannot be read. */
static inline char *must_read_file(const char *path, size_t *len)
{
    size_t n;
    struct mm_err err = {{0}};
    char *buf = read_all_file(path, &n, &err);
    REQUIRE(buf, "%s", err.msg);
    if (len) *len = n;
    return buf;
}

#endif
