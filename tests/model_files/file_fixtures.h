/* The model-file fixtures (tests/fixtures/files/, tools/make_file_fixtures.py):
 * their paths, expected.json (what the writer put in each file) and its
 * hex-spelled bytes. */
#ifndef MEMLLM_TESTS_FILE_FIXTURES_H
#define MEMLLM_TESTS_FILE_FIXTURES_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "check.h"

/* Path of a file under the fixtures' files/ folder. */
static inline const char *fixture(const char *rel, char *buf, size_t n)
{
    char files_rel[1024];
    snprintf(files_rel, sizeof(files_rel), "files/%s", rel);
    return test_path("MEMLLM_FIXTURES", files_rel, buf, n);
}

/* files/expected.json (it may spell NUL bytes in strings). */
static inline json_t *load_expected(void)
{
    char path[4096];
    json_error_t jerr;
    json_t *e = json_load_file(fixture("expected.json", path, sizeof(path)), JSON_ALLOW_NUL, &jerr);
    REQUIRE(e, "%s: %s (line %d)", path, jerr.text, jerr.line);
    return e;
}

static inline int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Whether the n bytes at p are the hex string (from expected.json). */
static inline int bytes_equal_hex(const uint8_t *p, size_t n, const char *hex)
{
    if (strlen(hex) != 2 * n) return 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] != (uint8_t)(hex_digit(hex[2 * i]) * 16 + hex_digit(hex[2 * i + 1]))) return 0;
    return 1;
}

#endif
