/* safetensors reader: the JSON header and tensor directory of a
 * memory-mapped .safetensors file; tensor data is used in place.
 * Every offset and shape is checked against the file before use, and a
 * failure names the file and the field. F32, F16 and BF16 tensors are
 * kept. Integer tensors (BOOL, U8..I64: buffers such as BERT's position_ids)
 * are checked like the others but left out of the directory, counted in
 * n_skipped. Any other dtype (F64, FP8, ...) rejects the file, naming the
 * tensor. */
#ifndef MEMLLM_WORKER_SAFETENSORS_H
#define MEMLLM_WORKER_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "err.h"
#include "mapped_file.h"

#define ST_MAX_DIMS 4

struct st_tensor {
    char *name;          /* owned */
    enum mm_dtype dtype; /* F32, F16 or BF16 */
    int n_dims;
    int64_t shape[ST_MAX_DIMS]; /* PyTorch order: shape[n_dims-1] is contiguous */
    const uint8_t *data;        /* inside the mapping */
    size_t nbytes;
};

struct st_file {
    struct mapped_file map;
    int owns_map; /* st_open mapped it; st_close unmaps */
    char *path;   /* owned */
    size_t n_tensors;
    struct st_tensor *tensors; /* sorted by name */
    size_t n_skipped;          /* integer tensors left out */
};

struct st_file *st_open(const char *path, struct mm_err *err);
/* Parses an image in memory (the fuzz target's entry); the buffer must
 * outlive the result. */
struct st_file *st_parse(const uint8_t *data, size_t size, const char *name, struct mm_err *err);
void st_close(struct st_file *f);
const struct st_tensor *st_find(const struct st_file *f, const char *name);

/* A set of safetensors files making one checkpoint: a single
 * model.safetensors, or the shards listed by model.safetensors.index.json
 * (or adapter_model.safetensors for an adapter). */
struct st_set {
    size_t n_files;
    struct st_file **files;
};

/* Opens dir/<base>.safetensors, or, when that does not exist, every shard
 * named by the "weight_map" of dir/<base>.safetensors.index.json (each shard
 * once; every tensor the index names must be in its shard). base is e.g.
 * "model". On failure the set is left empty. */
int st_set_open(struct st_set *set, const char *dir, const char *base, struct mm_err *err);
void st_set_close(struct st_set *set);
/* Looks the name up in every file of the set; NULL when absent. */
const struct st_tensor *st_set_find(const struct st_set *set, const char *name);

/* One tensor to write: 2-D f32 data, stored as `dtype` (F32, F16 or BF16). */
struct st_out_tensor {
    const char *name;
    enum mm_dtype dtype;
    int64_t rows, cols;
    const float *data; /* [rows, cols] */
};

/* Writes a safetensors file (header keys in the given order, tensors packed
 * in that order, the header padded to 8 bytes as the format asks), through a
 * temporary file renamed over `path` at the end: a failure leaves any earlier
 * file at `path` as it was. `metadata`: a JSON object of string values for
 * "__metadata__", or NULL. */
int st_write(const char *path, const struct st_out_tensor *t, size_t n, const char *metadata,
             struct mm_err *err);

#endif
