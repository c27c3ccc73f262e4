/* One query's two rounds at a single shard, as the memory client runs them
 * for S = 1: a search for the entity's candidates, then the query on them.
 * Shared by test_memory_ann (exact and approximate answers must be the same
 * bytes) and bench_memory (their latency). A shard that cannot answer ends
 * the program: both callers would stop there anyway. */
#ifndef MEMLLM_TESTS_MEMORY_SHARD_ROUNDS_H
#define MEMLLM_TESTS_MEMORY_SHARD_ROUNDS_H

#include "memory.pb-c.h"
#include "memory_client.h"
#include "shard.h"

#include <stdio.h>
#include <stdlib.h>

struct shard_rounds {
    uint8_t *search, *query; /* the packed responses (malloc'ed) */
    size_t search_len, query_len;
};

static inline uint8_t *shard_rounds_handle(struct mm_shard *sh, const Memllm__Request *req,
                                           size_t *len)
{
    size_t n = memllm__request__get_packed_size(req);
    uint8_t *buf = malloc(n ? n : 1), *resp = NULL;
    if (buf) memllm__request__pack(req, buf);
    if (!buf || mm_shard_handle(sh, buf, n, &resp, len) < 0) {
        fprintf(stderr, "shard_rounds: out of memory\n");
        exit(1);
    }
    free(buf);
    return resp;
}

/* entity_vec, relation_vec: the query's embeddings (dim floats each). */
static inline void shard_rounds_run(struct mm_shard *sh, const struct mm_query *q,
                                    const float *entity_vec, const float *relation_vec, int dim,
                                    struct shard_rounds *out)
{
    struct mm_query_options o;
    mm_query_options_default(&o);
    Memllm__SearchQuery sq = MEMLLM__SEARCH_QUERY__INIT;
    sq.text = (char *)q->entity;
    sq.vec = (float *)entity_vec;
    sq.n_vec = (size_t)dim;
    Memllm__SearchQuery *sqs[1] = {&sq};
    Memllm__SearchRequest sr = MEMLLM__SEARCH_REQUEST__INIT;
    sr.queries = sqs;
    sr.n_queries = 1;
    sr.tau = o.tau_e;
    sr.k = o.k_entities;
    Memllm__Request req = MEMLLM__REQUEST__INIT;
    req.command_case = MEMLLM__REQUEST__COMMAND_SEARCH;
    req.search = &sr;
    out->search = shard_rounds_handle(sh, &req, &out->search_len);
    Memllm__Response *r = memllm__response__unpack(NULL, out->search_len, out->search);
    if (!r || r->status != MEMLLM__STATUS__STATUS_OK || !r->search) {
        fprintf(stderr, "shard_rounds: search failed: %s\n", r ? r->error : "bad response");
        exit(1);
    }
    Memllm__QueryItem item = MEMLLM__QUERY_ITEM__INIT;
    item.entities = r->search->per_query[0]->hits;
    item.n_entities = r->search->per_query[0]->n_hits;
    item.relation = (char *)q->relation;
    item.relation_vec = (float *)relation_vec;
    item.n_relation_vec = (size_t)dim;
    item.want_subject = q->want_subject;
    Memllm__QueryItem *items[1] = {&item};
    Memllm__QueryRequest qr = MEMLLM__QUERY_REQUEST__INIT;
    qr.items = items;
    qr.n_items = 1;
    qr.tau_r = o.tau_r;
    qr.tau_t = o.tau_t;
    qr.k_relations = o.k_relations;
    qr.qthr = o.qthr;
    qr.per_pair = o.per_pair;
    qr.max_provenance = o.max_provenance;
    req.command_case = MEMLLM__REQUEST__COMMAND_QUERY;
    req.query = &qr;
    out->query = shard_rounds_handle(sh, &req, &out->query_len);
    memllm__response__free_unpacked(r, NULL);
}

#endif
