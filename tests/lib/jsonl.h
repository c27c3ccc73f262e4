/* A JSONL file (one JSON value a line: traces, results, training
 * examples) as one JSON array, for the tests. */
#ifndef MEMLLM_TESTS_JSONL_H
#define MEMLLM_TESTS_JSONL_H

#include <string.h>

#include <jansson.h>

#include "read_file.h"

/* Every non-empty line of the file, parsed; a failed REQUIRE naming the
 * file and line where one is not JSON. */
static inline json_t *must_read_jsonl(const char *path)
{
    char *text = must_read_file(path, NULL);
    json_t *all = json_array();
    REQUIRE(all, "out of memory");
    size_t n = 0;
    for (char *line = text, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        n++;
        if (!*line) continue;
        json_error_t jerr;
        json_t *v = json_loads(line, 0, &jerr);
        REQUIRE(v, "%s:%zu: %s", path, n, jerr.text);
        json_array_append_new(all, v);
    }
    free(text);
    return all;
}

#endif
