/* libFuzzer target for the safetensors reader: parse the input, then read
 * every byte the result points at (ASan catches a pointer that leaves the
 * input) and check the invariants callers rely on. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

static volatile uint8_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mm_err err;
    struct st_file *f = st_parse(data, size, "fuzz.safetensors", &err);
    if (!f) {
        if (strncmp(err.msg, "fuzz.safetensors: ", 18) != 0) abort();
        return 0;
    }
    for (size_t i = 0; i < f->n_tensors; i++) {
        const struct st_tensor *t = &f->tensors[i];
        if (st_find(f, t->name) != t) abort();
        if (t->n_dims < 0 || t->n_dims > ST_MAX_DIMS) abort();
        size_t elems = 1;
        for (int d = 0; d < t->n_dims; d++)
            elems *= (size_t)t->shape[d];
        if (t->nbytes != elems * mm_dtype_block_bytes(t->dtype)) abort();
        if (t->data < data || (size_t)(t->data - data) > size ||
            t->nbytes > size - (size_t)(t->data - data))
            abort();
        uint8_t acc = 0;
        for (size_t k = 0; k < t->nbytes; k++)
            acc ^= t->data[k];
        sink ^= acc;
    }
    st_close(f);
    return 0;
}
