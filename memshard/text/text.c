#include "text.h"

#include <stdlib.h>
#include <string.h>

/* Length of the UTF-8 sequence at s (1..4), or 0 when it is not a valid,
 * shortest-form encoding of a Unicode scalar value. */
static int utf8_sequence_length(const unsigned char *s, size_t left)
{
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    int len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if ((size_t)len > left) return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return 0;
    if (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) return 0;
    return len;
}

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

const char *mm_text_excerpt(const char *text, char *buf, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    size_t i = 0;
    for (; text[i] && i < 40 && o + 5 < n; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c < 0x20 || c == 0x7F || c >= 0x80) {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[c >> 4];
            buf[o++] = hex[c & 15];
        } else {
            buf[o++] = (char)c;
        }
    }
    if (text[i] && o + 4 < n) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

int mm_text_check(const char *what, const char *text, struct mm_err *err)
{
    char ex[200];
    if (!text) {
        mm_err_set(err, "%s: missing", what);
        return -1;
    }
    size_t len = strlen(text);
    if (len > MM_TEXT_MAX) {
        mm_err_set(err, "%s '%s': %zu bytes, more than the limit of %d", what,
                   mm_text_excerpt(text, ex, sizeof(ex)), len, MM_TEXT_MAX);
        return -1;
    }
    const unsigned char *s = (const unsigned char *)text;
    int blank = 1;
    for (size_t i = 0; i < len;) {
        int n = utf8_sequence_length(s + i, len - i);
        if (n == 0) {
            mm_err_set(err, "%s '%s': invalid UTF-8 at byte %zu", what,
                       mm_text_excerpt(text, ex, sizeof(ex)), i);
            return -1;
        }
        if (n == 1 && (s[i] < 0x20 || s[i] == 0x7F)) {
            mm_err_set(err, "%s '%s': control character 0x%02x at byte %zu", what,
                       mm_text_excerpt(text, ex, sizeof(ex)), s[i], i);
            return -1;
        }
        if (!is_space(s[i])) blank = 0;
        i += (size_t)n;
    }
    if (blank) {
        mm_err_set(err, "%s: empty", what);
        return -1;
    }
    return 0;
}

char *mm_text_normalise(const char *text)
{
    size_t len = strlen(text);
    char *out = malloc(len + 1);
    if (!out) return NULL;
    size_t o = 0;
    int pending_space = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (is_space(c)) {
            pending_space = o > 0;
            continue;
        }
        if (pending_space) out[o++] = ' ';
        pending_space = 0;
        out[o++] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
    }
    out[o] = '\0';
    return out;
}

uint64_t mm_text_id(const char *normalised)
{
    /* FNV-1a, then MurmurHash3's finaliser so that every bit (and so the
     * residue modulo the shard count) depends on every input byte. */
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)normalised; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

int mm_text_id_of(const char *text, uint64_t *id, struct mm_err *err)
{
    char *norm = mm_text_normalise(text);
    if (!norm) {
        mm_err_set(err, "out of memory");
        return -1;
    }
    *id = mm_text_id(norm);
    free(norm);
    return 0;
}
