#include "vector_index.h"
#include "kernels.h"

#include <stdlib.h>
#include <string.h>

/* Rows per matmul: bounds the m x block similarity buffer for big shards. */
#define SEARCH_BLOCK 65536
/* Float similarities (any summation order) differ from the exact double
 * score by far less than this; rows within the margin are rescored. */
#define PREFILTER_MARGIN 1e-3

void mm_vindex_init(struct mm_vector_index *ix, int dim)
{
    memset(ix, 0, sizeof(*ix));
    ix->dim = dim;
}

void mm_vindex_disable_ann(struct mm_vector_index *ix)
{
    mm_ann_stop(ix->ann);
    ix->ann = NULL;
    ix->ann_enabled = 0;
}

void mm_vindex_free(struct mm_vector_index *ix)
{
    mm_vindex_disable_ann(ix);
    for (size_t i = 0; i < ix->n; i++)
        free(ix->text[i]);
    free(ix->text);
    free(ix->vecs);
    free(ix->owner);
    free(ix->ann_path);
    memset(ix, 0, sizeof(*ix));
}

static void start_ann(struct mm_vector_index *ix)
{
    if (!ix->ann_enabled || ix->ann || ix->n < ix->ann_opt.min_rows) return;
    ix->ann = mm_ann_start(ix, &ix->ann_opt, ix->ann_path, &ix->ann_error);
    /* Search stays exact without it; ann_error tells status why. */
    if (!ix->ann) ix->ann_enabled = 0;
}

void mm_vindex_enable_ann(struct mm_vector_index *ix, const struct mm_ann_options *o,
                          const char *path)
{
    ix->ann_opt = *o;
    mm_ann_options_resolve(&ix->ann_opt);
    free(ix->ann_path);
    ix->ann_path = path ? strdup(path) : NULL;
    ix->ann_enabled = 1;
    memset(&ix->ann_error, 0, sizeof(ix->ann_error));
    if (path && !ix->ann_path) {
        mm_err_set(&ix->ann_error, "%s: out of memory", path);
        ix->ann_enabled = 0;
        return;
    }
    start_ann(ix);
}

void mm_vindex_set_ef_search(struct mm_vector_index *ix, uint32_t ef_search)
{
    ix->ann_opt.ef_search = ef_search ? ef_search : MM_ANN_DEFAULT_EF_SEARCH;
    if (ix->ann) mm_ann_set_ef_search(ix->ann, ix->ann_opt.ef_search);
}

int mm_vindex_reserve(struct mm_vector_index *ix, size_t extra, struct mm_err *err)
{
    if (ix->n + extra <= ix->cap) return 0;
    size_t cap = ix->cap ? ix->cap * 2 : 256;
    while (cap < ix->n + extra)
        cap *= 2;
    /* The indexer reads the rows while it links a node: moving them waits. */
    if (ix->ann) mm_ann_rows_lock(ix->ann);
    float *vecs = realloc(ix->vecs, cap * (size_t)ix->dim * sizeof(float));
    if (vecs) ix->vecs = vecs;
    uint64_t *own = realloc(ix->owner, cap * sizeof(uint64_t));
    if (own) ix->owner = own;
    char **text = realloc(ix->text, cap * sizeof(char *));
    if (text) ix->text = text;
    if (vecs && own && text) ix->cap = cap;
    if (ix->ann) mm_ann_rows_unlock(ix->ann);
    if (vecs && own && text) return 0;
    mm_err_set(err, "vector index: out of memory for %zu rows", cap);
    return -1;
}

const char *mm_vindex_add_owned(struct mm_vector_index *ix, uint64_t owner, char *normalised_text,
                                const float *vec)
{
    memcpy(ix->vecs + ix->n * (size_t)ix->dim, vec, sizeof(float) * (size_t)ix->dim);
    ix->owner[ix->n] = owner;
    ix->text[ix->n] = normalised_text;
    ix->n++;
    if (ix->ann)
        mm_ann_rows_added(ix->ann, ix->n);
    else
        start_ann(ix);
    return normalised_text;
}

int mm_vindex_add(struct mm_vector_index *ix, uint64_t owner, const char *normalised_text,
                  const float *vec, struct mm_err *err)
{
    if (mm_vindex_reserve(ix, 1, err) != 0) return -1;
    char *copy = strdup(normalised_text);
    if (!copy) {
        mm_err_set(err, "vector index: out of memory");
        return -1;
    }
    mm_vindex_add_owned(ix, owner, copy, vec);
    return 0;
}

int mm_vindex_permute(struct mm_vector_index *ix, const size_t *order, struct mm_err *err)
{
    size_t cap = ix->cap ? ix->cap : 1;
    float *vecs = malloc(cap * (size_t)ix->dim * sizeof(float));
    uint64_t *own = malloc(cap * sizeof(uint64_t));
    char **text = malloc(cap * sizeof(char *));
    if (!vecs || !own || !text) {
        free(vecs);
        free(own);
        free(text);
        mm_err_set(err, "vector index: out of memory reordering %zu rows", ix->n);
        return -1;
    }
    for (size_t i = 0; i < ix->n; i++) {
        memcpy(vecs + i * (size_t)ix->dim, ix->vecs + order[i] * (size_t)ix->dim,
               sizeof(float) * (size_t)ix->dim);
        own[i] = ix->owner[order[i]];
        text[i] = ix->text[order[i]];
    }
    free(ix->vecs);
    free(ix->owner);
    free(ix->text);
    ix->vecs = vecs;
    ix->owner = own;
    ix->text = text;
    ix->cap = cap;
    return 0;
}

double mm_vindex_similarity(const struct mm_vector_index *ix, const float *q, size_t row)
{
    const float *v = ix->vecs + row * (size_t)ix->dim;
    double s = 0;
    for (int d = 0; d < ix->dim; d++)
        s += (double)q[d] * v[d];
    return s;
}

struct hit_list {
    struct mm_vector_hit *h;
    size_t n, cap;
};

/* Adds the row when its exact similarity reaches min_sim. */
static int hit_consider(const struct mm_vector_index *ix, struct hit_list *l, const float *q,
                        size_t row, double min_sim)
{
    double sim = mm_vindex_similarity(ix, q, row);
    if (sim < min_sim) return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct mm_vector_hit *h = realloc(l->h, cap * sizeof(*h));
        if (!h) return -1;
        l->h = h;
        l->cap = cap;
    }
    l->h[l->n].row = row;
    l->h[l->n].sim = sim;
    l->n++;
    return 0;
}

/* Rows [from, to) against the m queries, exactly; hits into lists[q]. */
static int scan_rows(const struct mm_vector_index *ix, size_t from, size_t to, const float *queries,
                     size_t m, double min_sim, struct hit_list *lists)
{
    if (to <= from || m == 0) return 0;
    size_t block = to - from < SEARCH_BLOCK ? to - from : SEARCH_BLOCK;
    float *sims = malloc(m * block * sizeof(float));
    if (!sims) return -1;
    const int dim = ix->dim;
    const float prefilter = (float)(min_sim - PREFILTER_MARGIN);
    int rc = 0;
    for (size_t start = from; rc == 0 && start < to; start += block) {
        size_t rows = to - start < block ? to - start : block;
        struct k_matrix w = {.dtype = MM_F32,
                             .rows = (int64_t)rows,
                             .cols = dim,
                             .row_bytes = (size_t)dim * sizeof(float),
                             .data = ix->vecs + start * (size_t)dim};
        k_matmul_forward(sims, queries, &w, (int)m);
        for (size_t q = 0; rc == 0 && q < m; q++) {
            const float *row_sims = sims + q * rows;
            for (size_t r = 0; rc == 0 && r < rows; r++)
                if (row_sims[r] >= prefilter)
                    rc = hit_consider(ix, &lists[q], queries + q * (size_t)dim, start + r, min_sim);
        }
    }
    free(sims);
    return rc;
}

/* The graph's candidates for each query (rows below `covered`), or an exact
 * scan of those rows where the graph would have to look at too many. */
static int graph_candidates(const struct mm_vector_index *ix, size_t covered, const float *queries,
                            size_t m, double min_sim, size_t k, struct hit_list *lists)
{
    for (size_t q = 0; q < m; q++) {
        const float *qv = queries + q * (size_t)ix->dim;
        uint32_t *rows;
        float *sims;
        size_t n;
        if (mm_ann_search(ix->ann, qv, min_sim - PREFILTER_MARGIN, k, &rows, &sims, &n) != 0)
            return -1;
        int rc = 0;
        if (n == SIZE_MAX) {
            rc = scan_rows(ix, 0, covered, qv, 1, min_sim, &lists[q]);
        } else {
            for (size_t i = 0; rc == 0 && i < n; i++)
                rc = hit_consider(ix, &lists[q], qv, rows[i], min_sim);
        }
        free(rows);
        free(sims);
        if (rc != 0) return -1;
    }
    return 0;
}

static int hit_order(const void *pa, const void *pb, void *ctx)
{
    const struct mm_vector_index *ix = ctx;
    const struct mm_vector_hit *a = pa, *b = pb;
    if (a->sim != b->sim) return a->sim > b->sim ? -1 : 1;
    uint64_t oa = ix->owner[a->row], ob = ix->owner[b->row];
    if (oa != ob) return oa < ob ? -1 : 1;
    return strcmp(ix->text[a->row], ix->text[b->row]);
}

static int search(const struct mm_vector_index *ix, int approximate, const float *queries, size_t m,
                  double min_sim, size_t k, struct mm_vector_hit **hits, size_t *nhits,
                  struct mm_err *err)
{
    struct hit_list *lists = calloc(m ? m : 1, sizeof(*lists));
    if (!lists) goto oom;
    size_t covered = 0;
    int rc = 0;
    if (approximate && ix->ann) {
        covered = mm_ann_search_begin(ix->ann);
        rc = graph_candidates(ix, covered, queries, m, min_sim, k, lists);
        mm_ann_search_end(ix->ann);
    }
    if (rc == 0) rc = scan_rows(ix, covered, ix->n, queries, m, min_sim, lists);
    if (rc != 0) goto oom;
    for (size_t q = 0; q < m; q++) {
        if (lists[q].n > 1)
            qsort_r(lists[q].h, lists[q].n, sizeof(*lists[q].h), hit_order, (void *)ix);
        hits[q] = lists[q].h;
        nhits[q] = lists[q].n;
    }
    free(lists);
    return 0;

oom:
    if (lists)
        for (size_t q = 0; q < m; q++)
            free(lists[q].h);
    free(lists);
    mm_err_set(err, "vector search: out of memory (%zu queries, %zu rows)", m, ix->n);
    return -1;
}

int mm_vindex_search(const struct mm_vector_index *ix, const float *queries, size_t m,
                     double min_sim, struct mm_vector_hit **hits, size_t *nhits, struct mm_err *err)
{
    return search(ix, 1, queries, m, min_sim, SIZE_MAX, hits, nhits, err);
}

int mm_vindex_search_k(const struct mm_vector_index *ix, const float *queries, size_t m,
                       double min_sim, size_t k, struct mm_vector_hit **hits, size_t *nhits,
                       struct mm_err *err)
{
    return search(ix, 1, queries, m, min_sim, k, hits, nhits, err);
}

int mm_vindex_search_exact(const struct mm_vector_index *ix, const float *queries, size_t m,
                           double min_sim, struct mm_vector_hit **hits, size_t *nhits,
                           struct mm_err *err)
{
    return search(ix, 0, queries, m, min_sim, 0, hits, nhits, err);
}

int mm_vindex_ann_status(const struct mm_vector_index *ix, struct mm_ann_status *st,
                         struct mm_err *err)
{
    memset(st, 0, sizeof(*st));
    if (!ix->ann) {
        *err = ix->ann_error;
        return -1;
    }
    mm_ann_status(ix->ann, st, err);
    return 0;
}

int mm_vindex_ann_wait(const struct mm_vector_index *ix, struct mm_ann_status *st,
                       struct mm_err *err)
{
    memset(st, 0, sizeof(*st));
    if (!ix->ann) {
        *err = ix->ann_error;
        return -1;
    }
    mm_ann_wait(ix->ann, st, err);
    return 0;
}
