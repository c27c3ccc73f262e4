/* The safetensors reader against files written by safetensors' save_file
 * and huggingface_hub's sharded save_torch_state_dict
 * (tools/make_file_fixtures.py): every tensor's dtype, shape and bytes must
 * match expected.json. Then the checkpoint-set errors: missing shard, bad
 * index, index naming the wrong shard. */
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "file_fixtures.h"
#include "safetensors.h"

static json_t *expected;

static enum mm_dtype dtype_named(const char *s)
{
    if (strcmp(s, "F32") == 0) return MM_F32;
    if (strcmp(s, "F16") == 0) return MM_F16;
    REQUIRE(strcmp(s, "BF16") == 0, "dtype %s in expected.json", s);
    return MM_BF16;
}

static void check_tensor(const struct st_tensor *t, const json_t *want)
{
    const char *name = json_string_value(json_object_get(want, "name"));
    CHECKF(t, "tensor %s missing", name);
    if (!t) return;
    CHECK(strcmp(t->name, name) == 0);
    CHECKF(t->dtype == dtype_named(json_string_value(json_object_get(want, "dtype"))),
           "%s: dtype %s", name, mm_dtype_name(t->dtype));
    const json_t *shape = json_object_get(want, "shape");
    CHECKF(t->n_dims == (int)json_array_size(shape), "%s: n_dims %d", name, t->n_dims);
    for (int d = 0; d < t->n_dims && d < (int)json_array_size(shape); d++)
        CHECKF(t->shape[d] == json_integer_value(json_array_get(shape, (size_t)d)),
               "%s: shape[%d] = %lld", name, d, (long long)t->shape[d]);
    const char *hex = json_string_value(json_object_get(want, "hex"));
    CHECKF(t->nbytes * 2 == strlen(hex), "%s: nbytes %zu", name, t->nbytes);
    CHECKF(bytes_equal_hex(t->data, t->nbytes, hex), "%s: data differs", name);
}

static void check_single(void)
{
    const json_t *want = json_object_get(json_object_get(expected, "safetensors"), "st_single");
    const json_t *tensors = json_object_get(want, "tensors");
    char path[4096];
    fixture("st_single/model.safetensors", path, sizeof(path));
    struct mm_err err = {{0}};
    struct st_file *f = st_open(path, &err);
    REQUIRE(f, "%s", err.msg);
    CHECK(f->owns_map == 1 && strcmp(f->path, path) == 0);
    CHECKF(f->n_tensors == json_array_size(tensors), "%zu tensors", f->n_tensors);
    size_t i;
    const json_t *t;
    json_array_foreach(tensors, i, t)
        check_tensor(st_find(f, json_string_value(json_object_get(t, "name"))), t);
    CHECK(st_find(f, "__metadata__") == NULL);
    CHECK(st_find(f, "missing") == NULL);
    for (size_t k = 1; k < f->n_tensors; k++)
        CHECK(strcmp(f->tensors[k - 1].name, f->tensors[k].name) < 0);
    st_close(f);

    /* The same file through the checkpoint-set entry. */
    fixture("st_single", path, sizeof(path));
    struct st_set set;
    REQUIRE(st_set_open(&set, path, "model", &err) == 0, "%s", err.msg);
    CHECK(set.n_files == 1);
    json_array_foreach(tensors, i, t)
        check_tensor(st_set_find(&set, json_string_value(json_object_get(t, "name"))), t);
    st_set_close(&set);
    CHECK(set.n_files == 0 && set.files == NULL);
}

static void check_sharded(void)
{
    const json_t *want = json_object_get(json_object_get(expected, "safetensors"), "st_sharded");
    const json_t *shards = json_object_get(want, "shards");
    char dir[4096];
    fixture("st_sharded", dir, sizeof(dir));
    struct mm_err err = {{0}};
    struct st_set set;
    REQUIRE(st_set_open(&set, dir, "model", &err) == 0, "%s", err.msg);
    /* Each shard opened exactly once. */
    CHECKF(set.n_files == json_array_size(shards), "%zu files", set.n_files);
    size_t i, total = 0;
    const json_t *s;
    json_array_foreach(shards, i, s)
    {
        char rel[512], path[4096];
        snprintf(rel, sizeof(rel), "st_sharded/%s", json_string_value(s));
        fixture(rel, path, sizeof(path));
        int found = 0;
        for (size_t k = 0; k < set.n_files; k++)
            found += strcmp(set.files[k]->path, path) == 0;
        CHECKF(found == 1, "%s opened %d times", path, found);
    }
    for (size_t k = 0; k < set.n_files; k++)
        total += set.files[k]->n_tensors;
    const json_t *tensors = json_object_get(want, "tensors");
    CHECK(total == json_array_size(tensors));
    const json_t *t;
    json_array_foreach(tensors, i, t)
        check_tensor(st_set_find(&set, json_string_value(json_object_get(t, "name"))), t);
    CHECK(st_set_find(&set, "missing") == NULL);
    st_set_close(&set);
}

/* An I64 buffer (BERT's position_ids) is checked and left out; the float
 * tensor beside it stays. */
static void check_integer_buffer(void)
{
    char path[4096];
    fixture("int64.safetensors", path, sizeof(path));
    struct mm_err err = {{0}};
    struct st_file *f = st_open(path, &err);
    REQUIRE(f, "%s", err.msg);
    CHECK(f->n_tensors == 1 && f->n_skipped == 1);
    CHECK(st_find(f, "ok") && st_find(f, "ok")->nbytes == 8);
    CHECK(st_find(f, "position_ids") == NULL);
    st_close(f);
}

/* A scratch checkpoint folder for the index errors. */
static char scratch[] = "/tmp/memllm_st_XXXXXX";

static void write_file(const char *name, const char *text)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", scratch, name);
    FILE *f = fopen(path, "w");
    REQUIRE(f && fputs(text, f) >= 0 && fclose(f) == 0, "cannot write %s", path);
}

static void copy_shard(const char *name)
{
    char rel[512], src[4096], dst[4096];
    snprintf(rel, sizeof(rel), "st_sharded/%s", name);
    fixture(rel, src, sizeof(src));
    snprintf(dst, sizeof(dst), "%s/%s", scratch, name);
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    REQUIRE(in && out, "cannot copy %s", src);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        REQUIRE(fwrite(buf, 1, n, out) == n, "write");
    fclose(in);
    REQUIRE(fclose(out) == 0, "close %s", dst);
}

static void remove_file(const char *name)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", scratch, name);
    unlink(path);
}

static void expect_set_failure(const char *want1, const char *want2, int line)
{
    struct st_set set = {0, NULL};
    struct mm_err err = {{0}};
    if (st_set_open(&set, scratch, "model", &err) == 0) {
        fprintf(stderr, "line %d: broken checkpoint accepted\n", line);
        check_failures++;
        st_set_close(&set);
        return;
    }
    if (!strstr(err.msg, want1) || (want2 && !strstr(err.msg, want2))) {
        fprintf(stderr, "line %d: message '%s' lacks '%s'\n", line, err.msg, want1);
        check_failures++;
    }
    if (set.n_files != 0 || set.files != NULL) {
        fprintf(stderr, "line %d: set not left empty\n", line);
        check_failures++;
    }
}
#define SET_FAILS(want1, want2) expect_set_failure(want1, want2, __LINE__)

static void check_set_errors(void)
{
    REQUIRE(mkdtemp(scratch), "mkdtemp");
    const char *index = "model.safetensors.index.json";
    const char *s1 = "model-00001-of-00003.safetensors";
    const char *s2 = "model-00002-of-00003.safetensors";
    SET_FAILS("neither model.safetensors nor model.safetensors.index.json exists", NULL);

    char path[4096];
    fixture("st_sharded/model.safetensors.index.json", path, sizeof(path));
    FILE *f = fopen(path, "r");
    REQUIRE(f, "%s", path);
    char text[8192];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);

    /* The real index with only the first shard present. */
    write_file(index, text);
    copy_shard(s1);
    SET_FAILS("shard 'model-00002-of-00003.safetensors'", "cannot open");
    SET_FAILS(index, NULL);

    write_file(index, "{\"weight_map\": {\"a\": \"model-00001-of-00003.safetensors\",}");
    SET_FAILS("model.safetensors.index.json: bad JSON:", "(line 1, column");
    write_file(index, "{\"metadata\": {}}");
    SET_FAILS("\"weight_map\" is missing", NULL);
    write_file(index, "{\"weight_map\": {\"model.layers.2.input_layernorm.weight\": "
                      "\"model-00001-of-00003.safetensors\"}}");
    SET_FAILS("tensor 'model.layers.2.input_layernorm.weight' is listed in shard "
              "'model-00001-of-00003.safetensors' but that file does not hold it",
              NULL);
    write_file(index,
               "{\"weight_map\": {\"x\": \"../st_sharded/model-00001-of-00003.safetensors\"}}");
    SET_FAILS("shard '../st_sharded/model-00001-of-00003.safetensors' is not a plain file name",
              NULL);
    write_file(index, "{\"weight_map\": {\"x\": 3}}");
    SET_FAILS("weight_map['x'] is not a string", NULL);

    /* A shard that is not a safetensors file. */
    write_file(index, "{\"weight_map\": {\"x\": \"model-00002-of-00003.safetensors\"}}");
    write_file(s2, "not safetensors");
    SET_FAILS("shard 'model-00002-of-00003.safetensors'", "extends past end of file");

    /* A single file takes precedence over an index. */
    copy_shard(s1);
    char single[4096], shard[4096];
    snprintf(single, sizeof(single), "%s/model.safetensors", scratch);
    snprintf(shard, sizeof(shard), "%s/%s", scratch, s1);
    REQUIRE(rename(shard, single) == 0, "rename");
    struct st_set set;
    struct mm_err err;
    CHECKF(st_set_open(&set, scratch, "model", &err) == 0 && set.n_files == 1 &&
               st_set_find(&set, "model.layers.0.input_layernorm.weight"),
           "%s", err.msg);
    st_set_close(&set);

    remove_file("model.safetensors");
    remove_file(s2);
    remove_file(index);
    REQUIRE(rmdir(scratch) == 0, "rmdir %s", scratch);
}

/* st_write's files read back through st_open: names, shapes, values in
 * each dtype, metadata; a failed write leaves the earlier file. */
static void check_write(void)
{
    char dir[] = "/tmp/memllm_stw_XXXXXX", path[4096];
    REQUIRE(mkdtemp(dir), "mkdtemp");
    snprintf(path, sizeof(path), "%s/out.safetensors", dir);
    float a[6] = {1.5f, -2.25f, 3.0f, 0.1f, -0.0f, 65504.0f}, b[3] = {7.0f, 8.0f, -9.5f};
    struct st_out_tensor t[3] = {{"layer.a", MM_F32, 2, 3, a},
                                 {"layer.b_f16", MM_F16, 1, 3, b},
                                 {"c_bf16", MM_BF16, 3, 2, a}};
    struct mm_err err = {{0}};
    CHECKF(st_write(path, t, 3, "{\"format\": \"pt\"}", &err) == 0, "%s", err.msg);
    struct st_file *f = st_open(path, &err);
    REQUIRE(f, "%s", err.msg);
    CHECK(f->n_tensors == 3);
    const struct st_tensor *ta = st_find(f, "layer.a"), *tb = st_find(f, "layer.b_f16");
    const struct st_tensor *tc = st_find(f, "c_bf16");
    REQUIRE(ta && tb && tc, "a tensor is missing");
    CHECK(ta->dtype == MM_F32 && ta->n_dims == 2 && ta->shape[0] == 2 && ta->shape[1] == 3);
    CHECK(memcmp(ta->data, a, sizeof(a)) == 0);
    CHECK(tb->dtype == MM_F16 && tb->shape[0] == 1 && tb->shape[1] == 3);
    for (int i = 0; i < 3; i++)
        CHECK(mm_f16_to_f32(((const uint16_t *)tb->data)[i]) == b[i]);
    CHECK(tc->dtype == MM_BF16 && tc->shape[0] == 3 && tc->shape[1] == 2);
    CHECK(mm_bf16_to_f32(((const uint16_t *)tc->data)[0]) == 1.5f);
    st_close(f);
    /* a quantized tensor is refused and the earlier file stays whole */
    struct st_out_tensor bad = {"x", MM_Q8_0, 1, 32, a};
    CHECK(st_write(path, &bad, 1, NULL, &err) == -1 && strstr(err.msg, "'x'"));
    f = st_open(path, &err);
    CHECK(f && f->n_tensors == 3);
    if (f) st_close(f);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    expected = load_expected();
    check_single();
    check_sharded();
    check_integer_buffer();
    check_set_errors();
    check_write();
    json_decref(expected);
    return check_report("test_safetensors");
}
