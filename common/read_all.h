/* Reading an input whole: a text to score, a corpus file, stdin. The
 * bytes come back followed by a NUL (so a text can be read as a string),
 * with their count in *len. */
#ifndef MEMLLM_COMMON_READ_ALL_H
#define MEMLLM_COMMON_READ_ALL_H

#include <stddef.h>
#include <stdio.h>

#include "err.h"

/* The rest of stream f, to its end; name says what f is in an error. NULL
 * with err set on a read error or when memory runs out. */
char *read_all(FILE *f, const char *name, size_t *len, struct mm_err *err);

/* The whole file at path; NULL with err set (naming the path and the
 * cause) where it cannot be opened or read. */
char *read_all_file(const char *path, size_t *len, struct mm_err *err);

#endif
