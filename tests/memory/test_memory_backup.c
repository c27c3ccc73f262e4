/* Backup and restore: a restored memory holds exactly what the backup held
 * (same facts with provenance, same answers), whatever was written after
 * the backup; a backup of another layout is refused and changes nothing. */
#include "memory/memory_compare.h"

int main(void)
{
    struct mm_err err;
    struct mm_embedder *e = mm_fallback_embedder_new(&err);
    REQUIRE(e, "%s", err.msg);
    char *dir = test_tmpdir("backup-mem");
    char *bdir = test_tmpdir("backup-dst");
    struct mm_memory *m = mm_memory_open_local(dir, 2, e, 0, &err);
    REQUIRE(m, "%s", err.msg);
    write_compare_memory(m);
    char *before = compare_dump(m);
    static char ans_before[1 << 17], ans_after[1 << 17];
    compare_answers(m, ans_before, sizeof(ans_before));
    REQUIRE(mm_memory_backup(m, bdir, &err) == 0, "%s", err.msg);
    CHECK(mm_memory_backup(m, bdir, &err) != 0 && strstr(err.msg, "exists"));

    /* Change the memory after the backup. */
    struct mm_fact extra = {"Person Number 1", "employer", "Backup Corp", {"later", -1, 0}};
    REQUIRE(mm_memory_write(m, &extra, 1, NULL, 0, NULL, &err) == 0, "%s", err.msg);
    uint64_t deleted;
    REQUIRE(mm_memory_delete(m, &hand_facts[0], 1, &deleted, &err) == 0 && deleted == 1, "%s",
            err.msg);
    char *changed = compare_dump(m);
    CHECK(strcmp(before, changed) != 0);

    REQUIRE(mm_memory_restore(m, bdir, &err) == 0, "%s", err.msg);
    char *after = compare_dump(m);
    CHECK(strcmp(before, after) == 0);
    compare_answers(m, ans_after, sizeof(ans_after));
    CHECK(strcmp(ans_before, ans_after) == 0);
    /* The restored shards take writes again. */
    REQUIRE(mm_memory_write(m, &extra, 1, NULL, 0, NULL, &err) == 0, "%s", err.msg);
    REQUIRE(mm_memory_close(m, &err) == 0, "%s", err.msg);

    /* Reopened from disk: still the restored content plus the new write. */
    m = mm_memory_open_local(dir, 2, e, 0, &err);
    REQUIRE(m, "%s", err.msg);
    struct mm_memory_stats st;
    REQUIRE(mm_memory_stats(m, &st, &err) == 0, "%s", err.msg);
    size_t before_lines = 0;
    for (const char *p = before; *p; p++)
        before_lines += *p == '\n';
    CHECK(st.triples + st.reverse_copies == before_lines + 2);
    REQUIRE(mm_memory_close(m, &err) == 0, "%s", err.msg);

    /* A 1-shard memory refuses the 2-shard backup and keeps its content. */
    char *single = test_tmpdir("backup-one");
    m = mm_memory_open_local(single, 1, e, 0, &err);
    REQUIRE(m, "%s", err.msg);
    REQUIRE(mm_memory_write(m, hand_facts, 2, NULL, 0, NULL, &err) == 0, "%s", err.msg);
    char *one_before = compare_dump(m);
    CHECK(mm_memory_restore(m, bdir, &err) != 0 && strstr(err.msg, "not a checkpoint"));
    char *one_after = compare_dump(m);
    CHECK(strcmp(one_before, one_after) == 0);
    REQUIRE(mm_memory_close(m, &err) == 0, "%s", err.msg);

    free(before);
    free(changed);
    free(after);
    free(one_before);
    free(one_after);
    test_rmtree(dir);
    test_rmtree(bdir);
    test_rmtree(single);
    free(dir);
    free(bdir);
    free(single);
    mm_embedder_free(e);
    return check_report("test_memory_backup");
}
