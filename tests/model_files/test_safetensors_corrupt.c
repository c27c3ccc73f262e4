/* The safetensors reader on damaged input: the valid fixture truncated at
 * every offset and with a wrong header length, plus small hand-built
 * headers that each break one rule (bad JSON, wrong types, dtype, rank,
 * offsets that disagree with the shape or leave the file). Each must fail
 * with one line that starts with the file name and names the problem. */
#include <inttypes.h>
#include <string.h>

#include "check.h"
#include "read_file.h"
#include "safetensors.h"

struct image {
    uint8_t *data;
    size_t size;
};

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static struct image load_single(void)
{
    char path[4096];
    test_path("MEMLLM_FIXTURES", "files/st_single/model.safetensors", path, sizeof(path));
    struct image im = {NULL, 0};
    im.data = (uint8_t *)must_read_file(path, &im.size);
    return im;
}

/* A file with the given JSON header and data_bytes bytes of data. */
static struct image build(const char *json, size_t data_bytes)
{
    size_t n = strlen(json);
    struct image im = {malloc(8 + n + data_bytes), 8 + n + data_bytes};
    REQUIRE(im.data, "out of memory");
    put_le64(im.data, n);
    memcpy(im.data + 8, json, n);
    memset(im.data + 8 + n, 0x5a, data_bytes);
    return im;
}

static void expect_failure(struct image im, const char *want1, const char *want2, int line)
{
    struct mm_err err = {{0}};
    struct st_file *f = st_parse(im.data, im.size, "model.safetensors", &err);
    if (f) {
        fprintf(stderr, "line %d: damaged image accepted\n", line);
        check_failures++;
        st_close(f);
        return;
    }
    int ok = strncmp(err.msg, "model.safetensors: ", 19) == 0 && strstr(err.msg, want1) &&
             (!want2 || strstr(err.msg, want2));
    if (!ok) {
        fprintf(stderr, "line %d: message '%s' lacks '%s'%s%s\n", line, err.msg, want1,
                want2 ? " / " : "", want2 ? want2 : "");
        check_failures++;
    }
}
#define FAILS(im, want1, want2) expect_failure(im, want1, want2, __LINE__)

#define JSON_FAILS(json, data_bytes, want1, want2)                                                 \
    do {                                                                                           \
        struct image im_ = build(json, data_bytes);                                                \
        FAILS(im_, want1, want2);                                                                  \
        free(im_.data);                                                                            \
    } while (0)

static struct st_file *parse_ok(struct image im)
{
    struct mm_err err = {{0}};
    struct st_file *f = st_parse(im.data, im.size, "model.safetensors", &err);
    CHECKF(f, "%s", err.msg);
    return f;
}

static void check_truncations(struct image single)
{
    struct st_file *f = parse_ok(single);
    REQUIRE(f, "fixture rejected");
    st_close(f);
    for (size_t cut = 0; cut < single.size; cut++) {
        struct image c = {malloc(cut ? cut : 1), cut};
        REQUIRE(c.data, "out of memory");
        memcpy(c.data, single.data, cut);
        FAILS(c, "end of file", NULL);
        free(c.data);
    }
}

static void check_header_length(struct image single)
{
    uint8_t saved[8];
    memcpy(saved, single.data, 8);
    uint64_t len = 0;
    for (int i = 7; i >= 0; i--)
        len = (len << 8) | saved[i];
    const uint64_t bad[] = {UINT64_MAX, (uint64_t)1 << 40, single.size - 7};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        put_le64(single.data, bad[i]);
        char want[128];
        snprintf(want, sizeof(want), "header length %" PRIu64 " extends past end of file", bad[i]);
        FAILS(single, want, NULL);
    }
    /* Shorter than the JSON: the text is cut mid-way. */
    put_le64(single.data, len / 2);
    FAILS(single, "bad JSON header:", "(line 1, column");
    put_le64(single.data, 0);
    FAILS(single, "bad JSON header:", NULL);
    memcpy(single.data, saved, 8);

    /* Over the 100 MB cap while inside the file; calloc keeps the untouched
     * pages unallocated. */
    size_t big = 8 + 100000001u;
    struct image huge = {calloc(1, big), big};
    REQUIRE(huge.data, "out of memory");
    put_le64(huge.data, 100000001u);
    FAILS(huge, "header length 100000001 exceeds the limit of 100000000 bytes", NULL);
    free(huge.data);
}

static void check_headers(void)
{
    const char *ok = "{\"__metadata__\": {\"format\": \"pt\"}, "
                     "\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, "
                     "\"b\": {\"dtype\": \"BF16\", \"shape\": [], \"data_offsets\": [8, 10]}}";
    struct image im = build(ok, 10);
    struct st_file *f = parse_ok(im);
    if (f) {
        CHECK(f->n_tensors == 2);
        const struct st_tensor *a = st_find(f, "a"), *b = st_find(f, "b");
        CHECK(a && a->n_dims == 1 && a->shape[0] == 2 && a->nbytes == 8 &&
              a->data == im.data + 8 + strlen(ok));
        CHECK(b && b->n_dims == 0 && b->nbytes == 2 && b->dtype == MM_BF16 &&
              b->data == a->data + 8);
        st_close(f);
    }
    free(im.data);
    im = build("{}", 0);
    f = parse_ok(im);
    CHECK(f && f->n_tensors == 0);
    st_close(f);
    free(im.data);

    JSON_FAILS("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},", 8,
               "bad JSON header:", "(line 1, column");
    JSON_FAILS("{\"a\":\n {\"dtype\": F32}}", 0, "bad JSON header:", "(line 2, column");
    JSON_FAILS("[1, 2]", 0, "JSON header is not an object", NULL);
    JSON_FAILS("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
               "\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}",
               4, "bad JSON header:", "duplicate");
    JSON_FAILS("{\"a\": [1]}", 0, "tensor 'a': entry is not a JSON object", NULL);
    JSON_FAILS("{\"a\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4,
               "tensor 'a': \"dtype\" is missing", NULL);
    JSON_FAILS("{\"w\": {\"dtype\": \"F64\", \"shape\": [1], \"data_offsets\": [0, 8]}}", 8,
               "tensor 'w': unsupported dtype 'F64'", NULL);
    JSON_FAILS("{\"w\": {\"dtype\": \"F8_E4M3\", \"shape\": [1], \"data_offsets\": [0, 1]}}", 1,
               "tensor 'w': unsupported dtype 'F8_E4M3'", NULL);
    JSON_FAILS("{\"w\": {\"dtype\": \"\", \"shape\": [1], \"data_offsets\": [0, 1]}}", 1,
               "tensor 'w': unsupported dtype ''", NULL);
    /* Integer buffers are left out, but only after the same checks. */
    JSON_FAILS("{\"ids\": {\"dtype\": \"I64\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8,
               "tensor 'ids': data_offsets [0, 8] hold 8 bytes but the shape and dtype need 16",
               NULL);
    JSON_FAILS("{\"ids\": {\"dtype\": \"I32\", \"shape\": [4], \"data_offsets\": [0, 16]}}", 8,
               "tensor 'ids': data [offset", "extends past end of file");
    JSON_FAILS("{\"w\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", 4,
               "tensor 'w': \"shape\" is missing", NULL);
    JSON_FAILS(
        "{\"w\": {\"dtype\": \"F32\", \"shape\": [1, 1, 1, 1, 1], \"data_offsets\": [0, 4]}}", 4,
        "tensor 'w': 5 dimensions (at most 4 supported)", NULL);
    JSON_FAILS("{\"w\": {\"dtype\": \"F32\", \"shape\": [2, -1], \"data_offsets\": [0, 4]}}", 4,
               "tensor 'w': shape[1] is not a non-negative integer", NULL);
    JSON_FAILS("{\"w\": {\"dtype\": \"F32\", \"shape\": [1.5], \"data_offsets\": [0, 4]}}", 4,
               "tensor 'w': shape[0] is not a non-negative integer", NULL);
    JSON_FAILS("{\"w\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296], "
               "\"data_offsets\": [0, 4]}}",
               4, "tensor 'w': size of the shape overflows", NULL);
    JSON_FAILS("{\"w\": {\"dtype\": \"F32\", \"shape\": [2]}}", 8,
               "tensor 'w': \"data_offsets\" must be [begin, end]", NULL);
    JSON_FAILS("{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0]}}", 8,
               "\"data_offsets\" must be [begin, end]", NULL);
    JSON_FAILS("{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [-8, 0]}}", 8,
               "\"data_offsets\" must be [begin, end]", NULL);
    JSON_FAILS("{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 0]}}", 8,
               "tensor 'w': data_offsets [8, 0]: begin is past end", NULL);
    JSON_FAILS("{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 7]}}", 8,
               "tensor 'w': data_offsets [0, 7] hold 7 bytes but the shape and dtype need 8", NULL);
    JSON_FAILS("{\"w\": {\"dtype\": \"F16\", \"shape\": [2, 3], \"data_offsets\": [0, 24]}}", 24,
               "hold 24 bytes but the shape and dtype need 12", NULL);
    JSON_FAILS("{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", 8,
               "tensor 'w': data [offset", "8 bytes] extends past end of file");
    JSON_FAILS("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], "
               "\"data_offsets\": [9223372036854775800, 9223372036854775804]}}",
               8, "extends past end of file", NULL);

    /* The exact message: absolute offset in the file, size, file size. */
    const char *json = "{\"w\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [4, 16]}}";
    im = build(json, 8);
    struct mm_err err;
    REQUIRE(!st_parse(im.data, im.size, "model.safetensors", &err), "accepted");
    char want[256];
    snprintf(want, sizeof(want),
             "model.safetensors: tensor 'w': data [offset %zu, 12 bytes] extends past end of file "
             "(%zu bytes)",
             8 + strlen(json) + 4, im.size);
    CHECKF(strcmp(err.msg, want) == 0, "'%s' vs '%s'", err.msg, want);
    free(im.data);
}

int main(void)
{
    struct image single = load_single();
    check_truncations(single);
    check_header_length(single);
    free(single.data);
    check_headers();
    return check_report("test_safetensors_corrupt");
}
