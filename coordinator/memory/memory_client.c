/* The memory client's core: open and close, the round trip to the shards,
 * and the commands that go to every shard alike (stats, get entity, backup,
 * restore). Writes, queries and scans have their own files. */
#include "memory_client_internal.h"
#include "text.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

uint32_t mm_memory_shards(const struct mm_memory *m)
{
    return m->shards;
}

float *client_embed(struct mm_memory *m, const char *const *texts, size_t n, struct mm_err *err)
{
    float *v = malloc((n ? n : 1) * (size_t)m->emb->dim * sizeof(float));
    if (!v) {
        mm_err_set(err, "out of memory embedding %zu texts", n);
        return NULL;
    }
    if (n && mm_embed(m->emb, texts, n, v, err) != 0) {
        free(v);
        return NULL;
    }
    return v;
}

void client_free_responses(struct mm_memory *m, Memllm__Response **resp)
{
    for (uint32_t j = 0; j < m->shards; j++) {
        if (resp[j]) memllm__response__free_unpacked(resp[j], NULL);
        resp[j] = NULL;
    }
}

/* Counts a request to shard j by what it does (mm_memory_shard_requests). */
static void count_request(struct mm_memory *m, uint32_t j, const Memllm__Request *r)
{
    switch (r->command_case) {
    case MEMLLM__REQUEST__COMMAND_WRITE:
    case MEMLLM__REQUEST__COMMAND_DELETE:
    case MEMLLM__REQUEST__COMMAND_RESTORE:
        atomic_fetch_add_explicit(&m->shard_writes[j], 1, memory_order_relaxed);
        break;
    case MEMLLM__REQUEST__COMMAND_SEARCH:
    case MEMLLM__REQUEST__COMMAND_QUERY:
    case MEMLLM__REQUEST__COMMAND_GET_ENTITY:
    case MEMLLM__REQUEST__COMMAND_SCAN:
    case MEMLLM__REQUEST__COMMAND_STATS:
        atomic_fetch_add_explicit(&m->shard_reads[j], 1, memory_order_relaxed);
        break;
    default:
        break;
    }
}

void mm_memory_shard_requests(const struct mm_memory *m, uint64_t *reads, uint64_t *writes)
{
    for (uint32_t j = 0; j < m->shards; j++) {
        reads[j] = atomic_load_explicit(&m->shard_reads[j], memory_order_relaxed);
        writes[j] = atomic_load_explicit(&m->shard_writes[j], memory_order_relaxed);
    }
}

int client_round(struct mm_memory *m, Memllm__Request *const *req, Memllm__Response **resp,
                 struct mm_err *err)
{
    uint32_t S = m->shards;
    m->refused = MEMLLM__STATUS__STATUS_OK;
    uint8_t **out = calloc(S, sizeof(*out));
    size_t *out_len = calloc(S, sizeof(*out_len));
    uint8_t **in = calloc(S, sizeof(*in));
    size_t *in_len = calloc(S, sizeof(*in_len));
    int rc = 0;
    for (uint32_t j = 0; j < S; j++)
        resp[j] = NULL;
    if (!out || !out_len || !in || !in_len) {
        mm_err_set(err, "out of memory");
        rc = -1;
        goto done;
    }
    for (uint32_t j = 0; j < S && rc == 0; j++) {
        if (!req[j]) continue;
        count_request(m, j, req[j]);
        out_len[j] = memllm__request__get_packed_size(req[j]);
        out[j] = malloc(out_len[j] ? out_len[j] : 1);
        if (!out[j]) {
            mm_err_set(err, "out of memory packing a %zu-byte request", out_len[j]);
            rc = -1;
        } else {
            memllm__request__pack(req[j], out[j]);
        }
    }
    if (rc == 0) rc = m->t->exchange(m->t, out, out_len, in, in_len, m->round_s, err);
    for (uint32_t j = 0; j < S && rc == 0; j++) {
        if (!req[j]) continue;
        resp[j] = memllm__response__unpack(NULL, in_len[j], in[j]);
        if (!resp[j]) {
            mm_err_set(err, "shard %u: response of %zu bytes is not a memllm.Response", j,
                       in_len[j]);
            rc = -1;
        }
    }
    /* Report the first shard that refused, after all have answered. */
    for (uint32_t j = 0; j < S && rc == 0; j++) {
        if (resp[j] && resp[j]->status != MEMLLM__STATUS__STATUS_OK) {
            mm_err_set(err, "shard %u: %s", j, resp[j]->error);
            m->refused = resp[j]->status;
            rc = -1;
        }
    }
    if (rc != 0) client_free_responses(m, resp);
done:
    for (uint32_t j = 0; out && in && j < S; j++) {
        free(out[j]);
        free(in[j]);
    }
    free(out);
    free(out_len);
    free(in);
    free(in_len);
    return rc;
}

/* Sends every shard the same request. */
static int round_all(struct mm_memory *m, Memllm__Request *req, Memllm__Response **resp,
                     struct mm_err *err)
{
    Memllm__Request **reqs = malloc(m->shards * sizeof(*reqs));
    if (!reqs) {
        mm_err_set(err, "out of memory");
        return -1;
    }
    for (uint32_t j = 0; j < m->shards; j++)
        reqs[j] = req;
    int rc = client_round(m, reqs, resp, err);
    free(reqs);
    return rc;
}

static int hello(struct mm_memory *m, struct mm_err *err)
{
    uint32_t S = m->shards;
    Memllm__Hello *h = calloc(S, sizeof(*h));
    Memllm__Request *r = calloc(S, sizeof(*r));
    Memllm__Request **reqs = calloc(S, sizeof(*reqs));
    Memllm__Response **resp = calloc(S, sizeof(*resp));
    int rc = -1;
    if (h && r && reqs && resp) {
        for (uint32_t j = 0; j < S; j++) {
            memllm__hello__init(&h[j]);
            h[j].shard_index = j;
            h[j].shard_count = S;
            h[j].embedder = (char *)m->emb->name;
            h[j].dim = (uint32_t)m->emb->dim;
            memllm__request__init(&r[j]);
            r[j].command_case = MEMLLM__REQUEST__COMMAND_HELLO;
            r[j].hello = &h[j];
            reqs[j] = &r[j];
        }
        rc = client_round(m, reqs, resp, err);
        if (rc == 0) client_free_responses(m, resp);
    } else {
        mm_err_set(err, "out of memory");
    }
    free(h);
    free(r);
    free(reqs);
    free(resp);
    return rc;
}

static struct mm_memory *open_with(struct mm_transport *t, struct mm_embedder *emb,
                                   struct mm_err *err)
{
    if (!t) return NULL;
    struct mm_memory *m = calloc(1, sizeof(*m));
    if (!m) {
        struct mm_err ignored;
        t->close(t, &ignored);
        mm_err_set(err, "out of memory");
        return NULL;
    }
    m->t = t;
    m->emb = emb;
    m->shards = t->shards;
    m->shard_reads = calloc(m->shards, sizeof(*m->shard_reads));
    m->shard_writes = calloc(m->shards, sizeof(*m->shard_writes));
    if (!m->shard_reads || !m->shard_writes) {
        mm_err_set(err, "out of memory");
        struct mm_err ignored;
        mm_memory_close(m, &ignored);
        return NULL;
    }
    for (uint32_t j = 0; j < m->shards; j++) {
        atomic_init(&m->shard_reads[j], 0);
        atomic_init(&m->shard_writes[j], 0);
    }
    if (hello(m, err) != 0) {
        struct mm_err ignored;
        mm_memory_close(m, &ignored);
        return NULL;
    }
    return m;
}

struct mm_memory *mm_memory_open_local(const char *dir, uint32_t shards, struct mm_embedder *emb,
                                       int sync, struct mm_err *err)
{
    if (shards == 0 || shards > 4096) {
        mm_err_set(err, "%s: %u shards (expected 1..4096)", dir, shards);
        return NULL;
    }
    return open_with(mm_transport_local(dir, shards, sync, 0, err), emb, err);
}

struct mm_memory *mm_memory_open_local_to_restore(const char *dir, uint32_t shards,
                                                  struct mm_embedder *emb, int sync,
                                                  struct mm_err *err)
{
    if (shards == 0 || shards > 4096) {
        mm_err_set(err, "%s: %u shards (expected 1..4096)", dir, shards);
        return NULL;
    }
    return open_with(mm_transport_local(dir, shards, sync, 1, err), emb, err);
}

struct mm_memory *mm_memory_open_mpi(MPI_Comm comm, int first_rank, uint32_t shards,
                                     struct mm_embedder *emb, struct mm_err *err)
{
    if (shards == 0) {
        mm_err_set(err, "MPI memory needs at least one shard rank");
        return NULL;
    }
    return open_with(mm_transport_mpi(comm, first_rank, shards, err), emb, err);
}

enum mm_memory_fault mm_memory_fault(const struct mm_memory *m)
{
    switch (m->refused) {
    case MEMLLM__STATUS__STATUS_NO_SPACE:
        return MM_FAULT_NO_SPACE;
    case MEMLLM__STATUS__STATUS_IO_FAULT:
        return MM_FAULT_IO;
    default:
        return MM_FAULT_NONE;
    }
}

int mm_memory_close(struct mm_memory *m, struct mm_err *err)
{
    if (!m) return 0;
    int rc = m->t->close(m->t, err);
    id_map_free(&m->stored);
    free((void *)m->shard_reads);
    free((void *)m->shard_writes);
    free(m);
    return rc;
}

/* A stats round to every shard (one < 0) or to shard `one` alone, summed. */
static int stats_of(struct mm_memory *m, int64_t one, struct mm_memory_stats *st,
                    struct mm_err *err)
{
    Memllm__StatsRequest sr = MEMLLM__STATS_REQUEST__INIT;
    Memllm__Request req = MEMLLM__REQUEST__INIT;
    req.command_case = MEMLLM__REQUEST__COMMAND_STATS;
    req.stats = &sr;
    Memllm__Response **resp = calloc(m->shards, sizeof(*resp));
    Memllm__Request **reqs = calloc(m->shards, sizeof(*reqs));
    if (!resp || !reqs) {
        free(resp);
        free(reqs);
        mm_err_set(err, "out of memory");
        return -1;
    }
    for (uint32_t j = 0; j < m->shards; j++)
        reqs[j] = one < 0 || j == one ? &req : NULL;
    int rc = client_round(m, reqs, resp, err);
    if (rc == 0) {
        memset(st, 0, sizeof(*st));
        st->shards = one < 0 ? m->shards : 1;
        snprintf(st->embedder, sizeof(st->embedder), "%s", m->emb->name);
        st->dim = m->emb->dim;
        for (uint32_t j = 0; j < m->shards; j++) {
            if (!resp[j]) continue;
            const Memllm__StatsResult *s = resp[j]->stats;
            st->entities += s->entities;
            st->names += s->names;
            /* Relation types are replicated: the union is any shard's set. */
            if (s->relations > st->relations) st->relations = s->relations;
            st->triples += s->forward_copies;
            st->reverse_copies += s->reverse_copies;
            st->provenance += s->provenance;
            st->sst_bytes += s->sst_bytes;
        }
        client_free_responses(m, resp);
    }
    free(resp);
    free(reqs);
    return rc;
}

int mm_memory_stats(struct mm_memory *m, struct mm_memory_stats *st, struct mm_err *err)
{
    return stats_of(m, -1, st, err);
}

int mm_memory_shard_stats(struct mm_memory *m, uint32_t j, struct mm_memory_stats *st,
                          struct mm_err *err)
{
    if (j >= m->shards) {
        mm_err_set(err, "no shard %u (the memory has %u)", j, m->shards);
        return -1;
    }
    return stats_of(m, j, st, err);
}

int mm_memory_get_entity(struct mm_memory *m, const char *text, struct mm_entity_record **out,
                         size_t *n, struct mm_err *err)
{
    if (mm_text_check("entity", text, err) != 0) return -1;
    Memllm__GetEntityRequest g = MEMLLM__GET_ENTITY_REQUEST__INIT;
    g.text = (char *)text;
    Memllm__Request req = MEMLLM__REQUEST__INIT;
    req.command_case = MEMLLM__REQUEST__COMMAND_GET_ENTITY;
    req.get_entity = &g;
    Memllm__Response **resp = calloc(m->shards, sizeof(*resp));
    if (!resp) {
        mm_err_set(err, "out of memory");
        return -1;
    }
    int rc = round_all(m, &req, resp, err);
    *out = NULL;
    *n = 0;
    if (rc == 0) {
        size_t total = 0;
        for (uint32_t j = 0; j < m->shards; j++)
            total += resp[j]->get_entity->n_entities;
        *out = calloc(total ? total : 1, sizeof(**out));
        for (uint32_t j = 0; *out && j < m->shards; j++) {
            const Memllm__GetEntityResult *g2 = resp[j]->get_entity;
            for (size_t i = 0; i < g2->n_entities; i++) {
                const Memllm__EntityRecord *e = g2->entities[i];
                struct mm_entity_record *r = &(*out)[(*n)++];
                r->id = e->id;
                r->text = strdup(e->text);
                r->forward_copies = e->forward_copies;
                r->reverse_copies = e->reverse_copies;
                r->aliases = calloc(e->n_aliases ? e->n_aliases : 1, sizeof(char *));
                if (!r->text || !r->aliases) {
                    rc = -1;
                    break;
                }
                for (size_t a = 0; a < e->n_aliases; a++) {
                    r->aliases[a] = strdup(e->aliases[a]);
                    if (!r->aliases[a]) rc = -1;
                    r->naliases++;
                }
            }
        }
        if (!*out || rc != 0) {
            mm_entity_records_free(*out, *n);
            *out = NULL;
            *n = 0;
            mm_err_set(err, "out of memory");
            rc = -1;
        }
        client_free_responses(m, resp);
    }
    free(resp);
    return rc;
}

void mm_entity_records_free(struct mm_entity_record *r, size_t n)
{
    for (size_t i = 0; r && i < n; i++) {
        for (size_t a = 0; a < r[i].naliases; a++)
            free(r[i].aliases[a]);
        free(r[i].aliases);
        free(r[i].text);
    }
    free(r);
}

/* Checkpoint or restore: every shard gets dir/shard-NNN. */
static int per_shard_dir(struct mm_memory *m, const char *dir, int restore, struct mm_err *err)
{
    uint32_t S = m->shards;
    Memllm__CheckpointRequest *cp = calloc(S, sizeof(*cp));
    Memllm__RestoreRequest *rs = calloc(S, sizeof(*rs));
    Memllm__Request *r = calloc(S, sizeof(*r));
    Memllm__Request **reqs = calloc(S, sizeof(*reqs));
    Memllm__Response **resp = calloc(S, sizeof(*resp));
    char **paths = calloc(S, sizeof(*paths));
    int rc = -1;
    if (!cp || !rs || !r || !reqs || !resp || !paths) {
        mm_err_set(err, "out of memory");
        goto out;
    }
    rc = 0;
    for (uint32_t j = 0; j < S && rc == 0; j++) {
        size_t len = strlen(dir) + 32;
        paths[j] = malloc(len);
        if (!paths[j]) {
            mm_err_set(err, "out of memory");
            rc = -1;
            break;
        }
        snprintf(paths[j], len, "%s/shard-%03u", dir, j);
        memllm__request__init(&r[j]);
        if (restore) {
            memllm__restore_request__init(&rs[j]);
            rs[j].dir = paths[j];
            r[j].command_case = MEMLLM__REQUEST__COMMAND_RESTORE;
            r[j].restore = &rs[j];
        } else {
            memllm__checkpoint_request__init(&cp[j]);
            cp[j].dir = paths[j];
            r[j].command_case = MEMLLM__REQUEST__COMMAND_CHECKPOINT;
            r[j].checkpoint = &cp[j];
        }
        reqs[j] = &r[j];
    }
    if (rc == 0) rc = client_round(m, reqs, resp, err);
    if (rc == 0) client_free_responses(m, resp);
out:
    for (uint32_t j = 0; paths && j < S; j++)
        free(paths[j]);
    free(paths);
    free(cp);
    free(rs);
    free(r);
    free(reqs);
    free(resp);
    return rc;
}

int mm_memory_backup(struct mm_memory *m, const char *dir, struct mm_err *err)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        mm_err_set(err, "backup: %s: %s", dir, strerror(errno));
        return -1;
    }
    return per_shard_dir(m, dir, 0, err);
}

int mm_memory_restore(struct mm_memory *m, const char *dir, struct mm_err *err)
{
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        mm_err_set(err, "restore: %s is not a directory", dir);
        return -1;
    }
    id_map_free(&m->stored);
    return per_shard_dir(m, dir, 1, err);
}
