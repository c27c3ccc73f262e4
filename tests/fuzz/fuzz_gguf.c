/* libFuzzer target for the GGUF reader: parse the input, then read every
 * byte the result points at (ASan catches a pointer that leaves the input)
 * and check the invariants callers rely on. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"

static volatile uint8_t sink;

static void touch(const void *p, uint64_t n)
{
    const uint8_t *b = p;
    uint8_t acc = 0;
    for (uint64_t i = 0; i < n; i++)
        acc ^= b[i];
    sink ^= acc;
}

static int inside(const uint8_t *base, size_t size, const void *p, uint64_t n)
{
    const uint8_t *q = p;
    return q >= base && (size_t)(q - base) <= size && n <= size - (size_t)(q - base);
}

/* The name as a C string, or NULL when it holds a NUL (unreachable by the
 * C-string lookups). */
static char *c_name(struct gguf_str s)
{
    if (memchr(s.ptr, '\0', s.len)) return NULL;
    char *c = malloc(s.len + 1);
    if (!c) abort();
    memcpy(c, s.ptr, s.len);
    c[s.len] = '\0';
    return c;
}

static void walk_kv(const struct gguf_file *g, const struct gguf_kv *kv)
{
    const uint8_t *base = g->map.data;
    size_t size = g->map.size;
    if (!inside(base, size, kv->key.ptr, kv->key.len)) abort();
    touch(kv->key.ptr, kv->key.len);
    char *key = c_name(kv->key);
    if (key) {
        if (gguf_find_kv(g, key) != kv) abort();
        struct mm_err err;
        uint32_t u;
        float f;
        struct gguf_str s;
        if (gguf_get_u32(g, key, &u, &err) != 0 && err.msg[0] == '\0') abort();
        if (gguf_get_f32(g, key, &f, &err) != 0 && err.msg[0] == '\0') abort();
        if (gguf_get_str(g, key, &s, &err) == 0) touch(s.ptr, s.len);
        free(key);
    }
    if (kv->type == GGUF_STRING) {
        if (!inside(base, size, kv->v.str.ptr, kv->v.str.len)) abort();
        touch(kv->v.str.ptr, kv->v.str.len);
    } else if (kv->type == GGUF_ARRAY) {
        if (kv->arr_type == GGUF_STRING) {
            for (uint64_t i = 0; i < kv->arr_len; i++) {
                struct gguf_str s = gguf_arr_str(kv, i);
                if (!inside(base, size, s.ptr, s.len)) abort();
                touch(s.ptr, s.len);
            }
            if (gguf_arr_str(kv, kv->arr_len).ptr) abort();
        } else {
            static const uint8_t width[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
            uint64_t n = kv->arr_len * width[kv->arr_type];
            if (!inside(base, size, kv->arr_data, n)) abort();
            touch(kv->arr_data, n);
        }
    }
}

static void walk_tensor(const struct gguf_file *g, const struct gguf_tensor *t)
{
    if (!inside(g->map.data, g->map.size, t->name.ptr, t->name.len)) abort();
    if (!inside(g->map.data, g->map.size, t->data, t->nbytes)) abort();
    if (t->data != g->map.data + t->offset || t->offset % g->alignment != 0) abort();
    if (t->n_dims < 0 || t->n_dims > 4) abort();
    size_t rows = 1;
    for (int d = 1; d < 4; d++)
        rows *= (size_t)t->ne[d];
    if (t->nbytes != mm_dtype_row_bytes(t->dtype, t->ne[0]) * rows) abort();
    touch(t->data, t->nbytes);
    char *name = c_name(t->name);
    if (name) {
        if (gguf_find_tensor(g, name) != t) abort();
        free(name);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mm_err err;
    struct gguf_file *g = gguf_parse(data, size, "fuzz.gguf", &err);
    if (!g) {
        if (strncmp(err.msg, "fuzz.gguf: ", 11) != 0) abort();
        return 0;
    }
    if (g->alignment == 0 || (g->alignment & (g->alignment - 1)) != 0) abort();
    for (uint64_t i = 0; i < g->n_kv; i++)
        walk_kv(g, &g->kv[i]);
    for (uint64_t i = 0; i < g->n_tensors; i++)
        walk_tensor(g, &g->tensors[i]);
    gguf_close(g);
    return 0;
}
