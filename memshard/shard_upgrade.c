/* The upgrade of a shard database from format 1 to format 2, in place, when
 * the shard opens it (or restores a backup of it).
 *
 * Format 1 kept two families that format 2 folds into others:
 *   entities    id -> store.EntityV1 (canonical text, aliases): the aliases
 *               move into the entity's canonical name row;
 *   provenance  triple key, source hash -> memllm.Provenance: the records
 *               move into their triple copy's value.
 * Rows are converted in batches; the meta record says format 2 only in the
 * last one, and the two families are dropped after it. Converting is
 * idempotent (a value is rebuilt from the old families, never appended to),
 * so a crash anywhere leaves a database this code finishes at the next
 * open. */
#include "shard_internal.h"
#include "text.h"

#include <stdlib.h>

#define UPGRADE_BATCH_OPS 4096

enum { OLD_ENTITIES, OLD_PROVENANCE, OLD_COUNT };
static const char *const old_names[OLD_COUNT] = {"entities", "provenance"};

struct upgrade {
    struct mm_shard *sh;
    struct shard_status *st;
    rocksdb_t *db;
    size_t nfam;
    char **fam;                          /* every family of the database */
    rocksdb_column_family_handle_t **cf; /* by fam index */
    rocksdb_column_family_handle_t *names, *triples, *meta, *old[OLD_COUNT];
    rocksdb_writebatch_t *batch;
    size_t pending;
};

static int upgrade_fail(struct upgrade *u, char *rerr, const char *what)
{
    shard_fail(u->st, MEMLLM__STATUS__STATUS_STORAGE, "%s: upgrade from format 1: %s%s%s",
               u->sh->dir, what, rerr ? ": " : "", rerr ? rerr : "");
    rocksdb_free(rerr);
    return -1;
}

static int flush(struct upgrade *u)
{
    char *rerr = NULL;
    rocksdb_write(u->db, u->sh->wopt, u->batch, &rerr);
    rocksdb_writebatch_clear(u->batch);
    u->pending = 0;
    return rerr ? upgrade_fail(u, rerr, "write") : 0;
}

static int put(struct upgrade *u, rocksdb_column_family_handle_t *cf, const void *key, size_t klen,
               const ProtobufCMessage *msg)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) return upgrade_fail(u, NULL, "out of memory");
    protobuf_c_message_pack(msg, buf);
    rocksdb_writebatch_put_cf(u->batch, cf, key, klen, (const char *)buf, n);
    free(buf);
    return ++u->pending == UPGRADE_BATCH_OPS ? flush(u) : 0;
}

static int iter_failed(struct upgrade *u, rocksdb_iterator_t *it)
{
    char *rerr = NULL;
    rocksdb_iter_get_error(it, &rerr);
    return rerr ? upgrade_fail(u, rerr, "read") : 0;
}

/* An entity record's aliases go into its canonical name row. */
static int fold_entity(struct upgrade *u, rocksdb_iterator_t *unused, const unsigned char *key,
                       size_t klen, const uint8_t *val, size_t vlen)
{
    (void)unused;
    Memllm__Store__EntityV1 *e = memllm__store__entity_v1__unpack(NULL, vlen, val);
    if (!e || klen != 8) {
        if (e) memllm__store__entity_v1__free_unpacked(e, NULL);
        return upgrade_fail(u, NULL, "damaged entity record");
    }
    char *norm = mm_text_normalise(e->text);
    unsigned char *nkey = norm ? malloc(strlen(norm) + 9) : NULL;
    int rc = 0;
    if (!nkey) {
        rc = upgrade_fail(u, NULL, "out of memory");
    } else {
        size_t nklen = shard_name_key(nkey, norm, get_be64(key));
        char *rerr = NULL;
        size_t len;
        char *row =
            rocksdb_get_cf(u->db, u->sh->ropt, u->names, (const char *)nkey, nklen, &len, &rerr);
        Memllm__Store__Name *name =
            row ? memllm__store__name__unpack(NULL, len, (const uint8_t *)row) : NULL;
        if (rerr) {
            rc = upgrade_fail(u, rerr, "read");
        } else if (!name) {
            rc = upgrade_fail(u, NULL, "entity record without its name row");
        } else {
            /* Pointers into e: packed before e is freed. */
            name->aliases = e->aliases;
            name->n_aliases = e->n_aliases;
            rc = put(u, u->names, nkey, nklen, &name->base);
            name->aliases = NULL;
            name->n_aliases = 0;
        }
        if (name) memllm__store__name__free_unpacked(name, NULL);
        rocksdb_free(row);
    }
    free(nkey);
    free(norm);
    memllm__store__entity_v1__free_unpacked(e, NULL);
    return rc;
}

/* A triple copy's value rebuilt from its other end and the provenance
 * records under its key. */
static int fold_triple(struct upgrade *u, rocksdb_iterator_t *prov, const unsigned char *key,
                       size_t klen, const uint8_t *val, size_t vlen)
{
    Memllm__Store__Triple *t = memllm__store__triple__unpack(NULL, vlen, val);
    if (!t || klen != TRIPLE_KEY_LEN) {
        if (t) memllm__store__triple__free_unpacked(t, NULL);
        return upgrade_fail(u, NULL, "damaged triple record");
    }
    Memllm__Provenance **recs = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (rocksdb_iter_seek(prov, (const char *)key, TRIPLE_KEY_LEN);
         rc == 0 && rocksdb_iter_valid(prov); rocksdb_iter_next(prov)) {
        size_t pklen, pvlen;
        const char *pk = rocksdb_iter_key(prov, &pklen);
        if (pklen < TRIPLE_KEY_LEN || memcmp(pk, key, TRIPLE_KEY_LEN) != 0) break;
        const uint8_t *pv = (const uint8_t *)rocksdb_iter_value(prov, &pvlen);
        Memllm__Provenance *p = memllm__provenance__unpack(NULL, pvlen, pv);
        if (!p) {
            rc = upgrade_fail(u, NULL, "damaged provenance record");
            break;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 4;
            Memllm__Provenance **grown = realloc(recs, cap * sizeof(*grown));
            if (!grown) {
                memllm__provenance__free_unpacked(p, NULL);
                rc = upgrade_fail(u, NULL, "out of memory");
                break;
            }
            recs = grown;
        }
        recs[n++] = p;
    }
    if (rc == 0) rc = iter_failed(u, prov);
    if (rc == 0) {
        Memllm__Store__Triple rebuilt = MEMLLM__STORE__TRIPLE__INIT;
        rebuilt.other = t->other;
        rebuilt.provenance = recs;
        rebuilt.n_provenance = n;
        rc = put(u, u->triples, key, klen, &rebuilt.base);
    }
    for (size_t i = 0; i < n; i++)
        memllm__provenance__free_unpacked(recs[i], NULL);
    free(recs);
    memllm__store__triple__free_unpacked(t, NULL);
    return rc;
}

/* Runs fold over every row of one family (triples in total order). */
static int each_row(struct upgrade *u, rocksdb_column_family_handle_t *cf,
                    int (*fold)(struct upgrade *, rocksdb_iterator_t *, const unsigned char *,
                                size_t, const uint8_t *, size_t),
                    rocksdb_iterator_t *aux)
{
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(u->db, u->sh->ropt_ordered, cf);
    int rc = 0;
    for (rocksdb_iter_seek_to_first(it); rc == 0 && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &klen);
        const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vlen);
        rc = fold(u, aux, k, klen, v, vlen);
    }
    if (rc == 0) rc = iter_failed(u, it);
    rocksdb_iter_destroy(it);
    return rc;
}

/* Converts the rows unless the meta record says this was done, then marks
 * it done. */
static int convert(struct upgrade *u)
{
    char *rerr = NULL;
    size_t len;
    char *raw = rocksdb_get_cf(u->db, u->sh->ropt, u->meta, "meta", 4, &len, &rerr);
    if (rerr) return upgrade_fail(u, rerr, "read");
    Memllm__Store__Meta *m =
        raw ? memllm__store__meta__unpack(NULL, len, (const uint8_t *)raw) : NULL;
    rocksdb_free(raw);
    if (!m) return upgrade_fail(u, NULL, "no meta record");
    int rc = 0;
    if (m->format == 1) {
        rocksdb_iterator_t *prov =
            rocksdb_create_iterator_cf(u->db, u->sh->ropt, u->old[OLD_PROVENANCE]);
        rc = each_row(u, u->old[OLD_ENTITIES], fold_entity, NULL);
        if (rc == 0) rc = each_row(u, u->triples, fold_triple, prov);
        rocksdb_iter_destroy(prov);
        m->format = SHARD_FORMAT;
        if (rc == 0) rc = put(u, u->meta, "meta", 4, &m->base);
        if (rc == 0 && u->pending) rc = flush(u);
    } else if (m->format != SHARD_FORMAT) {
        rc = upgrade_fail(u, NULL, "meta record of an unknown format");
    }
    memllm__store__meta__free_unpacked(m, NULL);
    return rc;
}

static rocksdb_column_family_handle_t *family(struct upgrade *u, const char *name)
{
    for (size_t i = 0; i < u->nfam; i++)
        if (strcmp(u->fam[i], name) == 0) return u->cf[i];
    return NULL;
}

static int open_all(struct upgrade *u)
{
    const rocksdb_options_t **opts = calloc(u->nfam, sizeof(*opts));
    u->cf = calloc(u->nfam, sizeof(*u->cf));
    if (!opts || !u->cf) {
        free(opts);
        return upgrade_fail(u, NULL, "out of memory");
    }
    for (size_t i = 0; i < u->nfam; i++)
        opts[i] = strcmp(u->fam[i], "triples") == 0 ? u->sh->triple_options : u->sh->options;
    char *rerr = NULL;
    u->db = rocksdb_open_column_families(u->sh->options, u->sh->dir, (int)u->nfam,
                                         (const char *const *)u->fam, opts, u->cf, &rerr);
    free(opts);
    if (rerr) {
        u->db = NULL;
        return upgrade_fail(u, rerr, "open");
    }
    u->names = family(u, "names");
    u->triples = family(u, "triples");
    u->meta = family(u, "default");
    for (int i = 0; i < OLD_COUNT; i++)
        u->old[i] = family(u, old_names[i]);
    if (!u->names || !u->triples || !u->meta || !u->old[OLD_ENTITIES] || !u->old[OLD_PROVENANCE])
        return upgrade_fail(u, NULL, "a family of format 1 is missing");
    return 0;
}

static int drop_old(struct upgrade *u)
{
    for (int i = 0; i < OLD_COUNT; i++) {
        char *rerr = NULL;
        rocksdb_drop_column_family(u->db, u->old[i], &rerr);
        if (rerr) return upgrade_fail(u, rerr, "drop family");
    }
    return 0;
}

int shard_upgrade(struct mm_shard *sh, struct shard_status *st)
{
    struct upgrade u = {.sh = sh, .st = st};
    char *rerr = NULL;
    u.fam = rocksdb_list_column_families(sh->options, sh->dir, &u.nfam, &rerr);
    if (rerr) { /* no database yet; the list is allocated even then */
        rocksdb_free(rerr);
        rocksdb_list_column_families_destroy(u.fam, u.nfam);
        return 0;
    }
    int old = 0;
    for (size_t i = 0; i < u.nfam; i++)
        for (int j = 0; j < OLD_COUNT; j++)
            old |= strcmp(u.fam[i], old_names[j]) == 0;
    int rc = 0;
    if (old) {
        u.batch = rocksdb_writebatch_create();
        rc = open_all(&u);
        if (rc == 0) rc = convert(&u);
        if (rc == 0) rc = drop_old(&u);
        rocksdb_writebatch_destroy(u.batch);
        for (size_t i = 0; u.cf && i < u.nfam; i++)
            if (u.cf[i]) rocksdb_column_family_handle_destroy(u.cf[i]);
        free(u.cf);
        if (u.db) rocksdb_close(u.db);
    }
    rocksdb_list_column_families_destroy(u.fam, u.nfam);
    return rc;
}
