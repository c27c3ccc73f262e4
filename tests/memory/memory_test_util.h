/* Helpers shared by the memory tests: scratch directories, the hand-built
 * memory whose answers the tests know, and a printable form of answers for
 * comparing runs. */
#ifndef MEMLLM_TESTS_MEMORY_TEST_UTIL_H
#define MEMLLM_TESTS_MEMORY_TEST_UTIL_H

#include "check.h"
#include "memory_client.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* A fresh directory under /tmp; removed by test_rmtree. */
static inline char *test_tmpdir(const char *tag)
{
    char tmpl[256];
    snprintf(tmpl, sizeof(tmpl), "/tmp/memllm-%s-XXXXXX", tag);
    char *d = mkdtemp(tmpl);
    REQUIRE(d != NULL, "mkdtemp %s", tmpl);
    return strdup(d);
}

static inline void test_rmtree(const char *path)
{
    nftw(path, test_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The hand-built memory. */
#define BIG_FAMILY_CHILDREN 40

static const struct mm_fact hand_facts[] = {
    {"Dancing on Coral", "author", "Glenda Adams", {"Dancing on Coral (novel)", 0, 0}},
    {"Dancing in Coral", "author", "Someone Else", {"A look-alike title", 2, 0}},
    {"The Tax Inspector", "author", "Peter Carey", {"The Tax Inspector", 0, 0}},
    {"Glenda Adams", "date of birth", "30 December 1939", {"Glenda Adams", 0, 0}},
    {"Glenda Adams", "date of death", "July 2007", {"Glenda Adams", 3, 0}},
    {"Peter Carey", "country of citizenship", "Australia", {"Peter Carey", 1, 0}},
    {"Glenda Adams", "country of citizenship", "Australia", {"Glenda Adams", 1, 0}},
};

static const struct mm_alias hand_aliases[] = {
    {"Glenda Adams", "G. Adams"},
};

/* Writes the hand-built memory: the facts above, one alias, the same first
 * fact again from a second source, and Big Family's 40 children. */
static inline void write_hand_memory(struct mm_memory *m)
{
    struct mm_err err;
    size_t n = sizeof(hand_facts) / sizeof(hand_facts[0]);
    REQUIRE(mm_memory_write(m, hand_facts, n, hand_aliases, 1, NULL, &err) == 0, "%s", err.msg);
    struct mm_fact again = hand_facts[0];
    again.src = (struct mm_source){"Glenda Adams", 2, 0};
    REQUIRE(mm_memory_write(m, &again, 1, NULL, 0, NULL, &err) == 0, "%s", err.msg);
    static char names[BIG_FAMILY_CHILDREN][32];
    struct mm_fact kids[BIG_FAMILY_CHILDREN];
    for (int i = 0; i < BIG_FAMILY_CHILDREN; i++) {
        snprintf(names[i], sizeof(names[i]), "Child %02d", i + 1);
        kids[i] = (struct mm_fact){"Big Family", "child", names[i], {"Family register", i, 0}};
    }
    REQUIRE(mm_memory_write(m, kids, BIG_FAMILY_CHILDREN, NULL, 0, NULL, &err) == 0, "%s", err.msg);
}

/* Queries that cover every rule, in the text form of the MemLLM API. */
static const char *const hand_queries[] = {
    "Dancing on Coral>>author>>",          ">>author>>Glenda Adams",
    "Dancing on Corals>>author>>",         "Coral>>author>>",
    "Dancing on Coral>>writer>>",          "Big Family>>child>>",
    "G. Adams>>date of birth>>",           "dancing  ON coral>>Author>>",
    ">>country of citizenship>>Australia", "Glenda Adam>>date of death>>",
    ">>date of birth>>30 December 1939",
};

/* Appends "text|score|exact;" for every answer to buf (for comparing runs). */
static inline void answers_to_text(const struct mm_answers *a, char *buf, size_t n)
{
    size_t o = strlen(buf);
    for (size_t i = 0; i < a->n && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s|%.9f|%d|%u;", a->a[i].text, a->a[i].score,
                              a->a[i].exact, a->a[i].prov_count);
    if (o < n) o += (size_t)snprintf(buf + o, n - o, "\n");
}

/* --- after a crash (test_memory_crash, test_memory_mpi_crash) ------------------------------- */

/* The texts of fact i of a crash test: "<tag> Subject i", "<tag> Object i". */
static inline void crash_fact_texts(const char *tag, long i, char *s, char *o, size_t n)
{
    snprintf(s, n, "%s Subject %ld", tag, i);
    snprintf(o, n, "%s Object %ld", tag, i);
}

/* Every acknowledged fact 0..last (crash_fact_texts(tag), `relation`)
 * kept both copies; verify finds at most the one write that was in flight
 * half-done, and verify --repair leaves none broken. */
static inline void expect_acknowledged_kept(struct mm_memory *m, const char *tag,
                                            const char *relation, long last)
{
    struct mm_query_options o;
    mm_query_options_default(&o);
    struct mm_err err;
    long missing = 0;
    for (long k = 0; k <= last; k++) {
        char s[64], ob[64];
        crash_fact_texts(tag, k, s, ob, sizeof(s));
        struct mm_query q[2] = {{s, relation, 0}, {ob, relation, 1}};
        struct mm_answers a[2];
        REQUIRE(mm_memory_query(m, q, 2, &o, a, &err) == 0, "%s", err.msg);
        int fwd = a[0].n >= 1 && strcmp(a[0].a[0].text, ob) == 0 && a[0].a[0].exact;
        int rev = a[1].n >= 1 && strcmp(a[1].a[0].text, s) == 0 && a[1].a[0].exact;
        missing += !fwd || !rev;
        mm_answers_free(a, 2);
    }
    CHECKF(missing == 0, "%ld of %ld acknowledged facts lost a copy", missing, last + 1);
    struct mm_verify_report v;
    REQUIRE(mm_memory_verify(m, 0, &v, &err) == 0, "%s", err.msg);
    CHECK(v.forward >= (uint64_t)last + 1 && v.forward <= (uint64_t)last + 2);
    CHECK(v.missing_reverse + v.orphan_reverse <= 1);
    REQUIRE(mm_memory_verify(m, 1, &v, &err) == 0, "%s", err.msg);
    REQUIRE(mm_memory_verify(m, 0, &v, &err) == 0, "%s", err.msg);
    CHECK(v.missing_reverse == 0 && v.orphan_reverse == 0 && v.forward == v.reverse);
}

#endif
