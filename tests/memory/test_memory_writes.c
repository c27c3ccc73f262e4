/* What a write stores, in the layout of format 2 (an entity is its
 * canonical name row, a fact's provenance lives in its copies' values), and
 * the client's memory of what it stored:
 * - provenance: one record per (source, sentence), on both copies, with
 *   the time its first write gave (or the write's own);
 * - aliases added to a stored entity keep its embedding;
 * - a client skips the embeddings of entities it wrote before, and when a
 *   shard lacks one anyway (the memory was restored behind its back) the
 *   write is sent again with every embedding and lands whole;
 * - a restore through the client forgets what it had stored. */
#include "memory/memory_test_util.h"
#include "memory_client_internal.h"
#include "text.h"

static struct mm_answers query1(struct mm_memory *m, const char *entity, const char *rel,
                                int want_subject)
{
    struct mm_query q = {entity, rel, want_subject};
    struct mm_query_options o;
    mm_query_options_default(&o);
    struct mm_answers a;
    struct mm_err err;
    REQUIRE(mm_memory_query(m, &q, 1, &o, &a, &err) == 0, "%s", err.msg);
    return a;
}

/* The single answer's text, or "" when there is not exactly one. */
static const char *only_answer(struct mm_memory *m, const char *entity, const char *rel,
                               int want_subject, uint32_t *prov_count)
{
    static char text[256];
    struct mm_answers a = query1(m, entity, rel, want_subject);
    text[0] = 0;
    if (a.n == 1) {
        snprintf(text, sizeof(text), "%s", a.a[0].text);
        if (prov_count) *prov_count = a.a[0].prov_count;
    }
    mm_answers_free(&a, 1);
    return text;
}

static int stored(struct mm_memory *m, const char *text)
{
    uint64_t id;
    struct mm_err err;
    REQUIRE(mm_text_id_of(text, &id, &err) == 0, "%s", err.msg);
    return id_map_find(&m->stored, id) != NULL;
}

static struct mm_write_report write1(struct mm_memory *m, struct mm_fact f)
{
    struct mm_write_report rep;
    struct mm_err err;
    REQUIRE(mm_memory_write(m, &f, 1, NULL, 0, &rep, &err) == 0, "%s", err.msg);
    return rep;
}

static void provenance_once_per_source(struct mm_memory *m)
{
    struct mm_fact f = {"Ada Lovelace", "notable work", "Note G", {"Sketch of the Engine", 7, 0}};
    struct mm_write_report rep = write1(m, f);
    CHECK(rep.facts_added == 1 && rep.entities_added == 2 && rep.provenance_added == 1);
    rep = write1(m, f);
    CHECK(rep.facts_added == 0 && rep.facts_existing == 1 && rep.provenance_added == 0);
    f.src = (struct mm_source){"Sketch of the Engine", 8, 0};
    rep = write1(m, f);
    CHECK(rep.facts_existing == 1 && rep.provenance_added == 1);
    f.src = (struct mm_source){"Another source", 8, 0};
    rep = write1(m, f);
    CHECK(rep.provenance_added == 1);
    uint32_t count = 0;
    CHECK(strcmp(only_answer(m, "Ada Lovelace", "notable work", 0, &count), "Note G") == 0);
    CHECK(count == 3);
    count = 0;
    CHECK(strcmp(only_answer(m, "Note G", "notable work", 1, &count), "Ada Lovelace") == 0);
    CHECK(count == 3);
    struct mm_memory_stats st;
    struct mm_err err;
    REQUIRE(mm_memory_stats(m, &st, &err) == 0, "%s", err.msg);
    CHECK(st.triples == 1 && st.reverse_copies == 1 && st.entities == 2 && st.provenance == 6);
}

/* A source's time is the one given (0: the write's), and the first write
 * of a source keeps it. */
static void given_times(struct mm_memory *m)
{
    struct mm_fact f = {"Ada Lovelace", "born in", "London", {"Biography", 2, 1234567}};
    write1(m, f);
    f.src.time_ms = 7654321;
    struct mm_write_report rep = write1(m, f);
    CHECK(rep.provenance_added == 0);
    f.src = (struct mm_source){"Later biography", 4, 0};
    write1(m, f);
    struct mm_answers a = query1(m, "Ada Lovelace", "born in", 0);
    CHECK(a.n == 1 && a.a[0].nprov == 2);
    if (a.n == 1 && a.a[0].nprov == 2)
        CHECK(a.a[0].prov[0].time_ms == 1234567 && a.a[0].prov[1].time_ms > 1700000000000LL &&
              strcmp(a.a[0].prov[1].source, "Later biography") == 0);
    mm_answers_free(&a, 1);
    f.src.time_ms = -1;
    struct mm_err err;
    CHECK(mm_memory_write(m, &f, 1, NULL, 0, NULL, &err) != 0 && strstr(err.msg, "before 1970"));
}

static void alias_keeps_embedding(struct mm_memory *m)
{
    struct mm_alias a = {"Ada Lovelace", "Countess of Lovelace"};
    struct mm_write_report rep;
    struct mm_err err;
    REQUIRE(mm_memory_write(m, NULL, 0, &a, 1, &rep, &err) == 0, "%s", err.msg);
    CHECK(rep.aliases_added == 1 && rep.entities_added == 0);
    /* Its own name as an alias is no alias. */
    struct mm_alias self = {"Ada Lovelace", "ada  LOVELACE"};
    REQUIRE(mm_memory_write(m, NULL, 0, &self, 1, &rep, &err) == 0, "%s", err.msg);
    CHECK(rep.aliases_added == 0);
    CHECK(strcmp(only_answer(m, "Countess of Lovelace", "notable work", 0, NULL), "Note G") == 0);
    /* The canonical row was rewritten with the alias: its vector is intact,
     * so a fuzzy name still finds the entity. */
    CHECK(strcmp(only_answer(m, "Ada Lovelace.", "notable work", 0, NULL), "Note G") == 0);
    struct mm_answers ans = query1(m, "ada lovelace", "notable work", 0);
    CHECK(ans.n == 1 && ans.a[0].exact && ans.a[0].score > 0.9999);
    mm_answers_free(&ans, 1);
    struct mm_entity_record *r;
    size_t n;
    REQUIRE(mm_memory_get_entity(m, "Countess of Lovelace", &r, &n, &err) == 0, "%s", err.msg);
    CHECK(n == 1 && strcmp(r[0].text, "Ada Lovelace") == 0 && r[0].naliases == 1 &&
          strcmp(r[0].aliases[0], "Countess of Lovelace") == 0 && r[0].forward_copies == 2);
    mm_entity_records_free(r, n);
}

static void stale_client_memory(struct mm_memory *m)
{
    CHECK(stored(m, "Ada Lovelace") && stored(m, "Note G") && stored(m, "notable work"));
    CHECK(!stored(m, "Charles Babbage"));
    /* Pretend this client wrote Charles Babbage before: the first try ships
     * no embedding for him, his shard refuses, and the retry carries it. */
    uint64_t id;
    struct mm_err err;
    REQUIRE(mm_text_id_of("Charles Babbage", &id, &err) == 0, "%s", err.msg);
    static const char marker = 1;
    REQUIRE(id_map_put(&m->stored, id, &marker) == 0, "out of memory");
    struct mm_write_report rep =
        write1(m, (struct mm_fact){"Charles Babbage", "collaborator", "Ada Lovelace", {"x", 1, 0}});
    CHECK(rep.facts_added == 1 && rep.entities_added == 1 && rep.relations_added == 1);
    CHECK(strcmp(only_answer(m, "Ada Lovelace", "collaborator", 1, NULL), "Charles Babbage") == 0);
    /* Stored with its real embedding: a misspelling finds it. */
    CHECK(strcmp(only_answer(m, "Charles Babage", "collaborator", 0, NULL), "Ada Lovelace") == 0);
}

static void restore_forgets(struct mm_memory *m, const char *backup)
{
    struct mm_err err;
    REQUIRE(mm_memory_backup(m, backup, &err) == 0, "%s", err.msg);
    write1(m, (struct mm_fact){"Grace Hopper", "employer", "Harvard", {"y", 0, 0}});
    CHECK(stored(m, "Grace Hopper"));
    REQUIRE(mm_memory_restore(m, backup, &err) == 0, "%s", err.msg);
    CHECK(!stored(m, "Grace Hopper") && !stored(m, "Ada Lovelace"));
    CHECK(strcmp(only_answer(m, "Grace Hopper", "employer", 0, NULL), "") == 0);
    struct mm_write_report rep =
        write1(m, (struct mm_fact){"Grace Hopper", "employer", "Harvard", {"y", 0, 0}});
    CHECK(rep.facts_added == 1 && rep.entities_added == 2);
    CHECK(strcmp(only_answer(m, "Grace Hopper", "employer", 0, NULL), "Harvard") == 0);
}

int main(void)
{
    struct mm_err err;
    for (uint32_t shards = 1; shards <= 3; shards += 2) {
        char *dir = test_tmpdir("writes");
        char backup[300];
        snprintf(backup, sizeof(backup), "%s/backup", dir);
        char mem[300];
        snprintf(mem, sizeof(mem), "%s/memory", dir);
        struct mm_embedder *emb = mm_fallback_embedder_new(&err);
        REQUIRE(emb, "%s", err.msg);
        struct mm_memory *m = mm_memory_open_local(mem, shards, emb, 0, &err);
        REQUIRE(m, "%s", err.msg);
        provenance_once_per_source(m);
        given_times(m);
        alias_keeps_embedding(m);
        stale_client_memory(m);
        restore_forgets(m, backup);
        REQUIRE(mm_memory_close(m, &err) == 0, "%s", err.msg);
        mm_embedder_free(emb);
        test_rmtree(dir);
        free(dir);
    }
    return check_report("test_memory_writes");
}
