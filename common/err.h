/* Error reporting used across memllm.
 *
 * A call that can fail takes a `struct mm_err *` as its last argument. On
 * failure it writes one line that names the input (file, field, argument)
 * and the problem, and returns -1 or NULL. The caller decides whether to
 * print it, add context, or recover. No library code prints or exits. */
#ifndef MEMLLM_COMMON_ERR_H
#define MEMLLM_COMMON_ERR_H

#include <stddef.h>

#define MM_ERR_LEN 1024

struct mm_err {
    char msg[MM_ERR_LEN];
};

/* Sets the message (printf format). Safe with err == NULL. */
void mm_err_set(struct mm_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends context, e.g. the file name, to an existing message. */
void mm_err_prefix(struct mm_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
