/* The memory API's request bodies (serve_memory.h) checked and turned into
 * the memory client's arguments. No HTTP and no memory here: the HTTP
 * layer passes the body and sends the error this returns; the fuzz target
 * drives it alone.
 *
 *   queries  {"queries": ["s>>r>>" | ">>r>>o", ...]}          (1..64)
 *   facts    {"facts": ["s>>r>>o" | {"triple": "s>>r>>o"} |
 *             {"subject", "relation", "object"}, ...]}          (1..10000)
 *            each object may give "source" (default "api") and
 *            "sentence" (default -1)
 *   edits    {"edits": [{"op": "add"|"replace"|"delete",
 *                        "fact": "s>>r>>o"}, ...]}              (1..10000)
 *
 * Every refusal is a 400 naming the item (its index) and the field. */
#ifndef MEMLLM_COORDINATOR_SERVE_MEMORY_REQUEST_H
#define MEMLLM_COORDINATOR_SERVE_MEMORY_REQUEST_H

#include <stddef.h>

#include "edit_apply.h"
#include "memory_client.h"
#include "serve_request.h"
#include "triple_text.h"

#define SERVE_MAX_QUERIES 64
#define SERVE_MAX_FACTS 10000

struct serve_memory_queries {
    struct mm_triple_text *t;
    struct mm_query *q; /* point into t */
    char **items;       /* the query texts as given */
    size_t n;
};

struct serve_memory_facts {
    struct mm_triple_text *t;
    struct mm_fact *f; /* point into t and sources */
    char **sources;
    size_t n;
};

struct serve_memory_edits {
    struct edit *e;
    int n;
};

/* Each returns 0, or -1 with *e filled and the output empty. */
int serve_memory_parse_queries(const char *body, size_t len, struct serve_memory_queries *out,
                               struct serve_error *e);
int serve_memory_parse_facts(const char *body, size_t len, struct serve_memory_facts *out,
                             struct serve_error *e);
int serve_memory_parse_edits(const char *body, size_t len, struct serve_memory_edits *out,
                             struct serve_error *e);

void serve_memory_queries_free(struct serve_memory_queries *q);
void serve_memory_facts_free(struct serve_memory_facts *f);
void serve_memory_edits_free(struct serve_memory_edits *e);

#endif
