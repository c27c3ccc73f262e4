#include "test_kernels_fixture.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

struct fx {
    json_t *index;
    const char *keys[1024];
    int count;
    char dir[4096];
};

struct fx *fx_open(void)
{
    struct fx *f = calloc(1, sizeof(*f));
    REQUIRE(f, "out of memory");
    test_path("MEMLLM_FIXTURES", "ops", f->dir, sizeof(f->dir));
    char path[4200];
    snprintf(path, sizeof(path), "%s/index.json", f->dir);
    json_error_t jerr;
    f->index = json_load_file(path, 0, &jerr);
    REQUIRE(f->index && json_is_object(f->index), "%s: %s", path, jerr.text);
    const char *key;
    json_t *value;
    json_object_foreach(f->index, key, value)
    {
        REQUIRE(f->count < 1024, "%s: too many cases", path);
        f->keys[f->count++] = key;
    }
    return f;
}

void fx_close(struct fx *f)
{
    json_decref(f->index);
    free(f);
}

int fx_case_count(const struct fx *f)
{
    return f->count;
}

const char *fx_case_name(const struct fx *f, int i)
{
    return f->keys[i];
}

static json_t *param(const struct fx *f, const char *name, const char *p)
{
    json_t *v = json_object_get(json_object_get(json_object_get(f->index, name), "params"), p);
    REQUIRE(v, "fixture case %s has no parameter %s", name, p);
    return v;
}

double fx_num(const struct fx *f, const char *name, const char *p)
{
    json_t *v = param(f, name, p);
    REQUIRE(json_is_number(v), "fixture %s.%s is not a number", name, p);
    return json_number_value(v);
}

int fx_int(const struct fx *f, const char *name, const char *p)
{
    return (int)fx_num(f, name, p);
}

const char *fx_str(const struct fx *f, const char *name, const char *p)
{
    json_t *v = param(f, name, p);
    REQUIRE(json_is_string(v), "fixture %s.%s is not a string", name, p);
    return json_string_value(v);
}

void *fx_tensor(const struct fx *f, const char *name, const char *tensor, size_t *count)
{
    json_t *t =
        json_object_get(json_object_get(json_object_get(f->index, name), "tensors"), tensor);
    REQUIRE(t, "fixture case %s has no tensor %s", name, tensor);
    const char *dtype = json_string_value(json_object_get(t, "dtype"));
    const char *file = json_string_value(json_object_get(t, "file"));
    REQUIRE(dtype && file, "fixture %s.%s: no dtype or file", name, tensor);
    size_t elem = !strcmp(dtype, "u8") ? 1 : !strcmp(dtype, "u16") ? 2 : 4;
    size_t n = 1, i;
    json_t *dim;
    json_array_foreach(json_object_get(t, "shape"), i, dim) n *= (size_t)json_integer_value(dim);

    char path[4400];
    snprintf(path, sizeof(path), "%s/%s", f->dir, file);
    FILE *fp = fopen(path, "rb");
    REQUIRE(fp, "cannot open %s", path);
    void *buf = malloc(n * elem + 1);
    REQUIRE(buf, "out of memory");
    size_t got = fread(buf, 1, n * elem + 1, fp);
    fclose(fp);
    REQUIRE(got == n * elem, "%s: %zu bytes, expected %zu", path, got, n * elem);
    if (count) *count = n;
    return buf;
}
