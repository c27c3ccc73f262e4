/* Reading DocRED / Re-DocRED documents as memory facts: relation ids become
 * their Wikidata labels, each entity is named by its first mention (every
 * whitespace run made one space) with its other mentions as aliases, and a
 * fact's provenance is the document title and its first evidence sentence.
 * Used by `memllm memory import-docred` and by the memory benchmark. */
#ifndef MEMLLM_COORDINATOR_MEMORY_CLIENT_DOCRED_H
#define MEMLLM_COORDINATOR_MEMORY_CLIENT_DOCRED_H

#include <jansson.h>

#include "memory_client.h"

struct mm_docred_doc {
    size_t index, total; /* this document's place, and the file's document count */
    const char *title;
    struct mm_fact *facts;
    size_t nfacts;
    struct mm_alias *aliases; /* of the entities that appear in facts */
    size_t naliases;
    size_t skipped;            /* labels or aliases that failed the text rules */
    const char *first_problem; /* why the first skipped item was skipped */
};

/* Calls fn for every document of `path` (a JSON array), with relation
 * labels from `props_path` (a JSON object id -> label; ids not in it stay as
 * they are), or from the built-in table of data/wikidata_props_en.json when
 * props_path is NULL. Stops at fn's first non-zero return and returns it.
 * The doc's texts live until fn returns. */
int mm_docred_each(const char *path, const char *props_path,
                   int (*fn)(void *ctx, const struct mm_docred_doc *doc), void *ctx, size_t *ndocs,
                   struct mm_err *err);

/* The relation labels: `props_path` (a JSON object id -> label) or the
 * built-in table when NULL. */
json_t *mm_docred_props(const char *props_path, struct mm_err *err);

/* An entity's canonical name, as the facts above name it: its first
 * mention (by sentence, then position) with whitespace runs made one space
 * (malloc'd; NULL when it has no named mention or out of memory). */
char *mm_docred_entity_name(json_t *mentions);

#endif
