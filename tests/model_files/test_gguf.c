/* The GGUF reader against files written by the `gguf` Python package
 * (tools/make_file_fixtures.py) and against llama.cpp's vocab GGUFs: every
 * key, value, tensor shape, offset and data byte must match what
 * expected.json records (values given to the writer, offsets found by the
 * package's own reader). */
#include <inttypes.h>
#include <jansson.h>
#include <string.h>

#include "check.h"
#include "file_fixtures.h"
#include "gguf.h"

static json_t *expected;

static int str_equal_json(struct gguf_str s, const json_t *j)
{
    return json_is_string(j) && s.len == json_string_length(j) &&
           memcmp(s.ptr, json_string_value(j), s.len) == 0;
}

static enum gguf_type type_from_name(const char *name)
{
    for (int t = GGUF_UINT8; t <= GGUF_FLOAT64; t++)
        if (strcmp(gguf_type_name((enum gguf_type)t), name) == 0) return (enum gguf_type)t;
    REQUIRE(0, "unknown type name %s in expected.json", name);
    return GGUF_UINT8;
}

static int is_unsigned(enum gguf_type t)
{
    return t == GGUF_UINT8 || t == GGUF_UINT16 || t == GGUF_UINT32 || t == GGUF_UINT64;
}

static int is_signed(enum gguf_type t)
{
    return t == GGUF_INT8 || t == GGUF_INT16 || t == GGUF_INT32 || t == GGUF_INT64;
}

static size_t type_size(enum gguf_type t)
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
    default:
        return 8;
    }
}

/* One value, scalar or array element at p, against its sidecar value:
 * integers are decimal strings, floats and bools JSON values. */
static int value_matches(enum gguf_type t, const uint8_t *p, const json_t *want)
{
    uint8_t raw[8] = {0};
    memcpy(raw, p, type_size(t));
    if (is_unsigned(t)) {
        uint64_t v = 0;
        for (int i = (int)type_size(t) - 1; i >= 0; i--)
            v = (v << 8) | raw[i];
        return json_is_string(want) && v == strtoull(json_string_value(want), NULL, 10);
    }
    if (is_signed(t)) {
        int64_t v;
        switch (t) {
        case GGUF_INT8: {
            int8_t x;
            memcpy(&x, raw, 1);
            v = x;
            break;
        }
        case GGUF_INT16: {
            int16_t x;
            memcpy(&x, raw, 2);
            v = x;
            break;
        }
        case GGUF_INT32: {
            int32_t x;
            memcpy(&x, raw, 4);
            v = x;
            break;
        }
        default:
            memcpy(&v, raw, 8);
        }
        return json_is_string(want) && v == strtoll(json_string_value(want), NULL, 10);
    }
    if (t == GGUF_FLOAT32) {
        float f;
        memcpy(&f, raw, 4);
        return json_is_number(want) && (double)f == json_number_value(want);
    }
    if (t == GGUF_FLOAT64) {
        double d;
        memcpy(&d, raw, 8);
        return json_is_number(want) && d == json_number_value(want);
    }
    if (t == GGUF_BOOL) return json_is_boolean(want) && raw[0] == (json_is_true(want) ? 1 : 0);
    return 0;
}

static int scalar_matches(const struct gguf_kv *kv, const json_t *want)
{
    switch (kv->type) {
    case GGUF_STRING:
        return str_equal_json(kv->v.str, want);
    case GGUF_BOOL:
        return json_is_boolean(want) && kv->v.u64 == (json_is_true(want) ? 1u : 0u);
    case GGUF_FLOAT32:
    case GGUF_FLOAT64:
        return json_is_number(want) && kv->v.f64 == json_number_value(want);
    default:
        if (is_unsigned(kv->type))
            return json_is_string(want) && kv->v.u64 == strtoull(json_string_value(want), NULL, 10);
        return json_is_string(want) && kv->v.i64 == strtoll(json_string_value(want), NULL, 10);
    }
}

static int element_matches(const struct gguf_kv *kv, uint64_t i, const json_t *want)
{
    if (kv->arr_type == GGUF_STRING) return str_equal_json(gguf_arr_str(kv, i), want);
    return value_matches(kv->arr_type, kv->arr_data + i * type_size(kv->arr_type), want);
}

/* Checks one key of the file against its sidecar entry. Arrays come either
 * whole ("value") or as a length and [index, value] samples. */
static void check_kv(const struct gguf_file *g, const json_t *want)
{
    const char *key = json_string_value(json_object_get(want, "key"));
    const struct gguf_kv *kv = gguf_find_kv(g, key);
    CHECKF(kv, "%s: key %s missing", g->path, key);
    if (!kv) return;
    enum gguf_type type = type_from_name(json_string_value(json_object_get(want, "type")));
    CHECKF(kv->type == type, "%s: %s has type %s", g->path, key, gguf_type_name(kv->type));
    if (kv->type != type) return;
    if (type != GGUF_ARRAY) {
        CHECKF(scalar_matches(kv, json_object_get(want, "value")), "%s: %s value", g->path, key);
        return;
    }
    enum gguf_type arr_type = type_from_name(json_string_value(json_object_get(want, "arr_type")));
    CHECKF(kv->arr_type == arr_type, "%s: %s element type %s", g->path, key,
           gguf_type_name(kv->arr_type));
    if (kv->arr_type != arr_type) return;
    const json_t *values = json_object_get(want, "value");
    if (values) {
        CHECKF(kv->arr_len == json_array_size(values), "%s: %s length %" PRIu64, g->path, key,
               kv->arr_len);
        for (size_t i = 0; i < json_array_size(values) && i < kv->arr_len; i++)
            CHECKF(element_matches(kv, i, json_array_get(values, i)), "%s: %s[%zu]", g->path, key,
                   i);
        return;
    }
    CHECKF(kv->arr_len == (uint64_t)json_integer_value(json_object_get(want, "len")),
           "%s: %s length %" PRIu64, g->path, key, kv->arr_len);
    size_t k;
    const json_t *sample;
    json_array_foreach(json_object_get(want, "samples"), k, sample)
    {
        uint64_t i = (uint64_t)json_integer_value(json_array_get(sample, 0));
        CHECKF(i < kv->arr_len && element_matches(kv, i, json_array_get(sample, 1)),
               "%s: %s[%" PRIu64 "]", g->path, key, i);
    }
}

static enum mm_dtype dtype_of_ggml_type(json_int_t id)
{
    switch (id) {
    case 0:
        return MM_F32;
    case 1:
        return MM_F16;
    case 2:
        return MM_Q4_0;
    case 3:
        return MM_Q4_1;
    case 8:
        return MM_Q8_0;
    case 30:
        return MM_BF16;
    }
    REQUIRE(0, "ggml type %lld in expected.json", (long long)id);
    return MM_F32;
}

static void check_tensor(const struct gguf_file *g, const json_t *want)
{
    const char *name = json_string_value(json_object_get(want, "name"));
    const struct gguf_tensor *t = gguf_find_tensor(g, name);
    CHECKF(t, "%s: tensor %s missing", g->path, name);
    if (!t) return;
    CHECK(t->name.len == strlen(name) && memcmp(t->name.ptr, name, t->name.len) == 0);
    CHECKF(t->dtype == dtype_of_ggml_type(json_integer_value(json_object_get(want, "ggml_type"))),
           "%s: %s dtype %s", g->path, name, mm_dtype_name(t->dtype));
    const json_t *ne = json_object_get(want, "ne");
    CHECKF(t->n_dims == (int)json_array_size(ne), "%s: %s n_dims %d", g->path, name, t->n_dims);
    for (int d = 0; d < 4; d++) {
        int64_t want_ne =
            d < (int)json_array_size(ne) ? json_integer_value(json_array_get(ne, d)) : 1;
        CHECKF(t->ne[d] == want_ne, "%s: %s ne[%d] = %" PRId64, g->path, name, d, t->ne[d]);
    }
    uint64_t offset = (uint64_t)json_integer_value(json_object_get(want, "offset"));
    CHECKF(t->offset == offset, "%s: %s offset %" PRIu64 ", want %" PRIu64, g->path, name,
           t->offset, offset);
    CHECK(t->data == g->map.data + t->offset);
    const char *hex = json_string_value(json_object_get(want, "hex"));
    CHECKF(t->nbytes * 2 == strlen(hex), "%s: %s nbytes %zu", g->path, name, t->nbytes);
    CHECKF(bytes_equal_hex(t->data, t->nbytes, hex), "%s: %s data differs", g->path, name);
    CHECK(t->nbytes ==
          mm_dtype_row_bytes(t->dtype, t->ne[0]) * (size_t)(t->ne[1] * t->ne[2] * t->ne[3]));
}

static void check_fixture(const char *file, const json_t *want)
{
    char path[4096], rel[256];
    snprintf(rel, sizeof(rel), "files/%s", file);
    struct mm_err err = {{0}};
    struct gguf_file *g = gguf_open(test_path("MEMLLM_FIXTURES", rel, path, sizeof(path)), &err);
    REQUIRE(g, "%s", err.msg);
    CHECK(g->version == (uint32_t)json_integer_value(json_object_get(want, "version")));
    CHECK(g->alignment == (uint32_t)json_integer_value(json_object_get(want, "alignment")));
    CHECK(g->owns_map == 1);
    const json_t *kvs = json_object_get(want, "kv");
    const json_t *tensors = json_object_get(want, "tensors");
    CHECKF(g->n_kv == json_array_size(kvs), "%s: %" PRIu64 " keys", file, g->n_kv);
    CHECKF(g->n_tensors == json_array_size(tensors), "%s: %" PRIu64 " tensors", file, g->n_tensors);
    size_t i;
    const json_t *entry;
    json_array_foreach(kvs, i, entry) check_kv(g, entry);
    json_array_foreach(tensors, i, entry) check_tensor(g, entry);
    CHECK(gguf_find_tensor(g, "no.such.tensor") == NULL);
    CHECK(gguf_find_kv(g, "no.such.key") == NULL);
    gguf_close(g);
}

/* The typed getters and their messages, on tiny.gguf. */
static void check_getters(void)
{
    char path[4096];
    struct mm_err err = {{0}};
    struct gguf_file *g =
        gguf_open(test_path("MEMLLM_FIXTURES", "files/tiny.gguf", path, sizeof(path)), &err);
    REQUIRE(g, "%s", err.msg);

    uint32_t u = 0;
    CHECK(gguf_get_u32(g, "test.small_uint32", &u, &err) == 0 && u == 7);
    CHECK(gguf_get_u32(g, "test.uint8", &u, &err) == 0 && u == 255);
    CHECK(gguf_get_u32(g, "test.uint32", &u, &err) == 0 && u == 4000000000u);
    CHECK(gguf_get_u32(g, "test.uint64", &u, &err) == -1);
    CHECKF(strstr(err.msg, "tiny.gguf: key 'test.uint64': value 18446744073709551614 does not fit"),
           "%s", err.msg);
    CHECK(gguf_get_u32(g, "test.negative_int32", &u, &err) == -1);
    CHECKF(strstr(err.msg, "value -5 does not fit in uint32"), "%s", err.msg);
    CHECK(gguf_get_u32(g, "test.string", &u, &err) == -1);
    CHECKF(strstr(err.msg, "tiny.gguf: key 'test.string': expected an integer, found string"), "%s",
           err.msg);
    CHECK(gguf_get_u32(g, "test.arr_string", &u, &err) == -1);
    CHECKF(strstr(err.msg, "found array of string"), "%s", err.msg);
    CHECK(gguf_get_u32(g, "test.missing", &u, &err) == -1);
    CHECKF(strstr(err.msg, "tiny.gguf: key 'test.missing' not found"), "%s", err.msg);

    float f = 0;
    CHECK(gguf_get_f32(g, "test.float32", &f, &err) == 0 && f == 3.14159f);
    CHECK(gguf_get_f32(g, "test.float64", &f, &err) == 0 && f == (float)2.718281828459045);
    CHECK(gguf_get_f32(g, "test.int16", &f, &err) == 0 && f == -32768.0f);
    CHECK(gguf_get_f32(g, "test.bool", &f, &err) == -1);
    CHECKF(strstr(err.msg, "expected a number, found bool"), "%s", err.msg);

    struct gguf_str s;
    CHECK(gguf_get_str(g, "general.architecture", &s, &err) == 0 && s.len == 4 &&
          memcmp(s.ptr, "tiny", 4) == 0);
    CHECK(gguf_get_str(g, "test.uint8", &s, &err) == -1);
    CHECKF(strstr(err.msg, "expected a string, found uint8"), "%s", err.msg);

    const struct gguf_kv *arr = gguf_find_kv(g, "test.arr_string");
    REQUIRE(arr, "test.arr_string missing");
    CHECK(gguf_arr_str(arr, arr->arr_len).ptr == NULL);
    CHECK(gguf_arr_str(gguf_find_kv(g, "test.arr_int32"), 0).ptr == NULL);
    CHECK(gguf_arr_str(gguf_find_kv(g, "test.string"), 0).ptr == NULL);
    gguf_close(g);
}

/* Files the Python writer accepts but memllm must refuse, by name. */
static void check_refused(const char *file, const char *want1, const char *want2)
{
    char path[4096], rel[256];
    snprintf(rel, sizeof(rel), "files/%s", file);
    struct mm_err err = {{0}};
    struct gguf_file *g = gguf_open(test_path("MEMLLM_FIXTURES", rel, path, sizeof(path)), &err);
    CHECKF(!g, "%s was accepted", file);
    gguf_close(g);
    CHECKF(strstr(err.msg, path) == err.msg && strstr(err.msg, want1) && strstr(err.msg, want2),
           "%s", err.msg);
}

/* llama.cpp's vocab files: every key and type as the `gguf` package reads
 * them, and the tokenizer keys the tokenizer relies on. */
static void check_vocab(const json_t *want)
{
    const char *file = json_string_value(json_object_get(want, "file"));
    char path[4096], rel[256];
    snprintf(rel, sizeof(rel), "vocab/%s", file);
    struct mm_err err = {{0}};
    struct gguf_file *g = gguf_open(test_path("MEMLLM_DATA", rel, path, sizeof(path)), &err);
    REQUIRE(g, "%s", err.msg);
    const json_t *kvs = json_object_get(want, "kv");
    CHECKF(g->n_kv == json_array_size(kvs), "%s: %" PRIu64 " keys", file, g->n_kv);
    CHECK(g->n_tensors == (uint64_t)json_integer_value(json_object_get(want, "n_tensors")));
    size_t i;
    const json_t *entry;
    json_array_foreach(kvs, i, entry) check_kv(g, entry);

    struct gguf_str model;
    CHECKF(gguf_get_str(g, "tokenizer.ggml.model", &model, &err) == 0, "%s", err.msg);
    const struct gguf_kv *tokens = gguf_find_kv(g, "tokenizer.ggml.tokens");
    CHECK(tokens && tokens->type == GGUF_ARRAY && tokens->arr_type == GGUF_STRING &&
          tokens->arr_len > 30000 && tokens->arr_str_offsets);
    const struct gguf_kv *types = gguf_find_kv(g, "tokenizer.ggml.token_type");
    CHECK(types && tokens && types->arr_type == GGUF_INT32 && types->arr_len == tokens->arr_len);
    gguf_close(g);
}

int main(void)
{
    expected = load_expected();
    const char *file;
    const json_t *want;
    json_object_foreach(json_object_get(expected, "gguf"), file, want) check_fixture(file, want);
    check_getters();
    check_refused("nested_array.gguf", "key 'test.nested'", "arrays of arrays are not supported");
    check_refused("q5_0.gguf", "tensor 'blk.0.ffn_down.weight'", "unsupported ggml type id 6");

    size_t i;
    json_array_foreach(json_object_get(expected, "vocab"), i, want) check_vocab(want);
    CHECK(json_array_size(json_object_get(expected, "vocab")) == 3);

    struct mm_err err = {{0}};
    CHECK(gguf_open("/nonexistent/model.gguf", &err) == NULL);
    CHECKF(strstr(err.msg, "/nonexistent/model.gguf: cannot open"), "%s", err.msg);
    json_decref(expected);
    return check_report("test_gguf");
}
