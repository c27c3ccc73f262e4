/* tok_add_special against HF: after adding MemLLM's markers "({", "})",
 * "-->" (non-special added tokens in the fixtures) and a new "<mem>" as
 * special tokens, the hand-written texts encode as HF's tokenizer does after
 * add_special_tokens (tests/fixtures/tokenizer/<name>.special.ids, made by
 * tools/make_tokenizer_refs.py): with special tokens recognised, and with
 * them as plain text. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "read_file.h"
#include "tokenizer_fixtures.h"
#include "tokenizer.h"

/* Splits buf into lines in place (lens may be NULL); returns the count. */
static size_t split_lines(char *buf, size_t len, char **lines, size_t *lens, size_t cap)
{
    size_t n = 0;
    char *p = buf;
    while (p < buf + len && n < cap) {
        char *nl = memchr(p, '\n', (size_t)(buf + len - p));
        char *end = nl ? nl : buf + len;
        *end = 0;
        if (lens) lens[n] = (size_t)(end - p);
        lines[n++] = p;
        p = end + 1;
    }
    return n;
}

enum { MAX_LINES = 4096, MAX_IDS = 8192 };

static void run(const char *name, char **texts, size_t *lens, size_t n_texts, size_t first)
{
    char path[1024], ids_path[1024];
    snprintf(path, sizeof(path), "%s/models/%s", getenv("MEMLLM_FIXTURES"), name);
    snprintf(ids_path, sizeof(ids_path), "%s/tokenizer/%s.special.ids", getenv("MEMLLM_FIXTURES"),
             name);
    struct mm_err err = {{0}};
    struct tokenizer *t = tok_load(path, &err);
    REQUIRE(t, "%s", err.msg);

    /* The markers keep their ids and become special; <mem> is new. */
    static const char *const specials[] = {"({", "})", "-->", "<mem>"};
    int n_before = tok_n_vocab(t);
    for (size_t i = 0; i < 4; i++) {
        int had = tok_find(t, specials[i]);
        int id = tok_add_special(t, specials[i], &err);
        CHECKF(id >= 0, "%s", err.msg);
        CHECKF(had < 0 ? id == n_before : id == had, "%s: '%s' got id %d (had %d)", name,
               specials[i], id, had);
        CHECK(tok_is_special(t, id));
        CHECKF(tok_find(t, specials[i]) == id && strcmp(tok_piece(t, id), specials[i]) == 0,
               "%s: '%s' is not found as itself", name, specials[i]);
    }
    CHECK(tok_n_vocab(t) == n_before + 1);
    CHECK(tok_add_special(t, "<mem>", &err) == n_before); /* adding again changes nothing */
    CHECK(tok_n_vocab(t) == n_before + 1);
    CHECK(tok_add_special(t, "", &err) < 0);

    size_t len;
    char *buf = must_read_file(ids_path, &len);
    char **lines = malloc(MAX_LINES * sizeof(*lines));
    size_t n_lines = split_lines(buf, len, lines, NULL, MAX_LINES);
    size_t n_extras = n_texts - first;
    CHECKF(n_lines == 2 * n_extras, "%s: %zu lines for %zu texts", ids_path, n_lines, n_extras);
    int32_t *ref = malloc(MAX_IDS * sizeof(*ref));
    size_t same = 0;
    for (size_t i = 0; i < n_lines && i < 2 * n_extras; i++) {
        int plain = i >= n_extras;
        size_t k = first + i % n_extras;
        size_t n_ref = fixture_ids(lines[i], ref, MAX_IDS);
        int32_t *ids;
        size_t n_ids;
        int rc = tok_encode(t, texts[k], lens[k], plain ? 0 : tok_add_bos_default(t), !plain, &ids,
                            &n_ids, &err);
        CHECKF(rc == 0, "%s", err.msg);
        if (rc) continue;
        int ok = n_ids == n_ref && memcmp(ids, ref, n_ids * sizeof(*ids)) == 0;
        CHECKF(ok, "%s: %s text '%s' differs from HF", name, plain ? "plain" : "default", texts[k]);
        same += ok;
        if (!plain && strstr(texts[k], "({")) {
            /* Special tokens come back as their text. */
            char *back = tok_decode(t, ids, n_ids, 0, &err);
            CHECKF(back && strstr(back, "({"), "%s: '({' lost in decoding '%s'", name, texts[k]);
            free(back);
        }
        free(ids);
    }
    printf("%s: after tok_add_special, %zu/%zu encodings identical to HF\n", name, same, n_lines);
    free(ref);
    free(lines);
    free(buf);
    tok_free(t);
}

int main(void)
{
    char path[1024];
    test_path("MEMLLM_FIXTURES", "tokenizer/sentences.txt", path, sizeof(path));
    size_t len;
    char *buf = must_read_file(path, &len);
    char **texts = malloc(MAX_LINES * sizeof(*texts));
    size_t *lens = malloc(MAX_LINES * sizeof(*lens));
    size_t n = split_lines(buf, len, texts, lens, MAX_LINES);
    for (size_t i = 0; i < n; i++)
        lens[i] = fixture_unescape(texts[i], lens[i]);

    /* The hand-written texts are the last lines; plain.ids has one line each. */
    test_path("MEMLLM_FIXTURES", "tokenizer/tiny-llama.plain.ids", path, sizeof(path));
    size_t plen;
    char *pbuf = must_read_file(path, &plen);
    size_t n_extras = 0;
    for (size_t i = 0; i < plen; i++)
        n_extras += pbuf[i] == '\n';
    free(pbuf);
    REQUIRE(n_extras > 0 && n_extras < n, "bad extras count %zu", n_extras);

    run("tiny-mistral", texts, lens, n, n - n_extras);
    run("tiny-llama", texts, lens, n, n - n_extras);
    free(texts);
    free(lens);
    free(buf);
    return check_report("test_tokenizer_special");
}
