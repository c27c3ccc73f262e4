/* Write and delete: the only handlers that change a shard. Each request is
 * checked whole before anything is written, then applied as one RocksDB
 * WriteBatchWithIndex (so later items of a request see earlier ones, and a
 * repeated entity or triple in one request is stored once), then committed
 * with the write-ahead log on. The in-memory vector indexes only learn the
 * new rows after the commit succeeded. */
#include "shard_internal.h"
#include "text.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct pending_row {
    struct mm_vector_index *ix;
    uint64_t owner;
    char *norm; /* arena */
    const float *vec;
};

struct write_ctx {
    struct mm_shard *sh;
    rocksdb_writebatch_wi_t *batch;
    struct mm_arena *ar;
    struct shard_status *st;
    const Memllm__WriteRequest *w;
    uint64_t *entity_ids;   /* ids of w->entities, by index */
    uint64_t *relation_ids; /* ids of w->relations, stored by ensure_relation */
    struct pending_row *rows;
    size_t nrows, caprows;
    Memllm__WriteResult *res;
    int64_t now_ms;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *arena_norm(struct mm_arena *ar, const char *text)
{
    char *norm = mm_text_normalise(text);
    if (!norm) return NULL;
    char *copy = mm_arena_strdup(ar, norm);
    free(norm);
    return copy;
}

static int push_row(struct write_ctx *c, struct mm_vector_index *ix, uint64_t owner,
                    const char *text, const float *vec)
{
    if (c->nrows == c->caprows) {
        size_t cap = c->caprows ? c->caprows * 2 : 32;
        struct pending_row *rows = realloc(c->rows, cap * sizeof(*rows));
        if (!rows) return shard_fail(c->st, MEMLLM__STATUS__STATUS_STORAGE, "out of memory");
        c->rows = rows;
        c->caprows = cap;
    }
    char *norm = arena_norm(c->ar, text);
    if (!norm) return shard_fail(c->st, MEMLLM__STATUS__STATUS_STORAGE, "out of memory");
    c->rows[c->nrows++] = (struct pending_row){ix, owner, norm, vec};
    return 0;
}

/* Stores the relation type unless it is there; every shard keeps all. */
static int ensure_relation(struct write_ctx *c, const Memllm__Embedded *r, uint64_t *idp)
{
    uint64_t id;
    if (mm_text_id_of(r->text, &id, &c->st->err) != 0) return -1;
    *idp = id;
    unsigned char key[8];
    put_be64(key, id);
    char *val;
    size_t vlen;
    int found = shard_get(c->sh, c->batch, CF_RELATIONS, key, 8, &val, &vlen, c->st);
    if (found < 0) return -1;
    if (found) {
        rocksdb_free(val);
        return 0;
    }
    Memllm__Store__Relation rec = MEMLLM__STORE__RELATION__INIT;
    rec.text = r->text;
    rec.n_vec = r->n_vec;
    rec.vec = r->vec;
    if (shard_put_message(c->batch, c->sh, CF_RELATIONS, key, 8, &rec.base, c->st) != 0) return -1;
    c->res->relations_added++;
    return push_row(c, &c->sh->relations, id, r->text, r->vec);
}

static const Memllm__Embedded *request_entity(const struct write_ctx *c, uint64_t id)
{
    for (size_t i = 0; i < c->w->n_entities; i++)
        if (c->entity_ids[i] == id) return c->w->entities[i];
    return NULL;
}

/* Makes sure the entity (homed here) exists; a new one needs its embedding
 * from the request. An existing id with another text is a hash collision,
 * refused rather than silently merging two entities. */
static int ensure_entity(struct write_ctx *c, const char *text, uint64_t id)
{
    char ex[200], ex2[200];
    unsigned char key[8];
    put_be64(key, id);
    ProtobufCMessage *msg;
    int found = shard_get_message(c->sh, c->batch, CF_ENTITIES, key, 8,
                                  &memllm__store__entity__descriptor, &msg, c->st);
    if (found < 0) return -1;
    if (found) {
        char *a = mm_text_normalise(((Memllm__Store__Entity *)msg)->text);
        char *b = mm_text_normalise(text);
        int same = a && b && strcmp(a, b) == 0;
        if (!same && a && b)
            shard_fail(c->st, MEMLLM__STATUS__STATUS_INVALID_ARGUMENT,
                       "entity '%s' has the same id as the stored entity '%s' (hash collision)",
                       mm_text_excerpt(text, ex, sizeof(ex)),
                       mm_text_excerpt(((Memllm__Store__Entity *)msg)->text, ex2, sizeof(ex2)));
        else if (!same)
            shard_fail(c->st, MEMLLM__STATUS__STATUS_STORAGE, "out of memory");
        free(a);
        free(b);
        protobuf_c_message_free_unpacked(msg, NULL);
        return same ? 0 : -1;
    }
    const Memllm__Embedded *e = request_entity(c, id);
    if (!e)
        return shard_fail(c->st, MEMLLM__STATUS__STATUS_INVALID_ARGUMENT,
                          "entity '%s' is new on shard %u and the request carries no embedding "
                          "for it",
                          mm_text_excerpt(text, ex, sizeof(ex)), c->sh->index);
    Memllm__Store__Entity rec = MEMLLM__STORE__ENTITY__INIT;
    rec.text = e->text;
    if (shard_put_message(c->batch, c->sh, CF_ENTITIES, key, 8, &rec.base, c->st) != 0) return -1;
    char *norm = arena_norm(c->ar, e->text);
    unsigned char *nkey = mm_arena_alloc(c->ar, MM_TEXT_MAX + 9);
    if (!norm || !nkey) return shard_fail(c->st, MEMLLM__STATUS__STATUS_STORAGE, "out of memory");
    Memllm__Store__Name name = MEMLLM__STORE__NAME__INIT;
    name.entity_id = id;
    name.text = e->text;
    name.n_vec = e->n_vec;
    name.vec = e->vec;
    if (shard_put_message(c->batch, c->sh, CF_NAMES, nkey, shard_name_key(nkey, norm, id),
                          &name.base, c->st) != 0)
        return -1;
    c->res->entities_added++;
    return push_row(c, &c->sh->names, id, e->text, e->vec);
}

static int relation_stored(struct write_ctx *c, const char *relation, uint64_t *rid)
{
    if (mm_text_id_of(relation, rid, &c->st->err) != 0) return -1;
    /* The request's own relation types were stored by ensure_relation. */
    for (size_t i = 0; i < c->w->n_relations; i++)
        if (c->relation_ids[i] == *rid) return 0;
    unsigned char key[8];
    put_be64(key, *rid);
    char *val;
    size_t vlen;
    int found = shard_get(c->sh, c->batch, CF_RELATIONS, key, 8, &val, &vlen, c->st);
    if (found < 0) return -1;
    if (!found) {
        char ex[200];
        return shard_fail(c->st, MEMLLM__STATUS__STATUS_INVALID_ARGUMENT,
                          "relation '%s' is not stored on shard %u and the request does not "
                          "carry it",
                          mm_text_excerpt(relation, ex, sizeof(ex)), c->sh->index);
    }
    rocksdb_free(val);
    return 0;
}

struct key_list {
    unsigned char **keys;
    size_t *lens;
    char **values; /* arena copies, NUL-terminated */
    size_t *vlens;
    size_t n, cap;
};

static int key_list_push(struct key_list *l, struct mm_arena *ar, const char *k, size_t klen,
                         const char *v, size_t vlen)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        unsigned char **keys = mm_arena_array(ar, cap, sizeof(*keys));
        size_t *lens = mm_arena_array(ar, cap, sizeof(*lens));
        char **values = mm_arena_array(ar, cap, sizeof(*values));
        size_t *vlens = mm_arena_array(ar, cap, sizeof(*vlens));
        if (!keys || !lens || !values || !vlens) return -1;
        if (l->n) {
            memcpy(keys, l->keys, l->n * sizeof(*keys));
            memcpy(lens, l->lens, l->n * sizeof(*lens));
            memcpy(values, l->values, l->n * sizeof(*values));
            memcpy(vlens, l->vlens, l->n * sizeof(*vlens));
        }
        l->keys = keys;
        l->lens = lens;
        l->values = values;
        l->vlens = vlens;
        l->cap = cap;
    }
    l->keys[l->n] = mm_arena_memdup(ar, k, klen);
    char *val = mm_arena_alloc(ar, vlen + 1);
    if (!l->keys[l->n] || !val) return -1;
    memcpy(val, v, vlen);
    l->values[l->n] = val;
    l->lens[l->n] = klen;
    l->vlens[l->n] = vlen;
    l->n++;
    return 0;
}

/* The keys (and values) of one column family that start with prefix, as the
 * batch and the database together see them. */
static int collect_prefix(struct mm_shard *sh, rocksdb_writebatch_wi_t *batch, struct mm_arena *ar,
                          int cf, const unsigned char *prefix, size_t plen, struct key_list *out,
                          struct shard_status *st)
{
    memset(out, 0, sizeof(*out));
    rocksdb_iterator_t *base = rocksdb_create_iterator_cf(sh->db, sh->ropt, sh->cf[cf]);
    rocksdb_iterator_t *it =
        batch ? rocksdb_writebatch_wi_create_iterator_with_base_cf(batch, base, sh->cf[cf]) : base;
    int rc = 0;
    for (rocksdb_iter_seek(it, (const char *)prefix, plen); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        if (klen < plen || memcmp(k, prefix, plen) != 0) break;
        const char *v = rocksdb_iter_value(it, &vlen);
        if (key_list_push(out, ar, k, klen, v, vlen) != 0) {
            rc = shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "out of memory");
            break;
        }
    }
    char *rerr = NULL;
    rocksdb_iter_get_error(it, &rerr);
    if (rerr) {
        rc = shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "%s: %s", sh->dir, rerr);
        rocksdb_free(rerr);
    }
    /* The batch iterator owns the base iterator. */
    rocksdb_iter_destroy(it);
    return rc;
}

/* Deletes one triple copy and all its provenance records. */
static int delete_copy(struct mm_shard *sh, rocksdb_writebatch_wi_t *batch, struct mm_arena *ar,
                       const unsigned char *tkey, struct shard_status *st)
{
    struct key_list prov;
    if (collect_prefix(sh, batch, ar, CF_PROVENANCE, tkey, TRIPLE_KEY_LEN, &prov, st) != 0)
        return -1;
    for (size_t i = 0; i < prov.n; i++)
        rocksdb_writebatch_wi_delete_cf(batch, sh->cf[CF_PROVENANCE], (const char *)prov.keys[i],
                                        prov.lens[i]);
    rocksdb_writebatch_wi_delete_cf(batch, sh->cf[CF_TRIPLES], (const char *)tkey, TRIPLE_KEY_LEN);
    return 0;
}

static int apply_clear(struct write_ctx *c, const Memllm__Clear *cl, Memllm__TripleCopy ***cleared,
                       size_t *ncleared, size_t *capcleared)
{
    uint64_t kid, rid;
    if (mm_text_id_of(cl->key, &kid, &c->st->err) != 0 ||
        mm_text_id_of(cl->relation, &rid, &c->st->err) != 0)
        return -1;
    unsigned char prefix[TRIPLE_KEY_LEN]; /* a whole key; the first 17 bytes are used */
    triple_key(prefix, kid, rid, cl->reverse, 0);
    struct key_list l;
    if (collect_prefix(c->sh, c->batch, c->ar, CF_TRIPLES, prefix, TRIPLE_PREFIX_LEN, &l, c->st) !=
        0)
        return -1;
    for (size_t i = 0; i < l.n; i++) {
        if (l.lens[i] != TRIPLE_KEY_LEN) continue;
        Memllm__Store__Triple *t =
            memllm__store__triple__unpack(NULL, l.vlens[i], (const uint8_t *)l.values[i]);
        if (!t)
            return shard_fail(c->st, MEMLLM__STATUS__STATUS_STORAGE, "%s: damaged triple record",
                              c->sh->dir);
        Memllm__TripleCopy *copy = mm_arena_alloc(c->ar, sizeof(*copy));
        char *other = mm_arena_strdup(c->ar, t->other);
        memllm__store__triple__free_unpacked(t, NULL);
        if (*ncleared == *capcleared) {
            size_t cap = *capcleared ? *capcleared * 2 : 8;
            Memllm__TripleCopy **grown = mm_arena_array(c->ar, cap, sizeof(*grown));
            if (grown && *ncleared) memcpy(grown, *cleared, *ncleared * sizeof(*grown));
            *cleared = grown;
            *capcleared = cap;
        }
        if (!copy || !other || !*cleared)
            return shard_fail(c->st, MEMLLM__STATUS__STATUS_STORAGE, "out of memory");
        memllm__triple_copy__init(copy);
        copy->key = cl->key;
        copy->relation = cl->relation;
        copy->other = other;
        copy->reverse = cl->reverse;
        (*cleared)[(*ncleared)++] = copy;
        if (delete_copy(c->sh, c->batch, c->ar, l.keys[i], c->st) != 0) return -1;
    }
    return 0;
}

static uint64_t provenance_hash(const Memllm__Provenance *p)
{
    /* Sources cannot contain a newline (control characters are refused), so
     * "source\nsentence" is unambiguous. */
    char buf[MM_TEXT_MAX + 16];
    snprintf(buf, sizeof(buf), "%s\n%d", p->source, p->sentence);
    return mm_text_id(buf);
}

static int apply_copy(struct write_ctx *c, const Memllm__TripleCopy *t)
{
    uint64_t kid, rid, oid;
    if (mm_text_id_of(t->key, &kid, &c->st->err) != 0 ||
        mm_text_id_of(t->other, &oid, &c->st->err) != 0)
        return -1;
    if (ensure_entity(c, t->key, kid) != 0 || relation_stored(c, t->relation, &rid) != 0) return -1;
    unsigned char pkey[PROVENANCE_KEY_LEN];
    triple_key(pkey, kid, rid, t->reverse, oid);
    char *val;
    size_t vlen;
    int found = shard_get(c->sh, c->batch, CF_TRIPLES, pkey, TRIPLE_KEY_LEN, &val, &vlen, c->st);
    int new_copy = found == 0;
    if (found < 0) return -1;
    if (found) {
        rocksdb_free(val);
        c->res->copies_existing++;
        if (!t->reverse) c->res->forward_existing++;
    } else {
        Memllm__Store__Triple rec = MEMLLM__STORE__TRIPLE__INIT;
        rec.other = t->other;
        if (shard_put_message(c->batch, c->sh, CF_TRIPLES, pkey, TRIPLE_KEY_LEN, &rec.base, c->st))
            return -1;
        c->res->copies_added++;
        if (!t->reverse) c->res->forward_added++;
    }
    put_be64(pkey + TRIPLE_KEY_LEN, provenance_hash(t->provenance));
    /* Provenance exists only with its copy (deletes remove both), so a new
     * copy needs no lookup. */
    found = new_copy ? 0
                     : shard_get(c->sh, c->batch, CF_PROVENANCE, pkey, PROVENANCE_KEY_LEN, &val,
                                 &vlen, c->st);
    if (found < 0) return -1;
    if (found) {
        rocksdb_free(val);
        return 0;
    }
    Memllm__Provenance p = *t->provenance;
    if (p.time_ms == 0) p.time_ms = c->now_ms;
    if (shard_put_message(c->batch, c->sh, CF_PROVENANCE, pkey, PROVENANCE_KEY_LEN, &p.base, c->st))
        return -1;
    c->res->provenance_added++;
    return 0;
}

static int apply_alias(struct write_ctx *c, const Memllm__Alias *a)
{
    uint64_t id;
    if (mm_text_id_of(a->entity, &id, &c->st->err) != 0) return -1;
    if (ensure_entity(c, a->entity, id) != 0) return -1;
    char *norm = arena_norm(c->ar, a->alias);
    unsigned char *nkey = mm_arena_alloc(c->ar, MM_TEXT_MAX + 9);
    if (!norm || !nkey) return shard_fail(c->st, MEMLLM__STATUS__STATUS_STORAGE, "out of memory");
    size_t nklen = shard_name_key(nkey, norm, id);
    char *val;
    size_t vlen;
    int found = shard_get(c->sh, c->batch, CF_NAMES, nkey, nklen, &val, &vlen, c->st);
    if (found < 0) return -1;
    if (found) {
        rocksdb_free(val);
        return 0;
    }
    Memllm__Store__Name name = MEMLLM__STORE__NAME__INIT;
    name.entity_id = id;
    name.text = a->alias;
    name.n_vec = a->n_vec;
    name.vec = a->vec;
    if (shard_put_message(c->batch, c->sh, CF_NAMES, nkey, nklen, &name.base, c->st) != 0)
        return -1;

    unsigned char ekey[8];
    put_be64(ekey, id);
    ProtobufCMessage *msg;
    if (shard_get_message(c->sh, c->batch, CF_ENTITIES, ekey, 8, &memllm__store__entity__descriptor,
                          &msg, c->st) != 1)
        return -1;
    Memllm__Store__Entity *e = (Memllm__Store__Entity *)msg;
    char **aliases = malloc((e->n_aliases + 1) * sizeof(*aliases));
    int rc = -1;
    if (aliases) {
        if (e->n_aliases) memcpy(aliases, e->aliases, e->n_aliases * sizeof(*aliases));
        aliases[e->n_aliases] = a->alias;
        Memllm__Store__Entity rec = *e;
        rec.aliases = aliases;
        rec.n_aliases = e->n_aliases + 1;
        rc = shard_put_message(c->batch, c->sh, CF_ENTITIES, ekey, 8, &rec.base, c->st);
    } else {
        shard_fail(c->st, MEMLLM__STATUS__STATUS_STORAGE, "out of memory");
    }
    free(aliases);
    protobuf_c_message_free_unpacked(msg, NULL);
    if (rc != 0) return -1;
    c->res->aliases_added++;
    return push_row(c, &c->sh->names, id, a->alias, a->vec);
}

/* Everything a write request must satisfy before any of it is applied. */
static int check_write(struct mm_shard *sh, const Memllm__WriteRequest *w, uint64_t *entity_ids,
                       struct shard_status *st)
{
    char what[96];
    for (size_t i = 0; i < w->n_entities; i++) {
        snprintf(what, sizeof(what), "write: entity %zu", i);
        if (shard_check_home(what, w->entities[i]->text, sh, &entity_ids[i], st) != 0 ||
            shard_check_vec(what, w->entities[i]->n_vec, w->entities[i]->vec, sh, st) != 0)
            return -1;
    }
    for (size_t i = 0; i < w->n_relations; i++) {
        snprintf(what, sizeof(what), "write: relation %zu", i);
        if (shard_check_text(what, w->relations[i]->text, st) != 0 ||
            shard_check_vec(what, w->relations[i]->n_vec, w->relations[i]->vec, sh, st) != 0)
            return -1;
    }
    uint64_t id;
    for (size_t i = 0; i < w->n_aliases; i++) {
        const Memllm__Alias *a = w->aliases[i];
        snprintf(what, sizeof(what), "write: entity of alias %zu", i);
        if (shard_check_home(what, a->entity, sh, &id, st) != 0) return -1;
        snprintf(what, sizeof(what), "write: alias %zu", i);
        if (shard_check_text(what, a->alias, st) != 0 ||
            shard_check_vec(what, a->n_vec, a->vec, sh, st) != 0)
            return -1;
    }
    for (size_t i = 0; i < w->n_clears; i++) {
        snprintf(what, sizeof(what), "write: key of clear %zu", i);
        if (shard_check_home(what, w->clears[i]->key, sh, &id, st) != 0) return -1;
        snprintf(what, sizeof(what), "write: relation of clear %zu", i);
        if (shard_check_text(what, w->clears[i]->relation, st) != 0) return -1;
    }
    for (size_t i = 0; i < w->n_copies; i++) {
        const Memllm__TripleCopy *t = w->copies[i];
        snprintf(what, sizeof(what), "write: key of copy %zu", i);
        if (shard_check_home(what, t->key, sh, &id, st) != 0) return -1;
        snprintf(what, sizeof(what), "write: relation of copy %zu", i);
        if (shard_check_text(what, t->relation, st) != 0) return -1;
        snprintf(what, sizeof(what), "write: other end of copy %zu", i);
        if (shard_check_text(what, t->other, st) != 0) return -1;
        snprintf(what, sizeof(what), "write: provenance of copy %zu", i);
        if (shard_check_provenance(what, t->provenance, st) != 0) return -1;
    }
    return 0;
}

static int commit(struct mm_shard *sh, rocksdb_writebatch_wi_t *batch, struct shard_status *st)
{
    char *rerr = NULL;
    rocksdb_write_writebatch_wi(sh->db, sh->wopt, batch, &rerr);
    if (rerr) {
        shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "%s: write failed: %s", sh->dir, rerr);
        rocksdb_free(rerr);
        return -1;
    }
    return 0;
}

int shard_write(struct mm_shard *sh, const Memllm__WriteRequest *w, Memllm__WriteResult *res,
                struct mm_arena *ar, struct shard_status *st)
{
    struct write_ctx c = {.sh = sh, .ar = ar, .st = st, .w = w, .res = res, .now_ms = now_ms()};
    c.entity_ids = mm_arena_array(ar, w->n_entities, sizeof(uint64_t));
    c.relation_ids = mm_arena_array(ar, w->n_relations, sizeof(uint64_t));
    if (ar->failed) return shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "out of memory");
    if (check_write(sh, w, c.entity_ids, st) != 0) return -1;

    c.batch = rocksdb_writebatch_wi_create(0, 1);
    Memllm__TripleCopy **cleared = NULL;
    size_t ncleared = 0, capcleared = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < w->n_relations; i++)
        rc = ensure_relation(&c, w->relations[i], &c.relation_ids[i]);
    for (size_t i = 0; rc == 0 && i < w->n_clears; i++)
        rc = apply_clear(&c, w->clears[i], &cleared, &ncleared, &capcleared);
    for (size_t i = 0; rc == 0 && i < w->n_copies; i++)
        rc = apply_copy(&c, w->copies[i]);
    for (size_t i = 0; rc == 0 && i < w->n_aliases; i++)
        rc = apply_alias(&c, w->aliases[i]);
    if (rc == 0) rc = commit(sh, c.batch, st);
    rocksdb_writebatch_wi_destroy(c.batch);

    for (size_t i = 0; rc == 0 && i < c.nrows; i++)
        rc = mm_vindex_add(c.rows[i].ix, c.rows[i].owner, c.rows[i].norm, c.rows[i].vec, &st->err);
    if (rc != 0 && st->code == MEMLLM__STATUS__STATUS_OK) st->code = MEMLLM__STATUS__STATUS_STORAGE;
    free(c.rows);
    res->cleared = cleared;
    res->n_cleared = ncleared;
    return rc;
}

int shard_delete(struct mm_shard *sh, const Memllm__DeleteRequest *d, Memllm__DeleteResult *res,
                 struct shard_status *st)
{
    char what[96];
    uint64_t id;
    for (size_t i = 0; i < d->n_copies; i++) {
        const Memllm__TripleCopy *t = d->copies[i];
        snprintf(what, sizeof(what), "delete: key of copy %zu", i);
        if (shard_check_home(what, t->key, sh, &id, st) != 0) return -1;
        snprintf(what, sizeof(what), "delete: relation of copy %zu", i);
        if (shard_check_text(what, t->relation, st) != 0) return -1;
        snprintf(what, sizeof(what), "delete: other end of copy %zu", i);
        if (shard_check_text(what, t->other, st) != 0) return -1;
    }
    struct mm_arena ar = {0};
    rocksdb_writebatch_wi_t *batch = rocksdb_writebatch_wi_create(0, 1);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < d->n_copies; i++) {
        const Memllm__TripleCopy *t = d->copies[i];
        uint64_t kid, rid, oid;
        if (mm_text_id_of(t->key, &kid, &st->err) != 0 ||
            mm_text_id_of(t->relation, &rid, &st->err) != 0 ||
            mm_text_id_of(t->other, &oid, &st->err) != 0) {
            rc = shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "out of memory");
            break;
        }
        unsigned char key[TRIPLE_KEY_LEN];
        triple_key(key, kid, rid, t->reverse, oid);
        char *val;
        size_t vlen;
        int found = shard_get(sh, batch, CF_TRIPLES, key, TRIPLE_KEY_LEN, &val, &vlen, st);
        if (found < 0) {
            rc = -1;
        } else if (found) {
            rocksdb_free(val);
            rc = delete_copy(sh, batch, &ar, key, st);
            res->deleted++;
            if (!t->reverse) res->forward_deleted++;
        } else {
            res->missing++;
        }
    }
    if (rc == 0) rc = commit(sh, batch, st);
    rocksdb_writebatch_wi_destroy(batch);
    mm_arena_free(&ar);
    return rc;
}
