/* The GGUF reader on damaged copies of the valid fixtures: truncated at
 * every offset, wrong magic/version, huge counts and lengths, bad types,
 * shapes, offsets and alignment. Each must fail with one line that starts
 * with the file name and names the problem; under the sanitizer build this
 * also proves no read outside the buffer. */
#include <inttypes.h>
#include <string.h>

#include "check.h"
#include "read_file.h"
#include "gguf.h"

struct image {
    uint8_t *data;
    size_t size;
};

static struct image load(const char *file)
{
    char path[4096], rel[256];
    snprintf(rel, sizeof(rel), "files/%s", file);
    test_path("MEMLLM_FIXTURES", rel, path, sizeof(path));
    struct image im = {NULL, 0};
    im.data = (uint8_t *)must_read_file(path, &im.size);
    return im;
}

static struct image copy(struct image im)
{
    struct image c = {malloc(im.size), im.size};
    REQUIRE(c.data, "out of memory");
    memcpy(c.data, im.data, im.size);
    return c;
}

static void put_le(uint8_t *p, uint64_t v, int nbytes)
{
    for (int i = 0; i < nbytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Offset just past a length-prefixed string in the image: the start of a
 * key's value type or a tensor's dimension count. */
static size_t after_string(struct image im, const char *s)
{
    size_t n = strlen(s);
    uint8_t pattern[256];
    REQUIRE(n + 8 <= sizeof(pattern), "%s", s);
    put_le(pattern, n, 8);
    memcpy(pattern + 8, s, n);
    for (size_t i = 0; i + n + 8 <= im.size; i++)
        if (memcmp(im.data + i, pattern, n + 8) == 0) return i + n + 8;
    REQUIRE(0, "string '%s' not in image", s);
    return 0;
}

/* Parses a damaged image named `name`: it must fail with a message that
 * starts with the name and holds every wanted substring. */
static void expect_failure(struct image im, const char *name, const char *want1, const char *want2,
                           int line)
{
    struct mm_err err = {{0}};
    struct gguf_file *g = gguf_parse(im.data, im.size, name, &err);
    if (g) {
        fprintf(stderr, "line %d: damaged image accepted\n", line);
        check_failures++;
        gguf_close(g);
        return;
    }
    size_t n = strlen(name);
    int ok = strncmp(err.msg, name, n) == 0 && err.msg[n] == ':' && strstr(err.msg, want1) &&
             (!want2 || strstr(err.msg, want2));
    if (!ok) {
        fprintf(stderr, "line %d: message '%s' lacks '%s'%s%s\n", line, err.msg, want1,
                want2 ? " / " : "", want2 ? want2 : "");
        check_failures++;
    }
}
#define FAILS(im, want1, want2) expect_failure(im, "tiny.gguf", want1, want2, __LINE__)

/* Applies one edit to a fresh copy of tiny and expects failure. */
#define EDIT_FAILS(offset, value, nbytes, want1, want2)                                            \
    do {                                                                                           \
        struct image c_ = copy(tiny);                                                              \
        put_le(c_.data + (offset), (value), (nbytes));                                             \
        FAILS(c_, want1, want2);                                                                   \
        free(c_.data);                                                                             \
    } while (0)

/* End of the last tensor's data: every shorter prefix is damaged; longer
 * ones only lose trailing padding. */
static size_t data_end(struct image im)
{
    struct mm_err err;
    struct gguf_file *g = gguf_parse(im.data, im.size, "tiny.gguf", &err);
    REQUIRE(g, "%s", err.msg);
    size_t end = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        size_t e = (size_t)g->tensors[i].offset + g->tensors[i].nbytes;
        if (e > end) end = e;
    }
    gguf_close(g);
    return end;
}

static void check_truncations(struct image tiny)
{
    size_t end = data_end(tiny);
    REQUIRE(end > 0 && end <= tiny.size, "data end %zu", end);
    for (size_t cut = 0; cut < tiny.size; cut++) {
        /* A fresh allocation of exactly `cut` bytes, so ASan sees any read
         * past the end. */
        struct image c = {malloc(cut ? cut : 1), cut};
        REQUIRE(c.data, "out of memory");
        memcpy(c.data, tiny.data, cut);
        if (cut < end) {
            FAILS(c, "end of file", NULL);
        } else {
            struct mm_err err;
            struct gguf_file *g = gguf_parse(c.data, c.size, "tiny.gguf", &err);
            CHECKF(g, "cut at %zu (data ends at %zu): %s", cut, end, err.msg);
            gguf_close(g);
        }
        free(c.data);
    }
    struct image empty = {NULL, 0};
    FAILS(empty, "magic at offset 0: unexpected end of file (0 bytes)", NULL);
}

static void check_header(struct image tiny)
{
    EDIT_FAILS(0, 0x46554746, 4, "not a GGUF file", "expected 'GGUF'");
    EDIT_FAILS(4, 1, 4, "GGUF version 1 is not supported", NULL);
    EDIT_FAILS(4, 4, 4, "GGUF version 4 is not supported", NULL);
    EDIT_FAILS(4, 0x03000000, 4, "looks big-endian", NULL);
    EDIT_FAILS(8, UINT64_MAX, 8, "tensor count 18446744073709551615 cannot fit", "end of file");
    EDIT_FAILS(8, 1000000, 8, "tensor count 1000000 cannot fit", "end of file");
    EDIT_FAILS(16, (uint64_t)1 << 60, 8, "key/value count 1152921504606846976 cannot fit",
               "end of file");

    /* Version 2 has the same layout and must read the same. */
    struct image v2 = copy(tiny);
    put_le(v2.data + 4, 2, 4);
    struct mm_err err;
    struct gguf_file *g = gguf_parse(v2.data, v2.size, "v2.gguf", &err);
    CHECKF(g && g->version == 2 && g->n_tensors == 9, "%s", g ? "wrong content" : err.msg);
    gguf_close(g);
    free(v2.data);
}

static void check_metadata(struct image tiny)
{
    /* The first key's length, right after the 24-byte header. */
    EDIT_FAILS(24, (uint64_t)1 << 63, 8, "key/value #0: key at offset 24", "end of file");
    size_t arch_type = after_string(tiny, "general.architecture");
    EDIT_FAILS(arch_type, 13, 4, "key 'general.architecture': unknown value type 13", NULL);
    EDIT_FAILS(arch_type + 4, 1u << 20, 8, "key 'general.architecture': string value",
               "end of file");

    size_t b = after_string(tiny, "test.bool");
    EDIT_FAILS(b + 4, 2, 1, "key 'test.bool': bool value 2 is neither 0 nor 1", NULL);

    size_t a8 = after_string(tiny, "test.arr_uint8");
    EDIT_FAILS(a8 + 4, 13, 4, "key 'test.arr_uint8': unknown array element type 13", NULL);
    EDIT_FAILS(a8 + 4, GGUF_ARRAY, 4, "key 'test.arr_uint8': arrays of arrays", NULL);
    EDIT_FAILS(a8 + 8, (uint64_t)1 << 40, 8,
               "key 'test.arr_uint8': 1099511627776 elements of uint8", "past end of file");
    size_t a64 = after_string(tiny, "test.arr_uint64");
    EDIT_FAILS(a64 + 8, (uint64_t)1 << 61, 8, "elements of uint64", "past end of file");

    size_t ab = after_string(tiny, "test.arr_bool");
    EDIT_FAILS(ab + 16 + 1, 7, 1, "key 'test.arr_bool': element 1: bool value 7", NULL);

    size_t as = after_string(tiny, "test.arr_string");
    EDIT_FAILS(as + 8, (uint64_t)1 << 61, 8, "key 'test.arr_string': 2305843009213693952 strings",
               "past end of file");
    /* Element 1 ("a") claims more bytes than are left. */
    EDIT_FAILS(as + 16 + 8, (uint64_t)1 << 62, 8, "key 'test.arr_string': element 1: string",
               "end of file");
    EDIT_FAILS(as + 16 + 8, UINT64_MAX, 8, "element 1: string", "end of file");

    /* Two keys with the same name: lookups would be ambiguous. */
    struct image dup = copy(tiny);
    size_t k = after_string(dup, "test.uint16");
    memcpy(dup.data + k - 2, "32", 2);
    FAILS(dup, "duplicate key 'test.uint32'", NULL);
    free(dup.data);
}

static void check_tensor_infos(struct image tiny)
{
    /* f32.matrix: n_dims 2, ne {8, 3}, type, offset. */
    size_t m = after_string(tiny, "f32.matrix");
    size_t ne0 = m + 4, ne1 = m + 12, type = m + 20, offset = m + 24;
    EDIT_FAILS(m, 5, 4, "tensor 'f32.matrix': 5 dimensions (at most 4 supported)", NULL);
    EDIT_FAILS(m, UINT32_MAX, 4, "tensor 'f32.matrix': 4294967295 dimensions", NULL);
    EDIT_FAILS(type, 6, 4, "tensor 'f32.matrix': unsupported ggml type id 6", NULL);
    EDIT_FAILS(type, 99, 4, "tensor 'f32.matrix': unsupported ggml type id 99", NULL);
    EDIT_FAILS(type, UINT32_MAX, 4, "unsupported ggml type id 4294967295", NULL);
    EDIT_FAILS(offset, 1, 8,
               "tensor 'f32.matrix': data offset 1 is not a multiple of the alignment 32", NULL);
    EDIT_FAILS(ne1, (uint64_t)1 << 63, 8,
               "tensor 'f32.matrix': ne[1] = 9223372036854775808 is too large", NULL);
    EDIT_FAILS(ne1, (uint64_t)1 << 62, 8, "tensor 'f32.matrix': size of shape", "overflows");
    EDIT_FAILS(ne0, (uint64_t)1 << 61, 8, "tensor 'f32.matrix': size of shape", "overflows");
    EDIT_FAILS(ne1, 1000, 8, "tensor 'f32.matrix': data [offset", "extends past end of file");
    EDIT_FAILS(offset, UINT64_MAX - 31, 8, "tensor 'f32.matrix': data offset 18446744073709551584",
               "past end of file");

    /* The whole message: absolute offset (f32.matrix is first in the data
     * section), size, file size. */
    struct mm_err err;
    struct gguf_file *g = gguf_parse(tiny.data, tiny.size, "tiny.gguf", &err);
    REQUIRE(g, "%s", err.msg);
    size_t data_offset = (size_t)g->data_offset;
    gguf_close(g);
    struct image far = copy(tiny);
    put_le(far.data + offset, 4096, 8);
    REQUIRE(!gguf_parse(far.data, far.size, "tiny.gguf", &err), "accepted");
    char want[256];
    snprintf(want, sizeof(want),
             "tiny.gguf: tensor 'f32.matrix': data [offset %zu, 96 bytes] extends past end of file "
             "(%zu bytes)",
             4096 + data_offset, tiny.size);
    CHECKF(strcmp(err.msg, want) == 0, "'%s' vs '%s'", err.msg, want);
    free(far.data);

    size_t q = after_string(tiny, "blk.0.q8_0.weight");
    EDIT_FAILS(q + 4, 63, 8,
               "tensor 'blk.0.q8_0.weight': row length ne[0] = 63 is not a multiple of the q8_0 "
               "block size 32",
               NULL);
    size_t q4 = after_string(tiny, "blk.0.q4_1.weight");
    EDIT_FAILS(q4 + 4, 48, 8, "tensor 'blk.0.q4_1.weight': row length ne[0] = 48", NULL);

    /* The last tensor's name length, made huge. */
    size_t last = after_string(tiny, "blk.0.q4_1.weight") - strlen("blk.0.q4_1.weight") - 8;
    EDIT_FAILS(last, (uint64_t)1 << 50, 8, "tensor #8: tensor name", "end of file");

    struct image dup = copy(tiny);
    size_t d = after_string(dup, "f32.matrix");
    memcpy(dup.data + d - 10, "f16", 3);
    FAILS(dup, "duplicate tensor 'f16.matrix'", NULL);
    free(dup.data);
}

static void check_alignment(void)
{
    struct image im = load("aligned64.gguf");
    size_t a = after_string(im, "general.alignment");
    const uint32_t bad[] = {0, 48, 3, 0x80000001u};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct image c = copy(im);
        put_le(c.data + a + 4, bad[i], 4);
        char want[64];
        snprintf(want, sizeof(want), "%" PRIu32 " is not a power of two", bad[i]);
        expect_failure(c, "aligned64.gguf", "key 'general.alignment'", want, __LINE__);
        free(c.data);
    }
    /* A smaller power of two is legal but moves the data section: the
     * offsets no longer land on the tensors, yet all stay in range. */
    struct image c = copy(im);
    put_le(c.data + a + 4, 16, 4);
    struct mm_err err;
    struct gguf_file *g = gguf_parse(c.data, c.size, "aligned64.gguf", &err);
    CHECKF(g && g->alignment == 16, "%s", err.msg);
    gguf_close(g);
    /* A float of the same width is no alignment at all. */
    put_le(c.data + a, GGUF_FLOAT32, 4);
    expect_failure(c, "aligned64.gguf", "key 'general.alignment'",
                   "expected an integer, found float32", __LINE__);
    free(c.data);
    free(im.data);
}

int main(void)
{
    struct image tiny = load("tiny.gguf");
    check_truncations(tiny);
    check_header(tiny);
    check_metadata(tiny);
    check_tensor_infos(tiny);
    check_alignment();
    free(tiny.data);
    return check_report("test_gguf_corrupt");
}
