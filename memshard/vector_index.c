#include "vector_index.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

/* Rows per GEMM: bounds the m x block similarity buffer for big shards. */
#define SEARCH_BLOCK 65536
/* BLAS (float, any summation order) may differ from the exact double score
 * by far less than this; rows within the margin are rescored exactly. */
#define PREFILTER_MARGIN 1e-3

void mm_vindex_init(struct mm_vector_index *ix, int dim)
{
    memset(ix, 0, sizeof(*ix));
    ix->dim = dim;
}

void mm_vindex_free(struct mm_vector_index *ix)
{
    for (size_t i = 0; i < ix->n; i++)
        free(ix->text[i]);
    free(ix->text);
    free(ix->vecs);
    free(ix->owner);
    memset(ix, 0, sizeof(*ix));
}

int mm_vindex_add(struct mm_vector_index *ix, uint64_t owner, const char *normalised_text,
                  const float *vec, struct mm_err *err)
{
    if (ix->n == ix->cap) {
        size_t cap = ix->cap ? ix->cap * 2 : 256;
        float *vecs = realloc(ix->vecs, cap * (size_t)ix->dim * sizeof(float));
        if (vecs) ix->vecs = vecs;
        uint64_t *own = realloc(ix->owner, cap * sizeof(uint64_t));
        if (own) ix->owner = own;
        char **text = realloc(ix->text, cap * sizeof(char *));
        if (text) ix->text = text;
        if (!vecs || !own || !text) {
            mm_err_set(err, "vector index: out of memory at %zu rows", cap);
            return -1;
        }
        ix->cap = cap;
    }
    char *copy = strdup(normalised_text);
    if (!copy) {
        mm_err_set(err, "vector index: out of memory");
        return -1;
    }
    memcpy(ix->vecs + ix->n * (size_t)ix->dim, vec, sizeof(float) * (size_t)ix->dim);
    ix->owner[ix->n] = owner;
    ix->text[ix->n] = copy;
    ix->n++;
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

static int hit_push(struct hit_list *l, size_t row, double sim)
{
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

static int hit_order(const void *pa, const void *pb, void *ctx)
{
    const struct mm_vector_index *ix = ctx;
    const struct mm_vector_hit *a = pa, *b = pb;
    if (a->sim != b->sim) return a->sim > b->sim ? -1 : 1;
    uint64_t oa = ix->owner[a->row], ob = ix->owner[b->row];
    if (oa != ob) return oa < ob ? -1 : 1;
    return strcmp(ix->text[a->row], ix->text[b->row]);
}

int mm_vindex_search(const struct mm_vector_index *ix, const float *queries, size_t m,
                     double min_sim, struct mm_vector_hit **hits, size_t *nhits, struct mm_err *err)
{
    struct hit_list *lists = calloc(m ? m : 1, sizeof(*lists));
    size_t block = ix->n < SEARCH_BLOCK ? ix->n : SEARCH_BLOCK;
    float *sims = malloc((m * block + 1) * sizeof(float));
    if (!lists || !sims) goto oom;

    const int dim = ix->dim;
    const float prefilter = (float)(min_sim - PREFILTER_MARGIN);
    for (size_t start = 0; start < ix->n; start += block) {
        size_t rows = ix->n - start < block ? ix->n - start : block;
        const float *mat = ix->vecs + start * (size_t)dim;
        if (m == 1)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)rows, dim, 1.0f, mat, dim, queries, 1,
                        0.0f, sims, 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)rows, dim, 1.0f,
                        queries, dim, mat, dim, 0.0f, sims, (int)rows);
        for (size_t q = 0; q < m; q++) {
            const float *row_sims = sims + q * rows;
            const float *qv = queries + q * (size_t)dim;
            for (size_t r = 0; r < rows; r++) {
                if (row_sims[r] < prefilter) continue;
                double exact = mm_vindex_similarity(ix, qv, start + r);
                if (exact >= min_sim && hit_push(&lists[q], start + r, exact) != 0) goto oom;
            }
        }
    }
    free(sims);
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
    free(sims);
    mm_err_set(err, "vector search: out of memory (%zu queries, %zu rows)", m, ix->n);
    return -1;
}
