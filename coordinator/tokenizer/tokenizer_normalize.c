/* Normalizers: the text transformations that run before pre-tokenization,
 * one stretch of text (between added tokens) at a time. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"
#include "unicode.h"

/* Bytes that are not UTF-8 travel through the code point steps as values
 * above U+10FFFF, so those steps keep them unchanged. */
#define RAW_BYTE_BASE 0x110000u

static int put_cp(struct tok_bytes *out, uint32_t cp)
{
    if (cp >= RAW_BYTE_BASE) {
        uint8_t b = (uint8_t)(cp - RAW_BYTE_BASE);
        return tok_bytes_append(out, &b, 1);
    }
    char buf[4];
    return tok_bytes_append(out, buf, uni_encode(cp, buf));
}

static uint32_t next_cp(const char *s, size_t n, size_t *i)
{
    uint32_t cp;
    size_t len = uni_decode((const uint8_t *)s + *i, n - *i, &cp);
    if (cp == UNI_INVALID) cp = RAW_BYTE_BASE + (uint8_t)s[*i];
    *i += len;
    return cp;
}

static int replace_all(const char *s, size_t n, const char *from, const char *to,
                       struct tok_bytes *out)
{
    size_t fl = strlen(from), tl = strlen(to), i = 0, start = 0;
    if (fl == 0) return tok_bytes_append(out, s, n);
    while (i + fl <= n) {
        if (memcmp(s + i, from, fl) == 0) {
            if (tok_bytes_append(out, s + start, i - start) || tok_bytes_append(out, to, tl))
                return -1;
            i += fl;
            start = i;
        } else {
            i++;
        }
    }
    return tok_bytes_append(out, s + start, n - start);
}

static int put_lower(struct tok_bytes *out, uint32_t cp)
{
    uint32_t low[2];
    int k = cp < RAW_BYTE_BASE ? uni_tolower(cp, low) : (low[0] = cp, 1);
    for (int j = 0; j < k; j++)
        if (put_cp(out, low[j])) return -1;
    return 0;
}

static int lowercase(const char *s, size_t n, struct tok_bytes *out)
{
    size_t i = 0;
    while (i < n)
        if (put_lower(out, next_cp(s, n, &i))) return -1;
    return 0;
}

enum { KEEP_MARKS, DROP_MN, DROP_ALL_MARKS };

/* NFD, then marks dropped as `drop` says (HF's strip_accents drops Mn,
 * llama.cpp's every mark), then lowercase if `lower`. */
static int nfd(const char *s, size_t n, int drop, int lower, struct tok_bytes *out)
{
    if (n == 0) return 0;
    uint32_t *src = malloc(n * (1 + UNI_MAX_DECOMP) * sizeof(*src));
    if (!src) return -1;
    uint32_t *dst = src + n;
    size_t k = 0, i = 0;
    while (i < n)
        src[k++] = next_cp(s, n, &i);
    size_t m = uni_nfd(src, k, dst, k * UNI_MAX_DECOMP);
    int rc = 0;
    for (size_t j = 0; j < m && !rc; j++) {
        uint32_t cp = dst[j];
        if (drop != KEEP_MARKS && cp < RAW_BYTE_BASE) {
            enum uni_category cat = uni_category(cp);
            if (cat == UNI_MN || (drop == DROP_ALL_MARKS && uni_cat_is_mark(cat))) continue;
        }
        rc = lower ? put_lower(out, cp) : put_cp(out, cp);
    }
    free(src);
    return rc;
}

static int strip_marks(const char *s, size_t n, struct tok_bytes *out)
{
    size_t i = 0;
    while (i < n) {
        uint32_t cp = next_cp(s, n, &i);
        if (cp < RAW_BYTE_BASE && uni_category(cp) == UNI_MN) continue;
        if (put_cp(out, cp)) return -1;
    }
    return 0;
}

/* CJK ideographs, as BERT's tokenizer lists them (including its
 * 0x2B920 lower bound, where Unicode's block starts at 0x2B820). */
static int is_chinese(uint32_t cp)
{
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
           (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

/* HF BertNormalizer: clean_text (drop NUL, U+FFFD, bytes that are not
 * UTF-8 and control characters; whitespace becomes a space), spaces around
 * CJK ideographs, then strip accents (NFD without marks), then lowercase. */
static int bert(const struct tok_norm *nm, const char *s, size_t n, struct tok_bytes *out,
                struct tok_bytes *tmp)
{
    tmp->len = 0;
    size_t i = 0;
    while (i < n) {
        uint32_t cp = next_cp(s, n, &i);
        if (nm->clean_text) {
            if (cp >= RAW_BYTE_BASE || cp == 0 || cp == UNI_REPLACEMENT) continue;
            if (cp == '\t' || cp == '\n' || cp == '\r' || uni_is_space(cp)) {
                cp = ' ';
            } else if (uni_cat_is_other(uni_category(cp))) {
                continue;
            }
        }
        if (nm->chinese && is_chinese(cp)) {
            if (tok_bytes_append(tmp, " ", 1) || put_cp(tmp, cp) || tok_bytes_append(tmp, " ", 1))
                return -1;
            continue;
        }
        if (put_cp(tmp, cp)) return -1;
    }
    if (nm->strip_accents)
        return nfd(tmp->data, tmp->len, nm->strip_all_marks ? DROP_ALL_MARKS : DROP_MN,
                   nm->lowercase, out);
    if (nm->lowercase) return lowercase(tmp->data, tmp->len, out);
    return tok_bytes_append(out, tmp->data, tmp->len);
}

static int starts_with(const char *s, size_t n, const char *p)
{
    size_t pl = strlen(p);
    return n >= pl && memcmp(s, p, pl) == 0;
}

static int apply(const struct tok_norm *nm, const char *s, size_t n, int at_input_start,
                 int after_added, struct tok_bytes *out, struct tok_bytes *tmp)
{
    switch (nm->kind) {
    case TOK_NORM_PREPEND:
        if (n && tok_bytes_append(out, nm->arg, strlen(nm->arg))) return -1;
        return tok_bytes_append(out, s, n);
    case TOK_NORM_REPLACE:
        return replace_all(s, n, nm->arg, nm->arg2, out);
    case TOK_NORM_LOWERCASE:
        return lowercase(s, n, out);
    case TOK_NORM_NFD:
        return nfd(s, n, KEEP_MARKS, 0, out);
    case TOK_NORM_STRIP_ACCENTS:
        return strip_marks(s, n, out);
    case TOK_NORM_BERT:
        return bert(nm, s, n, out, tmp);
    case TOK_NORM_SPACE_PREFIX_LLAMA:
        if (n && (at_input_start || after_added) && tok_bytes_append(out, " ", 1)) return -1;
        return tok_bytes_append(out, s, n);
    case TOK_NORM_METASPACE_PREPEND:
        if (n && !starts_with(s, n, nm->arg) && (!nm->first_only || at_input_start) &&
            tok_bytes_append(out, nm->arg, strlen(nm->arg)))
            return -1;
        return tok_bytes_append(out, s, n);
    }
    return -1;
}

int tok_normalize(const struct tokenizer *t, const char *s, size_t n, int at_input_start,
                  int after_added, struct tok_bytes *out, struct tok_bytes *tmp,
                  struct tok_bytes *tmp2)
{
    out->len = 0;
    if (tok_bytes_append(out, s, n)) return -1;
    for (int i = 0; i < t->n_norms; i++) {
        tmp->len = 0;
        if (apply(&t->norms[i], out->data, out->len, at_input_start, after_added, tmp, tmp2))
            return -1;
        struct tok_bytes swap = *out;
        *out = *tmp;
        *tmp = swap;
    }
    return 0;
}
