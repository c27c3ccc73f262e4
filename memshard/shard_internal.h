/* Shared by the shard's source files: the shard's state, the layout of its
 * RocksDB keys, and small RocksDB helpers.
 *
 * Column families and keys (ids are 8-byte big-endian, so keys sort by id):
 *   default     "meta"                         -> store.Meta
 *   names       normalised text, 0x00, id      -> store.Name (a vector row;
 *               the entity's canonical row also holds its aliases)
 *   relations   id                             -> store.Relation (vector row)
 *   triples     key id, relation id, dir, other id -> store.Triple (the other
 *               end's text and the provenance records)
 *               dir 0: forward copy (key = subject), 1: reverse (key = object)
 *
 * A fact between stored entities is thus two key/values, one per copy, and
 * a new entity one more: RocksDB's memtable insertions are most of a write's
 * cost, so the layout keeps them few. Format 1 kept entity records and
 * provenance records in families of their own (twice the key/values). */
#ifndef MEMLLM_MEMSHARD_SHARD_INTERNAL_H
#define MEMLLM_MEMSHARD_SHARD_INTERNAL_H

#include "arena.h"
#include "id_map.h"
#include "memory.pb-c.h"
#include "shard.h"
#include "store.pb-c.h"
#include "vector_index.h"

#include <rocksdb/c.h>
#include <string.h>

enum {
    CF_DEFAULT,
    CF_NAMES,
    CF_RELATIONS,
    CF_TRIPLES,
    CF_COUNT,
};

#define TRIPLE_KEY_LEN 25
#define TRIPLE_PREFIX_LEN 17 /* key id, relation id, dir */
#define SHARD_FORMAT 2

struct mm_shard {
    char *dir;
    struct mm_shard_options opt;
    rocksdb_options_t *options, *triple_options;
    rocksdb_t *db;
    rocksdb_column_family_handle_t *cf[CF_COUNT];
    rocksdb_writeoptions_t *wopt;
    rocksdb_readoptions_t *ropt;
    /* Iterates the triples family in key order across entities; ropt's
     * iterators stay within the entity (key id) they were positioned on. */
    rocksdb_readoptions_t *ropt_ordered;

    int configured; /* meta present: index, count, embedder, dim are valid */
    /* No database (db NULL) and Hello gave index, count, embedder and dim:
     * the place a restore's backup must have. */
    int placed;
    uint32_t index, count;
    char *embedder;
    int dim;
    struct mm_vector_index names;     /* entity names homed here */
    struct mm_vector_index relations; /* every relation type */
    /* The committed entities and relation types, to the normalised text
     * they stand for (owned by the vector index row of that name), so that a
     * write needs no read to know whether they exist (and whether an id
     * collides). */
    struct id_map entity_ids, relation_ids;

    /* A write to the database failed, or it is open for reading only
     * (shard_fault.c): no more writes until it is opened again. The cause
     * ("no space left on device"), why writes are refused, and the first
     * failure's details. */
    int faulted;
    Memllm__Status fault_code;
    const char *fault_cause, *fault_why;
    struct mm_err fault_detail;
    /* Why db is NULL when a shard opened with open_damaged could not open
     * it (or a restore could not reopen it): the error requests get. */
    struct mm_err closed_why;
};

/* A handler's outcome: status and, when not OK, the message in err. */
struct shard_status {
    Memllm__Status code;
    struct mm_err err;
};

int shard_fail(struct shard_status *st, Memllm__Status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline void put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)v;
        v >>= 8;
    }
}

static inline uint64_t get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static inline void triple_key(unsigned char *k, uint64_t key_id, uint64_t rel_id, int reverse,
                              uint64_t other_id)
{
    put_be64(k, key_id);
    put_be64(k + 8, rel_id);
    k[16] = (unsigned char)(reverse ? 1 : 0);
    put_be64(k + 17, other_id);
}

/* Reads a value: 1 found (*val malloc'ed by RocksDB, free with rocksdb_free),
 * 0 absent, -1 storage error. With a batch, its pending writes are seen. */
int shard_get(struct mm_shard *sh, rocksdb_writebatch_wi_t *batch, int cf, const void *key,
              size_t klen, char **val, size_t *vlen, struct shard_status *st);

/* Reads and unpacks a protobuf value: 1 found (*msg to free with
 * protobuf_c_message_free_unpacked), 0 absent, -1 error (also for a value
 * that does not decode: a damaged database). */
int shard_get_message(struct mm_shard *sh, rocksdb_writebatch_wi_t *batch, int cf, const void *key,
                      size_t klen, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **msg,
                      struct shard_status *st);

/* Packs msg and puts it into the batch. */
int shard_put_message(rocksdb_writebatch_wi_t *batch, struct mm_shard *sh, int cf, const void *key,
                      size_t klen, const ProtobufCMessage *msg, struct shard_status *st);

/* Storage faults (shard_fault.c). shard_storage_error reports a failed
 * RocksDB write, flush or checkpoint (`what`), naming the directory and the
 * cause, frees rerr and latches the shard; shard_check_writable refuses a
 * write (`what`) once latched; shard_check_space, before opening, latches
 * the shard when its disk has almost no room and returns -1: the database
 * is then opened for reading only. Each returns 0 or -1. */
int shard_storage_error(struct mm_shard *sh, char *rerr, const char *what, struct shard_status *st);
int shard_check_writable(struct mm_shard *sh, const char *what, struct shard_status *st);
int shard_check_space(struct mm_shard *sh);

/* Loads the vector indexes from the names and relations families. */
int shard_load_indexes(struct mm_shard *sh, struct shard_status *st);

/* Checks shared by handlers; `what` names the input in the message. */
int shard_check_text(const char *what, const char *text, struct shard_status *st);
int shard_check_vec(const char *what, size_t n, const float *vec, const struct mm_shard *sh,
                    struct shard_status *st);
int shard_check_home(const char *what, const char *text, const struct mm_shard *sh, uint64_t *id,
                     struct shard_status *st);
int shard_check_provenance(const char *what, const Memllm__Provenance *p, struct shard_status *st);

/* The name of the normalised text and id as a names-family key; returns the
 * key length. buf must hold MM_TEXT_MAX + 9 bytes. */
size_t shard_name_key(unsigned char *buf, const char *normalised, uint64_t id);

/* Handlers, one per command. Results are allocated from the arena. */
int shard_hello(struct mm_shard *sh, const Memllm__Hello *h, Memllm__HelloResult *res,
                struct shard_status *st);
int shard_write(struct mm_shard *sh, const Memllm__WriteRequest *w, Memllm__WriteResult *res,
                struct mm_arena *ar, struct shard_status *st);
int shard_delete(struct mm_shard *sh, const Memllm__DeleteRequest *d, Memllm__DeleteResult *res,
                 struct shard_status *st);
int shard_search(struct mm_shard *sh, const Memllm__SearchRequest *q, Memllm__SearchResult *res,
                 struct mm_arena *ar, struct shard_status *st);
int shard_query(struct mm_shard *sh, const Memllm__QueryRequest *q, Memllm__QueryResult *res,
                struct mm_arena *ar, struct shard_status *st);
int shard_get_entity(struct mm_shard *sh, const Memllm__GetEntityRequest *g,
                     Memllm__GetEntityResult *res, struct mm_arena *ar, struct shard_status *st);
int shard_scan(struct mm_shard *sh, const Memllm__ScanRequest *s, Memllm__ScanResult *res,
               struct mm_arena *ar, struct shard_status *st);
int shard_stats(struct mm_shard *sh, Memllm__StatsResult *res, struct mm_arena *ar,
                struct shard_status *st);
int shard_checkpoint(struct mm_shard *sh, const char *dir, struct shard_status *st);
int shard_restore(struct mm_shard *sh, const char *dir, struct shard_status *st);

/* The provenance records of a triple copy's value, oldest first: all of
 * them are counted, the first `max` returned (arena-allocated). */
int shard_triple_provenance(const Memllm__Store__Triple *t, uint32_t max, Memllm__Provenance ***out,
                            size_t *n_out, uint32_t *count, struct mm_arena *ar,
                            struct shard_status *st);

/* The triple copy at a triples-family iterator (to free with
 * memllm__store__triple__free_unpacked); NULL, a storage error, when the
 * key or value is damaged. */
Memllm__Store__Triple *shard_iter_triple(struct mm_shard *sh, rocksdb_iterator_t *it,
                                         struct shard_status *st);

/* The canonical name row of a committed entity (to free with
 * memllm__store__name__free_unpacked); a missing or damaged row is a storage
 * error. */
int shard_get_entity_row(struct mm_shard *sh, uint64_t id, Memllm__Store__Name **row,
                         struct shard_status *st);
/* An entity's canonical text (arena), from that row. */
int shard_entity_text(struct mm_shard *sh, uint64_t id, char **text, struct mm_arena *ar,
                      struct shard_status *st);

/* Converts a database of format 1 in sh->dir to this format, in place
 * (shard_upgrade.c); nothing to do for any other directory. */
int shard_upgrade(struct mm_shard *sh, struct shard_status *st);

/* Opens the RocksDB database of sh->dir, reads its meta record and loads
 * the vector indexes (used by restore after swapping the directory). */
int shard_reload(struct mm_shard *sh, struct shard_status *st);
void shard_close_db(struct mm_shard *sh);

#endif
