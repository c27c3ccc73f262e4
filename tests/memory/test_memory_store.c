/* The store's building blocks and its refusals: text rules, the s>>r>>o
 * parser, the fallback embedder, exact vector search against a plain double
 * loop, and bad input (malformed or over-long text, invalid UTF-8, corrupt
 * protobuf bytes, a foreign embedder): a clear error and nothing written. */
#include "memory/memory_test_util.h"
#include "memory.pb-c.h"
#include "shard.h"
#include "text.h"
#include "triple_text.h"
#include "vector_index.h"

#include <math.h>

static void test_text_rules(void)
{
    struct mm_err err;
    CHECK(mm_text_check("t", "Glenda Adams", &err) == 0);
    CHECK(mm_text_check("t", "Mediaș", &err) == 0);
    CHECK(mm_text_check("subject", "", &err) != 0 && strstr(err.msg, "subject: empty"));
    CHECK(mm_text_check("t", "   ", &err) != 0);
    CHECK(mm_text_check("t", "a\nb", &err) != 0 && strstr(err.msg, "control character"));
    CHECK(mm_text_check("t", "bad \xC3\x28 byte", &err) != 0 && strstr(err.msg, "invalid UTF-8"));
    CHECK(mm_text_check("t", "overlong \xC0\xAF", &err) != 0);
    CHECK(mm_text_check("t", "surrogate \xED\xA0\x80", &err) != 0);
    CHECK(mm_text_check("t", "cut \xE2\x82", &err) != 0);
    char big[MM_TEXT_MAX + 2];
    memset(big, 'x', sizeof(big) - 1);
    big[MM_TEXT_MAX + 1] = '\0';
    CHECK(mm_text_check("object", big, &err) != 0 && strstr(err.msg, "1025 bytes"));
    big[MM_TEXT_MAX] = '\0';
    CHECK(mm_text_check("object", big, &err) == 0);

    char *n = mm_text_normalise("  Dancing \t ON   Coral ");
    CHECK(strcmp(n, "dancing on coral") == 0);
    uint64_t a, b;
    mm_text_id_of("Dancing on Coral", &a, &err);
    CHECK(a == mm_text_id(n));
    mm_text_id_of("Dancing in Coral", &b, &err);
    CHECK(a != b);
    free(n);
    /* Homes spread over shards. */
    int seen[3] = {0};
    char name[32];
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof(name), "entity %d", i);
        mm_text_id_of(name, &a, &err);
        seen[mm_home_shard(a, 3)]++;
    }
    CHECK(seen[0] > 60 && seen[1] > 60 && seen[2] > 60);
}

static void test_parser(void)
{
    struct mm_triple_text t;
    struct mm_err err;
    int ws;
    CHECK(mm_triple_parse(" Willi Schneider >>date of birth>> 13 March 1963", &t, &err) == 0);
    CHECK(strcmp(t.s, "Willi Schneider") == 0 && strcmp(t.r, "date of birth") == 0 &&
          strcmp(t.o, "13 March 1963") == 0);
    mm_triple_text_free(&t);
    const char *bad[] = {"a>>b",   "a>>b>>c>>d",    ">>b>>c",    "a>>>>c",
                         "a>>b>>", "no separators", "a>>b>>\xFF"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECKF(mm_triple_parse(bad[i], &t, &err) != 0, "accepted '%s'", bad[i]);
        CHECK(strlen(err.msg) > 0);
    }
    CHECK(mm_query_parse("Dancing on Coral>>author>>", &t, &ws, &err) == 0 && ws == 0);
    mm_triple_text_free(&t);
    CHECK(mm_query_parse(">>author>>Glenda Adams", &t, &ws, &err) == 0 && ws == 1 &&
          strcmp(t.o, "Glenda Adams") == 0);
    mm_triple_text_free(&t);
    const char *badq[] = {"a>>b>>c", ">>b>>", "a>>>>", "a>>b", ""};
    for (size_t i = 0; i < sizeof(badq) / sizeof(badq[0]); i++)
        CHECKF(mm_query_parse(badq[i], &t, &ws, &err) != 0, "accepted query '%s'", badq[i]);
}

static void test_embedder(void)
{
    struct mm_err err;
    struct mm_embedder *e = mm_fallback_embedder_new(&err);
    REQUIRE(e, "%s", err.msg);
    CHECK(strstr(e->name, "fallback") != NULL);
    const char *texts[4] = {"Glenda Adams", "glenda   ADAMS", "Glenda Adam", "Peter Carey"};
    float v[4 * MM_FALLBACK_DIM];
    REQUIRE(mm_embed(e, texts, 4, v, &err) == 0, "%s", err.msg);
    double dots[4] = {0};
    for (int i = 0; i < 4; i++) {
        for (int d = 0; d < e->dim; d++)
            dots[i] += (double)v[d] * v[i * e->dim + d];
        double norm = 0;
        for (int d = 0; d < e->dim; d++)
            norm += (double)v[i * e->dim + d] * v[i * e->dim + d];
        CHECK_NEAR(norm, 1.0, 1e-5);
    }
    CHECK_NEAR(dots[1], 1.0, 1e-6); /* same normalised text */
    CHECK(dots[2] > 0.8);           /* shares most trigrams */
    CHECK(dots[3] < 0.3);
    mm_embedder_free(e);
}

static void test_vector_search(void)
{
    struct mm_err err;
    const int dim = 48, rows = 1000, m = 5;
    struct mm_vector_index ix;
    mm_vindex_init(&ix, dim);
    srand(7);
    float *vecs = malloc(sizeof(float) * (size_t)(rows + m) * dim);
    for (int r = 0; r < rows + m; r++) {
        double norm = 0;
        for (int d = 0; d < dim; d++) {
            vecs[r * dim + d] = (float)rand() / RAND_MAX - 0.5f;
            norm += (double)vecs[r * dim + d] * vecs[r * dim + d];
        }
        for (int d = 0; d < dim; d++)
            vecs[r * dim + d] /= (float)sqrt(norm);
    }
    char name[32];
    for (int r = 0; r < rows; r++) {
        snprintf(name, sizeof(name), "row %d", r);
        REQUIRE(mm_vindex_add(&ix, (uint64_t)r, name, vecs + r * dim, &err) == 0, "%s", err.msg);
    }
    /* Queries: 4 random, 1 equal to row 17. */
    float *q = vecs + rows * dim;
    memcpy(q + 4 * dim, vecs + 17 * dim, sizeof(float) * dim);
    struct mm_vector_hit *hits[5];
    size_t nhits[5];
    const double tau = 0.25;
    REQUIRE(mm_vindex_search(&ix, q, (size_t)m, tau, hits, nhits, &err) == 0, "%s", err.msg);
    for (int i = 0; i < m; i++) {
        size_t expect = 0;
        for (int r = 0; r < rows; r++) {
            double s = 0;
            for (int d = 0; d < dim; d++)
                s += (double)q[i * dim + d] * vecs[r * dim + d];
            expect += s >= tau;
        }
        CHECKF(nhits[i] == expect, "query %d: %zu hits, plain loop %zu", i, nhits[i], expect);
        for (size_t h = 0; h < nhits[i]; h++) {
            double s = 0;
            for (int d = 0; d < dim; d++)
                s += (double)q[i * dim + d] * vecs[hits[i][h].row * dim + d];
            CHECK_NEAR(hits[i][h].sim, s, 1e-12);
            if (h) CHECK(hits[i][h - 1].sim >= hits[i][h].sim);
        }
    }
    CHECK(nhits[4] >= 1 && hits[4][0].row == 17 && fabs(hits[4][0].sim - 1.0) < 1e-6);
    /* One query goes through GEMV, a batch through GEMM: same hits. */
    struct mm_vector_hit *one;
    size_t none;
    REQUIRE(mm_vindex_search(&ix, q + 2 * dim, 1, tau, &one, &none, &err) == 0, "%s", err.msg);
    CHECK(none == nhits[2]);
    for (size_t h = 0; h < none && h < nhits[2]; h++)
        CHECK(one[h].row == hits[2][h].row && one[h].sim == hits[2][h].sim);
    free(one);
    for (int i = 0; i < m; i++)
        free(hits[i]);
    free(vecs);
    mm_vindex_free(&ix);
}

static void expect_stats(struct mm_memory *m, uint64_t triples, uint64_t entities)
{
    struct mm_memory_stats st;
    struct mm_err err;
    REQUIRE(mm_memory_stats(m, &st, &err) == 0, "%s", err.msg);
    CHECKF(st.triples == triples && st.reverse_copies == triples && st.entities == entities,
           "triples %llu (want %llu), entities %llu (want %llu)", (unsigned long long)st.triples,
           (unsigned long long)triples, (unsigned long long)st.entities,
           (unsigned long long)entities);
}

static void test_bad_writes(struct mm_embedder *e)
{
    struct mm_err err;
    char *dir = test_tmpdir("badwrite");
    struct mm_memory *m = mm_memory_open_local(dir, 3, e, 0, &err);
    REQUIRE(m, "%s", err.msg);
    char big[MM_TEXT_MAX + 10];
    memset(big, 'y', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    /* The bad fact comes last: the good ones before it are not written. */
    struct mm_fact batch[3] = {
        {"Good Subject", "good relation", "Good Object", {"test", 0, 0}},
        {"Other Subject", "good relation", "Other Object", {"test", 1, 0}},
        {"Third", "relation", "x", {"test", 2, 0}},
    };
    const char *bad_texts[] = {"", "  ", big, "in\xC3valid", "tab\there"};
    for (size_t i = 0; i < sizeof(bad_texts) / sizeof(bad_texts[0]); i++) {
        for (int part = 0; part < 3; part++) {
            struct mm_fact f[3];
            memcpy(f, batch, sizeof(f));
            if (part == 0) f[2].s = bad_texts[i];
            if (part == 1) f[2].r = bad_texts[i];
            if (part == 2) f[2].o = bad_texts[i];
            err.msg[0] = '\0';
            CHECK(mm_memory_write(m, f, 3, NULL, 0, NULL, &err) != 0);
            CHECKF(strstr(err.msg, "fact 2") != NULL, "error does not name the fact: %s", err.msg);
        }
    }
    struct mm_fact nosource = batch[0];
    nosource.src.source = "";
    CHECK(mm_memory_write(m, &nosource, 1, NULL, 0, NULL, &err) != 0);
    struct mm_alias bad_alias = {"Good Subject", "bad\x01"};
    CHECK(mm_memory_write(m, batch, 1, &bad_alias, 1, NULL, &err) != 0);
    struct mm_fact bad_replace = {"Good Subject", "r", "in\xC3valid", {"edit", -1, 0}};
    uint64_t removed;
    CHECK(mm_memory_replace(m, &bad_replace, &removed, &err) != 0 && strstr(err.msg, "UTF-8"));
    uint64_t deleted;
    CHECK(mm_memory_delete(m, &bad_replace, 1, &deleted, &err) != 0 && strstr(err.msg, "UTF-8"));
    expect_stats(m, 0, 0);
    struct mm_query q = {"in\xFFvalid", "relation", 0};
    struct mm_answers a;
    struct mm_query_options o;
    mm_query_options_default(&o);
    CHECK(mm_memory_query(m, &q, 1, &o, &a, &err) != 0 && strstr(err.msg, "UTF-8"));
    o.tau_e = 2.0f;
    q.entity = "fine";
    CHECK(mm_memory_query(m, &q, 1, &o, &a, &err) != 0 && strstr(err.msg, "tau_e"));
    REQUIRE(mm_memory_write(m, batch, 2, NULL, 0, NULL, &err) == 0, "%s", err.msg);
    expect_stats(m, 2, 4);
    REQUIRE(mm_memory_close(m, &err) == 0, "%s", err.msg);

    /* The memory remembers its embedder and layout. */
    struct mm_embedder other = *e;
    other.name = "another-embedder";
    CHECK(mm_memory_open_local(dir, 3, &other, 0, &err) == NULL && strstr(err.msg, "embedder"));
    CHECK(mm_memory_open_local(dir, 2, e, 0, &err) == NULL && strstr(err.msg, "shard 0 of 3"));
    test_rmtree(dir);
    free(dir);
}

/* Packs a request and hands it to the shard; returns the decoded response. */
static Memllm__Response *call(struct mm_shard *sh, const Memllm__Request *req)
{
    size_t n = memllm__request__get_packed_size(req);
    uint8_t *buf = malloc(n + 1);
    memllm__request__pack(req, buf);
    uint8_t *out;
    size_t out_len;
    REQUIRE(mm_shard_handle(sh, buf, n, &out, &out_len) >= 0, "handle");
    free(buf);
    Memllm__Response *r = memllm__response__unpack(NULL, out_len, out);
    free(out);
    REQUIRE(r, "response does not decode");
    return r;
}

static void test_shard_refusals(void)
{
    struct mm_err err;
    char *dir = test_tmpdir("shard");
    struct mm_shard *sh = mm_shard_open(dir, NULL, &err);
    REQUIRE(sh, "%s", err.msg);
    /* Garbage bytes. */
    const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x34};
    uint8_t *out;
    size_t out_len;
    REQUIRE(mm_shard_handle(sh, garbage, sizeof(garbage), &out, &out_len) == 0, "handle");
    Memllm__Response *r = memllm__response__unpack(NULL, out_len, out);
    free(out);
    REQUIRE(r, "response does not decode");
    CHECK(r->status == MEMLLM__STATUS__STATUS_BAD_MESSAGE && strstr(r->error, "7 bytes"));
    memllm__response__free_unpacked(r, NULL);

    /* Anything before hello is refused. */
    Memllm__StatsRequest sr = MEMLLM__STATS_REQUEST__INIT;
    Memllm__Request req = MEMLLM__REQUEST__INIT;
    req.command_case = MEMLLM__REQUEST__COMMAND_STATS;
    req.stats = &sr;
    r = call(sh, &req);
    CHECK(r->status == MEMLLM__STATUS__STATUS_NOT_CONFIGURED);
    memllm__response__free_unpacked(r, NULL);

    Memllm__Hello h = MEMLLM__HELLO__INIT;
    h.shard_index = 1;
    h.shard_count = 2;
    h.embedder = "test";
    h.dim = 4;
    Memllm__Request hello = MEMLLM__REQUEST__INIT;
    hello.command_case = MEMLLM__REQUEST__COMMAND_HELLO;
    hello.hello = &h;
    r = call(sh, &hello);
    CHECK(r->status == MEMLLM__STATUS__STATUS_OK && r->hello->created);
    memllm__response__free_unpacked(r, NULL);

    /* A copy whose key lives on the other shard, a vector of the wrong
     * size, a relation that is neither stored nor sent. */
    float vec[4] = {1, 0, 0, 0}, short_vec[3] = {1, 0, 0};
    Memllm__Embedded ent = MEMLLM__EMBEDDED__INIT, rel = MEMLLM__EMBEDDED__INIT;
    Memllm__Provenance pv = MEMLLM__PROVENANCE__INIT;
    pv.source = "test";
    Memllm__TripleCopy copy = MEMLLM__TRIPLE_COPY__INIT;
    copy.relation = "r";
    copy.other = "somebody";
    copy.provenance = &pv;
    Memllm__TripleCopy *copies[1] = {&copy};
    Memllm__Embedded *ents[1] = {&ent}, *rels[1] = {&rel};
    Memllm__WriteRequest w = MEMLLM__WRITE_REQUEST__INIT;
    w.copies = copies;
    w.n_copies = 1;
    w.entities = ents;
    w.n_entities = 1;
    Memllm__Request wr = MEMLLM__REQUEST__INIT;
    wr.command_case = MEMLLM__REQUEST__COMMAND_WRITE;
    wr.write = &w;
    /* Find a text homed on shard 1 and one homed on shard 0. */
    char here[32] = "", there[32] = "";
    for (int i = 0; !here[0] || !there[0]; i++) {
        char t[32];
        uint64_t id;
        snprintf(t, sizeof(t), "entity %d", i);
        mm_text_id_of(t, &id, &err);
        memcpy(mm_home_shard(id, 2) == 1 ? here : there, t, sizeof(t));
    }
    copy.key = there;
    ent.text = there;
    ent.n_vec = 4;
    ent.vec = vec;
    r = call(sh, &wr);
    CHECK(r->status == MEMLLM__STATUS__STATUS_INVALID_ARGUMENT && strstr(r->error, "shard 0"));
    memllm__response__free_unpacked(r, NULL);
    copy.key = here;
    ent.text = here;
    ent.n_vec = 3;
    ent.vec = short_vec;
    r = call(sh, &wr);
    CHECK(r->status == MEMLLM__STATUS__STATUS_INVALID_ARGUMENT && strstr(r->error, "3 values"));
    memllm__response__free_unpacked(r, NULL);
    ent.n_vec = 4;
    ent.vec = vec;
    /* A new entity or relation type without its embedding: NOT_FOUND, which
     * tells the client to send the write again with every embedding. */
    w.n_entities = 0;
    r = call(sh, &wr);
    CHECK(r->status == MEMLLM__STATUS__STATUS_NOT_FOUND && strstr(r->error, "no embedding"));
    memllm__response__free_unpacked(r, NULL);
    w.n_entities = 1;
    r = call(sh, &wr);
    CHECK(r->status == MEMLLM__STATUS__STATUS_NOT_FOUND && strstr(r->error, "relation"));
    memllm__response__free_unpacked(r, NULL);
    rel.text = "r";
    rel.n_vec = 4;
    rel.vec = vec;
    w.relations = rels;
    w.n_relations = 1;
    r = call(sh, &wr);
    CHECK(r->status == MEMLLM__STATUS__STATUS_OK && r->write->copies_added == 1 &&
          r->write->entities_added == 1 && r->write->relations_added == 1);
    memllm__response__free_unpacked(r, NULL);
    r = call(sh, &wr);
    CHECK(r->status == MEMLLM__STATUS__STATUS_OK && r->write->copies_existing == 1 &&
          r->write->provenance_added == 0);
    memllm__response__free_unpacked(r, NULL);

    /* Truncations of a valid request never crash and never half-write. */
    size_t n = memllm__request__get_packed_size(&wr);
    uint8_t *buf = malloc(n);
    memllm__request__pack(&wr, buf);
    for (size_t cut = 0; cut < n; cut++) {
        REQUIRE(mm_shard_handle(sh, buf, cut, &out, &out_len) >= 0, "handle");
        r = memllm__response__unpack(NULL, out_len, out);
        free(out);
        CHECK(r != NULL);
        if (r) memllm__response__free_unpacked(r, NULL);
    }
    free(buf);
    r = call(sh, &req);
    CHECK(r->status == MEMLLM__STATUS__STATUS_OK && r->stats->forward_copies == 1 &&
          r->stats->entities == 1);
    memllm__response__free_unpacked(r, NULL);
    mm_shard_close(sh);
    test_rmtree(dir);
    free(dir);
}

int main(void)
{
    struct mm_err err;
    test_text_rules();
    test_parser();
    test_embedder();
    test_vector_search();
    struct mm_embedder *e = mm_fallback_embedder_new(&err);
    REQUIRE(e, "%s", err.msg);
    test_bad_writes(e);
    mm_embedder_free(e);
    test_shard_refusals();
    return check_report("test_memory_store");
}
