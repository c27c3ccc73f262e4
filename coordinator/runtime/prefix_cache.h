/* Prefix sharing: the token prefixes the KV cache keeps after their
 * sequences finished, so that a new sequence whose prompt starts with one
 * reuses its keys and values instead of computing them again (a chat
 * system prompt, a few-shot header, the preceding sentences of a document
 * in the MemLLM write loop).
 *
 * The stages hold the engine's n_slots slots for running sequences and
 * cache_slots more after them. A finished sequence's context is parked in a
 * cache slot: engine_kv_share hands the slot its pages (worker/kv_cache.h),
 * nothing is copied on a CPU stage. Parked prefixes are kept by recency
 * within a budget of tokens (--kv-cache-mb); the least recently used is
 * evicted when a new one does not fit. Evicting releases only the cache
 * slot's references: a running sequence that shares the pages keeps them.
 *
 * A prefix is keyed by its tokens and its adapter (an adapter changes the
 * keys and values). Since a token's keys and values do not depend on what
 * else shared its batch, a reused prefix gives the same bits as computing
 * it (batch invariance), so outputs do not change. */
#ifndef MEMLLM_COORDINATOR_PREFIX_CACHE_H
#define MEMLLM_COORDINATOR_PREFIX_CACHE_H

#include <stdint.h>

#include "err.h"

struct engine;

struct prefix_entry {
    int32_t *tokens;
    int n, cap;
    int adapter;
    uint64_t used; /* the clock at its last use: 0 while empty */
};

struct prefix_cache {
    int first_slot, n_slots; /* cache slots [first_slot, first_slot + n_slots) */
    struct prefix_entry *entries;
    int64_t budget, held; /* tokens */
    uint64_t clock;
};

/* What the scheduler reused, for the figures (annotate prints them). */
struct prefix_stats {
    int64_t prompt_tokens; /* prompt tokens of the sequences started */
    int64_t reused_tokens; /* of them, served from the cache or a running sequence */
    int64_t parked, evicted;
};

int prefix_cache_init(struct prefix_cache *pc, int first_slot, int n_slots, int64_t budget,
                      struct mm_err *err);
void prefix_cache_free(struct prefix_cache *pc);

/* How many leading tokens a and b share. */
int prefix_common(const int32_t *a, int na, const int32_t *b, int nb);

/* The parked prefix that shares the most of prompt's first `limit` tokens
 * under `adapter`: its length (0: none) and slot; it counts as used. */
int prefix_cache_best(struct prefix_cache *pc, const int32_t *prompt, int limit, int adapter,
                      int *slot);

/* Parks the first n tokens of slot `src` (its context under `adapter`) in a
 * cache slot, evicting the least recently used prefixes until it fits the
 * budget. A prefix larger than the budget, or one a parked prefix already
 * covers, is not parked. */
int prefix_cache_park(struct prefix_cache *pc, struct engine *e, int src, const int32_t *tokens,
                      int n, int adapter, struct prefix_stats *st, struct mm_err *err);

#endif
