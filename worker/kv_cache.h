/* Keys and values of a stage's layers for several sequences ("slots").
 *
 * Each (layer, slot) owns a contiguous [capacity, kv_dim] block for K and for
 * V, so attention reads one sequence's history as a plain matrix. The memory
 * is calloc'd: pages are touched only as sequences grow, so a large capacity
 * costs address space, not RSS.
 *
 * Truncation is O(1): the MemLLM read loop rolls a sequence back to before
 * its "({" by shortening its length; later rows are simply overwritten. */
#ifndef MEMLLM_WORKER_KV_CACHE_H
#define MEMLLM_WORKER_KV_CACHE_H

#include <stddef.h>

#include "err.h"

struct kv_cache {
    int n_layers; /* layers of this stage */
    int n_slots;
    int capacity; /* positions per slot */
    int kv_dim;   /* n_kv_heads * head_dim */
    float *k, *v;
    int *len; /* filled positions per slot */
};

int kv_cache_init(struct kv_cache *c, int n_layers, int n_slots, int capacity, int kv_dim,
                  struct mm_err *err);
void kv_cache_free(struct kv_cache *c);

static inline float *kv_cache_k(const struct kv_cache *c, int layer, int slot)
{
    return c->k + ((size_t)layer * (size_t)c->n_slots + (size_t)slot) * (size_t)c->capacity *
                      (size_t)c->kv_dim;
}
static inline float *kv_cache_v(const struct kv_cache *c, int layer, int slot)
{
    return c->v + ((size_t)layer * (size_t)c->n_slots + (size_t)slot) * (size_t)c->capacity *
                      (size_t)c->kv_dim;
}

/* Shortens slot's history to len positions (len <= current length). */
void kv_cache_truncate(struct kv_cache *c, int slot, int len);

#endif
