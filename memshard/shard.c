/* Opening and closing a shard, its meta record (Hello), loading the vector
 * indexes, and the RocksDB helpers the handlers share. */
#include "shard_internal.h"
#include "text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* The approximate entity index's graph, next to the database it indexes. */
#define ANN_GRAPH_FILE "memllm-names.hnsw"

/* rocksdb::InfoLogLevel::FATAL_LEVEL (the C API has no names for the levels). */
#define SHARD_LOG_FATAL 4

static const char *const cf_names[CF_COUNT] = {"default", "names", "relations", "triples"};

int shard_fail(struct shard_status *st, Memllm__Status code, const char *fmt, ...)
{
    st->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->err.msg, sizeof(st->err.msg), fmt, ap);
    va_end(ap);
    return -1;
}

static int rocks_failed(char *rerr, struct shard_status *st, const char *what)
{
    if (!rerr) return 0;
    shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "%s: %s", what, rerr);
    rocksdb_free(rerr);
    return -1;
}

static int open_db(struct mm_shard *sh, struct shard_status *st)
{
    /* A new database handle: its files have seen no error. */
    sh->faulted = 0;
    int read_only = shard_check_space(sh) != 0;
    if (!read_only && shard_upgrade(sh, st) != 0) return -1;
    const rocksdb_options_t *cf_opts[CF_COUNT];
    for (int i = 0; i < CF_COUNT; i++)
        cf_opts[i] = i == CF_TRIPLES ? sh->triple_options : sh->options;
    char *rerr = NULL;
    /* Read-only, RocksDB replays the write-ahead log in memory and creates
     * no file. */
    sh->db = read_only ? rocksdb_open_for_read_only_column_families(
                             sh->options, sh->dir, CF_COUNT, cf_names, cf_opts, sh->cf, 0, &rerr)
                       : rocksdb_open_column_families(sh->options, sh->dir, CF_COUNT, cf_names,
                                                      cf_opts, sh->cf, &rerr);
    if (rerr && read_only) {
        /* No database to read (a new shard): the full disk is the error. */
        shard_fail(st, sh->fault_code, "%s: %s: cannot create the shard (%s)", sh->dir,
                   sh->fault_cause, sh->fault_detail.msg);
        rocksdb_free(rerr);
        sh->db = NULL;
        return -1;
    }
    if (rerr) {
        sh->db = NULL;
        return rocks_failed(rerr, st, sh->dir);
    }
    return 0;
}

void shard_close_db(struct mm_shard *sh)
{
    if (!sh->db) return;
    /* Its graph file belongs to this database: saved before a restore swaps
     * the directory. */
    mm_vindex_disable_ann(&sh->names);
    for (int i = 0; i < CF_COUNT; i++) {
        rocksdb_column_family_handle_destroy(sh->cf[i]);
        sh->cf[i] = NULL;
    }
    rocksdb_close(sh->db);
    sh->db = NULL;
}

static void forget_meta(struct mm_shard *sh)
{
    free(sh->embedder);
    sh->embedder = NULL;
    sh->configured = 0;
    sh->placed = 0;
    mm_vindex_free(&sh->names);
    mm_vindex_free(&sh->relations);
    id_map_free(&sh->entity_ids);
    id_map_free(&sh->relation_ids);
}

/* Reads the meta record, if any, and loads the indexes it makes usable. */
static int load_meta(struct mm_shard *sh, struct shard_status *st)
{
    ProtobufCMessage *msg;
    int found = shard_get_message(sh, NULL, CF_DEFAULT, "meta", 4, &memllm__store__meta__descriptor,
                                  &msg, st);
    if (found <= 0) return found;
    Memllm__Store__Meta *m = (Memllm__Store__Meta *)msg;
    if (m->format != SHARD_FORMAT || m->dim == 0 || m->shard_count == 0 ||
        m->shard_index >= m->shard_count) {
        shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE,
                   "%s: meta record has format %u, dim %u, shard %u of %u (expected format %d)",
                   sh->dir, m->format, m->dim, m->shard_index, m->shard_count, SHARD_FORMAT);
        protobuf_c_message_free_unpacked(msg, NULL);
        return -1;
    }
    sh->index = m->shard_index;
    sh->count = m->shard_count;
    sh->dim = (int)m->dim;
    sh->embedder = strdup(m->embedder);
    protobuf_c_message_free_unpacked(msg, NULL);
    if (!sh->embedder) return shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "out of memory");
    mm_vindex_init(&sh->names, sh->dim);
    mm_vindex_init(&sh->relations, sh->dim);
    sh->configured = 1;
    if (shard_load_indexes(sh, st) != 0) {
        forget_meta(sh);
        return -1;
    }
    size_t len = strlen(sh->dir) + sizeof(ANN_GRAPH_FILE) + 1;
    char *path = malloc(len);
    if (!path) {
        forget_meta(sh);
        return shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "out of memory");
    }
    snprintf(path, len, "%s/%s", sh->dir, ANN_GRAPH_FILE);
    mm_vindex_enable_ann(&sh->names, &sh->opt.ann, path);
    free(path);
    return 1;
}

int shard_reload(struct mm_shard *sh, struct shard_status *st)
{
    forget_meta(sh);
    if (!sh->db && open_db(sh, st) != 0) return -1;
    return load_meta(sh, st) < 0 ? -1 : 0;
}

struct mm_shard *mm_shard_open(const char *dir, const struct mm_shard_options *opt,
                               struct mm_err *err)
{
    struct mm_shard *sh = calloc(1, sizeof(*sh));
    if (!sh || !(sh->dir = strdup(dir))) {
        free(sh);
        mm_err_set(err, "%s: out of memory", dir);
        return NULL;
    }
    if (opt) sh->opt = *opt;
    sh->options = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(sh->options, 1);
    rocksdb_options_set_create_missing_column_families(sh->options, 1);
    /* Keep RocksDB's info log small: a shard directory is user data. */
    rocksdb_options_set_max_log_file_size(sh->options, 1 << 20);
    rocksdb_options_set_keep_log_file_num(sh->options, 2);
    /* Only fatal lines and the header written at open: RocksDB 7.8's info
     * logger, once a write to LOG failed (a full disk), aborts the process
     * on its next line (WritableFileWriter's sync_without_flush_called_
     * assertion), and a failing database logs several. */
    rocksdb_options_set_info_log_level(sh->options, SHARD_LOG_FATAL);
    /* Writes look up copies and names that are mostly absent: bloom filters,
     * in the SST files and in the memtables, answer those without a search. */
    rocksdb_block_based_table_options_t *table = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_filter_policy(table,
                                                  rocksdb_filterpolicy_create_bloom_full(10));
    rocksdb_options_set_block_based_table_factory(sh->options, table);
    rocksdb_block_based_options_destroy(table);
    rocksdb_options_set_memtable_prefix_bloom_size_ratio(sh->options, 0.02);
    rocksdb_options_set_memtable_whole_key_filtering(sh->options, 1);
    /* Triple copies are read by entity (key id first), and inserting them
     * into a sorted memtable was most of a write's time: their ids are
     * hashes, so each insert searched the whole skiplist with a cache miss a
     * level. A memtable hashed by entity keeps each entity's copies in a small
     * skiplist of their own. Scans in key order (dump, verify, stats) ask
     * for total order, which sorts that memtable once per scan. Such a
     * memtable takes one writer at a time, which a shard is. */
    rocksdb_options_set_allow_concurrent_memtable_write(sh->options, 0);
    sh->triple_options = rocksdb_options_create_copy(sh->options);
    rocksdb_options_set_prefix_extractor(sh->triple_options,
                                         rocksdb_slicetransform_create_fixed_prefix(8));
    rocksdb_options_set_hash_skip_list_rep(sh->triple_options, 1 << 18, 4, 4);
    sh->wopt = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(sh->wopt, (unsigned char)(sh->opt.sync ? 1 : 0));
    rocksdb_writeoptions_disable_WAL(sh->wopt, 0);
    sh->ropt = rocksdb_readoptions_create();
    sh->ropt_ordered = rocksdb_readoptions_create();
    rocksdb_readoptions_set_total_order_seek(sh->ropt_ordered, 1);

    struct shard_status st = {0};
    if (shard_reload(sh, &st) != 0) {
        if (!sh->opt.open_damaged) {
            *err = st.err;
            mm_shard_close(sh);
            return NULL;
        }
        /* Kept for a restore, without a database (the meta record may be
         * what failed to load, after the open). */
        shard_close_db(sh);
        forget_meta(sh);
        sh->closed_why = st.err;
    }
    return sh;
}

void mm_shard_close(struct mm_shard *sh)
{
    if (!sh) return;
    shard_close_db(sh);
    forget_meta(sh);
    rocksdb_writeoptions_destroy(sh->wopt);
    rocksdb_readoptions_destroy(sh->ropt);
    rocksdb_readoptions_destroy(sh->ropt_ordered);
    rocksdb_options_destroy(sh->triple_options);
    rocksdb_options_destroy(sh->options);
    free(sh->dir);
    free(sh);
}

int mm_shard_ann_wait(struct mm_shard *sh, struct mm_ann_status *st, struct mm_err *err)
{
    if (!sh->configured) {
        memset(st, 0, sizeof(*st));
        mm_err_set(err, "%s: not configured", sh->dir);
        return -1;
    }
    return mm_vindex_ann_wait(&sh->names, st, err);
}

int shard_hello(struct mm_shard *sh, const Memllm__Hello *h, Memllm__HelloResult *res,
                struct shard_status *st)
{
    if (h->shard_count == 0 || h->shard_index >= h->shard_count)
        return shard_fail(st, MEMLLM__STATUS__STATUS_INVALID_ARGUMENT,
                          "hello: shard %u of %u is not a place in a memory", h->shard_index,
                          h->shard_count);
    if (h->dim == 0 || h->dim > 65536)
        return shard_fail(st, MEMLLM__STATUS__STATUS_INVALID_ARGUMENT,
                          "hello: embedding dimension %u out of range 1..65536", h->dim);
    if (shard_check_text("hello: embedder name", h->embedder, st) != 0) return -1;
    if (!sh->db) {
        /* A shard kept for a restore: it takes the place the client gives,
         * which the backup's shard must have. */
        char *name = strdup(h->embedder);
        if (!name) return shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "out of memory");
        free(sh->embedder);
        sh->embedder = name;
        sh->index = h->shard_index;
        sh->count = h->shard_count;
        sh->dim = (int)h->dim;
        sh->placed = 1;
        res->created = 0;
        return 0;
    }
    if (sh->configured) {
        if (h->shard_index != sh->index || h->shard_count != sh->count)
            return shard_fail(st, MEMLLM__STATUS__STATUS_MISMATCH,
                              "%s: this is shard %u of %u; the client expects shard %u of %u",
                              sh->dir, sh->index, sh->count, h->shard_index, h->shard_count);
        if (strcmp(h->embedder, sh->embedder) != 0 || (int)h->dim != sh->dim)
            return shard_fail(st, MEMLLM__STATUS__STATUS_MISMATCH,
                              "%s: memory was built with embedder %s (dim %d); the client uses "
                              "%s (dim %u)",
                              sh->dir, sh->embedder, sh->dim, h->embedder, h->dim);
        res->created = 0;
        return 0;
    }
    if (shard_check_writable(sh, "hello", st) != 0) return -1;
    Memllm__Store__Meta m = MEMLLM__STORE__META__INIT;
    m.format = SHARD_FORMAT;
    m.shard_index = h->shard_index;
    m.shard_count = h->shard_count;
    m.embedder = h->embedder;
    m.dim = h->dim;
    rocksdb_writebatch_wi_t *b = rocksdb_writebatch_wi_create(0, 1);
    int rc = shard_put_message(b, sh, CF_DEFAULT, "meta", 4, &m.base, st);
    char *rerr = NULL;
    if (rc == 0) rocksdb_write_writebatch_wi(sh->db, sh->wopt, b, &rerr);
    rocksdb_writebatch_wi_destroy(b);
    if (rc != 0) return -1;
    if (rerr) return shard_storage_error(sh, rerr, "writing the meta record", st);
    if (load_meta(sh, st) < 0) return -1;
    res->created = 1;
    return 0;
}

int shard_get(struct mm_shard *sh, rocksdb_writebatch_wi_t *batch, int cf, const void *key,
              size_t klen, char **val, size_t *vlen, struct shard_status *st)
{
    char *rerr = NULL;
    if (batch)
        *val = rocksdb_writebatch_wi_get_from_batch_and_db_cf(batch, sh->db, sh->ropt, sh->cf[cf],
                                                              key, klen, vlen, &rerr);
    else
        *val = rocksdb_get_cf(sh->db, sh->ropt, sh->cf[cf], key, klen, vlen, &rerr);
    if (rocks_failed(rerr, st, sh->dir)) return -1;
    return *val != NULL;
}

int shard_get_message(struct mm_shard *sh, rocksdb_writebatch_wi_t *batch, int cf, const void *key,
                      size_t klen, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **msg,
                      struct shard_status *st)
{
    char *val;
    size_t vlen;
    int found = shard_get(sh, batch, cf, key, klen, &val, &vlen, st);
    if (found <= 0) return found;
    *msg = protobuf_c_message_unpack(desc, NULL, vlen, (const uint8_t *)val);
    rocksdb_free(val);
    if (!*msg)
        return shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE,
                          "%s: damaged %s record in column family %s", sh->dir, desc->short_name,
                          cf_names[cf]);
    return 1;
}

int shard_put_message(rocksdb_writebatch_wi_t *batch, struct mm_shard *sh, int cf, const void *key,
                      size_t klen, const ProtobufCMessage *msg, struct shard_status *st)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) return shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "out of memory");
    protobuf_c_message_pack(msg, buf);
    rocksdb_writebatch_wi_put_cf(batch, sh->cf[cf], key, klen, (const char *)buf, n);
    free(buf);
    return 0;
}

Memllm__Store__Triple *shard_iter_triple(struct mm_shard *sh, rocksdb_iterator_t *it,
                                         struct shard_status *st)
{
    size_t klen, vlen;
    rocksdb_iter_key(it, &klen);
    const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vlen);
    Memllm__Store__Triple *t =
        klen == TRIPLE_KEY_LEN ? memllm__store__triple__unpack(NULL, vlen, v) : NULL;
    if (!t) shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "%s: damaged triple record", sh->dir);
    return t;
}

int shard_get_entity_row(struct mm_shard *sh, uint64_t id, Memllm__Store__Name **row,
                         struct shard_status *st)
{
    const char *norm = id_map_find(&sh->entity_ids, id);
    if (!norm)
        return shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "%s: entity %016llx is not stored",
                          sh->dir, (unsigned long long)id);
    unsigned char key[MM_TEXT_MAX + 9];
    ProtobufCMessage *msg;
    int found = shard_get_message(sh, NULL, CF_NAMES, key, shard_name_key(key, norm, id),
                                  &memllm__store__name__descriptor, &msg, st);
    if (found == 0)
        shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "%s: entity %016llx has no name row",
                   sh->dir, (unsigned long long)id);
    if (found <= 0) return -1;
    *row = (Memllm__Store__Name *)msg;
    return 0;
}

int shard_entity_text(struct mm_shard *sh, uint64_t id, char **text, struct mm_arena *ar,
                      struct shard_status *st)
{
    Memllm__Store__Name *row;
    if (shard_get_entity_row(sh, id, &row, st) != 0) return -1;
    *text = mm_arena_strdup(ar, row->text);
    memllm__store__name__free_unpacked(row, NULL);
    if (!*text) return shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "out of memory");
    return 0;
}

size_t shard_name_key(unsigned char *buf, const char *normalised, uint64_t id)
{
    size_t len = strlen(normalised);
    memcpy(buf, normalised, len);
    buf[len] = 0;
    put_be64(buf + len + 1, id);
    return len + 9;
}

/* Adds every row of one family (names or relations) to its index, and the
 * entities (their canonical rows: text id = entity id) or relation types to
 * their id map. */
static int load_family(struct mm_shard *sh, int cf, struct mm_vector_index *ix, struct id_map *ids,
                       struct shard_status *st)
{
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(sh->db, sh->ropt, sh->cf[cf]);
    int rc = 0;
    for (rocksdb_iter_seek_to_first(it); rc == 0 && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const unsigned char *key = (const unsigned char *)rocksdb_iter_key(it, &klen);
        const uint8_t *val = (const uint8_t *)rocksdb_iter_value(it, &vlen);
        const ProtobufCMessageDescriptor *desc = cf == CF_NAMES
                                                     ? &memllm__store__name__descriptor
                                                     : &memllm__store__relation__descriptor;
        ProtobufCMessage *msg = protobuf_c_message_unpack(desc, NULL, vlen, val);
        uint64_t owner = 0;
        const char *text = "";
        size_t nvec = 0;
        const float *vec = NULL;
        if (msg && cf == CF_NAMES) {
            const Memllm__Store__Name *n = (const Memllm__Store__Name *)msg;
            owner = n->entity_id;
            text = n->text;
            nvec = n->n_vec;
            vec = n->vec;
        } else if (msg && klen == 8) {
            const Memllm__Store__Relation *r = (const Memllm__Store__Relation *)msg;
            owner = get_be64(key);
            text = r->text;
            nvec = r->n_vec;
            vec = r->vec;
        }
        if (!msg || nvec != (size_t)sh->dim) {
            rc = shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE,
                            "%s: damaged row in column family %s", sh->dir, cf_names[cf]);
        } else {
            char *norm = mm_text_normalise(text);
            if (!norm || mm_vindex_add(ix, owner, norm, vec, &st->err) != 0 ||
                (mm_text_id(norm) == owner && id_map_put(ids, owner, ix->text[ix->n - 1]) != 0)) {
                rc = shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "%s: out of memory loading %s",
                                sh->dir, cf_names[cf]);
            }
            free(norm);
        }
        if (msg) protobuf_c_message_free_unpacked(msg, NULL);
    }
    if (rc == 0) {
        char *rerr = NULL;
        rocksdb_iter_get_error(it, &rerr);
        rc = rocks_failed(rerr, st, sh->dir);
    }
    rocksdb_iter_destroy(it);
    return rc;
}

int shard_load_indexes(struct mm_shard *sh, struct shard_status *st)
{
    if (load_family(sh, CF_NAMES, &sh->names, &sh->entity_ids, st) != 0) return -1;
    return load_family(sh, CF_RELATIONS, &sh->relations, &sh->relation_ids, st);
}
