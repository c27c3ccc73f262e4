/* Reading tests/fixtures/tokenizer/ (tools/make_tokenizer_refs.py): texts
 * with escapes, and lines of reference ids. */
#ifndef MEMLLM_TESTS_TOKENIZER_FIXTURES_H
#define MEMLLM_TESTS_TOKENIZER_FIXTURES_H

#include <stdint.h>
#include <stdlib.h>

#include "check.h"

/* In sentences.txt, \\ \n \t \r are escapes (a text may hold a NUL):
 * unescapes s[0..n) in place and returns the new length. */
static inline size_t fixture_unescape(char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\' && i + 1 < n) {
            char e = s[++i];
            c = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
        }
        s[k++] = c;
    }
    s[k] = 0;
    return k;
}

/* The ids of a line ("1 2 3"), at most cap of them. */
static inline size_t fixture_ids(const char *line, int32_t *ids, size_t cap)
{
    size_t n = 0;
    char *end;
    for (;;) {
        long v = strtol(line, &end, 10);
        if (end == line) break;
        REQUIRE(n < cap, "more than %zu ids on a line", cap);
        ids[n++] = (int32_t)v;
        line = end;
    }
    return n;
}

#endif
