/* Exact nearest-neighbour search by cosine similarity over a matrix of
 * L2-normalised rows, each owned by an id (an entity or relation) and
 * carrying the normalised text it embeds.
 *
 * Search multiplies the queries by the whole matrix with BLAS (one GEMM for a
 * batch of queries) and keeps the rows above a threshold. The similarities it
 * reports are then recomputed in double precision in a fixed order, so they
 * do not depend on how BLAS blocks a matrix of this size: the same row gives
 * the same score on any shard layout, which keeps answers identical for
 * S = 1 and S = 3. */
#ifndef MEMLLM_MEMSHARD_VECTOR_INDEX_H
#define MEMLLM_MEMSHARD_VECTOR_INDEX_H

#include "err.h"

#include <stddef.h>
#include <stdint.h>

struct mm_vector_index {
    int dim;
    size_t n, cap;
    float *vecs;     /* n x dim */
    uint64_t *owner; /* n */
    char **text;     /* n normalised texts, owned */
};

struct mm_vector_hit {
    size_t row;
    double sim;
};

void mm_vindex_init(struct mm_vector_index *ix, int dim);
void mm_vindex_free(struct mm_vector_index *ix);

/* Appends a row; copies vec and text. */
int mm_vindex_add(struct mm_vector_index *ix, uint64_t owner, const char *normalised_text,
                  const float *vec, struct mm_err *err);

/* For each of the m queries (m x dim, row-major), the rows with similarity
 * >= min_sim, best first (ties by owner id, then text). hits[q] and nhits[q]
 * receive a malloc'ed array the caller frees. */
int mm_vindex_search(const struct mm_vector_index *ix, const float *queries, size_t m,
                     double min_sim, struct mm_vector_hit **hits, size_t *nhits,
                     struct mm_err *err);

/* The exact similarity of query q to row r, as search reports it. */
double mm_vindex_similarity(const struct mm_vector_index *ix, const float *q, size_t row);

#endif
