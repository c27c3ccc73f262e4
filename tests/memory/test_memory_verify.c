/* verify and verify --repair on a memory whose copies were broken on
 * purpose, one shard at a time (as a crash between two shards would leave
 * them): a forward copy without its reverse gets the reverse back, with the
 * same provenance; a reverse copy without its forward is removed. */
#include "memory.pb-c.h"
#include "memory/memory_test_util.h"
#include "shard.h"
#include "text.h"

/* Deletes one copy directly on the shard that holds it. */
static void delete_one_copy(const char *dir, uint32_t shards, const char *key, const char *rel,
                            const char *other, int reverse)
{
    struct mm_err err;
    uint64_t id;
    REQUIRE(mm_text_id_of(key, &id, &err) == 0, "%s", err.msg);
    char path[512];
    snprintf(path, sizeof(path), "%s/shard-%03u", dir, mm_home_shard(id, shards));
    struct mm_shard *sh = mm_shard_open(path, NULL, &err);
    REQUIRE(sh, "%s", err.msg);
    Memllm__TripleCopy c = MEMLLM__TRIPLE_COPY__INIT;
    c.key = (char *)key;
    c.relation = (char *)rel;
    c.other = (char *)other;
    c.reverse = reverse;
    Memllm__TripleCopy *cs[1] = {&c};
    Memllm__DeleteRequest d = MEMLLM__DELETE_REQUEST__INIT;
    d.copies = cs;
    d.n_copies = 1;
    Memllm__Request req = MEMLLM__REQUEST__INIT;
    req.command_case = MEMLLM__REQUEST__COMMAND_DELETE;
    req.delete_ = &d;
    uint8_t buf[1024];
    size_t n = memllm__request__pack(&req, buf);
    uint8_t *out;
    size_t out_len;
    REQUIRE(mm_shard_handle(sh, buf, n, &out, &out_len) == 0, "handle");
    Memllm__Response *r = memllm__response__unpack(NULL, out_len, out);
    REQUIRE(r && r->status == MEMLLM__STATUS__STATUS_OK && r->delete_->deleted == 1,
            "deleting one copy failed");
    memllm__response__free_unpacked(r, NULL);
    free(out);
    mm_shard_close(sh);
}

static size_t count_answers(struct mm_memory *m, const char *entity, const char *rel,
                            int want_subject, struct mm_answers *keep)
{
    struct mm_query q = {entity, rel, want_subject};
    struct mm_query_options o;
    mm_query_options_default(&o);
    struct mm_err err;
    struct mm_answers a;
    REQUIRE(mm_memory_query(m, &q, 1, &o, &a, &err) == 0, "%s", err.msg);
    size_t n = a.n;
    if (keep)
        *keep = a;
    else
        mm_answers_free(&a, 1);
    return n;
}

int main(void)
{
    struct mm_err err;
    struct mm_embedder *e = mm_fallback_embedder_new(&err);
    REQUIRE(e, "%s", err.msg);
    char *dir = test_tmpdir("verify");
    const uint32_t S = 3;
    struct mm_memory *m = mm_memory_open_local(dir, S, e, 0, &err);
    REQUIRE(m, "%s", err.msg);
    write_hand_memory(m);
    struct mm_verify_report v;
    REQUIRE(mm_memory_verify(m, 0, &v, &err) == 0, "%s", err.msg);
    CHECK(v.missing_reverse == 0 && v.orphan_reverse == 0 && v.misplaced == 0);
    uint64_t facts = v.forward;
    REQUIRE(mm_memory_close(m, &err) == 0, "%s", err.msg);

    /* Break two facts: the first loses its reverse copy (it has two
     * provenance records), the third its forward copy. */
    const struct mm_fact *a = &hand_facts[0], *b = &hand_facts[2];
    delete_one_copy(dir, S, a->o, a->r, a->s, 1);
    delete_one_copy(dir, S, b->s, b->r, b->o, 0);

    m = mm_memory_open_local(dir, S, e, 0, &err);
    REQUIRE(m, "%s", err.msg);
    REQUIRE(mm_memory_verify(m, 0, &v, &err) == 0, "%s", err.msg);
    CHECK(v.missing_reverse == 1 && v.orphan_reverse == 1 && v.misplaced == 0);
    CHECK(v.forward == facts - 1 && v.reverse == facts - 1);
    CHECK(count_answers(m, a->o, a->r, 1, NULL) == 0);
    CHECK(count_answers(m, b->o, b->r, 1, NULL) == 1);

    REQUIRE(mm_memory_verify(m, 1, &v, &err) == 0, "%s", err.msg);
    CHECK(v.repaired == 2);
    REQUIRE(mm_memory_verify(m, 0, &v, &err) == 0, "%s", err.msg);
    CHECK(v.missing_reverse == 0 && v.orphan_reverse == 0);
    CHECK(v.forward == facts - 1 && v.reverse == facts - 1);

    /* The reverse copy is back with both provenance records; the orphan is
     * gone. */
    struct mm_answers back;
    REQUIRE(count_answers(m, a->o, a->r, 1, &back) == 1, "reverse copy not repaired");
    CHECK(strcmp(back.a[0].text, a->s) == 0 && back.a[0].prov_count == 2);
    mm_answers_free(&back, 1);
    CHECK(count_answers(m, b->o, b->r, 1, NULL) == 0);
    REQUIRE(mm_memory_close(m, &err) == 0, "%s", err.msg);
    test_rmtree(dir);
    free(dir);
    mm_embedder_free(e);
    return check_report("test_memory_verify");
}
