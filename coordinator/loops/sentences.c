#include "sentences.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "unicode.h"

/* A bracket open for longer than this (bytes) is taken to be unbalanced. */
#define MAX_BRACKET_SPAN 400

/* Titles: a name always follows, so their period never ends a sentence
 * (also when tokenised text spaces it off: "Dr . Kebwe"). */
static const char *const titles[] = {
    "Mr",   "Mrs",  "Ms",  "Dr",  "St",  "Prof", "Rev", "Gen",  "Col", "Lt", "Sgt", "Cpt",
    "Capt", "Cmdr", "Adm", "Gov", "Sen", "Rep",  "Hon", "Pres", "Mt",  "Ft", "Mme", "Mlle",
};

/* Other abbreviations: their period ends a sentence only when a word that
 * often begins one follows. */
static const char *const abbreviations[] = {
    "Jr",  "Sr",  "vs",  "No",  "Nos",  "Vol", "pp",  "Fig",  "Figs", "approx",
    "ca",  "Jan", "Feb", "Mar", "Apr",  "Jun", "Jul", "Aug",  "Sep",  "Sept",
    "Oct", "Nov", "Dec", "Co",  "Corp", "Inc", "Ltd", "Bros",
};

static const char *const sentence_starters[] = {
    "The", "A",  "An", "It", "Its", "He",    "His",  "She",   "Her",   "They",    "Their",
    "We",  "In", "On", "At", "As",  "After", "This", "These", "There", "However",
};

static int in_list(const char *const *list, size_t n, const char *w, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(list[i]) == len && !memcmp(list[i], w, len)) return 1;
    return 0;
}
#define IN_LIST(list, w, len) in_list(list, sizeof(list) / sizeof(list[0]), w, len)

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int is_terminator(char c)
{
    return c == '.' || c == '!' || c == '?';
}

static int is_ascii_letter(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static enum uni_category category_at(const char *t, size_t len, size_t i, size_t *width)
{
    uint32_t cp;
    *width = uni_decode((const uint8_t *)t + i, len - i, &cp);
    return uni_category(cp);
}

/* Whether a blank line starts at t[i] (a newline, then only spaces up to
 * another newline); *after receives where the text goes on. */
static int blank_line_at(const char *t, size_t len, size_t i, size_t *after)
{
    if (t[i] != '\n') return 0;
    size_t j = i + 1;
    while (j < len && (t[j] == ' ' || t[j] == '\t' || t[j] == '\r'))
        j++;
    if (j >= len || t[j] != '\n') return 0;
    *after = j + 1;
    return 1;
}

enum abbreviation { NOT_ABBREVIATION, TITLE, ABBREVIATION };

/* What the word before the period at t[dot] is. A period standing alone
 * (tokenised text) ends no abbreviation, except after a title. */
static enum abbreviation abbreviation_before(const char *t, size_t start, size_t dot)
{
    size_t e = dot;
    if (e > start && t[e - 1] == ' ') e--;
    size_t b = e;
    while (b > start && !is_space(t[b - 1]) && t[b - 1] != '(' && t[b - 1] != '[' &&
           t[b - 1] != '"')
        b--;
    size_t n = e - b;
    if (n > 0 && IN_LIST(titles, t + b, n)) return TITLE;
    if (n == 0 || e != dot) return NOT_ABBREVIATION;
    if (n == 1) return is_ascii_letter(t[b]) ? ABBREVIATION : NOT_ABBREVIATION;
    /* Dotted forms: U.S, e.g, i.e, a.m, Ph.D: short letter groups between
     * periods. */
    if (memchr(t + b, '.', n)) {
        size_t group = 0;
        for (size_t i = b; i < dot; i++) {
            if (t[i] == '.') {
                if (group == 0) return NOT_ABBREVIATION;
                group = 0;
            } else if (is_ascii_letter(t[i]) && group < 2) {
                group++;
            } else {
                return NOT_ABBREVIATION;
            }
        }
        return group > 0 ? ABBREVIATION : NOT_ABBREVIATION;
    }
    return IN_LIST(abbreviations, t + b, n) ? ABBREVIATION : NOT_ABBREVIATION;
}

/* Whether the word at t[i] often begins a sentence. */
static int starter_at(const char *t, size_t len, size_t i)
{
    size_t e = i;
    while (e < len && is_ascii_letter(t[e]))
        e++;
    return e < len && (is_space(t[e]) || t[e] == ',') && IN_LIST(sentence_starters, t + i, e - i);
}

/* Whether a new sentence can begin at t[i]. */
static int sentence_start_at(const char *t, size_t len, size_t i)
{
    if (t[i] == '"' || t[i] == '\'') return 1;
    size_t w;
    enum uni_category c = category_at(t, len, i, &w);
    return c == UNI_LU || c == UNI_LT || c == UNI_LO || c == UNI_ND || c == UNI_PS || c == UNI_PI;
}

/* Closing quotes and brackets right after a terminator. */
static int closer_at(const char *t, size_t len, size_t i, size_t *width)
{
    if (t[i] == '"' || t[i] == '\'') {
        *width = 1;
        return 1;
    }
    enum uni_category c = category_at(t, len, i, width);
    return c == UNI_PE || c == UNI_PF;
}

struct splitter {
    const char *t;
    size_t len;
    struct sentence_span *out;
    size_t n, cap;
};

static int emit(struct splitter *s, size_t begin, size_t end, struct mm_err *err)
{
    while (begin < end && is_space(s->t[begin]))
        begin++;
    while (end > begin && is_space(s->t[end - 1]))
        end--;
    if (begin == end) return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        struct sentence_span *grown = realloc(s->out, cap * sizeof(*grown));
        if (!grown) {
            mm_err_set(err, "sentence splitter: out of memory");
            return -1;
        }
        s->out = grown;
        s->cap = cap;
    }
    s->out[s->n++] = (struct sentence_span){begin, end};
    return 0;
}

int sentences_split(const char *text, size_t len, struct sentence_span **spans, size_t *n,
                    struct mm_err *err)
{
    struct splitter s = {.t = text, .len = len};
    size_t start = 0, bracket_open_at = 0;
    int depth = 0, quotes = 0; /* open brackets and straight double quotes so far */
    size_t i = 0;
    while (i < len) {
        char c = text[i];
        size_t after;
        if (blank_line_at(text, len, i, &after)) {
            if (emit(&s, start, i, err)) goto fail;
            start = i = after;
            depth = quotes = 0;
            continue;
        }
        if (depth > 0 && i - bracket_open_at > MAX_BRACKET_SPAN) depth = 0;
        if (c == '(' || c == '[') {
            if (depth++ == 0) bracket_open_at = i;
        } else if ((c == ')' || c == ']') && depth > 0) {
            depth--;
        } else if (c == '"') {
            quotes++;
        }
        if (!is_terminator(c)) {
            i++;
            continue;
        }
        size_t j = i + 1, w;
        while (j < len && is_terminator(text[j]))
            j++;
        int lone_period = c == '.' && j == i + 1;
        while (j < len && closer_at(text, len, j, &w)) {
            if (text[j] == '"') quotes++;
            if ((text[j] == ')' || text[j] == ']') && depth > 0) depth--;
            j += w;
        }
        /* "3.5", "U.S.A", "example.com": no space, no boundary. */
        if (j < len && !is_space(text[j])) {
            i = j;
            continue;
        }
        size_t k = j;
        while (k < len && is_space(text[k]) && !blank_line_at(text, len, k, &after))
            k++;
        /* Tokenised text puts a space before the quote or bracket that
         * closes the sentence. */
        while (k < len && ((text[k] == '"' && quotes % 2 == 1) ||
                           ((text[k] == ')' || text[k] == ']') && depth > 0))) {
            if (text[k] == '"')
                quotes++;
            else
                depth--;
            j = ++k;
            while (k < len && is_space(text[k]) && !blank_line_at(text, len, k, &after))
                k++;
        }
        int boundary = k >= len || text[k] == '\n' || sentence_start_at(text, len, k);
        if (depth > 0) boundary = 0;
        if (boundary && lone_period) {
            enum abbreviation a = abbreviation_before(text, start, i);
            if (a == TITLE || (a == ABBREVIATION && !starter_at(text, len, k))) boundary = 0;
        }
        if (boundary) {
            if (emit(&s, start, j, err)) goto fail;
            start = k;
        }
        i = k > j ? k : j;
    }
    if (emit(&s, start, len, err)) goto fail;
    *spans = s.out;
    *n = s.n;
    return 0;
fail:
    free(s.out);
    return -1;
}

char *sentence_text(const char *text, const struct sentence_span *span, struct mm_err *err)
{
    char *out = malloc(span->end - span->begin + 1);
    if (!out) {
        mm_err_set(err, "sentence splitter: out of memory");
        return NULL;
    }
    size_t o = 0;
    for (size_t i = span->begin; i < span->end; i++) {
        if (is_space(text[i])) {
            if (o > 0 && out[o - 1] != ' ') out[o++] = ' ';
        } else {
            out[o++] = text[i];
        }
    }
    out[o] = 0;
    return out;
}
