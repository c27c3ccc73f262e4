/* Pre-tokenizers: cutting a stretch of normalized text into words before the
 * model sees it. The regular expressions of GPT-2 style tokenizers are
 * written out by hand over Unicode categories; each function says which
 * expression it is and follows its leftmost-first, greedy semantics. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"
#include "unicode.h"

static int tok_cps_decode(struct tok_cps *c, const char *s, size_t n)
{
    if (n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 256;
        while (cap < n + 1)
            cap *= 2;
        uint32_t *cp = realloc(c->cp, cap * sizeof(*cp));
        if (!cp) return -1;
        c->cp = cp;
        uint32_t *off = realloc(c->off, cap * sizeof(*off));
        if (!off) return -1;
        c->off = off;
        c->cap = cap;
    }
    const uint8_t *u = (const uint8_t *)s;
    size_t i = 0, k = 0;
    while (i < n) {
        c->off[k] = (uint32_t)i;
        i += uni_decode(u + i, n - i, &c->cp[k]);
        k++;
    }
    c->off[k] = (uint32_t)n;
    c->n = k;
    return 0;
}

/* Appends code points [a, b) of the decoded word as one word of out. */
static int emit(const struct tok_cps *c, const char *s, size_t a, size_t b, struct tok_words *out)
{
    if (a >= b) return 0;
    if (tok_words_add_bytes(out, s + c->off[a], c->off[b] - c->off[a])) return -1;
    return tok_words_end(out);
}

enum cls { CLS_LETTER, CLS_NUMBER, CLS_SPACE, CLS_OTHER };

static enum cls classify(uint32_t cp)
{
    if (cp < 0x80) {
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return CLS_LETTER;
        if (cp >= '0' && cp <= '9') return CLS_NUMBER;
        if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return CLS_SPACE;
        return CLS_OTHER;
    }
    if (uni_is_space(cp)) return CLS_SPACE;
    enum uni_category cat = uni_category(cp);
    if (uni_cat_is_letter(cat)) return CLS_LETTER;
    if (uni_cat_is_number(cat)) return CLS_NUMBER;
    return CLS_OTHER;
}

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static int split_gpt2(const struct tok_cps *c, const char *s, struct tok_words *out)
{
    const uint32_t *cp = c->cp;
    size_t m = c->n, pos = 0;
    while (pos < m) {
        size_t start = pos;
        if (cp[pos] == '\'' && pos + 1 < m) {
            uint32_t a = cp[pos + 1], b = pos + 2 < m ? cp[pos + 2] : 0;
            if (a == 's' || a == 't' || a == 'm' || a == 'd') {
                if (emit(c, s, pos, pos + 2, out)) return -1;
                pos += 2;
                continue;
            }
            if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) {
                if (emit(c, s, pos, pos + 3, out)) return -1;
                pos += 3;
                continue;
            }
        }
        /* " ?X+": an ASCII space joins the run of the class that follows it. */
        size_t k = pos;
        if (cp[pos] == ' ') k = pos + 1;
        enum cls want = k < m ? classify(cp[k]) : CLS_SPACE;
        if (want != CLS_SPACE) {
            pos = k;
            while (pos < m && classify(cp[pos]) == want)
                pos++;
            if (emit(c, s, start, pos, out)) return -1;
            continue;
        }
        /* \s+(?!\S): a run of spaces followed by more text leaves its last
         * space to the next word; \s+ takes a run that ends the text. */
        size_t end = pos;
        while (end < m && classify(cp[end]) == CLS_SPACE)
            end++;
        if (end - pos > 1 && end < m) end--;
        if (end == pos) end++;
        if (emit(c, s, pos, end, out)) return -1;
        pos = end;
    }
    return 0;
}

/* Cuts out runs of code points for which `in(cp)` holds; with `each`, every
 * such code point is a word of its own. The text between runs stays whole. */
static int split_isolated(const struct tok_cps *c, const char *s, int (*in)(uint32_t), int each,
                          struct tok_words *out)
{
    size_t m = c->n, pos = 0;
    while (pos < m) {
        size_t start = pos;
        if (in(c->cp[pos])) {
            pos++;
            while (!each && pos < m && in(c->cp[pos]))
                pos++;
        } else {
            while (pos < m && !in(c->cp[pos]))
                pos++;
        }
        if (emit(c, s, start, pos, out)) return -1;
    }
    return 0;
}

static int is_number(uint32_t cp)
{
    return uni_is_number(cp);
}

/* llama.cpp "default": [\p{P}\$\+<=>\^~\|]+ */
static int is_punct_or_math(uint32_t cp)
{
    switch (cp) {
    case '$':
    case '+':
    case '<':
    case '=':
    case '>':
    case '^':
    case '~':
    case '|':
        return 1;
    default:
        return uni_cat_is_punct(uni_category(cp));
    }
}

static int is_ascii_digit(uint32_t cp)
{
    return cp >= '0' && cp <= '9';
}

/* [0-9][0-9][0-9]: each match and each stretch between matches is a word. */
static int split_digit3(const struct tok_cps *c, const char *s, struct tok_words *out)
{
    size_t m = c->n, pos = 0, gap = 0;
    while (pos + 3 <= m) {
        if (is_ascii_digit(c->cp[pos]) && is_ascii_digit(c->cp[pos + 1]) &&
            is_ascii_digit(c->cp[pos + 2])) {
            if (emit(c, s, gap, pos, out) || emit(c, s, pos, pos + 3, out)) return -1;
            pos += 3;
            gap = pos;
        } else {
            pos++;
        }
    }
    return emit(c, s, gap, m, out);
}

/* HF BertPreTokenizer: whitespace removed, each punctuation character (ASCII
 * punctuation or Unicode P*) a word of its own. */
static int is_bert_punct(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x40) ||
               (cp >= 0x5B && cp <= 0x60) || (cp >= 0x7B && cp <= 0x7E);
    return uni_cat_is_punct(uni_category(cp));
}

static int split_bert(const struct tok_cps *c, const char *s, int punct, struct tok_words *out)
{
    size_t m = c->n, pos = 0;
    while (pos < m) {
        uint32_t cp = c->cp[pos];
        if (uni_is_space(cp)) {
            pos++;
            continue;
        }
        size_t start = pos++;
        if (!(punct && is_bert_punct(cp))) {
            while (pos < m && !uni_is_space(c->cp[pos]) && !(punct && is_bert_punct(c->cp[pos])))
                pos++;
        }
        if (emit(c, s, start, pos, out)) return -1;
    }
    return 0;
}

/* HF Metaspace split: each word starts at a replacement character. */
static int split_before(const char *s, size_t n, const char *mark, struct tok_words *out)
{
    size_t ml = strlen(mark), start = 0;
    for (size_t i = 1; i + ml <= n; i++) {
        if (memcmp(s + i, mark, ml) == 0) {
            if (tok_words_add_bytes(out, s + start, i - start) || tok_words_end(out)) return -1;
            start = i;
        }
    }
    if (tok_words_add_bytes(out, s + start, n - start)) return -1;
    return tok_words_end(out);
}

int tok_pretok_apply(const struct tok_pretok *p, const char *s, size_t n, struct tok_cps *cps,
                     struct tok_words *out)
{
    switch (p->kind) {
    case TOK_PRE_BYTELEVEL_PREFIX:
        if (n && s[0] != ' ' && tok_words_add_bytes(out, " ", 1)) return -1;
        if (tok_words_add_bytes(out, s, n)) return -1;
        return tok_words_end(out);
    case TOK_PRE_METASPACE_SPLIT:
        return split_before(s, n, p->arg, out);
    default:
        break;
    }
    if (tok_cps_decode(cps, s, n)) return -1;
    switch (p->kind) {
    case TOK_PRE_GPT2:
        return split_gpt2(cps, s, out);
    case TOK_PRE_DIGITS:
        return split_isolated(cps, s, is_number, p->individual, out);
    case TOK_PRE_PUNCT_RUNS:
        return split_isolated(cps, s, is_punct_or_math, 0, out);
    case TOK_PRE_NUMBER_RUNS:
        return split_isolated(cps, s, is_number, 0, out);
    case TOK_PRE_ASCII_DIGIT3:
        return split_digit3(cps, s, out);
    case TOK_PRE_BERT:
        return split_bert(cps, s, 1, out);
    case TOK_PRE_WHITESPACE_SPLIT:
        return split_bert(cps, s, 0, out);
    default:
        return -1;
    }
}

int tok_pretokenize(const struct tokenizer *t, const char *s, size_t n, struct tok_words *out,
                    struct tok_words *tmp, struct tok_cps *cps)
{
    tok_words_clear(out);
    if (tok_words_add_bytes(out, s, n) || tok_words_end(out)) return -1;
    for (int i = 0; i < t->n_pretoks; i++) {
        tok_words_clear(tmp);
        for (size_t w = 0; w < out->n; w++) {
            const char *ws = out->buf.data + out->off[w];
            size_t wn = out->off[w + 1] - out->off[w];
            if (tok_pretok_apply(&t->pretoks[i], ws, wn, cps, tmp)) return -1;
        }
        struct tok_words swap = *out;
        *out = *tmp;
        *tmp = swap;
    }
    return 0;
}
