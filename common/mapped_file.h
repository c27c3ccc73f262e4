/* Read-only memory mapping of a whole file. Model weights are used in place
 * from the mapping, so a model costs page cache, not a private copy. */
#ifndef MEMLLM_COMMON_MAPPED_FILE_H
#define MEMLLM_COMMON_MAPPED_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct mapped_file {
    const uint8_t *data;
    size_t size;
};

int mapped_file_open(struct mapped_file *mf, const char *path, struct mm_err *err);
void mapped_file_close(struct mapped_file *mf);

#endif
