/* The memory client: the MemLLM memory (DESIGN.md §3, §4) seen as one store,
 * backed by S shards that live in this process or on MPI ranks.
 *
 * Routing: an entity's home shard is mm_home_shard(id, S) of the id of its
 * normalised text (memshard/text/text.h). A fact (s, r, o) is stored twice, at
 * home(s) as (s, r, o) and at home(o) as (o, r, s), so a query in either
 * direction reads one shard per candidate entity. Relation types go to every
 * shard. Searches are scattered to all shards and the candidates merged.
 *
 * Writes across shards are not one transaction: a write is acknowledged
 * (returns 0) once every shard involved has committed its part. If the
 * process dies in between, one copy of a fact may exist without the other;
 * mm_memory_verify() finds such facts and repair restores the reverse copy
 * from the forward one (the forward copy is authoritative).
 *
 * Texts are embedded by the client with the embedder given at open (the
 * shards check that it is the one that built the memory). */
#ifndef MEMLLM_COORDINATOR_MEMORY_CLIENT_H
#define MEMLLM_COORDINATOR_MEMORY_CLIENT_H

#include "embedder.h"
#include "err.h"

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

struct mm_memory;

/* S shards in this process, in dir/shard-000 ... (dir is created if
 * missing). sync: fsync the WAL before acknowledging a write. The client
 * does not own the embedder. */
struct mm_memory *mm_memory_open_local(const char *dir, uint32_t shards, struct mm_embedder *emb,
                                       int sync, struct mm_err *err);
/* As mm_memory_open_local, for mm_memory_restore only: a shard whose
 * database cannot be opened (a corrupt file) opens all the same, taking
 * only the restore that replaces it; any other request gets the open's
 * error. */
struct mm_memory *mm_memory_open_local_to_restore(const char *dir, uint32_t shards,
                                                  struct mm_embedder *emb, int sync,
                                                  struct mm_err *err);

/* S shards served by ranks first_rank .. first_rank+S-1 of comm (each runs
 * mm_shard_serve_mpi with this rank as coordinator). */
struct mm_memory *mm_memory_open_mpi(MPI_Comm comm, int first_rank, uint32_t shards,
                                     struct mm_embedder *emb, struct mm_err *err);

/* Closes the shards (MPI: tells the shard ranks to stop). */
int mm_memory_close(struct mm_memory *m, struct mm_err *err);

uint32_t mm_memory_shards(const struct mm_memory *m);

/* Why the last call failed, when a shard's storage did: its disk is full
 * (a service answers writes 507), or its file system failed (503). Either
 * way that shard refuses writes until the memory is opened again and still
 * answers reads. MM_FAULT_NONE for any other failure. */
enum mm_memory_fault { MM_FAULT_NONE, MM_FAULT_NO_SPACE, MM_FAULT_IO };
enum mm_memory_fault mm_memory_fault(const struct mm_memory *m);

/* Where a fact comes from: a document title (or an edit's name) and the
 * sentence, -1 for none. */
struct mm_source {
    const char *source;
    int sentence;
    int64_t time_ms; /* when the source first wrote the fact (Unix ms); 0: now */
};

struct mm_fact {
    const char *s, *r, *o;
    struct mm_source src;
};

/* Another name of an entity (e.g. a DocRED mention of it). */
struct mm_alias {
    const char *entity, *alias;
};

struct mm_write_report {
    uint64_t facts_added, facts_existing; /* existing: only provenance added */
    uint64_t provenance_added, entities_added, relations_added, aliases_added;
};

/* Stores the facts and aliases. All texts are checked first; one bad text
 * fails the call before anything is written. rep may be NULL. */
int mm_memory_write(struct mm_memory *m, const struct mm_fact *facts, size_t n,
                    const struct mm_alias *aliases, size_t naliases, struct mm_write_report *rep,
                    struct mm_err *err);

/* Removes both copies of each fact (the source is ignored). *deleted: facts
 * that were stored. */
int mm_memory_delete(struct mm_memory *m, const struct mm_fact *facts, size_t n, uint64_t *deleted,
                     struct mm_err *err);

/* Replaces every (s, r, *) with (s, r, o). When (s, r, o) is stored
 * already it stays, both copies keeping their provenance and gaining the
 * edit's. *removed: how many facts (s, r, x) with x != o were removed. */
int mm_memory_replace(struct mm_memory *m, const struct mm_fact *fact, uint64_t *removed,
                      struct mm_err *err);

/* DESIGN.md §3 thresholds and caps. */
struct mm_query_options {
    float tau_e, tau_r, tau_t;
    uint32_t qthr;           /* answers per query */
    uint32_t k_entities;     /* entity candidates per query */
    uint32_t k_relations;    /* relation candidates per query */
    uint32_t per_pair;       /* triples read per (entity, relation) pair, the first by id
                                of the other end: arbitrary, but the same on any layout */
    uint32_t max_provenance; /* provenance records returned per answer */
};

/* The paper's settings: tau_e 0.7, tau_r 0.85, tau_t 0.7, Qthr 30, k 300 and
 * 25 candidates, 31 triples per pair, 4 provenance records. */
void mm_query_options_default(struct mm_query_options *o);

struct mm_query {
    const char *entity; /* the given side */
    const char *relation;
    int want_subject; /* 1: (?, r, entity); 0: (entity, r, ?) */
};

struct mm_provenance {
    char *source;
    int sentence;
    int64_t time_ms;
};

struct mm_answer {
    char *text;
    double score;
    int exact;                  /* from a pair whose texts equal the query's */
    char *entity, *relation;    /* the candidate pair it came from */
    struct mm_provenance *prov; /* oldest first */
    size_t nprov;
    uint32_t prov_count; /* all records (nprov of them returned) */
};

struct mm_answers {
    struct mm_answer *a;
    size_t n;
};

/* Runs n queries; out[i] receives the answers of query i (free with
 * mm_answers_free). A query that fails its text checks fails the call. */
int mm_memory_query(struct mm_memory *m, const struct mm_query *q, size_t n,
                    const struct mm_query_options *o, struct mm_answers *out, struct mm_err *err);
/* As mm_memory_query; shard_s (mm_memory_shards() entries) receives each
 * shard's latency in this call, in seconds: from sending it a request to
 * having its response, summed over the call's round trips (a query makes
 * two: the entity search on every shard, then the candidates' home shards).
 * With shard ranks that is the round trip over MPI, shared memory or TCP; in
 * one process, the shard's own handling of the requests. */
int mm_memory_query_timed(struct mm_memory *m, const struct mm_query *q, size_t n,
                          const struct mm_query_options *o, struct mm_answers *out, double *shard_s,
                          struct mm_err *err);
void mm_answers_free(struct mm_answers *a, size_t n);

struct mm_entity_hit {
    uint64_t id;
    char *text, *matched;
    double sim;
    int exact;
};

struct mm_entity_hits {
    struct mm_entity_hit *h;
    size_t n;
};

/* Entity candidates of each text across all shards (scatter-gather): the
 * best k by (exact match, similarity, id) with similarity >= tau. */
int mm_memory_search(struct mm_memory *m, const char *const *texts, size_t n, float tau, uint32_t k,
                     struct mm_entity_hits *out, struct mm_err *err);
void mm_entity_hits_free(struct mm_entity_hits *h, size_t n);

struct mm_memory_stats {
    uint32_t shards;
    char embedder[128];
    int dim;
    uint64_t entities, names, relations; /* relations: distinct types */
    uint64_t triples;                    /* facts (forward copies) */
    uint64_t reverse_copies, provenance, sst_bytes;
};

int mm_memory_stats(struct mm_memory *m, struct mm_memory_stats *st, struct mm_err *err);

/* Shard j's own counts (a stats request to it alone, so that a service can
 * tell which shard answers): st->shards is 1; relations its set. */
int mm_memory_shard_stats(struct mm_memory *m, uint32_t j, struct mm_memory_stats *st,
                          struct mm_err *err);

/* Requests each shard was sent since the memory was opened, by kind: reads
 * (searches, queries, entity lookups, scans, stats) and writes (writes,
 * deletes, restores); hello, checkpoint and shutdown are neither. reads and
 * writes have mm_memory_shards() entries. Safe to call from any thread
 * while another uses the memory (the counters are atomic). */
void mm_memory_shard_requests(const struct mm_memory *m, uint64_t *reads, uint64_t *writes);

/* One stored copy, as scan reports it (pointers valid during the callback). */
struct mm_copy {
    uint32_t shard;
    uint64_t key_id, relation_id, other_id;
    int reverse;
    const char *key, *relation, *other;
    const struct mm_provenance *prov;
    size_t nprov;
};

/* Calls fn for every stored copy, shard by shard in key order; fn returns
 * non-zero to stop (then scan returns that value). */
int mm_memory_scan(struct mm_memory *m, int (*fn)(void *ctx, const struct mm_copy *c), void *ctx,
                   struct mm_err *err);

/* Calls fn for every copy keyed by entity `id` (an mm_entity_record's):
 * its facts as subject (forward copies: key, relation, other) and as object
 * (reverse copies: other, relation, key), in key order, read from its home
 * shard alone. fn returns non-zero to stop (then this returns that value). */
int mm_memory_entity_copies(struct mm_memory *m, uint64_t id,
                            int (*fn)(void *ctx, const struct mm_copy *c), void *ctx,
                            struct mm_err *err);

struct mm_entity_record {
    uint64_t id;
    char *text;
    char **aliases;
    size_t naliases;
    uint64_t forward_copies, reverse_copies;
};

/* The entities that have `text` as their name or an alias. */
int mm_memory_get_entity(struct mm_memory *m, const char *text, struct mm_entity_record **out,
                         size_t *n, struct mm_err *err);
void mm_entity_records_free(struct mm_entity_record *r, size_t n);

struct mm_verify_report {
    uint64_t forward, reverse; /* copies seen */
    uint64_t missing_reverse;  /* forward copies without their reverse */
    uint64_t orphan_reverse;   /* reverse copies without their forward */
    uint64_t misplaced;        /* copies on a shard that is not their key's home */
    uint64_t repaired;         /* copies written or removed by repair */
};

/* Checks that every fact has both copies, each on its key's home shard;
 * with repair, adds missing reverse copies and removes orphan reverse
 * copies (forward copies are the truth). Misplaced copies are reported only. */
int mm_memory_verify(struct mm_memory *m, int repair, struct mm_verify_report *rep,
                     struct mm_err *err);

/* RocksDB checkpoints of every shard into dir/shard-NNN (dir must not hold
 * them already); restore replaces every shard's content with them. */
int mm_memory_backup(struct mm_memory *m, const char *dir, struct mm_err *err);
int mm_memory_restore(struct mm_memory *m, const char *dir, struct mm_err *err);

#endif
