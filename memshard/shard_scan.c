/* Reading a shard whole or by entity: provenance of a copy, scan pages (for
 * dump and verify), get entity, and stats. */
#include "shard_internal.h"
#include "text.h"

#include <stdlib.h>

static int provenance_order(const void *pa, const void *pb)
{
    const Memllm__Provenance *a = *(Memllm__Provenance *const *)pa;
    const Memllm__Provenance *b = *(Memllm__Provenance *const *)pb;
    if (a->time_ms != b->time_ms) return a->time_ms < b->time_ms ? -1 : 1;
    int c = strcmp(a->source, b->source);
    if (c) return c;
    return (a->sentence > b->sentence) - (a->sentence < b->sentence);
}

int shard_triple_provenance(const Memllm__Store__Triple *t, uint32_t max, Memllm__Provenance ***out,
                            size_t *n_out, uint32_t *count, struct mm_arena *ar,
                            struct shard_status *st)
{
    Memllm__Provenance **all = mm_arena_array(ar, t->n_provenance, sizeof(*all));
    for (size_t i = 0; all && i < t->n_provenance; i++) {
        Memllm__Provenance *copy = mm_arena_alloc(ar, sizeof(*copy));
        if (!copy) break;
        memllm__provenance__init(copy);
        copy->source = mm_arena_strdup(ar, t->provenance[i]->source);
        copy->sentence = t->provenance[i]->sentence;
        copy->time_ms = t->provenance[i]->time_ms;
        all[i] = copy;
    }
    if (ar->failed) return shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "out of memory");
    /* Writes keep one record per (source, sentence) in a value. */
    size_t n = t->n_provenance;
    if (n > 1) qsort(all, n, sizeof(*all), provenance_order);
    *count = (uint32_t)n;
    *out = all;
    *n_out = n < max ? n : max;
    return 0;
}

static int relation_text(struct mm_shard *sh, uint64_t id, char **text, struct mm_arena *ar,
                         struct shard_status *st)
{
    unsigned char key[8];
    put_be64(key, id);
    ProtobufCMessage *msg;
    int found = shard_get_message(sh, NULL, CF_RELATIONS, key, 8,
                                  &memllm__store__relation__descriptor, &msg, st);
    if (found < 0) return -1;
    if (!found)
        return shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE,
                          "%s: triple copy refers to a missing relation %016llx", sh->dir,
                          (unsigned long long)id);
    *text = mm_arena_strdup(ar, ((Memllm__Store__Relation *)msg)->text);
    protobuf_c_message_free_unpacked(msg, NULL);
    if (!*text) return shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "out of memory");
    return 0;
}

#define SCAN_MAX_LIMIT 10000

int shard_scan(struct mm_shard *sh, const Memllm__ScanRequest *s, Memllm__ScanResult *res,
               struct mm_arena *ar, struct shard_status *st)
{
    if (s->limit == 0 || s->limit > SCAN_MAX_LIMIT)
        return shard_fail(st, MEMLLM__STATUS__STATUS_INVALID_ARGUMENT,
                          "scan: limit %u out of range 1..%d", s->limit, SCAN_MAX_LIMIT);
    if (s->after.len != 0 && s->after.len != TRIPLE_KEY_LEN)
        return shard_fail(st, MEMLLM__STATUS__STATUS_INVALID_ARGUMENT,
                          "scan: cursor of %zu bytes (expected 0 or %d)", s->after.len,
                          TRIPLE_KEY_LEN);
    res->copies = mm_arena_array(ar, s->limit, sizeof(*res->copies));
    if (ar->failed) return shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "out of memory");
    rocksdb_iterator_t *it =
        rocksdb_create_iterator_cf(sh->db, sh->ropt_ordered, sh->cf[CF_TRIPLES]);
    if (s->after.len) {
        rocksdb_iter_seek(it, (const char *)s->after.data, s->after.len);
        if (rocksdb_iter_valid(it)) {
            size_t klen;
            const char *k = rocksdb_iter_key(it, &klen);
            if (klen == s->after.len && memcmp(k, s->after.data, klen) == 0) rocksdb_iter_next(it);
        }
    } else {
        rocksdb_iter_seek_to_first(it);
    }
    int rc = 0;
    res->done = 1;
    for (; rc == 0 && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        if (res->n_copies == s->limit) {
            res->done = 0;
            break;
        }
        size_t klen;
        const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &klen);
        Memllm__Store__Triple *t = shard_iter_triple(sh, it, st);
        if (!t) {
            rc = -1;
            break;
        }
        Memllm__ScannedCopy *c = mm_arena_alloc(ar, sizeof(*c));
        if (c) {
            memllm__scanned_copy__init(c);
            c->key_id = get_be64(k);
            c->relation_id = get_be64(k + 8);
            c->reverse = k[16] != 0;
            c->other_id = get_be64(k + 17);
            c->other = mm_arena_strdup(ar, t->other);
        }
        uint32_t count;
        if (!c || ar->failed) {
            rc = shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "out of memory");
        } else if (shard_entity_text(sh, c->key_id, &c->key, ar, st) != 0 ||
                   relation_text(sh, c->relation_id, &c->relation, ar, st) != 0 ||
                   shard_triple_provenance(t, UINT32_MAX, &c->provenance, &c->n_provenance, &count,
                                           ar, st) != 0) {
            rc = -1;
        } else {
            res->copies[res->n_copies++] = c;
            res->next.data = mm_arena_memdup(ar, k, TRIPLE_KEY_LEN);
            res->next.len = TRIPLE_KEY_LEN;
        }
        memllm__store__triple__free_unpacked(t, NULL);
    }
    char *rerr = NULL;
    rocksdb_iter_get_error(it, &rerr);
    if (rerr) {
        rc = shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "%s: %s", sh->dir, rerr);
        rocksdb_free(rerr);
    }
    rocksdb_iter_destroy(it);
    if (rc == 0 && ar->failed) rc = shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "oom");
    return rc;
}

/* Counts the copies kept under an entity, per direction. */
static int count_copies(struct mm_shard *sh, uint64_t id, uint64_t *fwd, uint64_t *rev)
{
    unsigned char prefix[8];
    put_be64(prefix, id);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(sh->db, sh->ropt, sh->cf[CF_TRIPLES]);
    for (rocksdb_iter_seek(it, (const char *)prefix, 8); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen;
        const char *k = rocksdb_iter_key(it, &klen);
        if (klen != TRIPLE_KEY_LEN || memcmp(k, prefix, 8) != 0) break;
        if (k[16])
            (*rev)++;
        else
            (*fwd)++;
    }
    rocksdb_iter_destroy(it);
    return 0;
}

int shard_get_entity(struct mm_shard *sh, const Memllm__GetEntityRequest *g,
                     Memllm__GetEntityResult *res, struct mm_arena *ar, struct shard_status *st)
{
    if (shard_check_text("get entity: text", g->text, st) != 0) return -1;
    char *norm = mm_text_normalise(g->text);
    if (!norm) return shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "out of memory");
    size_t plen = strlen(norm) + 1;
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(sh->db, sh->ropt, sh->cf[CF_NAMES]);
    int rc = 0;
    size_t cap = 0;
    for (rocksdb_iter_seek(it, norm, plen); rc == 0 && rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen;
        const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &klen);
        if (klen != plen + 8 || memcmp(k, norm, plen) != 0) break;
        uint64_t id = get_be64(k + plen);
        Memllm__Store__Name *e;
        if (shard_get_entity_row(sh, id, &e, st) != 0) {
            rc = -1;
            break;
        }
        Memllm__EntityRecord *r = mm_arena_alloc(ar, sizeof(*r));
        if (r) {
            memllm__entity_record__init(r);
            r->id = id;
            r->text = mm_arena_strdup(ar, e->text);
            r->aliases = mm_arena_array(ar, e->n_aliases, sizeof(*r->aliases));
            r->n_aliases = e->n_aliases;
            for (size_t i = 0; i < e->n_aliases && r->aliases; i++)
                r->aliases[i] = mm_arena_strdup(ar, e->aliases[i]);
            count_copies(sh, id, &r->forward_copies, &r->reverse_copies);
        }
        memllm__store__name__free_unpacked(e, NULL);
        if (res->n_entities == cap) {
            cap = cap ? cap * 2 : 4;
            Memllm__EntityRecord **grown = mm_arena_array(ar, cap, sizeof(*grown));
            if (grown && res->n_entities)
                memcpy(grown, res->entities, res->n_entities * sizeof(*grown));
            res->entities = grown;
        }
        if (ar->failed) {
            rc = shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "out of memory");
            break;
        }
        res->entities[res->n_entities++] = r;
    }
    rocksdb_iter_destroy(it);
    free(norm);
    return rc;
}

static uint64_t count_keys(struct mm_shard *sh, int cf)
{
    uint64_t n = 0;
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(sh->db, sh->ropt, sh->cf[cf]);
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it))
        n++;
    rocksdb_iter_destroy(it);
    return n;
}

/* The copies per direction and their provenance records. */
static int count_copies_all(struct mm_shard *sh, Memllm__StatsResult *res, struct shard_status *st)
{
    rocksdb_iterator_t *it =
        rocksdb_create_iterator_cf(sh->db, sh->ropt_ordered, sh->cf[CF_TRIPLES]);
    int rc = 0;
    for (rocksdb_iter_seek_to_first(it); rc == 0 && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen;
        const char *k = rocksdb_iter_key(it, &klen);
        Memllm__Store__Triple *t = shard_iter_triple(sh, it, st);
        if (!t) {
            rc = -1;
            break;
        }
        if (k[16])
            res->reverse_copies++;
        else
            res->forward_copies++;
        res->provenance += t->n_provenance;
        memllm__store__triple__free_unpacked(t, NULL);
    }
    rocksdb_iter_destroy(it);
    return rc;
}

int shard_stats(struct mm_shard *sh, Memllm__StatsResult *res, struct mm_arena *ar,
                struct shard_status *st)
{
    res->shard_index = sh->index;
    res->shard_count = sh->count;
    res->embedder = mm_arena_strdup(ar, sh->embedder);
    res->dim = (uint32_t)sh->dim;
    res->entities = sh->entity_ids.n;
    res->names = count_keys(sh, CF_NAMES);
    res->relations = count_keys(sh, CF_RELATIONS);
    if (count_copies_all(sh, res, st) != 0) return -1;
    for (int cf = 0; cf < CF_COUNT; cf++) {
        uint64_t v;
        if (rocksdb_property_int_cf(sh->db, sh->cf[cf], "rocksdb.total-sst-files-size", &v) == 0)
            res->sst_bytes += v;
    }
    if (ar->failed) return shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "out of memory");
    return 0;
}
