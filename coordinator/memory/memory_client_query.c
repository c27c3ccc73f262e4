/* Search and query across shards (DESIGN.md §3).
 *
 * Round 1 scatters the entity texts to every shard and keeps, per query, the
 * best k_entities candidates over all shards. Round 2 sends each candidate to
 * its home shard, which pairs it with the relation candidates (relation types
 * are on every shard), reads the triples, and returns its best answers; the
 * client merges them with the same rules the shard used (exact answers only
 * if there are any, best score first, one answer per entity, Qthr). Each
 * shard's list is its top Qthr, so the merge equals a single shard's answer. */
#include "memory_client_internal.h"
#include "text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mm_query_options_default(struct mm_query_options *o)
{
    o->tau_e = 0.7f;
    o->tau_r = 0.85f;
    o->tau_t = 0.7f;
    o->qthr = 30;
    o->k_entities = 300;
    o->k_relations = 25;
    o->per_pair = 31;
    o->max_provenance = 4;
}

static int hit_rank(const void *pa, const void *pb)
{
    const Memllm__EntityHit *a = *(Memllm__EntityHit *const *)pa;
    const Memllm__EntityHit *b = *(Memllm__EntityHit *const *)pb;
    if (a->exact != b->exact) return b->exact - a->exact;
    if (a->sim != b->sim) return a->sim > b->sim ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

/* Round 1: the merged candidates of each text, pointing into resp (kept
 * alive by the caller); merged[i] is malloc'ed. */
static int search_round(struct mm_memory *m, const char *const *texts, size_t n, float tau,
                        uint32_t k, Memllm__Response **resp, Memllm__EntityHit ***merged,
                        size_t *nmerged, struct mm_err *err)
{
    float *vecs = client_embed(m, texts, n, err);
    if (!vecs) return -1;
    struct mm_arena ar = {0};
    Memllm__SearchQuery **qs = mm_arena_array(&ar, n, sizeof(*qs));
    for (size_t i = 0; i < n && !ar.failed; i++) {
        qs[i] = mm_arena_alloc(&ar, sizeof(**qs));
        if (!qs[i]) break;
        memllm__search_query__init(qs[i]);
        qs[i]->text = (char *)texts[i];
        qs[i]->n_vec = (size_t)m->emb->dim;
        qs[i]->vec = vecs + i * (size_t)m->emb->dim;
    }
    Memllm__SearchRequest sr = MEMLLM__SEARCH_REQUEST__INIT;
    sr.queries = qs;
    sr.n_queries = n;
    sr.tau = tau;
    sr.k = k;
    Memllm__Request req = MEMLLM__REQUEST__INIT;
    req.command_case = MEMLLM__REQUEST__COMMAND_SEARCH;
    req.search = &sr;
    Memllm__Request **reqs = mm_arena_array(&ar, m->shards, sizeof(*reqs));
    for (uint32_t j = 0; reqs && j < m->shards; j++)
        reqs[j] = &req;
    int rc = -1;
    if (ar.failed || (n && !qs) || !reqs)
        mm_err_set(err, "out of memory");
    else
        rc = client_round(m, reqs, resp, err);
    mm_arena_free(&ar);
    free(vecs);
    if (rc != 0) return -1;

    for (size_t i = 0; i < n; i++) {
        size_t total = 0;
        for (uint32_t j = 0; j < m->shards; j++) {
            const Memllm__SearchResult *r = resp[j]->search;
            if (r->n_per_query != n) {
                mm_err_set(err, "shard %u: %zu search results for %zu queries", j, r->n_per_query,
                           n);
                return -1;
            }
            total += r->per_query[i]->n_hits;
        }
        merged[i] = malloc((total ? total : 1) * sizeof(**merged));
        if (!merged[i]) {
            mm_err_set(err, "out of memory");
            return -1;
        }
        size_t t = 0;
        for (uint32_t j = 0; j < m->shards; j++) {
            const Memllm__SearchHits *h = resp[j]->search->per_query[i];
            for (size_t x = 0; x < h->n_hits; x++)
                merged[i][t++] = h->hits[x];
        }
        qsort(merged[i], t, sizeof(*merged[i]), hit_rank);
        nmerged[i] = t < k ? t : k;
    }
    return 0;
}

int mm_memory_search(struct mm_memory *m, const char *const *texts, size_t n, float tau, uint32_t k,
                     struct mm_entity_hits *out, struct mm_err *err)
{
    char label[64];
    for (size_t i = 0; i < n; i++) {
        snprintf(label, sizeof(label), "search text %zu", i);
        if (mm_text_check(label, texts[i], err) != 0) return -1;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = (struct mm_entity_hits){0};
    Memllm__Response **resp = calloc(m->shards, sizeof(*resp));
    Memllm__EntityHit ***merged = calloc(n ? n : 1, sizeof(*merged));
    size_t *nmerged = calloc(n ? n : 1, sizeof(*nmerged));
    int rc = -1;
    if (resp && merged && nmerged) {
        rc = search_round(m, texts, n, tau, k, resp, merged, nmerged, err);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            out[i].h = calloc(nmerged[i] ? nmerged[i] : 1, sizeof(*out[i].h));
            if (!out[i].h) {
                mm_err_set(err, "out of memory");
                rc = -1;
                break;
            }
            for (size_t x = 0; x < nmerged[i]; x++) {
                const Memllm__EntityHit *h = merged[i][x];
                struct mm_entity_hit *o = &out[i].h[out[i].n++];
                o->id = h->id;
                o->sim = h->sim;
                o->exact = h->exact;
                o->text = strdup(h->text);
                o->matched = strdup(h->matched);
                if (!o->text || !o->matched) {
                    mm_err_set(err, "out of memory");
                    rc = -1;
                }
            }
        }
        if (rc != 0) mm_entity_hits_free(out, n);
        client_free_responses(m, resp);
    } else {
        mm_err_set(err, "out of memory");
    }
    for (size_t i = 0; merged && i < n; i++)
        free(merged[i]);
    free(merged);
    free(nmerged);
    free(resp);
    return rc;
}

void mm_entity_hits_free(struct mm_entity_hits *h, size_t n)
{
    for (size_t i = 0; h && i < n; i++) {
        for (size_t x = 0; x < h[i].n; x++) {
            free(h[i].h[x].text);
            free(h[i].h[x].matched);
        }
        free(h[i].h);
        h[i].h = NULL;
        h[i].n = 0;
    }
}

static int answer_rank(const void *pa, const void *pb)
{
    const Memllm__Answer *a = *(Memllm__Answer *const *)pa;
    const Memllm__Answer *b = *(Memllm__Answer *const *)pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    int t = strcmp(a->text, b->text);
    if (t) return t;
    return a->id < b->id ? -1 : a->id > b->id;
}

static char *dup_or_fail(const char *s, int *failed)
{
    char *d = strdup(s);
    if (!d) *failed = 1;
    return d;
}

/* Merges the shards' answers of query i into out. */
static int merge_answers(struct mm_memory *m, Memllm__Response **resp, size_t i, uint32_t qthr,
                         struct mm_answers *out)
{
    size_t total = 0;
    int any_exact = 0;
    for (uint32_t j = 0; j < m->shards; j++) {
        if (!resp[j]) continue;
        const Memllm__Answers *a = resp[j]->query->per_item[i];
        total += a->n_answers;
        for (size_t x = 0; x < a->n_answers; x++)
            any_exact |= a->answers[x]->exact;
    }
    Memllm__Answer **all = malloc((total ? total : 1) * sizeof(*all));
    if (!all) return -1;
    size_t n = 0;
    for (uint32_t j = 0; j < m->shards; j++) {
        if (!resp[j]) continue;
        const Memllm__Answers *a = resp[j]->query->per_item[i];
        for (size_t x = 0; x < a->n_answers; x++)
            if (!any_exact || a->answers[x]->exact) all[n++] = a->answers[x];
    }
    qsort(all, n, sizeof(*all), answer_rank);
    out->a = calloc(qthr < n ? qthr : (n ? n : 1), sizeof(*out->a));
    out->n = 0;
    int failed = !out->a;
    for (size_t x = 0; !failed && x < n && out->n < qthr; x++) {
        int seen = 0;
        for (size_t y = 0; y < x && !seen; y++)
            seen = all[y]->id == all[x]->id;
        if (seen) continue;
        const Memllm__Answer *a = all[x];
        struct mm_answer *o = &out->a[out->n++];
        o->text = dup_or_fail(a->text, &failed);
        o->entity = dup_or_fail(a->entity, &failed);
        o->relation = dup_or_fail(a->relation, &failed);
        o->score = a->score;
        o->exact = a->exact;
        o->prov_count = a->provenance_count;
        o->prov = calloc(a->n_provenance ? a->n_provenance : 1, sizeof(*o->prov));
        if (!o->prov) {
            failed = 1;
            break;
        }
        for (size_t p = 0; p < a->n_provenance; p++) {
            o->prov[p].source = dup_or_fail(a->provenance[p]->source, &failed);
            o->prov[p].sentence = a->provenance[p]->sentence;
            o->prov[p].time_ms = a->provenance[p]->time_ms;
            o->nprov++;
        }
    }
    free(all);
    return failed ? -1 : 0;
}

static int check_options(const struct mm_query_options *o, struct mm_err *err)
{
    const float taus[3] = {o->tau_e, o->tau_r, o->tau_t};
    const char *names[3] = {"tau_e", "tau_r", "tau_t"};
    for (int i = 0; i < 3; i++)
        if (!(taus[i] >= -1.0f && taus[i] <= 1.0f)) {
            mm_err_set(err, "query option %s = %g: must be in [-1, 1]", names[i], taus[i]);
            return -1;
        }
    if (o->qthr == 0 || o->k_entities == 0 || o->k_relations == 0 || o->per_pair == 0) {
        mm_err_set(err, "query options: qthr, k_entities, k_relations and per_pair must be >= 1");
        return -1;
    }
    return 0;
}

int mm_memory_query(struct mm_memory *m, const struct mm_query *q, size_t n,
                    const struct mm_query_options *o, struct mm_answers *out, struct mm_err *err)
{
    char label[64];
    if (check_options(o, err) != 0) return -1;
    /* Test-only fault injection: a shard that fails mid-service cannot be
     * provoked for real in one process (the shards answer from memory once
     * open), and memllm serve must fail only the request whose read it was
     * (tests/serve/test_serve_memory_api.py). */
    const char *fail = getenv("MEMLLM_TEST_FAIL_QUERIES_WITH");
    for (size_t i = 0; i < n; i++) {
        snprintf(label, sizeof(label), "entity of query %zu", i);
        if (mm_text_check(label, q[i].entity, err) != 0) return -1;
        if (fail && *fail && strstr(q[i].entity, fail)) {
            mm_err_set(err, "query %zu ('%s'): injected failure (MEMLLM_TEST_FAIL_QUERIES_WITH)", i,
                       q[i].entity);
            return -1;
        }
        snprintf(label, sizeof(label), "relation of query %zu", i);
        if (mm_text_check(label, q[i].relation, err) != 0) return -1;
        out[i].a = NULL;
        out[i].n = 0;
    }
    uint32_t S = m->shards;
    const char **texts = malloc((n ? n : 1) * sizeof(*texts));
    Memllm__Response **found = calloc(S, sizeof(*found));
    Memllm__Response **resp = calloc(S, sizeof(*resp));
    Memllm__EntityHit ***merged = calloc(n ? n : 1, sizeof(*merged));
    size_t *nmerged = calloc(n ? n : 1, sizeof(*nmerged));
    float *rvecs = NULL;
    struct mm_arena ar = {0};
    int rc = -1;
    if (!texts || !found || !resp || !merged || !nmerged) {
        mm_err_set(err, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        texts[i] = q[i].entity;
    if (search_round(m, texts, n, o->tau_e, o->k_entities, found, merged, nmerged, err) != 0)
        goto out;
    for (size_t i = 0; i < n; i++)
        texts[i] = q[i].relation;
    if (!(rvecs = client_embed(m, texts, n, err))) goto out;

    /* Round 2: every shard that holds a candidate gets one item per query
     * (empty where it holds none of that query's candidates). */
    Memllm__Request **reqs = mm_arena_array(&ar, S, sizeof(*reqs));
    for (uint32_t j = 0; reqs && j < S; j++) {
        int used = 0;
        for (size_t i = 0; i < n && !used; i++)
            for (size_t x = 0; x < nmerged[i] && !used; x++)
                used = mm_home_shard(merged[i][x]->id, S) == j;
        if (!used) continue;
        Memllm__QueryItem **items = mm_arena_array(&ar, n, sizeof(*items));
        for (size_t i = 0; items && i < n; i++) {
            Memllm__QueryItem *it = mm_arena_alloc(&ar, sizeof(*it));
            Memllm__EntityHit **ents = mm_arena_array(&ar, nmerged[i], sizeof(*ents));
            if (!it || (nmerged[i] && !ents)) break;
            memllm__query_item__init(it);
            for (size_t x = 0; x < nmerged[i]; x++)
                if (mm_home_shard(merged[i][x]->id, S) == j) ents[it->n_entities++] = merged[i][x];
            it->entities = ents;
            it->relation = (char *)q[i].relation;
            it->n_relation_vec = (size_t)m->emb->dim;
            it->relation_vec = rvecs + i * (size_t)m->emb->dim;
            it->want_subject = q[i].want_subject;
            items[i] = it;
        }
        Memllm__QueryRequest *qr = mm_arena_alloc(&ar, sizeof(*qr));
        Memllm__Request *r = mm_arena_alloc(&ar, sizeof(*r));
        if (!qr || !r || ar.failed) break;
        memllm__query_request__init(qr);
        qr->items = items;
        qr->n_items = n;
        qr->tau_r = o->tau_r;
        qr->tau_t = o->tau_t;
        qr->k_relations = o->k_relations;
        qr->qthr = o->qthr;
        qr->per_pair = o->per_pair;
        qr->max_provenance = o->max_provenance;
        memllm__request__init(r);
        r->command_case = MEMLLM__REQUEST__COMMAND_QUERY;
        r->query = qr;
        reqs[j] = r;
    }
    if (!reqs || ar.failed) {
        mm_err_set(err, "out of memory");
        goto out;
    }
    if (client_round(m, reqs, resp, err) != 0) goto out;
    rc = 0;
    for (uint32_t j = 0; j < S && rc == 0; j++)
        if (resp[j] && resp[j]->query->n_per_item != n) {
            mm_err_set(err, "shard %u: %zu query results for %zu queries", j,
                       resp[j]->query->n_per_item, n);
            rc = -1;
        }
    for (size_t i = 0; i < n && rc == 0; i++)
        if (merge_answers(m, resp, i, o->qthr, &out[i]) != 0) {
            mm_err_set(err, "out of memory");
            rc = -1;
        }
    if (rc != 0) mm_answers_free(out, n);
    client_free_responses(m, resp);
out:
    if (found) client_free_responses(m, found);
    for (size_t i = 0; merged && i < n; i++)
        free(merged[i]);
    mm_arena_free(&ar);
    free(rvecs);
    free(merged);
    free(nmerged);
    free(texts);
    free(found);
    free(resp);
    return rc;
}

int mm_memory_query_timed(struct mm_memory *m, const struct mm_query *q, size_t n,
                          const struct mm_query_options *o, struct mm_answers *out, double *shard_s,
                          struct mm_err *err)
{
    for (uint32_t j = 0; j < m->shards; j++)
        shard_s[j] = 0;
    m->round_s = shard_s;
    int rc = mm_memory_query(m, q, n, o, out, err);
    m->round_s = NULL;
    return rc;
}

void mm_answers_free(struct mm_answers *a, size_t n)
{
    for (size_t i = 0; a && i < n; i++) {
        for (size_t x = 0; x < a[i].n; x++) {
            struct mm_answer *o = &a[i].a[x];
            free(o->text);
            free(o->entity);
            free(o->relation);
            for (size_t p = 0; p < o->nprov; p++)
                free(o->prov[p].source);
            free(o->prov);
        }
        free(a[i].a);
        a[i].a = NULL;
        a[i].n = 0;
    }
}
