/* Building the same memory at several shard counts and reading it back in a
 * form that does not depend on the layout: every query's answers, and the
 * sorted list of facts with their provenance. */
#ifndef MEMLLM_TESTS_MEMORY_COMPARE_H
#define MEMLLM_TESTS_MEMORY_COMPARE_H

#include "memory/memory_test_util.h"
#include "triple_text.h"

#define SYNTH_PEOPLE 120

/* The hand memory plus a synthetic family of people, places and works whose
 * names share spelling (so fuzzy matches cross shards), then a delete and a
 * replace. */
static inline void write_compare_memory(struct mm_memory *m)
{
    struct mm_err err;
    write_hand_memory(m);
    static char person[SYNTH_PEOPLE][48], place[SYNTH_PEOPLE][48], work[SYNTH_PEOPLE][48];
    struct mm_fact f[3 * SYNTH_PEOPLE];
    size_t n = 0;
    for (int i = 0; i < SYNTH_PEOPLE; i++) {
        snprintf(person[i], sizeof(person[i]), "Person Number %d", i);
        snprintf(place[i], sizeof(place[i]), "Town %d", i % 17);
        snprintf(work[i], sizeof(work[i]), "Collected Works %d", i % 40);
        f[n++] = (struct mm_fact){person[i], "place of birth", place[i], {"synthetic", i, 0}};
        f[n++] = (struct mm_fact){work[i], "author", person[i], {"synthetic", i, 0}};
        f[n++] =
            (struct mm_fact){person[i], "country of citizenship", "Australia", {"census", -1, 0}};
    }
    REQUIRE(mm_memory_write(m, f, n, NULL, 0, NULL, &err) == 0, "%s", err.msg);
    struct mm_fact gone = {"Person Number 3", "place of birth", "Town 3", {"x", -1, 0}};
    uint64_t deleted;
    REQUIRE(mm_memory_delete(m, &gone, 1, &deleted, &err) == 0 && deleted == 1, "%s", err.msg);
    struct mm_fact moved = {"Person Number 5", "place of birth", "Town 16", {"edit", -1, 0}};
    uint64_t removed;
    REQUIRE(mm_memory_replace(m, &moved, &removed, &err) == 0 && removed == 1, "%s", err.msg);
}

static const char *const compare_queries[] = {
    "Person Number 7>>place of birth>>", ">>place of birth>>Town 4",
    "Person Numbr 7>>place of birth>>",  ">>author>>Person Number 12",
    "Collected Works 3>>author>>",       ">>country of citizenship>>Australia",
    "Person Number 3>>place of birth>>", "Person Number 5>>place of birth>>",
    ">>place of birth>>Town 3",          "Collected Work 3>>author>>",
};

/* Appends every query's answers (text, score, exact, provenance count). */
static inline void compare_answers(struct mm_memory *m, char *buf, size_t n)
{
    struct mm_query_options o;
    mm_query_options_default(&o);
    buf[0] = '\0';
    const char *const *lists[2] = {hand_queries, compare_queries};
    size_t counts[2] = {sizeof(hand_queries) / sizeof(hand_queries[0]),
                        sizeof(compare_queries) / sizeof(compare_queries[0])};
    for (int l = 0; l < 2; l++)
        for (size_t i = 0; i < counts[l]; i++) {
            struct mm_triple_text t;
            struct mm_err err;
            int ws;
            REQUIRE(mm_query_parse(lists[l][i], &t, &ws, &err) == 0, "%s", err.msg);
            struct mm_query q = {ws ? t.o : t.s, t.r, ws};
            struct mm_answers a;
            REQUIRE(mm_memory_query(m, &q, 1, &o, &a, &err) == 0, "%s", err.msg);
            size_t len = strlen(buf);
            snprintf(buf + len, n - len, "%s => ", lists[l][i]);
            answers_to_text(&a, buf, n);
            mm_answers_free(&a, 1);
            mm_triple_text_free(&t);
        }
}

struct fact_lines {
    char **line;
    size_t n, cap;
};

static int collect_fact(void *ctx, const struct mm_copy *c)
{
    struct fact_lines *l = ctx;
    char buf[4096];
    int o = snprintf(buf, sizeof(buf), "%s %s>>%s>>%s |", c->reverse ? "R" : "F", c->key,
                     c->relation, c->other);
    for (size_t i = 0; i < c->nprov && o < (int)sizeof(buf); i++)
        o += snprintf(buf + o, sizeof(buf) - (size_t)o, " %s#%d", c->prov[i].source,
                      c->prov[i].sentence);
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->line = realloc(l->line, l->cap * sizeof(char *));
        REQUIRE(l->line, "out of memory");
    }
    l->line[l->n++] = strdup(buf);
    return 0;
}

static int line_order(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every copy of every fact as one sorted, newline-joined string (malloc'ed). */
static inline char *compare_dump(struct mm_memory *m)
{
    struct fact_lines l = {0};
    struct mm_err err;
    REQUIRE(mm_memory_scan(m, collect_fact, &l, &err) == 0, "%s", err.msg);
    qsort(l.line, l.n, sizeof(char *), line_order);
    size_t total = 1;
    for (size_t i = 0; i < l.n; i++)
        total += strlen(l.line[i]) + 1;
    char *out = malloc(total);
    out[0] = '\0';
    size_t o = 0;
    for (size_t i = 0; i < l.n; i++) {
        o += (size_t)sprintf(out + o, "%s\n", l.line[i]);
        free(l.line[i]);
    }
    free(l.line);
    return out;
}

#endif
