/* Shared by ann*.c: the HNSW graph, the scratch space of a searching thread,
 * and the approximate index around them (ann.h). */
#ifndef MEMLLM_MEMSHARD_ANN_INTERNAL_H
#define MEMLLM_MEMSHARD_ANN_INTERNAL_H

#include "ann.h"

#include <pthread.h>
#include <stdint.h>
#ifdef __AVX512BW__
#include <immintrin.h>
#endif

/* Levels above 15 would need more than m^15 nodes to be drawn. */
#define ANN_MAX_LEVEL 15
/* Most links per node above level 0 (m is clamped to 2..ANN_MAX_M). */
#define ANN_MAX_M 64

/* Node i is row i of the vector index. Links of a node at one level are a
 * count followed by up to m (m0 at level 0) neighbour ids.
 *
 * The graph keeps its own copy of the vectors, quantised to int8 with one
 * scale per vector (ann_encode): a search is bound by fetching vectors from
 * memory, and these are a quarter of the floats. The error (~1e-3 on a
 * cosine) only steers the walk; the caller rescores what it finds. */
struct ann_graph {
    int dim;
    uint32_t m, m0;
    size_t n, cap;
    int8_t *code;     /* cap x dim */
    float *scale;     /* per node */
    uint8_t *level;   /* per node */
    uint64_t *key;    /* per node: identity of its row (ann_row_key) */
    uint32_t *links0; /* cap x (m0 + 1) */
    uint32_t **upper; /* per node: level x (m + 1) links for levels 1..level; NULL at level 0 */
    uint32_t entry;
    int max_level; /* -1: empty */
};

struct ann_cand {
    float sim;
    uint32_t node;
};

/* What one thread needs to search: visit marks and the two heaps. */
struct ann_scratch {
    uint32_t *mark;
    size_t nmark;
    uint32_t epoch;
    struct ann_cand *cand, *res;
    size_t cap;
    int8_t *qcode; /* the last searched vector, encoded */
    float qscale;
};

/* The identity of a row: its owner and the id of its normalised text. */
uint64_t ann_row_key(uint64_t owner, uint64_t text_id);

/* The level of a new node, from its key and the seed. */
int ann_level(uint64_t key, uint64_t seed, uint32_t m);

void ann_graph_init(struct ann_graph *g, int dim, uint32_t m);
void ann_graph_free(struct ann_graph *g);
size_t ann_graph_bytes(const struct ann_graph *g);
void ann_scratch_free(struct ann_scratch *s);

/* Quantises a vector: code[i] = round(v[i] / scale), scale = max|v| / 127. */
void ann_encode(const float *v, int dim, int8_t *code, float *scale);

/* Inserts node g->n, whose vector is vec, with the given key and level.
 * Reads without a lock; takes `lock` (may be NULL) in write mode only to
 * grow the arrays and to store the new links. -1 when out of memory (graph
 * unchanged). */
int ann_graph_insert(struct ann_graph *g, struct ann_scratch *s, const float *vec, uint64_t key,
                     int level, uint32_t ef_construction, pthread_rwlock_t *lock);

/* The codes of a loaded graph (ann_graph_load keeps no vectors): node i's
 * vector is row i of vecs (n x dim). -1 when out of memory. */
int ann_graph_encode_rows(struct ann_graph *g, const float *vecs);

/* The ef nodes nearest to q that the search finds, best first, in out (room
 * for ef); returns their count, or SIZE_MAX when out of memory. */
size_t ann_graph_search(const struct ann_graph *g, struct ann_scratch *s, const float *q, size_t ef,
                        struct ann_cand *out);

/* After a search whose list reached below `bound`: the nodes at or above
 * bound that are linked (at level 0, through nodes at or above bound) to
 * those of the list, and that the search did not visit, are appended to
 * *out (n entries, room for *cap, grown with realloc); the whole list is
 * then sorted best first. A range search that stopped at the list's end
 * would miss such nodes. Returns the new count, or SIZE_MAX when out of
 * memory. */
size_t ann_graph_expand(const struct ann_graph *g, struct ann_scratch *s, float bound,
                        struct ann_cand **out, size_t n, size_t *cap);

/* The graph file: save writes path.tmp and renames it over path. load fills
 * an empty graph from the file; it returns 0 when loaded, 1 when there is no
 * usable file (absent, or made with other parameters: err says which), -1
 * when out of memory. */
int ann_graph_save(const struct ann_graph *g, uint32_t ef_construction, uint64_t seed,
                   const char *path, struct mm_err *err);
int ann_graph_load(struct ann_graph *g, uint32_t ef_construction, uint64_t seed, const char *path,
                   struct mm_err *err);

/* sum a[i] * b[i] of two int8 codes. */
static inline int32_t ann_idot(const int8_t *a, const int8_t *b, int dim)
{
    int i = 0;
    int32_t s = 0;
#ifdef __AVX512BW__
    __m512i acc = _mm512_setzero_si512();
    for (; i + 32 <= dim; i += 32) {
        __m512i x = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(a + i)));
        __m512i y = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(b + i)));
        acc = _mm512_add_epi32(acc, _mm512_madd_epi16(x, y));
    }
    s = _mm512_reduce_add_epi32(acc);
#endif
    for (; i < dim; i++)
        s += (int32_t)a[i] * b[i];
    return s;
}

#endif
