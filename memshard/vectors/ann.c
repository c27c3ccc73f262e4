/* The approximate index of one vector index: its background indexer, the
 * graph file, and the search that widens until a threshold is covered
 * (ann.h). */
#include "ann_internal.h"
#include "text.h"
#include "vector_index.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* The int8 codes' similarities err by ~1e-3 (one quantisation step per
 * element, summed over the dimensions); candidates are kept down to this far
 * below the threshold and rescored exactly by the caller. */
#define CODE_MARGIN 0.01

struct mm_ann {
    struct mm_ann_options opt;
    struct mm_vector_index *ix;
    char *path;
    struct ann_graph g;
    struct ann_scratch build, query;
    size_t loaded, saved;

    pthread_rwlock_t graph_lock, rows_lock;
    pthread_mutex_t mu; /* guards what follows */
    pthread_cond_t wake, caught_up;
    size_t published, indexed;
    int stop, failed;
    struct mm_err error;
    pthread_t thread;
};

void mm_ann_options_resolve(struct mm_ann_options *o)
{
    if (!o->min_rows) o->min_rows = MM_ANN_DEFAULT_MIN_ROWS;
    if (!o->m) o->m = MM_ANN_DEFAULT_M;
    if (o->m < 2) o->m = 2;
    if (o->m > ANN_MAX_M) o->m = ANN_MAX_M;
    if (!o->ef_construction) o->ef_construction = MM_ANN_DEFAULT_EF_CONSTRUCTION;
    if (!o->ef_search) o->ef_search = MM_ANN_DEFAULT_EF_SEARCH;
    if (!o->seed) o->seed = MM_ANN_DEFAULT_SEED;
}

static uint64_t row_key(const struct mm_vector_index *ix, size_t row)
{
    return ann_row_key(ix->owner[row], mm_text_id(ix->text[row]));
}

static void fail(struct mm_ann *a, const struct mm_err *err)
{
    pthread_mutex_lock(&a->mu);
    if (!a->failed) a->error = *err;
    a->failed = 1;
    pthread_cond_broadcast(&a->caught_up);
    pthread_mutex_unlock(&a->mu);
}

/* Saves when the graph grew by an eighth since the last save (and by at
 * least 4096 nodes): a crash then costs at most that much re-indexing. */
static void maybe_save(struct mm_ann *a, int force)
{
    size_t unsaved = a->g.n - a->saved;
    if (!a->path || unsaved == 0) return;
    if (!force && (unsaved < 4096 || unsaved < a->g.n / 8)) return;
    struct mm_err err;
    /* A failed save costs only the re-indexing after the next open, so it
     * is recorded for status, not fatal. */
    if (ann_graph_save(&a->g, a->opt.ef_construction, a->opt.seed, a->path, &err) == 0) {
        a->saved = a->g.n;
    } else {
        pthread_mutex_lock(&a->mu);
        a->error = err;
        pthread_mutex_unlock(&a->mu);
    }
}

/* How much nicer than the shard's requests the indexer runs: it catches up
 * when the shard is idle rather than slowing writes and searches down. */
#define INDEXER_NICE 10

static void *indexer(void *arg)
{
    struct mm_ann *a = arg;
    /* A Linux thread has its own nice value. Failing to lower it only leaves
     * the indexer at the shard's priority, so the result is not checked. */
    (void)setpriority(PRIO_PROCESS, (id_t)gettid(), INDEXER_NICE);
    float *vec = malloc((size_t)a->ix->dim * sizeof(float));
    if (!vec) {
        struct mm_err err;
        mm_err_set(&err, "approximate index: out of memory");
        fail(a, &err);
    }
    pthread_mutex_lock(&a->mu);
    while (!a->stop) {
        if (a->failed || a->indexed == a->published) {
            pthread_cond_wait(&a->wake, &a->mu);
            continue;
        }
        pthread_mutex_unlock(&a->mu);

        /* The graph keeps its own (quantised) copy of the vectors, so the
         * rows are read only here. */
        size_t row = a->g.n;
        pthread_rwlock_rdlock(&a->rows_lock);
        memcpy(vec, a->ix->vecs + row * (size_t)a->ix->dim, (size_t)a->ix->dim * sizeof(float));
        uint64_t key = row_key(a->ix, row);
        pthread_rwlock_unlock(&a->rows_lock);
        if (ann_graph_insert(&a->g, &a->build, vec, key, ann_level(key, a->opt.seed, a->opt.m),
                             a->opt.ef_construction, &a->graph_lock) != 0) {
            struct mm_err err;
            mm_err_set(&err, "approximate index: out of memory at %zu nodes", row);
            fail(a, &err);
        } else {
            maybe_save(a, 0);
        }
        pthread_mutex_lock(&a->mu);
        a->indexed = a->g.n;
        if (a->indexed == a->published) pthread_cond_broadcast(&a->caught_up);
    }
    pthread_mutex_unlock(&a->mu);
    free(vec);
    return NULL;
}

/* Hash table from row key to row, for matching a saved graph to the rows. */
struct key_map {
    uint64_t *key;
    uint32_t *row;
    size_t mask;
};

static int map_build(struct key_map *m, const struct mm_vector_index *ix)
{
    size_t cap = 16;
    while (cap < 2 * ix->n)
        cap *= 2;
    m->mask = cap - 1;
    m->key = malloc(cap * sizeof(*m->key));
    m->row = malloc(cap * sizeof(*m->row));
    if (!m->key || !m->row) return -1;
    memset(m->row, 0xff, cap * sizeof(*m->row));
    for (size_t r = 0; r < ix->n; r++) {
        uint64_t k = row_key(ix, r);
        size_t i = (size_t)k & m->mask;
        while (m->row[i] != UINT32_MAX && m->key[i] != k)
            i = (i + 1) & m->mask;
        if (m->row[i] != UINT32_MAX) return 1; /* two rows, one key: cannot match */
        m->key[i] = k;
        m->row[i] = (uint32_t)r;
    }
    return 0;
}

static uint32_t map_find(const struct key_map *m, uint64_t k)
{
    for (size_t i = (size_t)k & m->mask; m->row[i] != UINT32_MAX; i = (i + 1) & m->mask)
        if (m->key[i] == k) return m->row[i];
    return UINT32_MAX;
}

/* Takes the saved graph when its nodes are rows of ix, reordering the rows
 * so that node i is row i. Returns 0 when taken, 1 when not (the graph stays
 * empty), -1 when out of memory. */
static int adopt_saved(struct mm_ann *a, struct mm_err *err)
{
    struct mm_vector_index *ix = a->ix;
    int rc = ann_graph_load(&a->g, a->opt.ef_construction, a->opt.seed, a->path, err);
    if (rc != 0) return rc;
    if (a->g.n > ix->n) {
        ann_graph_free(&a->g);
        return 1;
    }
    struct key_map map = {0};
    size_t *order = malloc((ix->n ? ix->n : 1) * sizeof(*order));
    unsigned char *taken = calloc(ix->n ? ix->n : 1, 1);
    rc = !order || !taken ? -1 : map_build(&map, ix);
    for (size_t i = 0; rc == 0 && i < a->g.n; i++) {
        uint32_t row = map_find(&map, a->g.key[i]);
        if (row == UINT32_MAX || taken[row]) {
            rc = 1;
        } else {
            taken[row] = 1;
            order[i] = row;
        }
    }
    size_t next = a->g.n;
    for (size_t r = 0; rc == 0 && r < ix->n; r++)
        if (!taken[r]) order[next++] = r;
    if (rc == 0) rc = mm_vindex_permute(ix, order, err) == 0 ? 0 : -1;
    if (rc == 0 && ann_graph_encode_rows(&a->g, ix->vecs) != 0) {
        mm_err_set(err, "approximate index: out of memory encoding %zu rows", a->g.n);
        rc = -1;
    }
    free(map.key);
    free(map.row);
    free(order);
    free(taken);
    if (rc != 0) ann_graph_free(&a->g);
    return rc;
}

static void ann_free(struct mm_ann *a)
{
    ann_graph_free(&a->g);
    ann_scratch_free(&a->build);
    ann_scratch_free(&a->query);
    pthread_rwlock_destroy(&a->graph_lock);
    pthread_rwlock_destroy(&a->rows_lock);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->wake);
    pthread_cond_destroy(&a->caught_up);
    free(a->path);
    free(a);
}

struct mm_ann *mm_ann_start(struct mm_vector_index *ix, const struct mm_ann_options *o,
                            const char *path, struct mm_err *err)
{
    struct mm_ann *a = calloc(1, sizeof(*a));
    if (!a || (path && !(a->path = strdup(path)))) {
        free(a);
        mm_err_set(err, "approximate index: out of memory");
        return NULL;
    }
    a->opt = *o;
    mm_ann_options_resolve(&a->opt);
    a->ix = ix;
    ann_graph_init(&a->g, ix->dim, a->opt.m);
    pthread_rwlock_init(&a->graph_lock, NULL);
    pthread_rwlock_init(&a->rows_lock, NULL);
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->wake, NULL);
    pthread_cond_init(&a->caught_up, NULL);
    if (a->path) {
        struct mm_err why;
        /* An unusable file only means indexing from scratch. */
        if (adopt_saved(a, &why) < 0) {
            *err = why;
            ann_free(a);
            return NULL;
        }
    }
    a->loaded = a->saved = a->indexed = a->g.n;
    a->published = ix->n;
    if (pthread_create(&a->thread, NULL, indexer, a) != 0) {
        mm_err_set(err, "approximate index: cannot start the indexer thread");
        ann_free(a);
        return NULL;
    }
    return a;
}

void mm_ann_stop(struct mm_ann *a)
{
    if (!a) return;
    pthread_mutex_lock(&a->mu);
    a->stop = 1;
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    maybe_save(a, 1);
    ann_free(a);
}

void mm_ann_rows_lock(struct mm_ann *a)
{
    pthread_rwlock_wrlock(&a->rows_lock);
}

void mm_ann_rows_unlock(struct mm_ann *a)
{
    pthread_rwlock_unlock(&a->rows_lock);
}

void mm_ann_rows_added(struct mm_ann *a, size_t n)
{
    pthread_mutex_lock(&a->mu);
    a->published = n;
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->mu);
}

size_t mm_ann_search_begin(struct mm_ann *a)
{
    pthread_rwlock_rdlock(&a->graph_lock);
    return a->g.n;
}

void mm_ann_search_end(struct mm_ann *a)
{
    pthread_rwlock_unlock(&a->graph_lock);
}

void mm_ann_set_ef_search(struct mm_ann *a, uint32_t ef_search)
{
    a->opt.ef_search = ef_search ? ef_search : MM_ANN_DEFAULT_EF_SEARCH;
}

static int by_owner(const void *pa, const void *pb)
{
    uint64_t a = *(const uint64_t *)pa, b = *(const uint64_t *)pb;
    return a < b ? -1 : a > b;
}

/* Distinct owners among the first n candidates; owners is room for n. */
static size_t distinct_owners(const struct mm_vector_index *ix, const struct ann_cand *c, size_t n,
                              uint64_t *owners)
{
    for (size_t i = 0; i < n; i++)
        owners[i] = ix->owner[c[i].node];
    qsort(owners, n, sizeof(*owners), by_owner);
    size_t d = 0;
    for (size_t i = 0; i < n; i++)
        d += i == 0 || owners[i] != owners[i - 1];
    return d;
}

int mm_ann_search(struct mm_ann *a, const float *q, double min_sim, size_t k, uint32_t **rows,
                  float **sims, size_t *n)
{
    const struct ann_graph *g = &a->g;
    *rows = NULL;
    *sims = NULL;
    struct ann_cand *c = NULL;
    uint64_t *owners = NULL;
    size_t found = 0, cap = 0;
    float bound = (float)(min_sim - CODE_MARGIN);
    int ranged = 0; /* the list reaches below bound: all above it are wanted */
    for (size_t ef = a->opt.ef_search;; ef *= 2) {
        if (ef > g->n / 16) {
            *n = SIZE_MAX;
            free(c);
            free(owners);
            return 0;
        }
        struct ann_cand *cg = realloc(c, ef * sizeof(*c));
        uint64_t *og = realloc(owners, ef * sizeof(*owners));
        if (cg) c = cg;
        if (og) owners = og;
        if (!cg || !og) goto oom;
        cap = ef;
        found = ann_graph_search(g, &a->query, q, ef, c);
        if (found == SIZE_MAX) goto oom;
        /* Covered: the list reaches below the threshold, or the graph has
         * nothing more, or the k best owners are in. */
        if (found < ef || c[found - 1].sim < bound) {
            ranged = 1;
            break;
        }
        if (distinct_owners(a->ix, c, found, owners) >= k) break;
    }
    if (ranged) found = ann_graph_expand(g, &a->query, bound, &c, found, &cap);
    if (found == SIZE_MAX) goto oom;
    size_t keep = 0;
    while (keep < found && c[keep].sim >= bound)
        keep++;
    *rows = malloc((keep ? keep : 1) * sizeof(**rows));
    *sims = malloc((keep ? keep : 1) * sizeof(**sims));
    if (!*rows || !*sims) goto oom;
    for (size_t i = 0; i < keep; i++) {
        (*rows)[i] = c[i].node;
        (*sims)[i] = c[i].sim;
    }
    *n = keep;
    free(c);
    free(owners);
    return 0;
oom:
    free(*rows);
    free(*sims);
    *rows = NULL;
    *sims = NULL;
    free(c);
    free(owners);
    return -1;
}

void mm_ann_status(struct mm_ann *a, struct mm_ann_status *st, struct mm_err *err)
{
    pthread_mutex_lock(&a->mu);
    st->rows = a->published;
    st->nodes = a->indexed;
    st->loaded = a->loaded;
    st->failed = a->failed;
    if (err) *err = a->error;
    pthread_mutex_unlock(&a->mu);
    pthread_rwlock_rdlock(&a->graph_lock);
    st->graph_bytes = ann_graph_bytes(&a->g);
    pthread_rwlock_unlock(&a->graph_lock);
}

void mm_ann_wait(struct mm_ann *a, struct mm_ann_status *st, struct mm_err *err)
{
    pthread_mutex_lock(&a->mu);
    while (!a->failed && a->indexed < a->published)
        pthread_cond_wait(&a->caught_up, &a->mu);
    pthread_mutex_unlock(&a->mu);
    mm_ann_status(a, st, err);
}
