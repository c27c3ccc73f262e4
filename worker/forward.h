/* The forward pass of one pipeline stage over a batch of tokens.
 *
 * A batch mixes sequences: each token names its KV-cache slot and position,
 * the tokens of one sequence are contiguous and consecutive in position, and
 * a sequence's first token in the batch continues its slot's cache (its
 * position is at most the slot's length; a smaller position rolls the slot
 * back first). Every matrix product runs once over the whole batch; only
 * attention runs per sequence. */
#ifndef MEMLLM_WORKER_FORWARD_H
#define MEMLLM_WORKER_FORWARD_H

#include <stdint.h>

#include "err.h"
#include "kv_cache.h"
#include "lora.h"
#include "model.h"

struct stage_batch {
    int n;
    const int32_t *tokens;  /* [n] token ids (first stage) */
    const int32_t *pos;     /* [n] positions */
    const int32_t *slot;    /* [n] KV-cache slots */
    const int32_t *adapter; /* [n] index into the adapter list, -1 for none; NULL: none */
    const uint8_t *logits;  /* [n] rows that need logits (last stage); NULL: all */
};

/* Working memory reused across calls; grows as batches grow. */
struct stage_scratch {
    int cap_tokens;
    float *x, *xn, *q, *k, *v, *att, *gate, *up, *lora_tmp;
    int32_t *row_adapter; /* the adapter of each row that needs logits */
    int lora_rank_cap;
};

struct stage {
    struct model *model;
    struct kv_cache kv;
    const struct lora_adapter *adapters; /* may be NULL */
    int n_adapters;
    struct stage_scratch scratch;
};

/* What a batch is checked against: the cache's geometry and state. */
struct stage_limits {
    int n_slots, capacity;
    const int *len; /* filled positions per slot */
    int n_adapters;
    int vocab; /* first stage: token ids must be below it; 0: not checked */
};

/* Everything that can be wrong with a batch, found before any state
 * changes, so a rejected batch leaves the caches as they were. Shared by
 * the CPU and GPU stages. */
int stage_batch_check(const struct stage_batch *b, const struct stage_limits *lim,
                      struct mm_err *err);

int stage_init(struct stage *s, struct model *m, int n_slots, int capacity, struct mm_err *err);
void stage_free(struct stage *s);

/* Runs the batch through the stage's layers.
 *   hidden: [n, dim]. Input of a non-first stage; output of a non-last stage.
 *   logits: last stage: [number of rows that need logits, vocab_size], in
 *           batch order.
 * Fails (before touching any state) when a position does not fit the cache,
 * a sequence does not continue its slot, or a token/adapter id is out of
 * range. */
int stage_forward(struct stage *s, const struct stage_batch *b, float *hidden, float *logits,
                  struct mm_err *err);

/* Slot dst's history becomes slot src's first len positions (len at most
 * src's length): the KV pages are shared, not copied, until one of the two
 * writes into a shared page (worker/kv_cache.h). Outputs are the same as if
 * dst had been fed those tokens itself. src < 0 empties dst. */
int stage_kv_share(struct stage *s, int dst, int src, int len, struct mm_err *err);

#endif
