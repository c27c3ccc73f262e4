/* safetensors reader. Layout: u64 little-endian header length N, N bytes of
 * JSON, then the data section. The JSON maps each tensor name to
 * {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]} with
 * offsets relative to the data section; "__metadata__" holds free-form
 * strings and is skipped. Internal steps write their error without the file
 * name; st_parse prefixes it once. */
#include "safetensors.h"

#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The reference implementation caps headers at 100 MB; a larger one is
 * corrupt, and parsing it would cost that much memory again. */
#define ST_MAX_HEADER_BYTES (100u * 1000u * 1000u)
#define NAME_SHOWN 200

/* The dtypes a header may name. Float tensors memllm computes with are
 * kept; integer ones are buffers such as BERT's "position_ids" (an arange
 * that models recompute), checked and then left out. Any other dtype (F64,
 * FP8, ...) would be a weight memllm cannot use, so the file is rejected. */
struct st_dtype {
    const char *name;
    size_t bytes;
    bool kept;
    enum mm_dtype dtype; /* when kept */
};

static const struct st_dtype st_dtypes[] = {
    {"F32", 4, true, MM_F32},   {"F16", 2, true, MM_F16},  {"BF16", 2, true, MM_BF16},
    {"BOOL", 1, false, MM_F32}, {"U8", 1, false, MM_F32},  {"I8", 1, false, MM_F32},
    {"U16", 2, false, MM_F32},  {"I16", 2, false, MM_F32}, {"U32", 4, false, MM_F32},
    {"I32", 4, false, MM_F32},  {"U64", 8, false, MM_F32}, {"I64", 8, false, MM_F32},
};

static const struct st_dtype *find_dtype(const char *name)
{
    for (size_t i = 0; i < sizeof(st_dtypes) / sizeof(st_dtypes[0]); i++)
        if (strcmp(st_dtypes[i].name, name) == 0) return &st_dtypes[i];
    return NULL;
}

static bool is_count(const json_t *v)
{
    return json_is_integer(v) && json_integer_value(v) >= 0;
}

/* Fills t from one header entry; data_start is the offset of the data
 * section in the file. Returns 0 for a tensor to keep, 1 for a checked
 * integer buffer to leave out, -1 on error. */
static int parse_entry(struct st_tensor *t, const json_t *entry, const uint8_t *file,
                       size_t data_start, size_t file_size, struct mm_err *err)
{
    if (!json_is_object(entry)) {
        mm_err_set(err, "entry is not a JSON object");
        return -1;
    }
    const json_t *dtype = json_object_get(entry, "dtype");
    const json_t *shape = json_object_get(entry, "shape");
    const json_t *offsets = json_object_get(entry, "data_offsets");
    if (!json_is_string(dtype)) {
        mm_err_set(err, "\"dtype\" is missing or not a string");
        return -1;
    }
    const struct st_dtype *dt = find_dtype(json_string_value(dtype));
    if (!dt) {
        mm_err_set(err, "unsupported dtype '%.*s' (F32, F16 or BF16 supported)", NAME_SHOWN,
                   json_string_value(dtype));
        return -1;
    }
    t->dtype = dt->dtype;

    if (!json_is_array(shape)) {
        mm_err_set(err, "\"shape\" is missing or not an array");
        return -1;
    }
    if (json_array_size(shape) > ST_MAX_DIMS) {
        mm_err_set(err, "%zu dimensions (at most %d supported)", json_array_size(shape),
                   ST_MAX_DIMS);
        return -1;
    }
    t->n_dims = (int)json_array_size(shape);
    uint64_t nbytes = dt->bytes;
    bool overflow = false;
    for (int d = 0; d < t->n_dims; d++) {
        const json_t *dim = json_array_get(shape, (size_t)d);
        if (!is_count(dim)) {
            mm_err_set(err, "shape[%d] is not a non-negative integer", d);
            return -1;
        }
        t->shape[d] = json_integer_value(dim);
        overflow = overflow || __builtin_mul_overflow(nbytes, (uint64_t)t->shape[d], &nbytes);
    }
    if (overflow) {
        mm_err_set(err, "size of the shape overflows");
        return -1;
    }

    if (!json_is_array(offsets) || json_array_size(offsets) != 2 ||
        !is_count(json_array_get(offsets, 0)) || !is_count(json_array_get(offsets, 1))) {
        mm_err_set(err, "\"data_offsets\" must be [begin, end] with non-negative integers");
        return -1;
    }
    uint64_t begin = (uint64_t)json_integer_value(json_array_get(offsets, 0));
    uint64_t end = (uint64_t)json_integer_value(json_array_get(offsets, 1));
    if (begin > end) {
        mm_err_set(err, "data_offsets [%" PRIu64 ", %" PRIu64 "]: begin is past end", begin, end);
        return -1;
    }
    if (end - begin != nbytes) {
        mm_err_set(err,
                   "data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64
                   " bytes but the shape and dtype need %" PRIu64,
                   begin, end, end - begin, nbytes);
        return -1;
    }
    /* No overflow below: begin and end are JSON integers (< 2^63) and data_start <= file_size. */
    if (end > file_size - data_start) {
        mm_err_set(err,
                   "data [offset %" PRIu64 ", %" PRIu64
                   " bytes] extends past end of file (%zu bytes)",
                   data_start + begin, nbytes, file_size);
        return -1;
    }
    t->data = file + data_start + begin;
    t->nbytes = (size_t)nbytes;
    return dt->kept ? 0 : 1;
}

static int compare_tensors(const void *a, const void *b)
{
    return strcmp(((const struct st_tensor *)a)->name, ((const struct st_tensor *)b)->name);
}

static int parse_tensors(struct st_file *f, const json_t *root, size_t data_start,
                         struct mm_err *err)
{
    size_t n = json_object_size(root);
    f->tensors = calloc(n ? n : 1, sizeof(*f->tensors));
    if (!f->tensors) {
        mm_err_set(err, "out of memory for %zu tensors", n);
        return -1;
    }
    const char *name;
    const json_t *entry;
    json_object_foreach((json_t *)root, name, entry)
    {
        if (strcmp(name, "__metadata__") == 0) continue;
        struct st_tensor t = {0};
        int kind = parse_entry(&t, entry, f->map.data, data_start, f->map.size, err);
        if (kind < 0) {
            mm_err_prefix(err, "tensor '%.*s'", NAME_SHOWN, name);
            return -1;
        }
        if (kind == 1) {
            f->n_skipped++;
            continue;
        }
        t.name = strdup(name);
        if (!t.name) {
            mm_err_set(err, "out of memory");
            return -1;
        }
        f->tensors[f->n_tensors++] = t;
    }
    qsort(f->tensors, f->n_tensors, sizeof(*f->tensors), compare_tensors);
    return 0;
}

static int parse(struct st_file *f, struct mm_err *err)
{
    const uint8_t *p = f->map.data;
    size_t size = f->map.size;
    if (size < 8) {
        mm_err_set(err, "header length: unexpected end of file (%zu bytes)", size);
        return -1;
    }
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--)
        header_len = (header_len << 8) | p[i];
    if (header_len > size - 8) {
        mm_err_set(err, "header length %" PRIu64 " extends past end of file (%zu bytes)",
                   header_len, size);
        return -1;
    }
    if (header_len > ST_MAX_HEADER_BYTES) {
        mm_err_set(err, "header length %" PRIu64 " exceeds the limit of %u bytes", header_len,
                   ST_MAX_HEADER_BYTES);
        return -1;
    }

    json_error_t jerr;
    json_t *root =
        json_loadb((const char *)p + 8, (size_t)header_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        mm_err_set(err, "bad JSON header: %s (line %d, column %d)", jerr.text, jerr.line,
                   jerr.column);
        return -1;
    }
    int rc = -1;
    if (!json_is_object(root))
        mm_err_set(err, "JSON header is not an object");
    else
        rc = parse_tensors(f, root, 8 + (size_t)header_len, err);
    json_decref(root);
    return rc;
}

struct st_file *st_parse(const uint8_t *data, size_t size, const char *name, struct mm_err *err)
{
    struct st_file *f = calloc(1, sizeof(*f));
    char *path = strdup(name);
    if (!f || !path) {
        mm_err_set(err, "%s: out of memory", name);
        free(f);
        free(path);
        return NULL;
    }
    f->path = path;
    f->map.data = data;
    f->map.size = size;
    if (parse(f, err)) {
        mm_err_prefix(err, "%s", name);
        st_close(f);
        return NULL;
    }
    return f;
}

struct st_file *st_open(const char *path, struct mm_err *err)
{
    struct mapped_file map;
    if (mapped_file_open(&map, path, err)) return NULL;
    struct st_file *f = st_parse(map.data, map.size, path, err);
    if (!f) {
        mapped_file_close(&map);
        return NULL;
    }
    f->owns_map = 1;
    return f;
}

void st_close(struct st_file *f)
{
    if (!f) return;
    if (f->tensors) {
        for (size_t i = 0; i < f->n_tensors; i++)
            free(f->tensors[i].name);
        free(f->tensors);
    }
    if (f->owns_map) mapped_file_close(&f->map);
    free(f->path);
    free(f);
}

const struct st_tensor *st_find(const struct st_file *f, const char *name)
{
    struct st_tensor key = {.name = (char *)name};
    if (f->n_tensors == 0) return NULL;
    return bsearch(&key, f->tensors, f->n_tensors, sizeof(*f->tensors), compare_tensors);
}

/* dir/name into buf; -1 with err set when it does not fit. */
static int join_path(char *buf, size_t n, const char *dir, const char *name, const char *suffix,
                     struct mm_err *err)
{
    int len = snprintf(buf, n, "%s/%s%s", dir, name, suffix);
    if (len < 0 || (size_t)len >= n) {
        mm_err_set(err, "%s/%s%s: path too long", dir, name, suffix);
        return -1;
    }
    return 0;
}

static int add_file(struct st_set *set, struct st_file *f, struct mm_err *err)
{
    struct st_file **files = realloc(set->files, (set->n_files + 1) * sizeof(*files));
    if (!files) {
        mm_err_set(err, "%s: out of memory", f->path);
        st_close(f);
        return -1;
    }
    set->files = files;
    set->files[set->n_files++] = f;
    return 0;
}

/* The already opened file at path, or NULL. */
static struct st_file *find_open_file(const struct st_set *set, const char *path)
{
    for (size_t i = 0; i < set->n_files; i++)
        if (strcmp(set->files[i]->path, path) == 0) return set->files[i];
    return NULL;
}

/* Opens (once) the shard that the index assigns `tensor` to and checks that
 * the tensor is there. Errors are prefixed by the caller with the index. */
static int open_shard_for(struct st_set *set, const char *dir, const char *tensor,
                          const json_t *shard, struct mm_err *err)
{
    if (!json_is_string(shard)) {
        mm_err_set(err, "weight_map['%.*s'] is not a string", NAME_SHOWN, tensor);
        return -1;
    }
    const char *shard_name = json_string_value(shard);
    /* The index is outside data: it may only name files beside it. */
    if (shard_name[0] == '\0' || strchr(shard_name, '/') || strcmp(shard_name, ".") == 0 ||
        strcmp(shard_name, "..") == 0) {
        mm_err_set(err, "weight_map['%.*s']: shard '%.*s' is not a plain file name", NAME_SHOWN,
                   tensor, NAME_SHOWN, shard_name);
        return -1;
    }
    char path[PATH_MAX];
    if (join_path(path, sizeof(path), dir, shard_name, "", err)) return -1;
    struct st_file *f = find_open_file(set, path);
    if (!f) {
        f = st_open(path, err);
        if (!f || add_file(set, f, err)) {
            mm_err_prefix(err, "shard '%.*s'", NAME_SHOWN, shard_name);
            return -1;
        }
    }
    if (!st_find(f, tensor)) {
        mm_err_set(err, "tensor '%.*s' is listed in shard '%.*s' but that file does not hold it",
                   NAME_SHOWN, tensor, NAME_SHOWN, shard_name);
        return -1;
    }
    return 0;
}

static int open_sharded(struct st_set *set, const char *dir, const char *index_path,
                        struct mm_err *err)
{
    json_error_t jerr;
    json_t *root = json_load_file(index_path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        mm_err_set(err, "%s: bad JSON: %s (line %d, column %d)", index_path, jerr.text, jerr.line,
                   jerr.column);
        return -1;
    }
    int rc = 0;
    const json_t *weight_map = json_object_get(root, "weight_map");
    if (!json_is_object(weight_map) || json_object_size(weight_map) == 0) {
        mm_err_set(err, "%s: \"weight_map\" is missing, empty or not an object", index_path);
        rc = -1;
    }
    const char *tensor;
    const json_t *shard;
    if (rc == 0) {
        json_object_foreach((json_t *)weight_map, tensor, shard)
        {
            if (open_shard_for(set, dir, tensor, shard, err)) {
                mm_err_prefix(err, "%s", index_path);
                rc = -1;
                break;
            }
        }
    }
    json_decref(root);
    return rc;
}

int st_set_open(struct st_set *set, const char *dir, const char *base, struct mm_err *err)
{
    set->n_files = 0;
    set->files = NULL;
    char single[PATH_MAX], index[PATH_MAX];
    if (join_path(single, sizeof(single), dir, base, ".safetensors", err) ||
        join_path(index, sizeof(index), dir, base, ".safetensors.index.json", err))
        return -1;

    int rc;
    if (access(single, F_OK) == 0) {
        struct st_file *f = st_open(single, err);
        rc = f ? add_file(set, f, err) : -1;
    } else if (access(index, F_OK) == 0) {
        rc = open_sharded(set, dir, index, err);
    } else {
        mm_err_set(err, "%s: neither %s.safetensors nor %s.safetensors.index.json exists", dir,
                   base, base);
        rc = -1;
    }
    if (rc) st_set_close(set);
    return rc;
}

void st_set_close(struct st_set *set)
{
    for (size_t i = 0; i < set->n_files; i++)
        st_close(set->files[i]);
    free(set->files);
    set->files = NULL;
    set->n_files = 0;
}

const struct st_tensor *st_set_find(const struct st_set *set, const char *name)
{
    for (size_t i = 0; i < set->n_files; i++) {
        const struct st_tensor *t = st_find(set->files[i], name);
        if (t) return t;
    }
    return NULL;
}
