#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void mm_err_set(struct mm_err *err, const char *fmt, ...)
{
    if (!err) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
}

void mm_err_prefix(struct mm_err *err, const char *fmt, ...)
{
    if (!err) return;
    char prefix[MM_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    char old[MM_ERR_LEN];
    memcpy(old, err->msg, sizeof(old));
    /* Truncation is acceptable: the message stays a valid, shorter line. */
    size_t n = strlen(prefix);
    if (n > sizeof(err->msg) - 3) n = sizeof(err->msg) - 3;
    memcpy(err->msg, prefix, n);
    memcpy(err->msg + n, ": ", 2);
    size_t room = sizeof(err->msg) - n - 3, olen = strlen(old);
    if (olen > room) olen = room;
    memcpy(err->msg + n + 2, old, olen);
    err->msg[n + 2 + olen] = 0;
}
