/* Text that is not valid UTF-8, and the streaming decoder.
 *
 * Encoding never fails on bytes that are not UTF-8 (tokenizer.h):
 *   byte-level BPE       each such byte is its byte token (GPT-2's map),
 *   BPE + byte fallback  each such byte is its <0xNN> token,
 *   WordPiece            such bytes are dropped, as BERT drops U+FFFD.
 * Decoding gives valid UTF-8: a character split over tokens is held back
 * until complete; bytes that cannot form one become U+FFFD (one per
 * malformed sequence). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gguf.h"
#include "tokenizer.h"

#define FFFD "\xEF\xBF\xBD"

static struct tokenizer *load(const char *env, const char *rel)
{
    char path[1024];
    struct mm_err err = {{0}};
    struct tokenizer *t = tok_load(test_path(env, rel, path, sizeof(path)), &err);
    REQUIRE(t, "%s", err.msg);
    return t;
}

static size_t encode(const struct tokenizer *t, const char *s, size_t n, int32_t *out, size_t cap)
{
    int32_t *ids;
    size_t n_ids;
    struct mm_err err = {{0}};
    REQUIRE(tok_encode(t, s, n, 0, 0, &ids, &n_ids, &err) == 0, "%s", err.msg);
    REQUIRE(n_ids <= cap, "too many ids");
    memcpy(out, ids, n_ids * sizeof(*ids));
    free(ids);
    return n_ids;
}

/* GPT-2's byte-to-unicode map, written out from its definition: the
 * printable Latin-1 bytes stand for themselves, the others take U+0100 on. */
static void gpt2_char(uint8_t b, char out[3])
{
    int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    unsigned cp = b;
    if (!printable) {
        cp = 0x100;
        for (int c = 0; c < b; c++)
            cp += !((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE);
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        out[2] = 0;
    }
}

static char *decode(const struct tokenizer *t, const int32_t *ids, size_t n)
{
    struct mm_err err = {{0}};
    char *s = tok_decode(t, ids, n, 0, &err);
    REQUIRE(s, "%s", err.msg);
    return s;
}

static void invalid_utf8(void)
{
    /* 0xFF never appears in UTF-8; E2 82 is "€" cut short; C0 80 is an
     * overlong NUL. */
    static const char text[] = "a\xFF"
                               "b\xE2\x82"
                               " \xC0\x80";
    size_t len = sizeof(text) - 1;
    int32_t ids[64], want[64];

    struct tokenizer *bl = load("MEMLLM_FIXTURES", "models/tiny-llama");
    size_t n = encode(bl, text, len, ids, 64);
    /* The GPT-2 regex sees the invalid bytes as "other" characters. */
    static const char *const pieces[] = {"a", "\xFF", "b", "\xE2\x82", " \xC0\x80"};
    size_t nw = 0;
    for (size_t i = 0; i < 5; i++) {
        if (pieces[i][0] >= 0 && pieces[i][0] != ' ') {
            nw += encode(bl, pieces[i], strlen(pieces[i]), want + nw, 64 - nw);
            continue;
        }
        /* Each byte its own token here: the tiny vocabulary merges none. */
        for (const char *p = pieces[i]; *p; p++) {
            char c[3];
            gpt2_char((uint8_t)*p, c);
            want[nw++] = tok_find(bl, c);
        }
    }
    CHECKF(n == nw && memcmp(ids, want, n * sizeof(*ids)) == 0, "byte-level: %zu ids, want %zu", n,
           nw);
    char *back = decode(bl, ids, n);
    CHECKF(strcmp(back, "a" FFFD "b" FFFD " " FFFD FFFD) == 0, "byte-level decode: '%s'", back);
    free(back);
    tok_free(bl);

    struct tokenizer *bf = load("MEMLLM_FIXTURES", "models/tiny-mistral");
    n = encode(bf, "\xFF", 1, ids, 64);
    /* "▁" (the normalizer's prefix), then the byte. */
    CHECKF(n == 2 && ids[0] == tok_find(bf, "\xE2\x96\x81") && ids[1] == tok_find(bf, "<0xFF>"),
           "byte fallback: %zu ids", n);
    n = encode(bf, text, len, ids, 64);
    back = decode(bf, ids, n);
    CHECKF(strcmp(back, "a" FFFD "b" FFFD " " FFFD FFFD) == 0, "byte fallback decode: '%s'", back);
    free(back);
    tok_free(bf);

    struct tokenizer *wp = load("MEMLLM_DATA", "vocab/ggml-vocab-bert-bge.gguf");
    n = encode(wp, "hel\xFFlo w\xE2\x82orld", 15, ids, 64);
    nw = encode(wp, "hello world", 11, want, 64);
    CHECKF(n == nw && memcmp(ids, want, n * sizeof(*ids)) == 0, "WordPiece: invalid bytes kept");
    tok_free(wp);

    struct tokenizer *spm = load("MEMLLM_DATA", "vocab/ggml-vocab-llama-spm.gguf");
    n = encode(spm, "\xFF", 1, ids, 64);
    CHECKF(n == 2 && ids[1] == tok_find(spm, "<0xFF>"), "SPM: %zu ids", n);
    tok_free(spm);
}

/* Pushes ids one at a time, then flushes; returns what each push wrote,
 * each followed by '|', then what the flush wrote. */
static void stream(const struct tokenizer *t, const int32_t *ids, size_t n, char *out)
{
    struct tok_decoder d;
    tok_decoder_init(&d, t);
    char buf[256];
    out[0] = 0;
    for (size_t i = 0; i <= n; i++) {
        int k = i < n ? tok_decoder_push(&d, ids[i], buf, sizeof(buf))
                      : tok_decoder_flush(&d, buf, sizeof(buf));
        REQUIRE(k >= 0, "push returned %d", k);
        strncat(out, buf, (size_t)k);
        if (i < n) strcat(out, "|");
    }
}

static void streaming(void)
{
    struct tokenizer *t = load("MEMLLM_FIXTURES", "models/tiny-mistral");
    int32_t e2 = tok_find(t, "<0xE2>"), x82 = tok_find(t, "<0x82>"), xac = tok_find(t, "<0xAC>");
    int32_t a = tok_find(t, "a"), sp = tok_find(t, "\xE2\x96\x81");
    REQUIRE(e2 >= 0 && x82 >= 0 && xac >= 0 && a >= 0 && sp >= 0, "fixture tokens missing");
    char out[1024];

    /* "€" = E2 82 AC across three tokens: nothing until the last one. */
    int32_t euro[] = {e2, x82, xac, a};
    stream(t, euro, 4, out);
    CHECKF(strcmp(out, "||\xE2\x82\xAC|a|") == 0, "euro: '%s'", out);

    /* A cut-short character followed by another token: one U+FFFD. */
    int32_t cut[] = {e2, x82, a};
    stream(t, cut, 3, out);
    CHECKF(strcmp(out, "||" FFFD "a|") == 0, "cut: '%s'", out);

    /* Held back at the end: flush writes U+FFFD. */
    int32_t tail[] = {a, e2};
    stream(t, tail, 2, out);
    CHECKF(strcmp(out, "a||" FFFD) == 0, "tail: '%s'", out);

    /* A continuation byte with nothing before it. */
    int32_t stray[] = {x82, a};
    stream(t, stray, 2, out);
    CHECKF(strcmp(out, FFFD "|a|") == 0, "stray: '%s'", out);

    /* The leading space SentencePiece adds is stripped from the first token
     * only; a decoder for a continuation keeps it. */
    int32_t spaces[] = {sp, a, sp, a};
    stream(t, spaces, 4, out);
    CHECKF(strcmp(out, "|a| |a|") == 0, "spaces: '%s'", out);
    struct tok_decoder d;
    tok_decoder_init(&d, t);
    d.at_start = 0;
    char buf[64];
    CHECK(tok_decoder_push(&d, sp, buf, sizeof(buf)) == 1 && buf[0] == ' ');

    /* BOS is written unless skip_special. */
    int32_t bos[] = {tok_bos(t), a};
    char *s = tok_decode(t, bos, 2, 0, NULL);
    CHECKF(s && strcmp(s, "<s>a") == 0, "with BOS: '%s'", s);
    free(s);
    s = tok_decode(t, bos, 2, 1, NULL);
    CHECKF(s && strcmp(s, "a") == 0, "BOS skipped: '%s'", s);
    free(s);

    /* Too little room: the needed size, and the token is not consumed. */
    tok_decoder_init(&d, t);
    int k = tok_decoder_push(&d, e2, buf, 1);
    CHECKF(k < -1 && (size_t)-k <= tok_decoder_max_out(t), "small cap: %d", k);
    CHECK(d.n_pending == 0);
    CHECK(tok_decoder_push(&d, tok_n_vocab(t), buf, sizeof(buf)) == TOK_DECODE_BAD_ID);
    CHECK(tok_decoder_push(&d, -5, buf, sizeof(buf)) == TOK_DECODE_BAD_ID);
    struct mm_err err = {{0}};
    int32_t bad[] = {a, 1 << 20};
    CHECK(tok_decode(t, bad, 2, 0, &err) == NULL && strstr(err.msg, "out of range"));
    tok_free(t);
}

int main(void)
{
    invalid_utf8();
    streaming();
    return check_report("test_tokenizer_decode");
}
