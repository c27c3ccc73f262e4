/* What memllm serve reads of the memory client beside queries: an entity's
 * stored copies from its home shard (mm_memory_entity_copies: all of them,
 * over several scan pages, and none of the next entity's), one shard's own
 * counts (mm_memory_shard_stats), and the requests each shard was sent
 * (mm_memory_shard_requests), on 3 shards in one process. */
#include "memory/memory_test_util.h"
#include "text.h"

#define SPOKES 150 /* more than one entity scan page (64) */

struct seen {
    int forward, reverse, other_key, calls, stop_after;
    int bad_prov;
};

static int collect(void *ctx, const struct mm_copy *c)
{
    struct seen *s = ctx;
    s->calls++;
    if (strcmp(c->key, "Hub")) s->other_key++;
    if (c->reverse) {
        s->reverse += !strcmp(c->other, "Spoke 7") && !strcmp(c->relation, "points at");
    } else {
        s->forward += !strncmp(c->other, "Spoke ", 6) && !strcmp(c->relation, "links to");
    }
    s->bad_prov += c->nprov != 1 || strcmp(c->prov[0].source, "test") || c->prov[0].sentence != 2 ||
                   c->prov[0].time_ms <= 0;
    return s->stop_after && s->calls == s->stop_after ? 7 : 0;
}

static void requests(struct mm_memory *m, uint64_t *reads, uint64_t *writes)
{
    mm_memory_shard_requests(m, reads, writes);
}

int main(void)
{
    struct mm_err err;
    struct mm_embedder *e = mm_fallback_embedder_new(&err);
    REQUIRE(e, "%s", err.msg);
    char *dir = test_tmpdir("entity");
    struct mm_memory *m = mm_memory_open_local(dir, 3, e, 0, &err);
    REQUIRE(m, "%s", err.msg);

    static char spoke[SPOKES][32];
    struct mm_fact f[SPOKES + 3];
    size_t n = 0;
    for (int i = 0; i < SPOKES; i++) {
        snprintf(spoke[i], sizeof(spoke[i]), "Spoke %d", i);
        f[n++] = (struct mm_fact){"Hub", "links to", spoke[i], {"test", 2, 0}};
    }
    f[n++] = (struct mm_fact){"Spoke 7", "points at", "Hub", {"test", 2, 0}};
    /* Entities whose copies sort next to Hub's on some shard. */
    f[n++] = (struct mm_fact){"Rim", "links to", "Spoke 1", {"test", 2, 0}};
    f[n++] = (struct mm_fact){"Axle", "links to", "Hub", {"test", 2, 0}};
    uint64_t r0[3], w0[3], r1[3], w1[3];
    requests(m, r0, w0);
    REQUIRE(mm_memory_write(m, f, n, NULL, 0, NULL, &err) == 0, "%s", err.msg);
    requests(m, r1, w1);
    CHECK(w1[0] + w1[1] + w1[2] > w0[0] + w0[1] + w0[2]);

    struct mm_entity_record *rec;
    size_t nrec;
    REQUIRE(mm_memory_get_entity(m, "Hub", &rec, &nrec, &err) == 0 && nrec == 1, "%s", err.msg);
    uint64_t hub = rec[0].id;
    CHECK(rec[0].forward_copies == SPOKES && rec[0].reverse_copies == 2);
    mm_entity_records_free(rec, nrec);

    /* All of Hub's copies, from its home shard alone, in pages. */
    requests(m, r0, w0);
    struct seen s = {0};
    CHECK(mm_memory_entity_copies(m, hub, collect, &s, &err) == 0);
    requests(m, r1, w1);
    CHECKF(s.forward == SPOKES && s.reverse == 1 && s.calls == SPOKES + 2 && s.other_key == 0,
           "forward %d reverse %d calls %d others %d", s.forward, s.reverse, s.calls, s.other_key);
    CHECK(s.bad_prov == 0);
    uint32_t home = mm_home_shard(hub, 3);
    for (uint32_t j = 0; j < 3; j++) {
        CHECKF(r1[j] - r0[j] == (j == home ? (SPOKES + 2) / 64 + 1 : 0), "shard %u: %llu reads", j,
               (unsigned long long)(r1[j] - r0[j]));
        CHECK(w1[j] == w0[j]);
    }
    /* fn's non-zero value stops the scan and is returned. */
    struct seen stop = {.stop_after = 3};
    CHECK(mm_memory_entity_copies(m, hub, collect, &stop, &err) == 7 && stop.calls == 3);
    /* An id with no copies: none. */
    struct seen none = {0};
    CHECK(mm_memory_entity_copies(m, hub + 1, collect, &none, &err) == 0 && none.calls == 0);

    /* Each shard's own counts add up to the memory's; a stats call asks
     * every shard once, a shard's stats that shard only. */
    struct mm_memory_stats all, one;
    requests(m, r0, w0);
    REQUIRE(mm_memory_stats(m, &all, &err) == 0, "%s", err.msg);
    uint64_t triples = 0, entities = 0;
    for (uint32_t j = 0; j < 3; j++) {
        REQUIRE(mm_memory_shard_stats(m, j, &one, &err) == 0, "%s", err.msg);
        CHECK(one.shards == 1);
        triples += one.triples;
        entities += one.entities;
    }
    requests(m, r1, w1);
    CHECK(triples == all.triples && entities == all.entities && all.triples == SPOKES + 3);
    for (uint32_t j = 0; j < 3; j++)
        CHECK(r1[j] - r0[j] == 2 && w1[j] == w0[j]);
    CHECK(mm_memory_shard_stats(m, 3, &one, &err) == -1 && strstr(err.msg, "no shard 3"));

    REQUIRE(mm_memory_close(m, &err) == 0, "%s", err.msg);
    test_rmtree(dir);
    free(dir);
    mm_embedder_free(e);
    return check_report("test_memory_entity");
}
