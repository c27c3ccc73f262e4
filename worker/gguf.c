/* GGUF reader. Layout (all little-endian):
 *
 *   "GGUF" u32 version, u64 n_tensors, u64 n_kv
 *   n_kv x    { string key, u32 type, value }
 *   n_tensors x { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset }
 *   padding to general.alignment, then the data section; tensor offsets are
 *   relative to it.
 *
 * A string is u64 length + bytes; an array is u32 element type, u64 count,
 * elements. Internal steps write their error without the file name;
 * gguf_parse prefixes it once. */
#include "gguf.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS 4
/* Smallest encodings, used to bound counts by the bytes left before
 * allocating anything: a key/value is an empty key (8), a type (4) and a
 * one-byte value; a tensor info is an empty name (8), n_dims (4), a type (4)
 * and an offset (8). */
#define GGUF_MIN_KV_BYTES 13
#define GGUF_MIN_TENSOR_INFO_BYTES 24
/* Names in messages are cut here so a hostile name cannot crowd out the
 * rest of the line. */
#define NAME_SHOWN 200

/* Cursor over the untrusted image. */
struct reader {
    const uint8_t *data;
    size_t size;
    size_t pos;
    struct mm_err *err;
};

static int shown_len(struct gguf_str s)
{
    return s.len < NAME_SHOWN ? (int)s.len : NAME_SHOWN;
}

static int need(struct reader *r, uint64_t n, const char *what)
{
    if (n > r->size - r->pos) {
        mm_err_set(r->err, "%s at offset %zu: unexpected end of file (%zu bytes)", what, r->pos,
                   r->size);
        return -1;
    }
    return 0;
}

static uint64_t load_le(const uint8_t *p, int nbytes)
{
    uint64_t v = 0;
    for (int i = nbytes - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static int read_u32(struct reader *r, uint32_t *out, const char *what)
{
    if (need(r, 4, what)) return -1;
    *out = (uint32_t)load_le(r->data + r->pos, 4);
    r->pos += 4;
    return 0;
}

static int read_u64(struct reader *r, uint64_t *out, const char *what)
{
    if (need(r, 8, what)) return -1;
    *out = load_le(r->data + r->pos, 8);
    r->pos += 8;
    return 0;
}

static int read_str(struct reader *r, struct gguf_str *out, const char *what)
{
    size_t start = r->pos;
    uint64_t len;
    if (read_u64(r, &len, what)) return -1;
    if (len > r->size - r->pos) {
        mm_err_set(r->err, "%s at offset %zu: length %" PRIu64 " runs past end of file (%zu bytes)",
                   what, start, len, r->size);
        return -1;
    }
    out->ptr = (const char *)(r->data + r->pos);
    out->len = len;
    r->pos += len;
    return 0;
}

const char *gguf_type_name(enum gguf_type t)
{
    static const char *const names[] = {"uint8",  "int8",    "uint16", "int16",  "uint32",
                                        "int32",  "float32", "bool",   "string", "array",
                                        "uint64", "int64",   "float64"};
    if ((unsigned)t < sizeof(names) / sizeof(names[0])) return names[t];
    return "unknown";
}

/* Bytes of a fixed-size value; 0 for strings, arrays and unknown types. */
static size_t scalar_size(uint32_t t)
{
    switch (t) {
    case GGUF_UINT8:
    case GGUF_INT8:
    case GGUF_BOOL:
        return 1;
    case GGUF_UINT16:
    case GGUF_INT16:
        return 2;
    case GGUF_UINT32:
    case GGUF_INT32:
    case GGUF_FLOAT32:
        return 4;
    case GGUF_UINT64:
    case GGUF_INT64:
    case GGUF_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

static bool is_known_type(uint32_t t)
{
    return t <= GGUF_FLOAT64;
}

static bool is_unsigned_type(enum gguf_type t)
{
    return t == GGUF_UINT8 || t == GGUF_UINT16 || t == GGUF_UINT32 || t == GGUF_UINT64;
}

static bool is_signed_type(enum gguf_type t)
{
    return t == GGUF_INT8 || t == GGUF_INT16 || t == GGUF_INT32 || t == GGUF_INT64;
}

static int read_scalar(struct reader *r, struct gguf_kv *kv)
{
    size_t n = scalar_size(kv->type);
    if (need(r, n, "value")) return -1;
    uint64_t raw = load_le(r->data + r->pos, (int)n);
    r->pos += n;
    switch (kv->type) {
    case GGUF_INT8:
        kv->v.i64 = (int8_t)raw;
        break;
    case GGUF_INT16:
        kv->v.i64 = (int16_t)raw;
        break;
    case GGUF_INT32:
        kv->v.i64 = (int32_t)raw;
        break;
    case GGUF_INT64:
        kv->v.i64 = (int64_t)raw;
        break;
    case GGUF_FLOAT32: {
        uint32_t bits = (uint32_t)raw;
        float f;
        memcpy(&f, &bits, sizeof(f));
        kv->v.f64 = f;
        break;
    }
    case GGUF_FLOAT64:
        memcpy(&kv->v.f64, &raw, sizeof(kv->v.f64));
        break;
    case GGUF_BOOL:
        if (raw > 1) {
            mm_err_set(r->err, "bool value %" PRIu64 " is neither 0 nor 1", raw);
            return -1;
        }
        kv->v.u64 = raw;
        break;
    default:
        kv->v.u64 = raw;
        break;
    }
    return 0;
}

static int read_array(struct reader *r, struct gguf_kv *kv)
{
    uint32_t t;
    if (read_u32(r, &t, "array element type")) return -1;
    if (!is_known_type(t)) {
        mm_err_set(r->err, "unknown array element type %" PRIu32, t);
        return -1;
    }
    if (t == GGUF_ARRAY) {
        mm_err_set(r->err, "arrays of arrays are not supported");
        return -1;
    }
    kv->arr_type = (enum gguf_type)t;
    if (read_u64(r, &kv->arr_len, "array length")) return -1;
    kv->arr_data = r->data + r->pos;
    size_t left = r->size - r->pos;

    if (t != GGUF_STRING) {
        size_t es = scalar_size(t);
        if (kv->arr_len > left / es) {
            mm_err_set(r->err,
                       "%" PRIu64 " elements of %s at offset %zu: past end of file (%zu bytes)",
                       kv->arr_len, gguf_type_name(kv->arr_type), r->pos, r->size);
            return -1;
        }
        if (t == GGUF_BOOL) {
            for (uint64_t i = 0; i < kv->arr_len; i++) {
                if (kv->arr_data[i] > 1) {
                    mm_err_set(r->err, "element %" PRIu64 ": bool value %u is neither 0 nor 1", i,
                               kv->arr_data[i]);
                    return -1;
                }
            }
        }
        r->pos += kv->arr_len * es;
        return 0;
    }

    /* Each string takes at least its 8-byte length, which bounds the offset
     * table by the file size. */
    if (kv->arr_len > left / 8) {
        mm_err_set(r->err, "%" PRIu64 " strings at offset %zu: past end of file (%zu bytes)",
                   kv->arr_len, r->pos, r->size);
        return -1;
    }
    if (kv->arr_len == 0) return 0;
    kv->arr_str_offsets = malloc(kv->arr_len * sizeof(uint64_t));
    if (!kv->arr_str_offsets) {
        mm_err_set(r->err, "out of memory for %" PRIu64 " string offsets", kv->arr_len);
        return -1;
    }
    for (uint64_t i = 0; i < kv->arr_len; i++) {
        kv->arr_str_offsets[i] = (uint64_t)(r->data + r->pos - kv->arr_data);
        struct gguf_str s;
        if (read_str(r, &s, "string")) {
            mm_err_prefix(r->err, "element %" PRIu64, i);
            return -1;
        }
    }
    return 0;
}

static int read_kv(struct reader *r, struct gguf_kv *kv, uint64_t i)
{
    if (read_str(r, &kv->key, "key")) {
        mm_err_prefix(r->err, "key/value #%" PRIu64, i);
        return -1;
    }
    uint32_t t;
    int rc = read_u32(r, &t, "value type");
    if (rc == 0 && !is_known_type(t)) {
        mm_err_set(r->err, "unknown value type %" PRIu32, t);
        rc = -1;
    }
    if (rc == 0) {
        kv->type = (enum gguf_type)t;
        if (t == GGUF_STRING)
            rc = read_str(r, &kv->v.str, "string value");
        else if (t == GGUF_ARRAY)
            rc = read_array(r, kv);
        else
            rc = read_scalar(r, kv);
    }
    if (rc) mm_err_prefix(r->err, "key '%.*s'", shown_len(kv->key), kv->key.ptr);
    return rc;
}

/* GGML's type ids for the element types memllm computes with. */
static int dtype_from_ggml(uint32_t id, enum mm_dtype *out)
{
    switch (id) {
    case 0:
        *out = MM_F32;
        return 0;
    case 1:
        *out = MM_F16;
        return 0;
    case 2:
        *out = MM_Q4_0;
        return 0;
    case 3:
        *out = MM_Q4_1;
        return 0;
    case 8:
        *out = MM_Q8_0;
        return 0;
    case 30:
        *out = MM_BF16;
        return 0;
    default:
        return -1;
    }
}

/* Reads one tensor info; t->offset holds the offset relative to the data
 * section until the section's start is known. */
static int read_tensor_info(struct reader *r, struct gguf_tensor *t, uint32_t alignment)
{
    uint32_t n_dims, type;
    for (int d = 0; d < GGUF_MAX_DIMS; d++)
        t->ne[d] = 1;
    if (read_u32(r, &n_dims, "dimension count")) return -1;
    if (n_dims > GGUF_MAX_DIMS) {
        mm_err_set(r->err, "%" PRIu32 " dimensions (at most %d supported)", n_dims, GGUF_MAX_DIMS);
        return -1;
    }
    t->n_dims = (int)n_dims;
    for (uint32_t d = 0; d < n_dims; d++) {
        uint64_t ne;
        if (read_u64(r, &ne, "dimension")) return -1;
        if (ne > INT64_MAX) {
            mm_err_set(r->err, "ne[%" PRIu32 "] = %" PRIu64 " is too large", d, ne);
            return -1;
        }
        t->ne[d] = (int64_t)ne;
    }
    if (read_u32(r, &type, "ggml type")) return -1;
    if (dtype_from_ggml(type, &t->dtype)) {
        mm_err_set(r->err,
                   "unsupported ggml type id %" PRIu32
                   " (supported: F32=0, F16=1, Q4_0=2, Q4_1=3, Q8_0=8, BF16=30)",
                   type);
        return -1;
    }
    if (read_u64(r, &t->offset, "data offset")) return -1;
    if (t->offset % alignment != 0) {
        mm_err_set(r->err, "data offset %" PRIu64 " is not a multiple of the alignment %" PRIu32,
                   t->offset, alignment);
        return -1;
    }

    int64_t block = mm_dtype_block_elems(t->dtype);
    if (t->ne[0] % block != 0) {
        mm_err_set(r->err,
                   "row length ne[0] = %" PRId64 " is not a multiple of the %s block size %" PRId64,
                   t->ne[0], mm_dtype_name(t->dtype), block);
        return -1;
    }
    uint64_t nbytes = (uint64_t)(t->ne[0] / block);
    bool overflow =
        __builtin_mul_overflow(nbytes, (uint64_t)mm_dtype_block_bytes(t->dtype), &nbytes);
    for (int d = 1; d < GGUF_MAX_DIMS; d++)
        overflow = overflow || __builtin_mul_overflow(nbytes, (uint64_t)t->ne[d], &nbytes);
    if (overflow || nbytes > SIZE_MAX) {
        mm_err_set(r->err,
                   "size of shape [%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64 "] overflows",
                   t->ne[0], t->ne[1], t->ne[2], t->ne[3]);
        return -1;
    }
    t->nbytes = (size_t)nbytes;
    return 0;
}

/* Places a tensor's data inside the file, given the data section start. */
static int locate_tensor_data(struct gguf_tensor *t, uint64_t data_offset, size_t file_size,
                              struct mm_err *err)
{
    uint64_t rel = t->offset;
    if (rel > UINT64_MAX - data_offset) {
        mm_err_set(err, "data offset %" PRIu64 " is past end of file (%zu bytes)", rel, file_size);
        return -1;
    }
    uint64_t abs = data_offset + rel;
    if (abs > file_size || t->nbytes > file_size - abs) {
        mm_err_set(err, "data [offset %" PRIu64 ", %zu bytes] extends past end of file (%zu bytes)",
                   abs, t->nbytes, file_size);
        return -1;
    }
    t->offset = abs;
    return 0;
}

static int compare_names(const struct gguf_str *a, const struct gguf_str *b)
{
    size_t n = a->len < b->len ? (size_t)a->len : (size_t)b->len;
    int c = n ? memcmp(a->ptr, b->ptr, n) : 0;
    if (c) return c;
    return (a->len > b->len) - (a->len < b->len);
}

static int compare_index_entries(const void *a, const void *b)
{
    return compare_names(&((const struct gguf_name_index *)a)->name,
                         &((const struct gguf_name_index *)b)->name);
}

/* Builds a name-sorted index; fails on a repeated name, which would make
 * lookups ambiguous. `what` is "key" or "tensor". */
static struct gguf_name_index *build_index(const void *entries, size_t stride, size_t name_offset,
                                           uint64_t n, const char *what, struct mm_err *err)
{
    struct gguf_name_index *index = malloc((n ? n : 1) * sizeof(*index));
    if (!index) {
        mm_err_set(err, "out of memory for the %s index", what);
        return NULL;
    }
    for (uint64_t i = 0; i < n; i++) {
        const char *entry = (const char *)entries + i * stride;
        memcpy(&index[i].name, entry + name_offset, sizeof(struct gguf_str));
        index[i].index = i;
    }
    qsort(index, n, sizeof(*index), compare_index_entries);
    for (uint64_t i = 1; i < n; i++) {
        if (compare_names(&index[i - 1].name, &index[i].name) == 0) {
            mm_err_set(err, "duplicate %s '%.*s'", what, shown_len(index[i].name),
                       index[i].name.ptr);
            free(index);
            return NULL;
        }
    }
    return index;
}

static const struct gguf_name_index *find_in_index(const struct gguf_name_index *index, uint64_t n,
                                                   const char *name)
{
    struct gguf_name_index key = {{name, strlen(name)}, 0};
    if (n == 0) return NULL;
    return bsearch(&key, index, n, sizeof(*index), compare_index_entries);
}

static void set_type_error(const struct gguf_kv *kv, const char *wanted, struct mm_err *err)
{
    if (kv->type == GGUF_ARRAY)
        mm_err_set(err, "key '%.*s': expected %s, found array of %s", shown_len(kv->key),
                   kv->key.ptr, wanted, gguf_type_name(kv->arr_type));
    else
        mm_err_set(err, "key '%.*s': expected %s, found %s", shown_len(kv->key), kv->key.ptr,
                   wanted, gguf_type_name(kv->type));
}

static int kv_to_u32(const struct gguf_kv *kv, uint32_t *out, struct mm_err *err)
{
    if (is_unsigned_type(kv->type)) {
        if (kv->v.u64 > UINT32_MAX) {
            mm_err_set(err, "key '%.*s': value %" PRIu64 " does not fit in uint32",
                       shown_len(kv->key), kv->key.ptr, kv->v.u64);
            return -1;
        }
        *out = (uint32_t)kv->v.u64;
        return 0;
    }
    if (is_signed_type(kv->type)) {
        if (kv->v.i64 < 0 || kv->v.i64 > (int64_t)UINT32_MAX) {
            mm_err_set(err, "key '%.*s': value %" PRId64 " does not fit in uint32",
                       shown_len(kv->key), kv->key.ptr, kv->v.i64);
            return -1;
        }
        *out = (uint32_t)kv->v.i64;
        return 0;
    }
    set_type_error(kv, "an integer", err);
    return -1;
}

static int kv_to_f32(const struct gguf_kv *kv, float *out, struct mm_err *err)
{
    if (kv->type == GGUF_FLOAT32 || kv->type == GGUF_FLOAT64)
        *out = (float)kv->v.f64;
    else if (is_unsigned_type(kv->type))
        *out = (float)kv->v.u64;
    else if (is_signed_type(kv->type))
        *out = (float)kv->v.i64;
    else {
        set_type_error(kv, "a number", err);
        return -1;
    }
    return 0;
}

static int kv_to_str(const struct gguf_kv *kv, struct gguf_str *out, struct mm_err *err)
{
    if (kv->type != GGUF_STRING) {
        set_type_error(kv, "a string", err);
        return -1;
    }
    *out = kv->v.str;
    return 0;
}

static int read_alignment(struct gguf_file *g, struct mm_err *err)
{
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const struct gguf_kv *kv = gguf_find_kv(g, "general.alignment");
    if (!kv) return 0;
    if (kv_to_u32(kv, &g->alignment, err)) return -1;
    if (g->alignment == 0 || (g->alignment & (g->alignment - 1)) != 0) {
        mm_err_set(err, "key 'general.alignment': %" PRIu32 " is not a power of two", g->alignment);
        return -1;
    }
    return 0;
}

static int read_header(struct reader *r, struct gguf_file *g)
{
    if (need(r, 4, "magic")) return -1;
    if (memcmp(r->data, "GGUF", 4) != 0) {
        mm_err_set(r->err, "not a GGUF file (magic bytes %02x %02x %02x %02x, expected 'GGUF')",
                   r->data[0], r->data[1], r->data[2], r->data[3]);
        return -1;
    }
    r->pos = 4;
    if (read_u32(r, &g->version, "version")) return -1;
    if (g->version == 1) {
        mm_err_set(r->err, "GGUF version 1 is not supported (only versions 2 and 3)");
        return -1;
    }
    if ((g->version & 0xffffu) == 0 && g->version != 0) {
        mm_err_set(r->err,
                   "GGUF version field 0x%08" PRIx32 " looks big-endian; only "
                   "little-endian files are supported",
                   g->version);
        return -1;
    }
    if (g->version != 2 && g->version != 3) {
        mm_err_set(r->err, "GGUF version %" PRIu32 " is not supported (only versions 2 and 3)",
                   g->version);
        return -1;
    }
    if (read_u64(r, &g->n_tensors, "tensor count")) return -1;
    if (read_u64(r, &g->n_kv, "key/value count")) return -1;
    if (g->n_kv > (r->size - r->pos) / GGUF_MIN_KV_BYTES) {
        mm_err_set(r->err,
                   "key/value count %" PRIu64 " cannot fit in the %zu bytes before end of file",
                   g->n_kv, r->size - r->pos);
        return -1;
    }
    return 0;
}

static int parse(struct gguf_file *g, struct mm_err *err)
{
    struct reader r = {g->map.data, g->map.size, 0, err};
    if (read_header(&r, g)) return -1;

    g->kv = calloc(g->n_kv ? g->n_kv : 1, sizeof(*g->kv));
    if (!g->kv) {
        mm_err_set(err, "out of memory for %" PRIu64 " key/values", g->n_kv);
        return -1;
    }
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (read_kv(&r, &g->kv[i], i)) return -1;
    g->kv_index =
        build_index(g->kv, sizeof(*g->kv), offsetof(struct gguf_kv, key), g->n_kv, "key", err);
    if (!g->kv_index) return -1;
    if (read_alignment(g, err)) return -1;

    if (g->n_tensors > (r.size - r.pos) / GGUF_MIN_TENSOR_INFO_BYTES) {
        mm_err_set(err, "tensor count %" PRIu64 " cannot fit in the %zu bytes before end of file",
                   g->n_tensors, r.size - r.pos);
        return -1;
    }
    g->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof(*g->tensors));
    if (!g->tensors) {
        mm_err_set(err, "out of memory for %" PRIu64 " tensors", g->n_tensors);
        return -1;
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        struct gguf_tensor *t = &g->tensors[i];
        if (read_str(&r, &t->name, "tensor name")) {
            mm_err_prefix(err, "tensor #%" PRIu64, i);
            return -1;
        }
        if (read_tensor_info(&r, t, g->alignment)) {
            mm_err_prefix(err, "tensor '%.*s'", shown_len(t->name), t->name.ptr);
            return -1;
        }
    }
    g->tensor_index = build_index(g->tensors, sizeof(*g->tensors),
                                  offsetof(struct gguf_tensor, name), g->n_tensors, "tensor", err);
    if (!g->tensor_index) return -1;

    /* The data section starts at the next multiple of the alignment; a file
     * without tensors may end before it. */
    g->data_offset = r.pos + (g->alignment - r.pos % g->alignment) % g->alignment;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        struct gguf_tensor *t = &g->tensors[i];
        if (locate_tensor_data(t, g->data_offset, r.size, err)) {
            mm_err_prefix(err, "tensor '%.*s'", shown_len(t->name), t->name.ptr);
            return -1;
        }
        t->data = r.data + t->offset;
    }
    return 0;
}

static struct gguf_file *parse_or_close(struct gguf_file *g, struct mm_err *err)
{
    if (parse(g, err)) {
        mm_err_prefix(err, "%s", g->path);
        gguf_close(g);
        return NULL;
    }
    return g;
}

struct gguf_file *gguf_parse(const uint8_t *data, size_t size, const char *name, struct mm_err *err)
{
    struct gguf_file *g = calloc(1, sizeof(*g));
    char *path = strdup(name);
    if (!g || !path) {
        mm_err_set(err, "%s: out of memory", name);
        free(g);
        free(path);
        return NULL;
    }
    g->path = path;
    g->map.data = data;
    g->map.size = size;
    return parse_or_close(g, err);
}

struct gguf_file *gguf_open(const char *path, struct mm_err *err)
{
    struct mapped_file map;
    if (mapped_file_open(&map, path, err)) return NULL;
    struct gguf_file *g = gguf_parse(map.data, map.size, path, err);
    if (!g) {
        mapped_file_close(&map);
        return NULL;
    }
    g->owns_map = 1;
    return g;
}

void gguf_close(struct gguf_file *g)
{
    if (!g) return;
    if (g->kv) {
        for (uint64_t i = 0; i < g->n_kv; i++)
            free(g->kv[i].arr_str_offsets);
        free(g->kv);
    }
    free(g->tensors);
    free(g->kv_index);
    free(g->tensor_index);
    if (g->owns_map) mapped_file_close(&g->map);
    free((char *)g->path);
    free(g);
}

const struct gguf_kv *gguf_find_kv(const struct gguf_file *g, const char *key)
{
    const struct gguf_name_index *e = find_in_index(g->kv_index, g->n_kv, key);
    return e ? &g->kv[e->index] : NULL;
}

const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *g, const char *name)
{
    const struct gguf_name_index *e = find_in_index(g->tensor_index, g->n_tensors, name);
    return e ? &g->tensors[e->index] : NULL;
}

/* The public getters: find the key, convert, and name the file on failure. */
static const struct gguf_kv *find_for_get(const struct gguf_file *g, const char *key,
                                          struct mm_err *err)
{
    const struct gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv) mm_err_set(err, "%s: key '%s' not found", g->path, key);
    return kv;
}

int gguf_get_u32(const struct gguf_file *g, const char *key, uint32_t *out, struct mm_err *err)
{
    const struct gguf_kv *kv = find_for_get(g, key, err);
    if (!kv) return -1;
    if (kv_to_u32(kv, out, err)) {
        mm_err_prefix(err, "%s", g->path);
        return -1;
    }
    return 0;
}

int gguf_get_f32(const struct gguf_file *g, const char *key, float *out, struct mm_err *err)
{
    const struct gguf_kv *kv = find_for_get(g, key, err);
    if (!kv) return -1;
    if (kv_to_f32(kv, out, err)) {
        mm_err_prefix(err, "%s", g->path);
        return -1;
    }
    return 0;
}

int gguf_get_str(const struct gguf_file *g, const char *key, struct gguf_str *out,
                 struct mm_err *err)
{
    const struct gguf_kv *kv = find_for_get(g, key, err);
    if (!kv) return -1;
    if (kv_to_str(kv, out, err)) {
        mm_err_prefix(err, "%s", g->path);
        return -1;
    }
    return 0;
}

struct gguf_str gguf_arr_str(const struct gguf_kv *kv, uint64_t i)
{
    struct gguf_str s = {NULL, 0};
    if (kv->type != GGUF_ARRAY || kv->arr_type != GGUF_STRING || i >= kv->arr_len) return s;
    const uint8_t *p = kv->arr_data + kv->arr_str_offsets[i];
    s.len = load_le(p, 8);
    s.ptr = (const char *)(p + 8);
    return s;
}
