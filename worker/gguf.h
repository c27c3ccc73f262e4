/* GGUF v3 reader (llama.cpp's model format): header, metadata key/values and
 * the tensor directory of a memory-mapped file. Tensor data is used in place.
 * Version 2 files (same layout) are accepted too; version 1 and big-endian
 * files are rejected.
 *
 * The parser trusts nothing: every length, count, offset and shape is checked
 * against the file size before use, and a failure names the file and the
 * field. */
#ifndef MEMLLM_WORKER_GGUF_H
#define MEMLLM_WORKER_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "err.h"
#include "mapped_file.h"

enum gguf_type {
    GGUF_UINT8 = 0,
    GGUF_INT8 = 1,
    GGUF_UINT16 = 2,
    GGUF_INT16 = 3,
    GGUF_UINT32 = 4,
    GGUF_INT32 = 5,
    GGUF_FLOAT32 = 6,
    GGUF_BOOL = 7,
    GGUF_STRING = 8,
    GGUF_ARRAY = 9,
    GGUF_UINT64 = 10,
    GGUF_INT64 = 11,
    GGUF_FLOAT64 = 12,
};

/* A string inside the mapping: not NUL-terminated. */
struct gguf_str {
    const char *ptr;
    uint64_t len;
};

struct gguf_kv {
    struct gguf_str key;
    enum gguf_type type;
    /* Scalars: the value, widened: u64 for the unsigned types and bool (0 or
     * 1), i64 for the signed ones, f64 for the floats. Strings: str. Arrays:
     * arr_type, arr_len and arr_data, the raw little-endian bytes of the
     * elements inside the mapping (strings in an array are length-prefixed;
     * read them with gguf_arr_str). Arrays of arrays are rejected by the
     * parser, as llama.cpp does. */
    union {
        uint64_t u64;
        int64_t i64;
        double f64;
        struct gguf_str str;
    } v;
    enum gguf_type arr_type;
    uint64_t arr_len;
    const uint8_t *arr_data;
    /* For arrays of strings: offsets of each element from arr_data, filled by
     * the parser (so lookups are O(1)). NULL otherwise. */
    uint64_t *arr_str_offsets;
};

struct gguf_tensor {
    struct gguf_str name;
    enum mm_dtype dtype;
    int n_dims;
    int64_t ne[4];       /* ne[0] is the innermost (contiguous) dimension; unused ones are 1 */
    const uint8_t *data; /* inside the mapping */
    size_t nbytes;
    uint64_t offset; /* of data, from the start of the file */
};

/* A name and the index of its entry: the sorted lookup tables below. */
struct gguf_name_index {
    struct gguf_str name;
    uint64_t index;
};

struct gguf_file {
    struct mapped_file map;
    int owns_map;     /* gguf_open mapped it; gguf_close unmaps */
    const char *path; /* owned copy */
    uint32_t version;
    uint64_t n_kv;
    struct gguf_kv *kv;
    uint64_t n_tensors;
    struct gguf_tensor *tensors; /* in file order */
    uint32_t alignment;
    uint64_t data_offset; /* start of the tensor data section in the file */
    /* kv and tensors sorted by name, for binary search; names are unique. */
    struct gguf_name_index *kv_index;
    struct gguf_name_index *tensor_index;
};

/* Opens and validates a GGUF file. NULL with err set on failure. */
struct gguf_file *gguf_open(const char *path, struct mm_err *err);
/* Parses a GGUF image already in memory (the fuzz target's entry). `name`
 * is used in error messages. The buffer must outlive the result. */
struct gguf_file *gguf_parse(const uint8_t *data, size_t size, const char *name,
                             struct mm_err *err);
void gguf_close(struct gguf_file *g);

/* Lookups; NULL when absent. */
const struct gguf_kv *gguf_find_kv(const struct gguf_file *g, const char *key);
const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *g, const char *name);

/* Typed getters: 0 on success; -1 with err set when the key is missing or
 * has another type ("file.gguf: key 'llama.block_count': expected an
 * integer, found string"). Integer getters accept any integer type whose
 * value fits; gguf_get_f32 accepts either float type or an integer. */
int gguf_get_u32(const struct gguf_file *g, const char *key, uint32_t *out, struct mm_err *err);
int gguf_get_f32(const struct gguf_file *g, const char *key, float *out, struct mm_err *err);
int gguf_get_str(const struct gguf_file *g, const char *key, struct gguf_str *out,
                 struct mm_err *err);

/* Element i of an array of strings; {NULL, 0} when kv is not an array of
 * strings or i is out of range. */
struct gguf_str gguf_arr_str(const struct gguf_kv *kv, uint64_t i);

/* "uint32", "string", ... for messages. */
const char *gguf_type_name(enum gguf_type t);

#endif
