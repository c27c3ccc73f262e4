/* libFuzzer target for tokenizer.json loading: load the input; a refusal
 * must name the input; a tokenizer that loads must encode any text (the
 * input itself included) into ids in range, decode them back into valid
 * UTF-8, and take special tokens. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"
#include "unicode.h"

static void check_utf8(const char *s)
{
    size_t n = strlen(s), i = 0;
    while (i < n) {
        uint32_t cp;
        i += uni_decode((const uint8_t *)s + i, n - i, &cp);
        if (cp == UNI_INVALID) abort();
    }
}

static void round_trip(const struct tokenizer *t, const char *text, size_t len, int flags)
{
    struct mm_err err;
    int32_t *ids;
    size_t n;
    if (tok_encode(t, text, len, flags & 1, flags & 2, &ids, &n, &err) != 0) abort();
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= tok_n_vocab(t)) abort();
    char *back = tok_decode(t, ids, n, flags & 4, &err);
    if (!back) abort();
    check_utf8(back);
    free(back);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mm_err err;
    struct tokenizer *t = tok_load_json_buffer((const char *)data, size, "fuzz.json", &err);
    if (!t) {
        if (strncmp(err.msg, "fuzz.json: ", 11) != 0) abort();
        return 0;
    }
    static const char *const texts[] = {
        "Hello world, it's 2024! ({MEM_READ(a>>b>>)-->c}) <s></s>",
        "  caf\xC3\xA9 \xE6\x9D\xB1\xE4\xBA\xAC \xF0\x9F\xA6\x99\t\n\n",
        "\xFF\xFE\xC0\x80 broken \xE2\x82",
        "",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
        round_trip(t, texts[i], strlen(texts[i]), (int)i);
    round_trip(t, (const char *)data, size < 4096 ? size : 4096, 3);

    int id = tok_add_special(t, "({", &err);
    if (id < 0 || tok_find(t, "({") != id || !tok_is_special(t, id)) abort();
    round_trip(t, texts[0], strlen(texts[0]), 2);
    tok_free(t);
    return 0;
}
