/* Nearest-neighbour search by cosine similarity over a matrix of
 * L2-normalised rows, each owned by an id (an entity or relation) and
 * carrying the normalised text it embeds.
 *
 * Exact search multiplies the queries by the rows with memllm's own matmul
 * kernel (k_matmul_forward: AVX-512 dot products, whatever CPU OpenBLAS
 * thinks it runs on) and keeps the rows above a threshold. Once the index
 * has the options' min_rows rows (and approximate search is enabled), an
 * HNSW graph built in the background (ann.h) finds the candidates instead;
 * rows the graph does not cover yet are still scanned exactly.
 *
 * Either way, the similarities reported are recomputed in double precision
 * in a fixed order, so they do not depend on how the kernel blocks a matrix
 * or which path found the row: the same row gives the same score on any
 * shard layout, which keeps answers identical for S = 1 and S = 3. */
#ifndef MEMLLM_MEMSHARD_VECTOR_INDEX_H
#define MEMLLM_MEMSHARD_VECTOR_INDEX_H

#include "ann.h"
#include "err.h"

#include <stddef.h>
#include <stdint.h>

struct mm_vector_index {
    int dim;
    size_t n, cap;
    float *vecs;     /* n x dim */
    uint64_t *owner; /* n */
    char **text;     /* n normalised texts, owned */

    int ann_enabled; /* start the approximate index at ann_opt.min_rows */
    struct mm_ann_options ann_opt;
    char *ann_path;          /* its graph file, or NULL */
    struct mm_ann *ann;      /* NULL until started */
    struct mm_err ann_error; /* why it could not start, if it could not */
};

struct mm_vector_hit {
    size_t row;
    double sim;
};

void mm_vindex_init(struct mm_vector_index *ix, int dim);
/* Stops the approximate index (saving its graph) and frees everything. */
void mm_vindex_free(struct mm_vector_index *ix);

/* Appends a row; copies vec and text. */
int mm_vindex_add(struct mm_vector_index *ix, uint64_t owner, const char *normalised_text,
                  const float *vec, struct mm_err *err);

/* Room for `extra` more rows, so that adding them cannot fail. */
int mm_vindex_reserve(struct mm_vector_index *ix, size_t extra, struct mm_err *err);
/* Appends a row into reserved room, taking ownership of the malloc'ed text;
 * returns the text. */
const char *mm_vindex_add_owned(struct mm_vector_index *ix, uint64_t owner, char *normalised_text,
                                const float *vec);

/* Enables approximate search with options o (zero fields: defaults), its
 * graph saved in path (NULL: not saved). Starts it now when the index is
 * large enough, else when a later add makes it so. If it cannot start (out
 * of memory), search stays exact and ann_error says why. */
void mm_vindex_enable_ann(struct mm_vector_index *ix, const struct mm_ann_options *o,
                          const char *path);
/* The approximate search's ef_search from now on (0: the default). */
void mm_vindex_set_ef_search(struct mm_vector_index *ix, uint32_t ef_search);
/* Stops the approximate index and saves its graph; search is exact again. */
void mm_vindex_disable_ann(struct mm_vector_index *ix);

/* For each of the m queries (m x dim, row-major), the rows with similarity
 * >= min_sim, best first (ties by owner id, then text). hits[q] and nhits[q]
 * receive a malloc'ed array the caller frees. */
int mm_vindex_search(const struct mm_vector_index *ix, const float *queries, size_t m,
                     double min_sim, struct mm_vector_hit **hits, size_t *nhits,
                     struct mm_err *err);

/* The same for a caller that keeps at most k distinct owners: the
 * approximate path stops widening its search once it holds k owners above
 * min_sim (the exact path still returns every row above min_sim). */
int mm_vindex_search_k(const struct mm_vector_index *ix, const float *queries, size_t m,
                       double min_sim, size_t k, struct mm_vector_hit **hits, size_t *nhits,
                       struct mm_err *err);

/* The same, always by an exact scan of every row. */
int mm_vindex_search_exact(const struct mm_vector_index *ix, const float *queries, size_t m,
                           double min_sim, struct mm_vector_hit **hits, size_t *nhits,
                           struct mm_err *err);

/* The exact similarity of query q to row r, as search reports it. */
double mm_vindex_similarity(const struct mm_vector_index *ix, const float *q, size_t row);

/* Reorders the rows: new row i is old row order[i] (order is a
 * permutation of 0..n-1). */
int mm_vindex_permute(struct mm_vector_index *ix, const size_t *order, struct mm_err *err);

/* The approximate index's progress: 0 and st filled when it runs, -1 when
 * it does not (err says why when it failed to start). wait first blocks
 * until it covers every row. */
int mm_vindex_ann_status(const struct mm_vector_index *ix, struct mm_ann_status *st,
                         struct mm_err *err);
int mm_vindex_ann_wait(const struct mm_vector_index *ix, struct mm_ann_status *st,
                       struct mm_err *err);

#endif
