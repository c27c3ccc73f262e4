/* A shard whose disk fills: the write that meets it fails with
 * mm_memory_fault() = MM_FAULT_NO_SPACE and an error naming the shard's
 * directory and the cause; later writes are refused the same way without
 * reaching RocksDB (whose writers abort the process when written again
 * after an error); reads still answer, with every acknowledged fact. What
 * memllm serve relies on to answer writes 507 and keep serving reads. The
 * memory is on a 3 MB tmpfs: root only, skipped (77) elsewhere. */
#include "memory/memory_test_util.h"

#include <sys/mount.h>

#define SKIP 77

static int fill(struct mm_memory *m, int *acked, struct mm_err *err)
{
    for (int i = 0; i < 100000; i++) {
        char s[64], o[64];
        snprintf(s, sizeof(s), "Full Disk Subject %d", i);
        snprintf(o, sizeof(o), "Full Disk Object %d", i);
        struct mm_fact f = {s, "fills", o, {"io fault test", i, 0}};
        if (mm_memory_write(m, &f, 1, NULL, 0, NULL, err) != 0) return -1;
        *acked = i + 1;
    }
    return 0;
}

int main(void)
{
    char *dir = test_tmpdir("io-fault");
    if (mount("tmpfs", dir, "tmpfs", 0, "size=3m") != 0) {
        printf("test_memory_io_fault: SKIP: cannot mount a tmpfs on %s (needs root)\n", dir);
        test_rmtree(dir);
        free(dir);
        return SKIP;
    }
    struct mm_err err;
    struct mm_embedder *e = mm_fallback_embedder_new(&err);
    REQUIRE(e, "%s", err.msg);
    struct mm_memory *m = mm_memory_open_local(dir, 1, e, 0, &err);
    REQUIRE(m, "%s", err.msg);
    int acked = 0;
    REQUIRE(fill(m, &acked, &err) != 0, "100000 facts fit in 3 MB");
    CHECK(mm_memory_fault(m) == MM_FAULT_NO_SPACE);
    CHECKF(strstr(err.msg, "shard-000: no space left on device"), "error: %s", err.msg);
    printf("after %d facts: %s\n", acked, err.msg);

    struct mm_fact late = {"Late Subject", "fills", "Late Object", {"io fault test", -1, 0}};
    CHECK(mm_memory_write(m, &late, 1, NULL, 0, NULL, &err) != 0);
    CHECK(mm_memory_fault(m) == MM_FAULT_NO_SPACE);
    CHECKF(strstr(err.msg, "refused"), "error: %s", err.msg);
    uint64_t deleted;
    CHECK(mm_memory_delete(m, &late, 1, &deleted, &err) != 0);
    CHECK(mm_memory_fault(m) == MM_FAULT_NO_SPACE);

    /* Reads go on, and see every acknowledged fact. */
    struct mm_query q = {"Full Disk Subject 0", "fills", 0};
    struct mm_query_options qo;
    mm_query_options_default(&qo);
    struct mm_answers a;
    REQUIRE(mm_memory_query(m, &q, 1, &qo, &a, &err) == 0, "%s", err.msg);
    CHECK(mm_memory_fault(m) == MM_FAULT_NONE);
    CHECK(a.n >= 1 && strcmp(a.a[0].text, "Full Disk Object 0") == 0);
    mm_answers_free(&a, 1);
    struct mm_memory_stats st;
    REQUIRE(mm_memory_stats(m, &st, &err) == 0, "%s", err.msg);
    CHECKF(st.triples == (uint64_t)acked, "%llu triples, %d acknowledged",
           (unsigned long long)st.triples, acked);
    REQUIRE(mm_memory_close(m, &err) == 0, "%s", err.msg);

    /* With room, the reopened memory has them all and takes writes. */
    REQUIRE(mount("tmpfs", dir, "tmpfs", MS_REMOUNT, "size=64m") == 0, "remount");
    m = mm_memory_open_local(dir, 1, e, 0, &err);
    REQUIRE(m, "%s", err.msg);
    REQUIRE(mm_memory_stats(m, &st, &err) == 0, "%s", err.msg);
    CHECK(st.triples == (uint64_t)acked);
    CHECK(mm_memory_write(m, &late, 1, NULL, 0, NULL, &err) == 0);
    REQUIRE(mm_memory_close(m, &err) == 0, "%s", err.msg);
    mm_embedder_free(e);
    CHECK(umount(dir) == 0);
    test_rmtree(dir);
    free(dir);
    return check_report("test_memory_io_fault");
}
