/* Keys and values of a stage's layers for several sequences ("slots"), in
 * pages of K_KV_PAGE positions.
 *
 * A slot is a table of page ids: page i of the table holds its positions
 * [i * K_KV_PAGE, (i + 1) * K_KV_PAGE) for every layer of the stage. Pages
 * are counted by reference, so that several slots can hold the same prefix
 * once: kv_cache_share gives a slot another slot's first positions without
 * copying them (a cached chat system prompt, or the preceding sentences of
 * a document in the MemLLM write loop). A page is copied only when a slot
 * writes into it while another slot still holds it (copy on write).
 *
 * The pool has a page for every table entry of every slot, so it never runs
 * out; it is calloc'd, and freed pages are reused most recent first, so
 * memory is touched only as far as the pages in use ever reached: sharing
 * is what lowers it. Attention reads a slot through k_kv_view page pointers
 * (kernels.h), in the same order as over one matrix, so paging and sharing
 * change no result.
 *
 * Rolling a sequence back (the MemLLM read loop, before its "({") is O(1)
 * per page: the pages wholly past the new length go back to the pool. */
#ifndef MEMLLM_WORKER_KV_CACHE_H
#define MEMLLM_WORKER_KV_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "kernels.h"

struct kv_cache {
    int n_layers; /* layers of this stage */
    int n_slots;
    int capacity;        /* positions per slot */
    int kv_dim;          /* n_kv_heads * head_dim */
    int slot_pages;      /* table entries per slot: capacity rounded up to pages */
    int n_pages;         /* the pool: n_slots * slot_pages */
    float *k, *v;        /* [n_layers][n_pages][K_KV_PAGE][kv_dim] */
    int32_t *table;      /* [n_slots][slot_pages]: page ids, -1 where none */
    int32_t *ref;        /* [n_pages]: how many table entries hold each page */
    int32_t *free_pages; /* a stack of the unused page ids */
    int n_free;
    int *len;                 /* filled positions per slot */
    int *high;                /* the most positions each slot ever held */
    int peak_pages;           /* the most pages ever in use at once */
    const float **view_pages; /* [2 * slot_pages]: kv_cache_view's page pointers */
};

int kv_cache_init(struct kv_cache *c, int n_layers, int n_slots, int capacity, int kv_dim,
                  struct mm_err *err);
void kv_cache_free(struct kv_cache *c);

/* Shortens slot's history to len positions (len <= current length); pages
 * wholly past it go back to the pool. */
void kv_cache_truncate(struct kv_cache *c, int slot, int len);

/* Before n positions are written at pos0 (pos0 <= the slot's length): rolls
 * the slot back to pos0 and makes every page the write touches the slot's
 * own (a new page, or a copy of one that another slot shares). */
void kv_cache_prepare(struct kv_cache *c, int slot, int pos0, int n);

/* dst's history becomes src's first len positions (len <= src's length),
 * sharing src's pages; what dst held before is released. */
int kv_cache_share(struct kv_cache *c, int dst, int src, int len, struct mm_err *err);

/* Where position pos of slot's K (V) row lies for local layer `layer`; the
 * page must exist (kv_cache_prepare made it). */
static inline float *kv_cache_row(const struct kv_cache *c, const float *base, int layer, int slot,
                                  int pos)
{
    int32_t page = c->table[(size_t)slot * (size_t)c->slot_pages + (size_t)(pos / K_KV_PAGE)];
    return (float *)base + (((size_t)layer * (size_t)c->n_pages + (size_t)page) * K_KV_PAGE +
                            (size_t)(pos % K_KV_PAGE)) *
                               (size_t)c->kv_dim;
}

/* The slot's K and V of local layer `layer` for attention, over its first
 * len positions. The views point into c->view_pages, valid until the next
 * call. */
void kv_cache_view(struct kv_cache *c, int layer, int slot, int len, struct k_kv_view *k,
                   struct k_kv_view *v);

/* Pages held by at least one slot (against the slots' lengths in pages:
 * what sharing saves). */
int kv_cache_pages_in_use(const struct kv_cache *c);

/* Bytes of keys and values: the most the pages ever held at once, and what
 * an unpaged cache (a matrix per slot, touched as it grows) would have held
 * for slots [0, n_slots): each at the most positions it ever held. */
void kv_cache_memory(const struct kv_cache *c, int n_slots, int64_t *paged, int64_t *contiguous);

#endif
