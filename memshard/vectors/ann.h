/* Approximate nearest-neighbour search for a vector index: an HNSW graph
 * (Malkov & Yashunin, "Efficient and robust approximate nearest neighbor
 * search using Hierarchical Navigable Small World graphs") over the rows of
 * one mm_vector_index, by inner product of L2-normalised rows (cosine).
 *
 * Why our own: Debian packages no C-callable ANN library (libhnswlib-dev is
 * header-only C++; libfaiss-dev ships the headers of faiss's C API but not
 * the library that implements it, and that API has no HNSW anyway).
 *
 * How it is used (vector_index.c):
 *   - Rows are indexed in the background by one thread per index, in row
 *     order, so a write never waits for the graph. A search walks the graph
 *     over the rows it covers and scans the rows it does not cover yet
 *     exactly: a fresh write is always found.
 *   - The graph is a cache of work, saved to a file next to the shard's
 *     database (every time it grew by an eighth, and at close). On open the
 *     file is matched to the rows by their identity (owner id and text);
 *     rows it lacks (written after the last save) are indexed again in the
 *     background; a file that does not match is ignored and the graph
 *     rebuilt.
 *   - Deterministic: a node's level comes from a seeded hash of its row's
 *     identity, and rows are inserted one at a time in row order, so the same
 *     rows in the same order give the same graph whatever the thread timing.
 *
 * Threads: the indexer is the only thread that changes the graph. It builds
 * each new node's links without a lock (nobody else writes) and takes the
 * graph lock in write mode only to store them; searches hold it in read
 * mode. The rows themselves belong to the shard's thread, which appends
 * them; it takes the rows lock in write mode when it must move them
 * (realloc), and the indexer holds it in read mode while it reads them. */
#ifndef MEMLLM_MEMSHARD_ANN_H
#define MEMLLM_MEMSHARD_ANN_H

#include "err.h"

#include <stddef.h>
#include <stdint.h>

/* Zero fields take the defaults below. */
struct mm_ann_options {
    /* Approximate search once the index holds this many rows; exact below.
     * UINT32_MAX: never. */
    uint32_t min_rows;
    uint32_t m;               /* links per node above level 0 (2..64); level 0 has 2m */
    uint32_t ef_construction; /* candidate list while linking a new node */
    uint32_t ef_search;       /* smallest candidate list of a search */
    uint64_t seed;            /* of the node levels */
};

#define MM_ANN_DEFAULT_MIN_ROWS 20000
#define MM_ANN_DEFAULT_M 32
#define MM_ANN_DEFAULT_EF_CONSTRUCTION 200
#define MM_ANN_DEFAULT_EF_SEARCH 128
#define MM_ANN_DEFAULT_SEED 0x6d656d6c6c6d21ULL

/* Fills the zero fields of o with the defaults. */
void mm_ann_options_resolve(struct mm_ann_options *o);

struct mm_vector_index;
struct mm_ann;

/* Starts indexing the rows of ix in the background, beginning with the graph
 * saved in `path` when it matches ix's rows (then ix's rows are reordered so
 * that the graph's nodes come first, in its order). path may be NULL: no
 * file. The index must not be searched or appended to during the call. */
struct mm_ann *mm_ann_start(struct mm_vector_index *ix, const struct mm_ann_options *o,
                            const char *path, struct mm_err *err);

/* Stops the indexer, saves the graph (when it has a path and grew since the
 * last save) and frees it. */
void mm_ann_stop(struct mm_ann *a);

/* The shard's thread calls these around moving the rows, and after it
 * appended rows (n is the new row count). */
void mm_ann_rows_lock(struct mm_ann *a);
void mm_ann_rows_unlock(struct mm_ann *a);
void mm_ann_rows_added(struct mm_ann *a, size_t n);

/* A search reads the graph between begin and end; begin returns how many
 * rows (the first ones) the graph covers. */
size_t mm_ann_search_begin(struct mm_ann *a);
void mm_ann_search_end(struct mm_ann *a);

/* Between begin and end: the rows the graph finds for the unit query q, best
 * first, as (row, approximate similarity) pairs in rows/sims (malloc'ed, *n
 * of them): those at or above min_sim less a margin that covers the int8
 * quantisation, for the caller to rescore exactly. It widens its candidate
 * list (from ef_search, doubling) until the list reaches below that bound
 * or holds `k` distinct owners above it, so that a threshold search finds
 * every row above the threshold, not only the first ef_search. Returns -1
 * when out of memory. A candidate list that would exceed the graph's
 * size/16 is not worth it: then *n is set to SIZE_MAX and the caller scans
 * the covered rows exactly. */
int mm_ann_search(struct mm_ann *a, const float *q, double min_sim, size_t k, uint32_t **rows,
                  float **sims, size_t *n);

/* Changes ef_search for the searches that follow (between searches). */
void mm_ann_set_ef_search(struct mm_ann *a, uint32_t ef_search);

struct mm_ann_status {
    size_t rows;   /* rows published to the indexer */
    size_t nodes;  /* rows in the graph */
    size_t loaded; /* nodes taken from the saved file at start */
    int failed;    /* the indexer stopped on an error (message in err) */
    size_t graph_bytes;
};

/* Waits until the graph covers every published row, or the indexer failed;
 * returns its status. */
void mm_ann_wait(struct mm_ann *a, struct mm_ann_status *st, struct mm_err *err);
void mm_ann_status(struct mm_ann *a, struct mm_ann_status *st, struct mm_err *err);

#endif
