/* Write and delete: the only handlers that change a shard.
 *
 * A write request is checked whole before anything is written. Its changes
 * are then gathered in memory (struct request_writes), where later items of
 * the request see earlier ones (a repeated entity or triple is stored once),
 * and committed as one RocksDB WriteBatch with the write-ahead log on, in
 * key order: the memtable's skiplist then inserts each key next to the one
 * before, which is several times cheaper than inserting them in request
 * order. What exists already is known without reading RocksDB for entities
 * and relation types (the shard's id maps, shard_internal.h); triple copies
 * and names are looked up (bloom filters make a miss cheap). The in-memory
 * indexes and maps learn the new rows only after the commit succeeded, from
 * room reserved before it, so that nothing can fail between the two. */
#include "shard_internal.h"
#include "text.h"

#include <stdalign.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* One put or delete of the request. */
struct write_op {
    int cf, del;
    uint32_t seq; /* request order, which decides between ops on one key */
    const unsigned char *key, *val;
    size_t klen, vlen;
};

/* Storage of the ops' keys and values: not zeroed (an arena's memory is),
 * since each byte is written once, by a copy or a pack. */
struct byte_chunk {
    struct byte_chunk *next;
    size_t used, size;
    alignas(max_align_t) unsigned char data[];
};

/* The request's writes, and the latest one of each key. */
struct request_writes {
    struct write_op *ops;
    size_t n, cap;
    uint32_t *slot; /* hash of (cf, key) -> 1 + index of its latest op; 0: free */
    size_t mask;
    struct byte_chunk *bytes;
};

/* A row the vector indexes (and id maps) get after the commit. */
struct pending_row {
    int relation;  /* relations index, else names */
    int canonical; /* an entity's own name, or a relation type: also goes into the id map */
    uint64_t owner;
    char *norm; /* malloc'ed; the index takes it */
    const float *vec;
};

/* An entity's canonical name row that the request creates or extends with
 * aliases; written once, at the end. */
struct entity_update {
    uint64_t id;
    const char *text, *norm;
    const float *vec; /* dim floats */
    char **aliases;
    size_t naliases, cap;
};

struct write_ctx {
    struct mm_shard *sh;
    struct mm_arena *ar;
    struct shard_status *st;
    const Memllm__WriteRequest *w;
    Memllm__WriteResult *res;
    int64_t now_ms;
    struct request_writes rw;
    struct id_map request_entities; /* id -> its Memllm__Embedded in the request */
    struct id_map updates;          /* id -> struct entity_update */
    struct entity_update **update_list;
    size_t nupdates, capupdates;
    struct pending_row *rows;
    size_t nrows, caprows;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int oom(struct write_ctx *c)
{
    return shard_fail(c->st, MEMLLM__STATUS__STATUS_STORAGE, "out of memory");
}

static uint64_t key_hash(int cf, const unsigned char *key, size_t klen)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ (uint64_t)cf;
    for (size_t i = 0; i < klen; i++)
        h = (h ^ key[i]) * 0x100000001b3ULL;
    return h ^ h >> 31;
}

static int same_key(const struct write_op *op, int cf, const unsigned char *key, size_t klen)
{
    return op->cf == cf && op->klen == klen && memcmp(op->key, key, klen) == 0;
}

/* The latest op of the request on (cf, key), or NULL. */
static const struct write_op *rw_find(const struct request_writes *rw, int cf, const void *key,
                                      size_t klen)
{
    if (!rw->slot) return NULL;
    for (size_t i = (size_t)key_hash(cf, key, klen) & rw->mask; rw->slot[i];
         i = (i + 1) & rw->mask) {
        const struct write_op *op = &rw->ops[rw->slot[i] - 1];
        if (same_key(op, cf, key, klen)) return op;
    }
    return NULL;
}

static void rw_index(struct request_writes *rw, size_t op_index)
{
    const struct write_op *op = &rw->ops[op_index];
    size_t i = (size_t)key_hash(op->cf, op->key, op->klen) & rw->mask;
    while (rw->slot[i] && !same_key(&rw->ops[rw->slot[i] - 1], op->cf, op->key, op->klen))
        i = (i + 1) & rw->mask;
    rw->slot[i] = (uint32_t)(op_index + 1);
}

static unsigned char *rw_bytes(struct request_writes *rw, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    struct byte_chunk *c = rw->bytes;
    if (!c || c->size - c->used < n) {
        size_t size = n > (256u << 10) ? n : 256u << 10;
        c = malloc(sizeof(*c) + size);
        if (!c) return NULL;
        c->next = rw->bytes;
        c->used = 0;
        c->size = size;
        rw->bytes = c;
    }
    unsigned char *p = c->data + c->used;
    c->used += n;
    return p;
}

/* Records an op; its key is copied, its value (len vlen) must already be in
 * the request's storage (rw_bytes). */
static int rw_add(struct write_ctx *c, int cf, int del, const void *key, size_t klen,
                  const unsigned char *val, size_t vlen)
{
    struct request_writes *rw = &c->rw;
    if (rw->n == rw->cap) {
        size_t cap = rw->cap ? rw->cap * 2 : 256;
        struct write_op *ops = realloc(rw->ops, cap * sizeof(*ops));
        uint32_t *slot = calloc(2 * cap, sizeof(*slot));
        if (!ops || !slot) {
            if (ops) rw->ops = ops;
            free(slot);
            return oom(c);
        }
        rw->ops = ops;
        rw->cap = cap;
        free(rw->slot);
        rw->slot = slot;
        rw->mask = 2 * cap - 1;
        for (size_t i = 0; i < rw->n; i++)
            rw_index(rw, i);
    }
    unsigned char *k = rw_bytes(rw, klen);
    if (!k) return oom(c);
    memcpy(k, key, klen);
    rw->ops[rw->n] = (struct write_op){cf, del, (uint32_t)rw->n, k, val, klen, vlen};
    rw_index(rw, rw->n);
    rw->n++;
    return 0;
}

static int rw_put_message(struct write_ctx *c, int cf, const void *key, size_t klen,
                          const ProtobufCMessage *msg)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = rw_bytes(&c->rw, n ? n : 1);
    if (!buf) return oom(c);
    protobuf_c_message_pack(msg, buf);
    return rw_add(c, cf, 0, key, klen, buf, n);
}

static void rw_free(struct request_writes *rw)
{
    free(rw->ops);
    free(rw->slot);
    while (rw->bytes) {
        struct byte_chunk *next = rw->bytes->next;
        free(rw->bytes);
        rw->bytes = next;
    }
}

/* The value of (cf, key) once the request's earlier ops are applied: 1 and
 * *val (in the request's storage), 0 when absent, -1 on a storage error. */
static int current_value(struct write_ctx *c, int cf, const void *key, size_t klen,
                         const unsigned char **val, size_t *vlen)
{
    const struct write_op *op = rw_find(&c->rw, cf, key, klen);
    if (op) {
        *val = op->val;
        *vlen = op->vlen;
        return !op->del;
    }
    char *v;
    size_t n;
    int found = shard_get(c->sh, NULL, cf, key, klen, &v, &n, c->st);
    if (found <= 0) return found;
    unsigned char *copy = rw_bytes(&c->rw, n ? n : 1);
    if (copy) memcpy(copy, v, n);
    rocksdb_free(v);
    if (!copy) return oom(c);
    *val = copy;
    *vlen = n;
    return 1;
}

static int op_order(const void *pa, const void *pb)
{
    const struct write_op *a = pa, *b = pb;
    if (a->cf != b->cf) return a->cf - b->cf;
    size_t n = a->klen < b->klen ? a->klen : b->klen;
    int d = memcmp(a->key, b->key, n);
    if (d) return d;
    if (a->klen != b->klen) return a->klen < b->klen ? -1 : 1;
    return a->seq < b->seq ? -1 : 1;
}

/* Writes the ops in key order (a key's ops keep their request order) as one
 * batch with the write-ahead log on. */
static int rw_commit(struct write_ctx *c)
{
    struct request_writes *rw = &c->rw;
    if (rw->n == 0) return 0;
    qsort(rw->ops, rw->n, sizeof(*rw->ops), op_order);
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    for (size_t i = 0; i < rw->n; i++) {
        const struct write_op *op = &rw->ops[i];
        if (op->del)
            rocksdb_writebatch_delete_cf(b, c->sh->cf[op->cf], (const char *)op->key, op->klen);
        else
            rocksdb_writebatch_put_cf(b, c->sh->cf[op->cf], (const char *)op->key, op->klen,
                                      (const char *)op->val, op->vlen);
    }
    char *rerr = NULL;
    rocksdb_write(c->sh->db, c->sh->wopt, b, &rerr);
    rocksdb_writebatch_destroy(b);
    /* the ops are sorted now: the hash no longer points at them */
    free(rw->slot);
    rw->slot = NULL;
    if (rerr) return shard_storage_error(c->sh, rerr, "write failed", c->st);
    return 0;
}

static int push_row(struct write_ctx *c, int relation, int canonical, uint64_t owner,
                    const char *text, const float *vec)
{
    if (c->nrows == c->caprows) {
        size_t cap = c->caprows ? c->caprows * 2 : 32;
        struct pending_row *rows = realloc(c->rows, cap * sizeof(*rows));
        if (!rows) return oom(c);
        c->rows = rows;
        c->caprows = cap;
    }
    char *norm = mm_text_normalise(text);
    if (!norm) return oom(c);
    c->rows[c->nrows++] = (struct pending_row){relation, canonical, owner, norm, vec};
    return 0;
}

/* Stores the relation type unless it is there; every shard keeps all. */
static int ensure_relation(struct write_ctx *c, const Memllm__Embedded *r, uint64_t id)
{
    unsigned char key[8];
    put_be64(key, id);
    if (id_map_find(&c->sh->relation_ids, id) || rw_find(&c->rw, CF_RELATIONS, key, 8)) return 0;
    Memllm__Store__Relation rec = MEMLLM__STORE__RELATION__INIT;
    rec.text = r->text;
    rec.n_vec = r->n_vec;
    rec.vec = r->vec;
    if (rw_put_message(c, CF_RELATIONS, key, 8, &rec.base) != 0) return -1;
    c->res->relations_added++;
    return push_row(c, 1, 1, id, r->text, r->vec);
}

static int relation_stored(struct write_ctx *c, const char *relation, uint64_t rid)
{
    unsigned char key[8];
    put_be64(key, rid);
    /* The request's own relation types were stored by ensure_relation. */
    if (id_map_find(&c->sh->relation_ids, rid) || rw_find(&c->rw, CF_RELATIONS, key, 8)) return 0;
    char ex[200];
    return shard_fail(c->st, MEMLLM__STATUS__STATUS_NOT_FOUND,
                      "relation '%s' is not stored on shard %u and the request does not carry it",
                      mm_text_excerpt(relation, ex, sizeof(ex)), c->sh->index);
}

static int add_update(struct write_ctx *c, struct entity_update *u)
{
    if (c->nupdates == c->capupdates) {
        size_t cap = c->capupdates ? c->capupdates * 2 : 32;
        struct entity_update **l = mm_arena_array(c->ar, cap, sizeof(*l));
        if (!l) return oom(c);
        if (c->nupdates) memcpy(l, c->update_list, c->nupdates * sizeof(*l));
        c->update_list = l;
        c->capupdates = cap;
    }
    c->update_list[c->nupdates++] = u;
    if (id_map_put(&c->updates, u->id, u) != 0) return oom(c);
    return 0;
}

/* Makes sure the entity (homed here; norm its normalised text) exists; a
 * new one needs its embedding from the request. An existing id with another
 * text is a hash collision, refused rather than silently merging two
 * entities. */
static int ensure_entity(struct write_ctx *c, const char *text, const char *norm, uint64_t id)
{
    char ex[200], ex2[200];
    const char *known = id_map_find(&c->sh->entity_ids, id);
    const struct entity_update *u = id_map_find(&c->updates, id);
    if (!known && u) known = u->norm;
    if (known) {
        if (strcmp(known, norm) == 0) return 0;
        return shard_fail(c->st, MEMLLM__STATUS__STATUS_INVALID_ARGUMENT,
                          "entity '%s' has the same id as the stored entity '%s' (hash collision)",
                          mm_text_excerpt(text, ex, sizeof(ex)),
                          mm_text_excerpt(known, ex2, sizeof(ex2)));
    }
    const Memllm__Embedded *e = id_map_find(&c->request_entities, id);
    if (!e)
        return shard_fail(c->st, MEMLLM__STATUS__STATUS_NOT_FOUND,
                          "entity '%s' is new on shard %u and the request carries no embedding "
                          "for it",
                          mm_text_excerpt(text, ex, sizeof(ex)), c->sh->index);
    struct entity_update *nu = mm_arena_alloc(c->ar, sizeof(*nu));
    if (!nu) return oom(c);
    nu->id = id;
    nu->text = e->text;
    nu->vec = e->vec;
    nu->norm = mm_arena_strdup(c->ar, norm);
    if (!nu->norm) return oom(c);
    if (add_update(c, nu) != 0) return -1;
    c->res->entities_added++;
    return push_row(c, 0, 1, id, e->text, e->vec);
}

/* The normalised text (arena) and id of a text. */
static const char *norm_id(struct write_ctx *c, const char *text, uint64_t *id)
{
    char *norm = mm_text_normalise(text);
    const char *copy = norm ? mm_arena_strdup(c->ar, norm) : NULL;
    free(norm);
    if (!copy) {
        oom(c);
        return NULL;
    }
    *id = mm_text_id(copy);
    return copy;
}

/* Collects the keys of one column family that start with prefix, in the
 * database, less those the request deleted already. */
struct key_list {
    unsigned char **keys;
    size_t *lens;
    char **values; /* arena copies */
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
    l->values[l->n] = mm_arena_memdup(ar, v, vlen ? vlen : 1);
    if (!l->keys[l->n] || !l->values[l->n]) return -1;
    l->lens[l->n] = klen;
    l->vlens[l->n] = vlen;
    l->n++;
    return 0;
}

static int collect_prefix(struct write_ctx *c, int cf, const unsigned char *prefix, size_t plen,
                          struct key_list *out)
{
    struct mm_shard *sh = c->sh;
    memset(out, 0, sizeof(*out));
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(sh->db, sh->ropt, sh->cf[cf]);
    int rc = 0;
    for (rocksdb_iter_seek(it, (const char *)prefix, plen); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        if (klen < plen || memcmp(k, prefix, plen) != 0) break;
        const struct write_op *op = rw_find(&c->rw, cf, k, klen);
        if (op && op->del) continue;
        const char *v = rocksdb_iter_value(it, &vlen);
        if (key_list_push(out, c->ar, k, klen, v, vlen) != 0) {
            rc = oom(c);
            break;
        }
    }
    char *rerr = NULL;
    rocksdb_iter_get_error(it, &rerr);
    if (rerr) {
        rc = shard_fail(c->st, MEMLLM__STATUS__STATUS_STORAGE, "%s: %s", sh->dir, rerr);
        rocksdb_free(rerr);
    }
    rocksdb_iter_destroy(it);
    return rc;
}

/* Whether the request's copies include the one under tkey: 1, 0, or -1
 * when out of memory. */
static int request_has_copy(struct write_ctx *c, const unsigned char *tkey)
{
    for (size_t i = 0; i < c->w->n_copies; i++) {
        const Memllm__TripleCopy *t = c->w->copies[i];
        uint64_t kid, rid, oid;
        if (mm_text_id_of(t->key, &kid, &c->st->err) != 0 ||
            mm_text_id_of(t->relation, &rid, &c->st->err) != 0 ||
            mm_text_id_of(t->other, &oid, &c->st->err) != 0)
            return oom(c);
        unsigned char k[TRIPLE_KEY_LEN];
        triple_key(k, kid, rid, t->reverse, oid);
        if (memcmp(k, tkey, TRIPLE_KEY_LEN) == 0) return 1;
    }
    return 0;
}

/* A clear spares the copies its request writes: replacing (s, r, *) by a
 * stored (s, r, o) keeps that fact's provenance, as its other copy (which
 * no clear touches) does, and the write then adds the edit's. */
static int apply_clear(struct write_ctx *c, const Memllm__Clear *cl, Memllm__TripleCopy ***cleared,
                       size_t *ncleared, size_t *capcleared)
{
    uint64_t kid, rid;
    if (mm_text_id_of(cl->key, &kid, &c->st->err) != 0 ||
        mm_text_id_of(cl->relation, &rid, &c->st->err) != 0)
        return oom(c);
    unsigned char prefix[TRIPLE_KEY_LEN]; /* a whole key; the first 17 bytes are used */
    triple_key(prefix, kid, rid, cl->reverse, 0);
    struct key_list l;
    if (collect_prefix(c, CF_TRIPLES, prefix, TRIPLE_PREFIX_LEN, &l) != 0) return -1;
    for (size_t i = 0; i < l.n; i++) {
        if (l.lens[i] != TRIPLE_KEY_LEN) continue;
        int kept = request_has_copy(c, l.keys[i]);
        if (kept < 0) return -1;
        if (kept) continue;
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
        if (!copy || !other || !*cleared) return oom(c);
        memllm__triple_copy__init(copy);
        copy->key = cl->key;
        copy->relation = cl->relation;
        copy->other = other;
        copy->reverse = cl->reverse;
        (*cleared)[(*ncleared)++] = copy;
        if (rw_add(c, CF_TRIPLES, 1, l.keys[i], TRIPLE_KEY_LEN, NULL, 0) != 0) return -1;
    }
    return 0;
}

/* Whether the triple value already holds a record of p's source and
 * sentence: -1 when the value does not decode. */
static int has_source(const unsigned char *val, size_t vlen, const Memllm__Provenance *p)
{
    Memllm__Store__Triple *t = memllm__store__triple__unpack(NULL, vlen, val);
    if (!t) return -1;
    int found = 0;
    for (size_t i = 0; i < t->n_provenance && !found; i++)
        found = t->provenance[i]->sentence == p->sentence &&
                strcmp(t->provenance[i]->source, p->source) == 0;
    memllm__store__triple__free_unpacked(t, NULL);
    return found;
}

/* A triple value with one more provenance record: the old bytes followed by
 * the record as field 2, which protobuf reads as appended to the repeated
 * field. */
static int put_with_provenance(struct write_ctx *c, const unsigned char *key,
                               const unsigned char *old, size_t oldlen, const Memllm__Provenance *p)
{
    size_t plen = memllm__provenance__get_packed_size(p);
    unsigned char *buf = rw_bytes(&c->rw, oldlen + 11 + plen);
    if (!buf) return oom(c);
    memcpy(buf, old, oldlen);
    size_t n = oldlen;
    buf[n++] = 2 << 3 | 2; /* field 2, length-delimited */
    for (size_t v = plen;; v >>= 7) {
        buf[n++] = (unsigned char)(v & 0x7f) | (v >= 0x80 ? 0x80 : 0);
        if (v < 0x80) break;
    }
    n += memllm__provenance__pack(p, buf + n);
    return rw_add(c, CF_TRIPLES, 0, key, TRIPLE_KEY_LEN, buf, n);
}

static int apply_copy(struct write_ctx *c, const Memllm__TripleCopy *t)
{
    uint64_t kid, rid, oid;
    const char *norm = norm_id(c, t->key, &kid);
    if (!norm || !norm_id(c, t->relation, &rid) || !norm_id(c, t->other, &oid)) return -1;
    if (ensure_entity(c, t->key, norm, kid) != 0 || relation_stored(c, t->relation, rid) != 0)
        return -1;
    unsigned char key[TRIPLE_KEY_LEN];
    triple_key(key, kid, rid, t->reverse, oid);
    const unsigned char *old = NULL;
    size_t oldlen = 0;
    int found = current_value(c, CF_TRIPLES, key, TRIPLE_KEY_LEN, &old, &oldlen);
    if (found < 0) return -1;
    Memllm__Provenance p = *t->provenance;
    if (p.time_ms == 0) p.time_ms = c->now_ms;
    if (found) {
        c->res->copies_existing++;
        if (!t->reverse) c->res->forward_existing++;
        int dup = has_source(old, oldlen, &p);
        if (dup < 0)
            return shard_fail(c->st, MEMLLM__STATUS__STATUS_STORAGE, "%s: damaged triple record",
                              c->sh->dir);
        if (dup) return 0;
    } else {
        Memllm__Store__Triple rec = MEMLLM__STORE__TRIPLE__INIT;
        rec.other = t->other;
        unsigned char *buf = rw_bytes(&c->rw, protobuf_c_message_get_packed_size(&rec.base));
        if (!buf) return oom(c);
        oldlen = protobuf_c_message_pack(&rec.base, buf);
        old = buf;
        c->res->copies_added++;
        if (!t->reverse) c->res->forward_added++;
    }
    if (put_with_provenance(c, key, old, oldlen, &p) != 0) return -1;
    c->res->provenance_added++;
    return 0;
}

/* The canonical row of an entity that gets aliases: the request's own, or
 * a copy of the stored one. */
static struct entity_update *entity_for_alias(struct write_ctx *c, uint64_t id)
{
    struct entity_update *u = (struct entity_update *)id_map_find(&c->updates, id);
    if (u) return u;
    Memllm__Store__Name *e;
    if (shard_get_entity_row(c->sh, id, &e, c->st) != 0) return NULL;
    if (e->n_vec != (size_t)c->sh->dim) {
        memllm__store__name__free_unpacked(e, NULL);
        shard_fail(c->st, MEMLLM__STATUS__STATUS_STORAGE, "%s: damaged name row of entity %016llx",
                   c->sh->dir, (unsigned long long)id);
        return NULL;
    }
    u = mm_arena_alloc(c->ar, sizeof(*u));
    if (u) {
        u->id = id;
        u->text = mm_arena_strdup(c->ar, e->text);
        u->vec = mm_arena_memdup(c->ar, e->vec, e->n_vec * sizeof(float));
        u->norm = id_map_find(&c->sh->entity_ids, id);
        u->cap = e->n_aliases + 4;
        u->aliases = mm_arena_array(c->ar, u->cap, sizeof(*u->aliases));
        for (size_t i = 0; u->aliases && i < e->n_aliases; i++)
            u->aliases[u->naliases++] = mm_arena_strdup(c->ar, e->aliases[i]);
    }
    memllm__store__name__free_unpacked(e, NULL);
    if (c->ar->failed || !u) {
        oom(c);
        return NULL;
    }
    return add_update(c, u) == 0 ? u : NULL;
}

static int apply_alias(struct write_ctx *c, const Memllm__Alias *a)
{
    uint64_t id;
    const char *enorm = norm_id(c, a->entity, &id);
    if (!enorm || ensure_entity(c, a->entity, enorm, id) != 0) return -1;
    char *norm = mm_text_normalise(a->alias);
    unsigned char *nkey = norm ? mm_arena_alloc(c->ar, strlen(norm) + 9) : NULL;
    if (!nkey) {
        free(norm);
        return oom(c);
    }
    /* The entity's own name (normalised) is its canonical row, not an alias;
     * that row of a new entity is written at the end of the request. */
    int own = strcmp(norm, enorm) == 0;
    size_t nklen = shard_name_key(nkey, norm, id);
    free(norm);
    if (own) return 0;
    const unsigned char *val;
    size_t vlen;
    int found = current_value(c, CF_NAMES, nkey, nklen, &val, &vlen);
    if (found != 0) return found < 0 ? -1 : 0;
    Memllm__Store__Name name = MEMLLM__STORE__NAME__INIT;
    name.entity_id = id;
    name.text = a->alias;
    name.n_vec = a->n_vec;
    name.vec = a->vec;
    if (rw_put_message(c, CF_NAMES, nkey, nklen, &name.base) != 0) return -1;

    struct entity_update *u = entity_for_alias(c, id);
    if (!u) return -1;
    if (u->naliases == u->cap) {
        size_t cap = u->cap ? u->cap * 2 : 4;
        char **grown = mm_arena_array(c->ar, cap, sizeof(*grown));
        if (!grown) return oom(c);
        if (u->naliases) memcpy(grown, u->aliases, u->naliases * sizeof(*grown));
        u->aliases = grown;
        u->cap = cap;
    }
    u->aliases[u->naliases++] = a->alias;
    c->res->aliases_added++;
    return push_row(c, 0, 0, id, a->alias, a->vec);
}

/* The canonical name rows created or extended by the request. */
static int put_entities(struct write_ctx *c)
{
    for (size_t i = 0; i < c->nupdates; i++) {
        const struct entity_update *u = c->update_list[i];
        unsigned char *key = mm_arena_alloc(c->ar, strlen(u->norm) + 9);
        if (!key) return oom(c);
        Memllm__Store__Name rec = MEMLLM__STORE__NAME__INIT;
        rec.entity_id = u->id;
        rec.text = (char *)u->text;
        rec.n_vec = (size_t)c->sh->dim;
        rec.vec = (float *)u->vec;
        rec.aliases = u->aliases;
        rec.n_aliases = u->naliases;
        if (rw_put_message(c, CF_NAMES, key, shard_name_key(key, u->norm, u->id), &rec.base) != 0)
            return -1;
    }
    return 0;
}

/* One copy's checks. A request has thousands of copies: their labels are
 * formatted only when a message needs them (named). */
static int check_copy(struct mm_shard *sh, const Memllm__TripleCopy *t, size_t index, int named,
                      struct shard_status *st)
{
    char key[64] = "write: key of a copy", rel[64] = "write: relation of a copy";
    char other[64] = "write: other end of a copy", prov[64] = "write: provenance of a copy";
    if (named) {
        snprintf(key, sizeof(key), "write: key of copy %zu", index);
        snprintf(rel, sizeof(rel), "write: relation of copy %zu", index);
        snprintf(other, sizeof(other), "write: other end of copy %zu", index);
        snprintf(prov, sizeof(prov), "write: provenance of copy %zu", index);
    }
    uint64_t id;
    if (shard_check_home(key, t->key, sh, &id, st) != 0 ||
        shard_check_text(rel, t->relation, st) != 0 || shard_check_text(other, t->other, st) != 0)
        return -1;
    return shard_check_provenance(prov, t->provenance, st);
}

/* Everything a write request must satisfy before any of it is applied; the
 * ids of its entities go into the request's map. */
static int check_write(struct write_ctx *c)
{
    struct mm_shard *sh = c->sh;
    const Memllm__WriteRequest *w = c->w;
    struct shard_status *st = c->st;
    char what[96];
    uint64_t id;
    for (size_t i = 0; i < w->n_entities; i++) {
        const Memllm__Embedded *e = w->entities[i];
        if (shard_check_home("write: an entity", e->text, sh, &id, st) != 0 ||
            shard_check_vec("write: an entity", e->n_vec, e->vec, sh, st) != 0) {
            /* again, with the entity's index in the message (formatted only
             * now: a request has thousands of entities) */
            snprintf(what, sizeof(what), "write: entity %zu", i);
            if (shard_check_home(what, e->text, sh, &id, st) == 0)
                shard_check_vec(what, e->n_vec, e->vec, sh, st);
            return -1;
        }
        if (id_map_put(&c->request_entities, id, e) != 0) return oom(c);
    }
    for (size_t i = 0; i < w->n_relations; i++) {
        snprintf(what, sizeof(what), "write: relation %zu", i);
        if (shard_check_text(what, w->relations[i]->text, st) != 0 ||
            shard_check_vec(what, w->relations[i]->n_vec, w->relations[i]->vec, sh, st) != 0)
            return -1;
    }
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
    for (size_t i = 0; i < w->n_copies; i++)
        if (check_copy(sh, w->copies[i], i, 0, st) != 0) {
            check_copy(sh, w->copies[i], i, 1, st); /* again, for the message */
            return -1;
        }
    return 0;
}

/* Room for the rows and ids the commit will add, so that adding them after
 * it cannot fail. */
static int reserve_rows(struct write_ctx *c)
{
    struct mm_shard *sh = c->sh;
    size_t names = 0, relations = 0, entities = 0;
    for (size_t i = 0; i < c->nrows; i++) {
        if (c->rows[i].relation)
            relations++;
        else
            names++;
        entities += !c->rows[i].relation && c->rows[i].canonical;
    }
    if (mm_vindex_reserve(&sh->names, names, &c->st->err) != 0 ||
        mm_vindex_reserve(&sh->relations, relations, &c->st->err) != 0)
        return shard_fail(c->st, MEMLLM__STATUS__STATUS_STORAGE, "%s", c->st->err.msg);
    if (id_map_reserve(&sh->entity_ids, entities) != 0 ||
        id_map_reserve(&sh->relation_ids, relations) != 0)
        return oom(c);
    return 0;
}

/* After the commit: the indexes and id maps learn the new rows. */
static void publish_rows(struct write_ctx *c)
{
    struct mm_shard *sh = c->sh;
    for (size_t i = 0; i < c->nrows; i++) {
        struct pending_row *r = &c->rows[i];
        struct mm_vector_index *ix = r->relation ? &sh->relations : &sh->names;
        const char *text = mm_vindex_add_owned(ix, r->owner, r->norm, r->vec);
        r->norm = NULL;
        if (r->canonical)
            id_map_put(r->relation ? &sh->relation_ids : &sh->entity_ids, r->owner, text);
    }
}

int shard_write(struct mm_shard *sh, const Memllm__WriteRequest *w, Memllm__WriteResult *res,
                struct mm_arena *ar, struct shard_status *st)
{
    struct write_ctx c = {.sh = sh, .ar = ar, .st = st, .w = w, .res = res, .now_ms = now_ms()};
    Memllm__TripleCopy **cleared = NULL;
    size_t ncleared = 0, capcleared = 0;
    int rc = shard_check_writable(sh, "write", st);
    if (rc == 0) rc = check_write(&c);
    for (size_t i = 0; rc == 0 && i < w->n_relations; i++) {
        uint64_t id;
        rc = mm_text_id_of(w->relations[i]->text, &id, &st->err) != 0
                 ? oom(&c)
                 : ensure_relation(&c, w->relations[i], id);
    }
    for (size_t i = 0; rc == 0 && i < w->n_clears; i++)
        rc = apply_clear(&c, w->clears[i], &cleared, &ncleared, &capcleared);
    for (size_t i = 0; rc == 0 && i < w->n_copies; i++)
        rc = apply_copy(&c, w->copies[i]);
    for (size_t i = 0; rc == 0 && i < w->n_aliases; i++)
        rc = apply_alias(&c, w->aliases[i]);
    if (rc == 0) rc = put_entities(&c);
    if (rc == 0) rc = reserve_rows(&c);
    if (rc == 0) rc = rw_commit(&c);
    if (rc == 0) publish_rows(&c);
    for (size_t i = 0; i < c.nrows; i++)
        free(c.rows[i].norm);
    free(c.rows);
    rw_free(&c.rw);
    id_map_free(&c.request_entities);
    id_map_free(&c.updates);
    res->cleared = cleared;
    res->n_cleared = ncleared;
    return rc;
}

/* Deletes go through a WriteBatchWithIndex: a request may name one copy
 * twice, and the second must see the first gone. */
int shard_delete(struct mm_shard *sh, const Memllm__DeleteRequest *d, Memllm__DeleteResult *res,
                 struct shard_status *st)
{
    char what[96];
    uint64_t id;
    if (shard_check_writable(sh, "delete", st) != 0) return -1;
    for (size_t i = 0; i < d->n_copies; i++) {
        const Memllm__TripleCopy *t = d->copies[i];
        snprintf(what, sizeof(what), "delete: key of copy %zu", i);
        if (shard_check_home(what, t->key, sh, &id, st) != 0) return -1;
        snprintf(what, sizeof(what), "delete: relation of copy %zu", i);
        if (shard_check_text(what, t->relation, st) != 0) return -1;
        snprintf(what, sizeof(what), "delete: other end of copy %zu", i);
        if (shard_check_text(what, t->other, st) != 0) return -1;
    }
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
            rocksdb_writebatch_wi_delete_cf(batch, sh->cf[CF_TRIPLES], (const char *)key,
                                            TRIPLE_KEY_LEN);
            res->deleted++;
            if (!t->reverse) res->forward_deleted++;
        } else {
            res->missing++;
        }
    }
    char *rerr = NULL;
    if (rc == 0) rocksdb_write_writebatch_wi(sh->db, sh->wopt, batch, &rerr);
    rocksdb_writebatch_wi_destroy(batch);
    if (rerr) rc = shard_storage_error(sh, rerr, "delete failed", st);
    return rc;
}
