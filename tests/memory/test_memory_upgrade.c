/* A memory written in format 1 (entity records and provenance records in
 * families of their own), built here key by key as that format laid them
 * out, opens as format 2 with nothing lost: the same answers, provenance,
 * aliases and counts; the old families are gone; a second open changes
 * nothing. One triple value is already in format 2, as a conversion cut
 * short by a crash leaves it: it must not gain its records twice. */
#include "memory/memory_test_util.h"
#include "embedder.h"
#include "store.pb-c.h"
#include "text.h"

#include <rocksdb/c.h>
#include <sys/stat.h>

enum { F_DEFAULT, F_ENTITIES, F_NAMES, F_RELATIONS, F_TRIPLES, F_PROVENANCE, F_COUNT };
static const char *const v1_families[F_COUNT] = {"default",   "entities", "names",
                                                 "relations", "triples",  "provenance"};

struct v1 {
    rocksdb_t *db;
    rocksdb_column_family_handle_t *cf[F_COUNT];
    rocksdb_writeoptions_t *w;
    struct mm_embedder *emb;
};

static void put(struct v1 *d, int cf, const void *key, size_t klen, const ProtobufCMessage *msg)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(n ? n : 1);
    REQUIRE(buf, "out of memory");
    protobuf_c_message_pack(msg, buf);
    char *rerr = NULL;
    rocksdb_put_cf(d->db, d->w, d->cf[cf], key, klen, (const char *)buf, n, &rerr);
    REQUIRE(!rerr, "put: %s", rerr);
    free(buf);
}

static void be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint64_t id_of(const char *text)
{
    uint64_t id;
    struct mm_err err;
    REQUIRE(mm_text_id_of(text, &id, &err) == 0, "%s", err.msg);
    return id;
}

/* A names row: normalised text, 0x00, owner id -> Name. */
static void put_name(struct v1 *d, const char *text, uint64_t owner)
{
    char *norm = mm_text_normalise(text);
    size_t len = strlen(norm);
    unsigned char key[256];
    memcpy(key, norm, len + 1);
    be64(key + len + 1, owner);
    float vec[1024];
    struct mm_err err;
    REQUIRE(mm_embed(d->emb, &text, 1, vec, &err) == 0, "%s", err.msg);
    Memllm__Store__Name n = MEMLLM__STORE__NAME__INIT;
    n.entity_id = owner;
    n.text = (char *)text;
    n.n_vec = (size_t)d->emb->dim;
    n.vec = vec;
    put(d, F_NAMES, key, len + 9, &n.base);
    free(norm);
}

static void put_entity(struct v1 *d, const char *text, char **aliases, size_t naliases)
{
    uint64_t id = id_of(text);
    put_name(d, text, id);
    for (size_t i = 0; i < naliases; i++)
        put_name(d, aliases[i], id);
    unsigned char key[8];
    be64(key, id);
    Memllm__Store__EntityV1 e = MEMLLM__STORE__ENTITY_V1__INIT;
    e.text = (char *)text;
    e.aliases = aliases;
    e.n_aliases = naliases;
    put(d, F_ENTITIES, key, 8, &e.base);
}

/* One copy with two provenance records; `converted` writes the value as
 * format 2 would, the first record inside it. */
static void put_copy(struct v1 *d, const char *k, const char *r, const char *o, int reverse,
                     int converted)
{
    unsigned char key[33];
    be64(key, id_of(k));
    be64(key + 8, id_of(r));
    key[16] = (unsigned char)reverse;
    be64(key + 17, id_of(o));
    Memllm__Provenance p[2] = {MEMLLM__PROVENANCE__INIT, MEMLLM__PROVENANCE__INIT};
    p[0].source = "doc one";
    p[0].sentence = 0;
    p[0].time_ms = 1000;
    p[1].source = "doc two";
    p[1].sentence = 3;
    p[1].time_ms = 2000;
    Memllm__Provenance *first[1] = {&p[0]};
    Memllm__Store__Triple t = MEMLLM__STORE__TRIPLE__INIT;
    t.other = (char *)o;
    if (converted) {
        t.provenance = first;
        t.n_provenance = 1;
    }
    put(d, F_TRIPLES, key, 25, &t.base);
    for (int i = 0; i < 2; i++) {
        be64(key + 25, 0x1234 + (uint64_t)i); /* format 1: a hash of the source */
        put(d, F_PROVENANCE, key, 33, &p[i].base);
    }
}

static void write_format1(const char *dir, struct mm_embedder *emb)
{
    struct v1 d = {.emb = emb};
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(o, 1);
    rocksdb_options_set_create_missing_column_families(o, 1);
    const rocksdb_options_t *opts[F_COUNT];
    for (int i = 0; i < F_COUNT; i++)
        opts[i] = o;
    char *rerr = NULL;
    d.db = rocksdb_open_column_families(o, dir, F_COUNT, v1_families, opts, d.cf, &rerr);
    REQUIRE(!rerr, "open %s: %s", dir, rerr);
    d.w = rocksdb_writeoptions_create();

    Memllm__Store__Meta m = MEMLLM__STORE__META__INIT;
    m.format = 1;
    m.shard_index = 0;
    m.shard_count = 1;
    m.embedder = (char *)emb->name;
    m.dim = (uint32_t)emb->dim;
    put(&d, F_DEFAULT, "meta", 4, &m.base);
    char *aliases[1] = {"G. Adams"};
    put_entity(&d, "Dancing on Coral", NULL, 0);
    put_entity(&d, "Glenda Adams", aliases, 1);
    float vec[1024];
    const char *author = "author";
    struct mm_err err;
    REQUIRE(mm_embed(emb, &author, 1, vec, &err) == 0, "%s", err.msg);
    Memllm__Store__Relation r = MEMLLM__STORE__RELATION__INIT;
    r.text = "author";
    r.n_vec = (size_t)emb->dim;
    r.vec = vec;
    unsigned char rkey[8];
    be64(rkey, id_of("author"));
    put(&d, F_RELATIONS, rkey, 8, &r.base);
    put_copy(&d, "Dancing on Coral", "author", "Glenda Adams", 0, 1);
    put_copy(&d, "Glenda Adams", "author", "Dancing on Coral", 1, 0);

    for (int i = 0; i < F_COUNT; i++)
        rocksdb_column_family_handle_destroy(d.cf[i]);
    rocksdb_close(d.db);
    rocksdb_writeoptions_destroy(d.w);
    rocksdb_options_destroy(o);
}

static void check_content(struct mm_memory *m)
{
    struct mm_query q[2] = {{"Dancing on Coral", "author", 0}, {"G. Adams", "author", 1}};
    const char *want[2] = {"Glenda Adams", "Dancing on Coral"};
    struct mm_query_options o;
    mm_query_options_default(&o);
    struct mm_answers a[2];
    struct mm_err err;
    REQUIRE(mm_memory_query(m, q, 2, &o, a, &err) == 0, "%s", err.msg);
    for (int i = 0; i < 2; i++) {
        CHECKF(a[i].n == 1 && strcmp(a[i].a[0].text, want[i]) == 0, "query %d", i);
        if (a[i].n != 1) continue;
        const struct mm_answer *x = &a[i].a[0];
        CHECKF(x->prov_count == 2 && x->nprov == 2, "query %d: %u records", i, x->prov_count);
        if (x->nprov == 2)
            CHECK(strcmp(x->prov[0].source, "doc one") == 0 && x->prov[0].time_ms == 1000 &&
                  strcmp(x->prov[1].source, "doc two") == 0 && x->prov[1].sentence == 3);
    }
    mm_answers_free(a, 2);
    struct mm_entity_record *r;
    size_t n;
    REQUIRE(mm_memory_get_entity(m, "g. adams", &r, &n, &err) == 0, "%s", err.msg);
    CHECK(n == 1 && strcmp(r[0].text, "Glenda Adams") == 0 && r[0].naliases == 1 &&
          r[0].reverse_copies == 1);
    mm_entity_records_free(r, n);
    struct mm_memory_stats st;
    REQUIRE(mm_memory_stats(m, &st, &err) == 0, "%s", err.msg);
    CHECK(st.entities == 2 && st.names == 3 && st.relations == 1 && st.triples == 1 &&
          st.reverse_copies == 1 && st.provenance == 4);
}

static int has_family(const char *dir, const char *name)
{
    rocksdb_options_t *o = rocksdb_options_create();
    size_t n;
    char *rerr = NULL;
    char **names = rocksdb_list_column_families(o, dir, &n, &rerr);
    REQUIRE(!rerr, "list %s: %s", dir, rerr);
    int found = 0;
    for (size_t i = 0; i < n; i++)
        found |= strcmp(names[i], name) == 0;
    rocksdb_list_column_families_destroy(names, n);
    rocksdb_options_destroy(o);
    return found;
}

int main(void)
{
    struct mm_err err;
    struct mm_embedder *emb = mm_fallback_embedder_new(&err);
    REQUIRE(emb, "%s", err.msg);
    char *dir = test_tmpdir("upgrade");
    char shard[300];
    snprintf(shard, sizeof(shard), "%s/shard-000", dir);
    write_format1(shard, emb);
    CHECK(has_family(shard, "entities") && has_family(shard, "provenance"));
    for (int pass = 0; pass < 2; pass++) {
        struct mm_memory *m = mm_memory_open_local(dir, 1, emb, 0, &err);
        REQUIRE(m, "open: %s", err.msg);
        check_content(m);
        REQUIRE(mm_memory_close(m, &err) == 0, "%s", err.msg);
        CHECK(!has_family(shard, "entities") && !has_family(shard, "provenance"));
    }
    test_rmtree(dir);
    free(dir);
    mm_embedder_free(emb);
    return check_report("test_memory_upgrade");
}
