/* safetensors writer: what memllm's trainer saves (PEFT adapters,
 * checkpoints). The reader is safetensors.c. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "safetensors.h"

static const char *dtype_name(enum mm_dtype t)
{
    switch (t) {
    case MM_F32:
        return "F32";
    case MM_F16:
        return "F16";
    case MM_BF16:
        return "BF16";
    default:
        return NULL;
    }
}

static size_t elem_bytes(enum mm_dtype t)
{
    return t == MM_F32 ? 4 : 2;
}

/* The header: {"__metadata__": ..., name: {dtype, shape, data_offsets}, ...}
 * in the tensors' order, as compact JSON. */
static char *header_json(const struct st_out_tensor *t, size_t n, const char *metadata,
                         struct mm_err *err)
{
    json_t *h = json_object();
    if (!h) goto oom;
    if (metadata) {
        json_error_t jerr;
        json_t *md = json_loads(metadata, 0, &jerr);
        if (!json_is_object(md)) {
            json_decref(md);
            json_decref(h);
            mm_err_set(err, "safetensors metadata is not a JSON object: %s", jerr.text);
            return NULL;
        }
        json_object_set_new(h, "__metadata__", md);
    }
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        size_t bytes = (size_t)(t[i].rows * t[i].cols) * elem_bytes(t[i].dtype);
        json_t *e = json_pack("{s:s, s:[I,I], s:[I,I]}", "dtype", dtype_name(t[i].dtype), "shape",
                              (json_int_t)t[i].rows, (json_int_t)t[i].cols, "data_offsets",
                              (json_int_t)off, (json_int_t)(off + bytes));
        if (!e || json_object_set_new(h, t[i].name, e)) {
            json_decref(h);
            goto oom;
        }
        off += bytes;
    }
    char *s = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(h);
    if (s) return s;
oom:
    mm_err_set(err, "safetensors header: out of memory");
    return NULL;
}

static int write_tensor(FILE *f, const struct st_out_tensor *t)
{
    size_t count = (size_t)(t->rows * t->cols);
    if (t->dtype == MM_F32) return fwrite(t->data, 4, count, f) == count ? 0 : -1;
    uint16_t buf[1024];
    for (size_t i = 0; i < count;) {
        size_t k = count - i < 1024 ? count - i : 1024;
        for (size_t j = 0; j < k; j++)
            buf[j] =
                t->dtype == MM_F16 ? mm_f32_to_f16(t->data[i + j]) : mm_f32_to_bf16(t->data[i + j]);
        if (fwrite(buf, 2, k, f) != k) return -1;
        i += k;
    }
    return 0;
}

int st_write(const char *path, const struct st_out_tensor *t, size_t n, const char *metadata,
             struct mm_err *err)
{
    for (size_t i = 0; i < n; i++)
        if (!dtype_name(t[i].dtype) || t[i].rows < 0 || t[i].cols < 0) {
            mm_err_set(err, "%s: tensor '%s': only 2-D F32/F16/BF16 tensors are written", path,
                       t[i].name);
            return -1;
        }
    char *header = header_json(t, n, metadata, err);
    if (!header) return -1;
    size_t hlen = strlen(header), padded = (hlen + 7) / 8 * 8;
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        mm_err_set(err, "%s: %s", tmp, strerror(errno));
        free(header);
        return -1;
    }
    uint8_t len_le[8];
    for (int i = 0; i < 8; i++)
        len_le[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    int bad = fwrite(len_le, 1, 8, f) != 8 || fwrite(header, 1, hlen, f) != hlen;
    for (size_t i = hlen; i < padded && !bad; i++)
        bad = fputc(' ', f) == EOF;
    free(header);
    for (size_t i = 0; i < n && !bad; i++)
        bad = write_tensor(f, &t[i]) != 0;
    bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        mm_err_set(err, "%s: write failed: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}
