/* Search and query, the read side of DESIGN.md §3 on one shard.
 *
 * Search: the entity names homed here whose similarity to the query is at
 * least tau (vector index), plus the names equal to it after normalisation
 * (always candidates); one hit per entity, its best name; best k entities.
 *
 * Query: for each item, the relation candidates (replicated on every shard,
 * so each shard finds the same ones), every (entity, relation) pair scored by
 * the mean of the two similarities and dropped below tau_t, the triple copies
 * of each surviving pair in the wanted direction, then: if any answer comes
 * from an exact pair only exact answers stay; best score first (ties by
 * text), one answer per entity, at most qthr. The client merges the shards'
 * lists the same way, which gives the answers one shard holding everything
 * would give. */
#include "shard_internal.h"
#include "text.h"

#include <stdio.h>
#include <stdlib.h>

struct candidate {
    uint64_t id;
    double sim;
    int exact;
    const char *matched; /* normalised text of the best name; index- or arena-owned */
};

static int candidate_by_owner(const void *pa, const void *pb)
{
    const struct candidate *a = pa, *b = pb;
    if (a->id != b->id) return a->id < b->id ? -1 : 1;
    if (a->exact != b->exact) return b->exact - a->exact;
    if (a->sim != b->sim) return a->sim > b->sim ? -1 : 1;
    return strcmp(a->matched, b->matched);
}

static int candidate_rank(const void *pa, const void *pb)
{
    const struct candidate *a = pa, *b = pb;
    if (a->exact != b->exact) return b->exact - a->exact;
    if (a->sim != b->sim) return a->sim > b->sim ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

/* Keeps the best row of every owner, ranks them, keeps k. */
static size_t best_per_owner(struct candidate *c, size_t n, size_t k)
{
    if (n == 0) return 0;
    qsort(c, n, sizeof(*c), candidate_by_owner);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || c[m - 1].id != c[i].id) c[m++] = c[i];
    qsort(c, m, sizeof(*c), candidate_rank);
    return m < k ? m : k;
}

static double dot(const float *a, const float *b, int dim)
{
    double s = 0;
    for (int d = 0; d < dim; d++)
        s += (double)a[d] * b[d];
    return s;
}

/* The rows of the names family whose normalised text equals the query's. */
static int exact_names(struct mm_shard *sh, const char *norm, const float *qvec,
                       struct candidate **list, size_t *n, size_t *cap, struct mm_arena *ar,
                       struct shard_status *st)
{
    size_t plen = strlen(norm) + 1; /* text and its 0x00 separator */
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(sh->db, sh->ropt, sh->cf[CF_NAMES]);
    int rc = 0;
    for (rocksdb_iter_seek(it, norm, plen); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        if (klen != plen + 8 || memcmp(k, norm, plen) != 0) break;
        const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vlen);
        Memllm__Store__Name *name = memllm__store__name__unpack(NULL, vlen, v);
        if (!name || name->n_vec != (size_t)sh->dim) {
            if (name) memllm__store__name__free_unpacked(name, NULL);
            rc = shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "%s: damaged name record", sh->dir);
            break;
        }
        if (*n == *cap) {
            size_t grown = *cap ? *cap * 2 : 64;
            struct candidate *l = realloc(*list, grown * sizeof(*l));
            if (!l) {
                memllm__store__name__free_unpacked(name, NULL);
                rc = shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "out of memory");
                break;
            }
            *list = l;
            *cap = grown;
        }
        (*list)[(*n)++] = (struct candidate){
            .id = name->entity_id,
            .sim = dot(qvec, name->vec, sh->dim),
            .exact = 1,
            .matched = mm_arena_strdup(ar, norm),
        };
        memllm__store__name__free_unpacked(name, NULL);
        if (ar->failed) {
            rc = shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "out of memory");
            break;
        }
    }
    rocksdb_iter_destroy(it);
    return rc;
}

/* Candidates of one query text among the rows of ix (best k owners): the
 * similarity hits plus the rows whose normalised text equals the query's
 * (names: looked up in the names family; relations: the row of its id). The
 * caller frees *out. */
static int find_candidates(struct mm_shard *sh, const struct mm_vector_index *ix,
                           const struct mm_vector_hit *hits, size_t nhits, const char *text,
                           const float *qvec, int names, size_t k, struct candidate **out,
                           size_t *nout, struct mm_arena *ar, struct shard_status *st)
{
    char *norm = mm_text_normalise(text);
    size_t cap = nhits + 8, n = 0;
    struct candidate *c = malloc(cap * sizeof(*c));
    if (!norm || !c) {
        free(norm);
        free(c);
        return shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "out of memory");
    }
    for (size_t i = 0; i < nhits; i++) {
        const char *row_text = ix->text[hits[i].row];
        c[n++] = (struct candidate){
            .id = ix->owner[hits[i].row],
            .sim = hits[i].sim,
            .exact = strcmp(row_text, norm) == 0,
            .matched = row_text,
        };
    }
    int rc = 0;
    if (names) {
        rc = exact_names(sh, norm, qvec, &c, &n, &cap, ar, st);
    } else {
        /* Relations: one row per relation, keyed by the id of its text. */
        uint64_t id = mm_text_id(norm);
        for (size_t r = 0; r < ix->n; r++) {
            if (ix->owner[r] != id) continue;
            c[n++] = (struct candidate){.id = id,
                                        .sim = mm_vindex_similarity(ix, qvec, r),
                                        .exact = 1,
                                        .matched = ix->text[r]};
            break;
        }
    }
    free(norm);
    if (rc != 0) {
        free(c);
        return -1;
    }
    *nout = best_per_owner(c, n, k);
    *out = c;
    return 0;
}

int shard_search(struct mm_shard *sh, const Memllm__SearchRequest *q, Memllm__SearchResult *res,
                 struct mm_arena *ar, struct shard_status *st)
{
    char what[64];
    for (size_t i = 0; i < q->n_queries; i++) {
        snprintf(what, sizeof(what), "search: query %zu", i);
        if (shard_check_text(what, q->queries[i]->text, st) != 0 ||
            shard_check_vec(what, q->queries[i]->n_vec, q->queries[i]->vec, sh, st) != 0)
            return -1;
    }
    if (!(q->tau >= -1.0f && q->tau <= 1.0f) || q->k == 0)
        return shard_fail(st, MEMLLM__STATUS__STATUS_INVALID_ARGUMENT,
                          "search: tau %g must be in [-1, 1] and k %u at least 1", q->tau, q->k);
    size_t m = q->n_queries;
    float *queries = malloc((m ? m : 1) * (size_t)sh->dim * sizeof(float));
    struct mm_vector_hit **hits = calloc(m ? m : 1, sizeof(*hits));
    size_t *nhits = calloc(m ? m : 1, sizeof(*nhits));
    res->per_query = mm_arena_array(ar, m, sizeof(*res->per_query));
    res->n_per_query = m;
    int rc = 0;
    if (!queries || !hits || !nhits || ar->failed) {
        rc = shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < m; i++)
        memcpy(queries + i * (size_t)sh->dim, q->queries[i]->vec, sizeof(float) * (size_t)sh->dim);
    if (m && mm_vindex_search_k(&sh->names, queries, m, q->tau, q->k, hits, nhits, &st->err) != 0) {
        rc = shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "%s", st->err.msg);
        goto out;
    }
    for (size_t i = 0; rc == 0 && i < m; i++) {
        struct candidate *c = NULL;
        size_t n = 0;
        rc = find_candidates(sh, &sh->names, hits[i], nhits[i], q->queries[i]->text,
                             queries + i * (size_t)sh->dim, 1, q->k, &c, &n, ar, st);
        Memllm__SearchHits *out = mm_arena_alloc(ar, sizeof(*out));
        if (rc == 0 && out) {
            memllm__search_hits__init(out);
            out->hits = mm_arena_array(ar, n, sizeof(*out->hits));
            out->n_hits = n;
            for (size_t j = 0; rc == 0 && j < n; j++) {
                Memllm__EntityHit *h = mm_arena_alloc(ar, sizeof(*h));
                if (!h) break;
                memllm__entity_hit__init(h);
                h->id = c[j].id;
                h->sim = c[j].sim;
                h->exact = c[j].exact;
                h->matched = mm_arena_strdup(ar, c[j].matched);
                rc = shard_entity_text(sh, c[j].id, &h->text, ar, st);
                out->hits[j] = h;
            }
            res->per_query[i] = out;
        }
        free(c);
        if (rc == 0 && ar->failed) rc = shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "oom");
    }
out:
    for (size_t i = 0; hits && i < m; i++)
        free(hits[i]);
    free(hits);
    free(nhits);
    free(queries);
    return rc;
}

struct answer {
    uint64_t id;
    const char *text; /* arena */
    double score;
    int exact;
    const char *entity, *relation;
    /* The copy's stored value (arena): the provenance of the answers kept
     * is taken from it, without reading the copy again. */
    const uint8_t *val;
    size_t vlen;
};

static int answer_order(const void *pa, const void *pb)
{
    const struct answer *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    int t = strcmp(a->text, b->text);
    if (t) return t;
    return a->id < b->id ? -1 : a->id > b->id;
}

struct answer_list {
    struct answer *a;
    size_t n, cap;
    int any_exact;
};

/* Appends the copies of one (entity, relation) pair, at most per_pair. */
static int fetch_pair(struct mm_shard *sh, const Memllm__EntityHit *e, uint64_t rel_id,
                      const char *rel_text, int want_subject, double score, int exact,
                      uint32_t per_pair, struct answer_list *out, struct mm_arena *ar,
                      struct shard_status *st)
{
    unsigned char prefix[TRIPLE_PREFIX_LEN + 8];
    triple_key(prefix, e->id, rel_id, want_subject, 0);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(sh->db, sh->ropt, sh->cf[CF_TRIPLES]);
    int rc = 0;
    uint32_t taken = 0;
    for (rocksdb_iter_seek(it, (const char *)prefix, TRIPLE_PREFIX_LEN);
         rocksdb_iter_valid(it) && taken < per_pair; rocksdb_iter_next(it), taken++) {
        size_t klen;
        const char *k = rocksdb_iter_key(it, &klen);
        if (klen < TRIPLE_PREFIX_LEN || memcmp(k, prefix, TRIPLE_PREFIX_LEN) != 0) break;
        Memllm__Store__Triple *t = shard_iter_triple(sh, it, st);
        if (!t) {
            rc = -1;
            break;
        }
        if (out->n == out->cap) {
            size_t cap = out->cap ? out->cap * 2 : 64;
            struct answer *grown = realloc(out->a, cap * sizeof(*grown));
            if (!grown) {
                memllm__store__triple__free_unpacked(t, NULL);
                rc = shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "out of memory");
                break;
            }
            out->a = grown;
            out->cap = cap;
        }
        struct answer *a = &out->a[out->n++];
        a->id = get_be64((const unsigned char *)k + TRIPLE_PREFIX_LEN);
        a->text = mm_arena_strdup(ar, t->other);
        a->score = score;
        a->exact = exact;
        a->entity = e->text;
        a->relation = rel_text;
        const char *v = rocksdb_iter_value(it, &a->vlen);
        a->val = mm_arena_memdup(ar, v, a->vlen); /* not empty: it holds the other end */
        out->any_exact |= exact;
        memllm__store__triple__free_unpacked(t, NULL);
        if (!a->text || !a->val) {
            rc = shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "out of memory");
            break;
        }
    }
    rocksdb_iter_destroy(it);
    return rc;
}

/* Exact answers only (when there are any), best first, one per entity, at
 * most qthr; then their provenance. */
static int finish_answers(struct mm_shard *sh, struct answer_list *l, const Memllm__QueryRequest *q,
                          Memllm__Answers *out, struct mm_arena *ar, struct shard_status *st)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++)
        if (!l->any_exact || l->a[i].exact) l->a[n++] = l->a[i];
    if (n > 1) qsort(l->a, n, sizeof(*l->a), answer_order);
    size_t kept = 0;
    for (size_t i = 0; i < n && kept < q->qthr; i++) {
        int seen = 0;
        for (size_t j = 0; j < kept && !seen; j++)
            seen = l->a[j].id == l->a[i].id;
        if (!seen) l->a[kept++] = l->a[i];
    }
    out->answers = mm_arena_array(ar, kept, sizeof(*out->answers));
    out->n_answers = kept;
    for (size_t i = 0; i < kept; i++) {
        Memllm__Answer *a = mm_arena_alloc(ar, sizeof(*a));
        if (!a) return shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "out of memory");
        memllm__answer__init(a);
        a->text = (char *)l->a[i].text;
        a->id = l->a[i].id;
        a->score = l->a[i].score;
        a->exact = l->a[i].exact;
        a->entity = (char *)l->a[i].entity;
        a->relation = (char *)l->a[i].relation;
        Memllm__Store__Triple *t = memllm__store__triple__unpack(NULL, l->a[i].vlen, l->a[i].val);
        if (!t)
            return shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "%s: damaged triple record",
                              sh->dir);
        int rc = shard_triple_provenance(t, q->max_provenance, &a->provenance, &a->n_provenance,
                                         &a->provenance_count, ar, st);
        memllm__store__triple__free_unpacked(t, NULL);
        if (rc != 0) return -1;
        out->answers[i] = a;
    }
    return 0;
}

static int check_query(struct mm_shard *sh, const Memllm__QueryRequest *q, struct shard_status *st)
{
    if (!(q->tau_r >= -1.0f && q->tau_r <= 1.0f) || !(q->tau_t >= -1.0f && q->tau_t <= 1.0f))
        return shard_fail(st, MEMLLM__STATUS__STATUS_INVALID_ARGUMENT,
                          "query: tau_r %g and tau_t %g must be in [-1, 1]", q->tau_r, q->tau_t);
    if (q->qthr == 0 || q->k_relations == 0 || q->per_pair == 0)
        return shard_fail(st, MEMLLM__STATUS__STATUS_INVALID_ARGUMENT,
                          "query: qthr %u, k_relations %u and per_pair %u must be at least 1",
                          q->qthr, q->k_relations, q->per_pair);
    char what[64];
    for (size_t i = 0; i < q->n_items; i++) {
        const Memllm__QueryItem *it = q->items[i];
        snprintf(what, sizeof(what), "query: relation of item %zu", i);
        if (shard_check_text(what, it->relation, st) != 0 ||
            shard_check_vec(what, it->n_relation_vec, it->relation_vec, sh, st) != 0)
            return -1;
        for (size_t j = 0; j < it->n_entities; j++) {
            const Memllm__EntityHit *e = it->entities[j];
            snprintf(what, sizeof(what), "query: entity %zu of item %zu", j, i);
            if (shard_check_text(what, e->text, st) != 0) return -1;
            if (mm_home_shard(e->id, sh->count) != sh->index)
                return shard_fail(st, MEMLLM__STATUS__STATUS_INVALID_ARGUMENT,
                                  "%s: id %016llx belongs on shard %u, not on shard %u", what,
                                  (unsigned long long)e->id, mm_home_shard(e->id, sh->count),
                                  sh->index);
            if (!(e->sim >= -1.01 && e->sim <= 1.01))
                return shard_fail(st, MEMLLM__STATUS__STATUS_INVALID_ARGUMENT,
                                  "%s: similarity %g out of range", what, e->sim);
        }
    }
    return 0;
}

int shard_query(struct mm_shard *sh, const Memllm__QueryRequest *q, Memllm__QueryResult *res,
                struct mm_arena *ar, struct shard_status *st)
{
    if (check_query(sh, q, st) != 0) return -1;
    size_t m = q->n_items;
    float *rvecs = malloc((m ? m : 1) * (size_t)sh->dim * sizeof(float));
    struct mm_vector_hit **hits = calloc(m ? m : 1, sizeof(*hits));
    size_t *nhits = calloc(m ? m : 1, sizeof(*nhits));
    res->per_item = mm_arena_array(ar, m, sizeof(*res->per_item));
    res->n_per_item = m;
    int rc = 0;
    if (!rvecs || !hits || !nhits || ar->failed) {
        rc = shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < m; i++)
        memcpy(rvecs + i * (size_t)sh->dim, q->items[i]->relation_vec,
               sizeof(float) * (size_t)sh->dim);
    if (m && mm_vindex_search_k(&sh->relations, rvecs, m, q->tau_r, q->k_relations, hits, nhits,
                                &st->err) != 0) {
        rc = shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "%s", st->err.msg);
        goto out;
    }
    for (size_t i = 0; rc == 0 && i < m; i++) {
        const Memllm__QueryItem *item = q->items[i];
        struct candidate *rel = NULL;
        size_t nrel = 0;
        struct answer_list answers = {0};
        rc = find_candidates(sh, &sh->relations, hits[i], nhits[i], item->relation,
                             rvecs + i * (size_t)sh->dim, 0, q->k_relations, &rel, &nrel, ar, st);
        /* Exact pairs first: when they give answers, no fuzzy answer can
         * survive, so the other pairs are not read. */
        for (int pass = 0; pass < 2 && !(pass == 1 && answers.any_exact); pass++)
            for (size_t e = 0; rc == 0 && e < item->n_entities; e++) {
                const Memllm__EntityHit *ent = item->entities[e];
                for (size_t r = 0; rc == 0 && r < nrel; r++) {
                    int exact = ent->exact && rel[r].exact;
                    double score = (ent->sim + rel[r].sim) / 2;
                    if (exact != (pass == 0) || score < q->tau_t) continue;
                    rc = fetch_pair(sh, ent, rel[r].id, rel[r].matched, item->want_subject, score,
                                    exact, q->per_pair, &answers, ar, st);
                }
            }
        Memllm__Answers *out = mm_arena_alloc(ar, sizeof(*out));
        if (rc == 0 && !out) rc = shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "out of memory");
        if (rc == 0) {
            memllm__answers__init(out);
            rc = finish_answers(sh, &answers, q, out, ar, st);
            res->per_item[i] = out;
        }
        free(answers.a);
        free(rel);
    }
out:
    for (size_t i = 0; hits && i < m; i++)
        free(hits[i]);
    free(hits);
    free(nhits);
    free(rvecs);
    return rc;
}
