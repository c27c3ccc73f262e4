/* Sentence embedders: texts in, L2-normalised float vectors of a fixed
 * dimension out. The memory compares entity and relation texts by the cosine
 * similarity of these vectors (DESIGN.md §3).
 *
 * A shard records the name and dimension of the embedder that filled it and
 * refuses vectors from another one, because vectors of different embedders
 * cannot be compared. The BERT-family encoder (all-MiniLM-L6-v2 on memllm's
 * kernels) implements this same interface; the fallback below needs nothing
 * and is meant for tests and for running without a model. */
#ifndef MEMLLM_MEMSHARD_EMBEDDER_H
#define MEMLLM_MEMSHARD_EMBEDDER_H

#include "err.h"

#include <stddef.h>

struct mm_embedder {
    const char *name; /* stored in every shard; change it when vectors change */
    int dim;
    /* Writes n vectors of dim floats, row-major, into out. */
    int (*embed)(struct mm_embedder *self, const char *const *texts, size_t n, float *out,
                 struct mm_err *err);
    void (*destroy)(struct mm_embedder *self);
};

static inline int mm_embed(struct mm_embedder *e, const char *const *texts, size_t n, float *out,
                           struct mm_err *err)
{
    return e->embed(e, texts, n, out, err);
}

static inline void mm_embedder_free(struct mm_embedder *e)
{
    if (e) e->destroy(e);
}

/* The FALLBACK embedder, not a semantic model: hashed character trigrams of
 * the normalised text (signed feature hashing into MM_FALLBACK_DIM buckets),
 * L2-normalised. Texts that share most of their spelling are close; synonyms
 * are not. Deterministic and dependency-free. */
#define MM_FALLBACK_EMBEDDER_NAME "fallback-hashed-trigrams-v1"
#define MM_FALLBACK_DIM 256
struct mm_embedder *mm_fallback_embedder_new(struct mm_err *err);

#endif
