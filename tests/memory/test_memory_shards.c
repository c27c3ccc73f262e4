/* The same memory built with S = 1 and S = 3 shards in one process gives the
 * same answers to every query and holds the same facts, both copies each. */
#include "memory/memory_compare.h"

int main(void)
{
    struct mm_err err;
    struct mm_embedder *e = mm_fallback_embedder_new(&err);
    REQUIRE(e, "%s", err.msg);
    static char answers[2][1 << 17];
    char *dumps[2];
    const uint32_t layouts[2] = {1, 3};
    for (int l = 0; l < 2; l++) {
        char *dir = test_tmpdir("shards");
        struct mm_memory *m = mm_memory_open_local(dir, layouts[l], e, 0, &err);
        REQUIRE(m, "%s", err.msg);
        write_compare_memory(m);
        compare_answers(m, answers[l], sizeof(answers[l]));
        dumps[l] = compare_dump(m);
        struct mm_verify_report v;
        REQUIRE(mm_memory_verify(m, 0, &v, &err) == 0, "%s", err.msg);
        CHECK(v.forward == v.reverse && v.forward > 400);
        CHECK(v.missing_reverse == 0 && v.orphan_reverse == 0 && v.misplaced == 0);
        if (layouts[l] == 3) {
            /* The facts really are spread: every shard holds some. */
            struct mm_memory_stats st;
            REQUIRE(mm_memory_stats(m, &st, &err) == 0, "%s", err.msg);
            CHECK(st.shards == 3);
        }
        REQUIRE(mm_memory_close(m, &err) == 0, "%s", err.msg);
        test_rmtree(dir);
        free(dir);
    }
    CHECK(strlen(answers[0]) > 1000);
    CHECK(strstr(answers[0], "Person Number 5>>place of birth>> => Town 16|") != NULL);
    /* The deleted fact is no answer to the reverse query any more. */
    char *line = strstr(answers[0], ">>place of birth>>Town 3 => ");
    REQUIRE(line && strchr(line, '\n'), "no answers line for Town 3");
    *strchr(line, '\n') = '\0';
    CHECK(strstr(line, "Person Number 20|") != NULL);
    CHECK(strstr(line, "Person Number 3|") == NULL);
    line[strlen(line)] = '\n';
    if (strcmp(answers[0], answers[1]) != 0)
        fprintf(stderr, "S=1 answers:\n%s\nS=3 answers:\n%s\n", answers[0], answers[1]);
    CHECK(strcmp(answers[0], answers[1]) == 0);
    CHECK(strcmp(dumps[0], dumps[1]) == 0);
    free(dumps[0]);
    free(dumps[1]);
    mm_embedder_free(e);
    return check_report("test_memory_shards");
}
