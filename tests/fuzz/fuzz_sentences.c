/* libFuzzer target: the sentence splitter on arbitrary bytes. The spans
 * must be in order, inside the text, never overlapping, never empty and
 * trimmed; each one's one-line text must be no longer than the span. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sentences.h"

static int is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sentence_span *sp;
    size_t n;
    struct mm_err err;
    if (sentences_split((const char *)data, size, &sp, &n, &err)) return 0;
    size_t prev_end = 0;
    for (size_t i = 0; i < n; i++) {
        if (sp[i].begin < prev_end || sp[i].end <= sp[i].begin || sp[i].end > size) abort();
        if (is_space(data[sp[i].begin]) || is_space(data[sp[i].end - 1])) abort();
        prev_end = sp[i].end;
        /* sentence_text works on a NUL-free span of a C string. */
        if (memchr(data + sp[i].begin, 0, sp[i].end - sp[i].begin)) continue;
        char *text = malloc(size + 1);
        if (!text) abort();
        memcpy(text, data, size);
        text[size] = 0;
        char *s = sentence_text(text, &sp[i], &err);
        if (!s || strlen(s) > sp[i].end - sp[i].begin) abort();
        free(s);
        free(text);
    }
    free(sp);
    return 0;
}
