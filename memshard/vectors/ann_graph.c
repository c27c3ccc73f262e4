/* The HNSW graph: inserting a node and searching (ann_internal.h).
 *
 * Similarities are inner products of unit vectors (higher is nearer). A new
 * node draws its level; below the top it descends greedily, then on each of
 * its levels it searches ef_construction candidates, keeps m of them by the
 * paper's heuristic (a candidate is kept unless it is nearer to a kept one
 * than to the new node, which spreads the links in all directions) and links
 * both ways; a neighbour whose list overflows is pruned by the same
 * heuristic. All of that is planned without a lock and then stored under the
 * write lock, so searches in other threads wait only for the stores.
 * Similarities inside the graph are those of the int8 codes. */
#include "ann_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

uint64_t ann_row_key(uint64_t owner, uint64_t text_id)
{
    return mix64(owner + 0x9e3779b97f4a7c15ULL) ^ text_id;
}

int ann_level(uint64_t key, uint64_t seed, uint32_t m)
{
    /* u uniform in (0, 1]; level = floor(-ln(u) / ln(m)), the paper's mL. */
    double u = (double)((mix64(key ^ mix64(seed)) >> 11) + 1) * 0x1.0p-53;
    double level = -log(u) / log((double)m);
    return level >= ANN_MAX_LEVEL ? ANN_MAX_LEVEL : (int)level;
}

void ann_graph_init(struct ann_graph *g, int dim, uint32_t m)
{
    memset(g, 0, sizeof(*g));
    g->dim = dim;
    g->m = m;
    g->m0 = 2 * m;
    g->max_level = -1;
}

void ann_graph_free(struct ann_graph *g)
{
    for (size_t i = 0; g->upper && i < g->n; i++)
        free(g->upper[i]);
    free(g->upper);
    free(g->code);
    free(g->scale);
    free(g->level);
    free(g->key);
    free(g->links0);
    ann_graph_init(g, g->dim, g->m);
}

size_t ann_graph_bytes(const struct ann_graph *g)
{
    size_t bytes =
        g->cap * ((size_t)g->dim + sizeof(*g->scale) + sizeof(*g->level) + sizeof(*g->key) +
                  sizeof(*g->upper) + (g->m0 + 1) * sizeof(*g->links0));
    for (size_t i = 0; i < g->n; i++)
        bytes += (size_t)g->level[i] * (g->m + 1) * sizeof(uint32_t);
    return bytes;
}

void ann_scratch_free(struct ann_scratch *s)
{
    free(s->mark);
    free(s->cand);
    free(s->res);
    free(s->qcode);
    memset(s, 0, sizeof(*s));
}

static inline uint32_t *links_of(const struct ann_graph *g, uint32_t node, int level)
{
    if (level == 0) return g->links0 + (size_t)node * (g->m0 + 1);
    return g->upper[node] + (size_t)(level - 1) * (g->m + 1);
}

void ann_encode(const float *v, int dim, int8_t *code, float *scale)
{
    float max = 0.0f;
    for (int i = 0; i < dim; i++)
        max = fabsf(v[i]) > max ? fabsf(v[i]) : max;
    float s = max > 0.0f ? max / 127.0f : 1.0f;
    for (int i = 0; i < dim; i++)
        code[i] = (int8_t)lrintf(v[i] / s);
    *scale = s;
}

/* A vector being searched for, encoded like the nodes. */
struct query {
    const int8_t *code;
    float scale;
};

static inline const int8_t *code_of(const struct ann_graph *g, uint32_t node)
{
    return g->code + (size_t)node * (size_t)g->dim;
}

static inline struct query node_query(const struct ann_graph *g, uint32_t node)
{
    return (struct query){code_of(g, node), g->scale[node]};
}

static inline float sim_to(const struct ann_graph *g, struct query q, uint32_t node)
{
    return q.scale * g->scale[node] * (float)ann_idot(q.code, code_of(g, node), g->dim);
}

static inline void prefetch_code(const struct ann_graph *g, uint32_t node)
{
    const char *p = (const char *)code_of(g, node);
    for (int off = 0; off < g->dim; off += 64)
        __builtin_prefetch(p + off);
}

/* Heaps of candidates: `best` on top when max is 1, worst when 0. */
static inline int heap_above(struct ann_cand a, struct ann_cand b, int max)
{
    return max ? a.sim > b.sim : a.sim < b.sim;
}

static void heap_push(struct ann_cand *h, size_t *n, struct ann_cand c, int max)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_above(c, h[parent], max)) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = c;
}

static struct ann_cand heap_pop(struct ann_cand *h, size_t *n, int max)
{
    struct ann_cand top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= *n) break;
        if (child + 1 < *n && heap_above(h[child + 1], h[child], max)) child++;
        if (!heap_above(h[child], last, max)) break;
        h[i] = h[child];
        i = child;
    }
    if (*n) h[i] = last;
    return top;
}

static int by_sim_desc(const void *pa, const void *pb)
{
    const struct ann_cand *a = pa, *b = pb;
    if (a->sim != b->sim) return a->sim > b->sim ? -1 : 1;
    return a->node < b->node ? -1 : a->node > b->node;
}

/* Room for `need` candidates in both heaps and marks for n nodes; a fresh
 * epoch of marks. */
static int scratch_ready(struct ann_scratch *s, size_t n, size_t need)
{
    if (s->nmark < n) {
        size_t grown = n + n / 2 + 1024;
        uint32_t *mark = realloc(s->mark, grown * sizeof(*mark));
        if (!mark) return -1;
        memset(mark + s->nmark, 0, (grown - s->nmark) * sizeof(*mark));
        s->mark = mark;
        s->nmark = grown;
    }
    if (s->cap < need) {
        struct ann_cand *cand = realloc(s->cand, need * sizeof(*cand));
        if (cand) s->cand = cand;
        struct ann_cand *res = realloc(s->res, need * sizeof(*res));
        if (res) s->res = res;
        if (!cand || !res) return -1;
        s->cap = need;
    }
    if (++s->epoch == 0) {
        memset(s->mark, 0, s->nmark * sizeof(*s->mark));
        s->epoch = 1;
    }
    return 0;
}

/* Moves from ep towards q at one level while a neighbour is nearer. */
static uint32_t greedy(const struct ann_graph *g, struct query q, uint32_t ep, float *ep_sim,
                       int level)
{
    for (int moved = 1; moved;) {
        moved = 0;
        const uint32_t *l = links_of(g, ep, level);
        for (uint32_t j = 1; j <= l[0]; j++) {
            float sim = sim_to(g, q, l[j]);
            if (sim > *ep_sim) {
                *ep_sim = sim;
                ep = l[j];
                moved = 1;
            }
        }
    }
    return ep;
}

/* Best-first search of one level from ep: the ef nearest nodes found, best
 * first, into s->res; returns their count or SIZE_MAX when out of memory. */
static size_t search_level(const struct ann_graph *g, struct ann_scratch *s, struct query q,
                           uint32_t ep, float ep_sim, size_t ef, int level)
{
    if (scratch_ready(s, g->n, ef + g->m0 + 1) != 0) return SIZE_MAX;
    size_t ncand = 0, nres = 0;
    struct ann_cand start = {ep_sim, ep};
    s->mark[ep] = s->epoch;
    heap_push(s->cand, &ncand, start, 1);
    heap_push(s->res, &nres, start, 0);
    while (ncand) {
        struct ann_cand c = heap_pop(s->cand, &ncand, 1);
        if (nres == ef && c.sim < s->res[0].sim) break;
        const uint32_t *l = links_of(g, c.node, level);
        uint32_t nl = l[0];
        /* Gather the unvisited neighbours first and ask for all their
         * vectors at once: the loads overlap instead of queueing. */
        uint32_t fresh[2 * ANN_MAX_M + 1];
        uint32_t nfresh = 0;
        for (uint32_t j = 1; j <= nl; j++) {
            uint32_t e = l[j];
            if (s->mark[e] == s->epoch) continue;
            s->mark[e] = s->epoch;
            fresh[nfresh++] = e;
            prefetch_code(g, e);
        }
        for (uint32_t j = 0; j < nfresh; j++) {
            uint32_t e = fresh[j];
            float sim = sim_to(g, q, e);
            if (nres == ef && sim <= s->res[0].sim) continue;
            if (ncand == s->cap) {
                /* Candidates only join with a result, but results can be
                 * displaced while their candidates stay: grow. */
                struct ann_cand *grown = realloc(s->cand, 2 * s->cap * sizeof(*grown));
                if (!grown) return SIZE_MAX;
                s->cand = grown;
                struct ann_cand *res = realloc(s->res, 2 * s->cap * sizeof(*res));
                if (!res) return SIZE_MAX;
                s->res = res;
                s->cap *= 2;
            }
            struct ann_cand nc = {sim, e};
            heap_push(s->cand, &ncand, nc, 1);
            heap_push(s->res, &nres, nc, 0);
            if (nres > ef) heap_pop(s->res, &nres, 0);
        }
    }
    qsort(s->res, nres, sizeof(*s->res), by_sim_desc);
    return nres;
}

size_t ann_graph_search(const struct ann_graph *g, struct ann_scratch *s, const float *q, size_t ef,
                        struct ann_cand *out)
{
    if (g->n == 0) return 0;
    if (!s->qcode && !(s->qcode = malloc((size_t)g->dim))) return SIZE_MAX;
    ann_encode(q, g->dim, s->qcode, &s->qscale);
    struct query qc = {s->qcode, s->qscale};
    uint32_t ep = g->entry;
    float ep_sim = sim_to(g, qc, ep);
    for (int level = g->max_level; level > 0; level--)
        ep = greedy(g, qc, ep, &ep_sim, level);
    size_t n = search_level(g, s, qc, ep, ep_sim, ef, 0);
    if (n != SIZE_MAX) memcpy(out, s->res, n * sizeof(*out));
    return n;
}

size_t ann_graph_expand(const struct ann_graph *g, struct ann_scratch *s, float bound,
                        struct ann_cand **out, size_t n, size_t *cap)
{
    struct query qc = {s->qcode, s->qscale};
    /* the list is its own queue: entries past n are found here */
    for (size_t i = 0; i < n; i++) {
        if ((*out)[i].sim < bound) continue;
        const uint32_t *l = links_of(g, (*out)[i].node, 0);
        for (uint32_t j = 1; j <= l[0]; j++) {
            uint32_t e = l[j];
            if (s->mark[e] == s->epoch) continue;
            s->mark[e] = s->epoch;
            float sim = sim_to(g, qc, e);
            if (sim < bound) continue;
            if (n == *cap) {
                size_t grown = *cap ? 2 * *cap : 64;
                struct ann_cand *c = realloc(*out, grown * sizeof(*c));
                if (!c) return SIZE_MAX;
                *out = c;
                *cap = grown;
            }
            (*out)[n++] = (struct ann_cand){sim, e};
        }
    }
    qsort(*out, n, sizeof(**out), by_sim_desc);
    return n;
}

/* The paper's neighbour heuristic over c (sorted best first by similarity
 * to the base): keeps at most `keep`, moved to the front; returns how many. */
static size_t select_neighbours(const struct ann_graph *g, struct ann_cand *c, size_t n,
                                size_t keep)
{
    size_t kept = 0;
    for (size_t i = 0; i < n && kept < keep; i++) {
        struct query v = node_query(g, c[i].node);
        int good = 1;
        for (size_t j = 0; j < kept && good; j++)
            good = sim_to(g, v, c[j].node) <= c[i].sim;
        if (good) c[kept++] = c[i];
    }
    return kept;
}

/* A planned list: the links of `node` at `level` become ids[0..n). */
struct link_update {
    uint32_t node;
    int level;
    uint32_t n;
    uint32_t *ids;
};

struct insert_plan {
    uint32_t *own[ANN_MAX_LEVEL + 1]; /* the new node's links per level: count, ids */
    uint32_t *upper;                  /* its block of upper-level links */
    struct link_update *updates;
    size_t nupdates;
    uint32_t *ids; /* storage of the updates' lists */
};

static void plan_free(struct insert_plan *p)
{
    free(p->upper);
    free(p->updates);
    free(p->ids);
}

/* The new list of neighbour e at `level` once `node` links to it: appended
 * when there is room, else the heuristic's choice among both. */
static void plan_reverse(const struct ann_graph *g, uint32_t node, uint32_t e, int level,
                         struct ann_cand *tmp, struct link_update *u)
{
    const uint32_t *l = links_of(g, e, level);
    uint32_t max = level == 0 ? g->m0 : g->m;
    u->node = e;
    u->level = level;
    if (l[0] < max) {
        memcpy(u->ids, l + 1, l[0] * sizeof(uint32_t));
        u->ids[l[0]] = node;
        u->n = l[0] + 1;
        return;
    }
    struct query v = node_query(g, e);
    for (uint32_t j = 0; j < l[0]; j++)
        tmp[j] = (struct ann_cand){sim_to(g, v, l[j + 1]), l[j + 1]};
    tmp[l[0]] = (struct ann_cand){sim_to(g, v, node), node};
    qsort(tmp, l[0] + 1, sizeof(*tmp), by_sim_desc);
    u->n = (uint32_t)select_neighbours(g, tmp, l[0] + 1, max);
    for (uint32_t j = 0; j < u->n; j++)
        u->ids[j] = tmp[j].node;
}

/* Grows the per-node arrays to hold node g->n (searches must not run). */
static int graph_reserve(struct ann_graph *g)
{
    if (g->n < g->cap) return 0;
    size_t cap = g->cap ? g->cap * 2 : 1024;
    uint8_t *level = realloc(g->level, cap * sizeof(*level));
    if (level) g->level = level;
    uint64_t *key = realloc(g->key, cap * sizeof(*key));
    if (key) g->key = key;
    uint32_t **upper = realloc(g->upper, cap * sizeof(*upper));
    if (upper) g->upper = upper;
    uint32_t *links0 = realloc(g->links0, cap * (g->m0 + 1) * sizeof(*links0));
    if (links0) {
        /* unused link slots are zero, so that the same graph saves the same
         * bytes */
        memset(links0 + g->cap * (g->m0 + 1), 0, (cap - g->cap) * (g->m0 + 1) * sizeof(*links0));
        g->links0 = links0;
    }
    int8_t *code = realloc(g->code, cap * (size_t)g->dim);
    if (code) g->code = code;
    float *scale = realloc(g->scale, cap * sizeof(*scale));
    if (scale) g->scale = scale;
    if (!level || !key || !upper || !links0 || !code || !scale) return -1;
    g->cap = cap;
    return 0;
}

/* Plans the links of node (at levels top..0, entering at ep). */
static int plan_links(const struct ann_graph *g, struct ann_scratch *s, uint32_t node, int top,
                      uint32_t ep, float ep_sim, uint32_t efc, struct insert_plan *p)
{
    struct query q = node_query(g, node);
    size_t per_level = (size_t)g->m * (g->m0 + 1);
    p->updates = malloc((size_t)(top + 1) * g->m * sizeof(*p->updates));
    p->ids = malloc((size_t)(top + 1) * per_level * sizeof(*p->ids));
    struct ann_cand *tmp = malloc((g->m0 + 1) * sizeof(*tmp));
    if (!p->updates || !p->ids || !tmp) {
        free(tmp);
        return -1;
    }
    int rc = 0;
    for (int level = top; level >= 0 && rc == 0; level--) {
        size_t n = search_level(g, s, q, ep, ep_sim, efc, level);
        if (n == SIZE_MAX) {
            rc = -1;
            break;
        }
        ep = s->res[0].node;
        ep_sim = s->res[0].sim;
        size_t kept = select_neighbours(g, s->res, n, g->m);
        uint32_t *own = p->own[level];
        own[0] = (uint32_t)kept;
        for (size_t j = 0; j < kept; j++) {
            own[j + 1] = s->res[j].node;
            struct link_update *u = &p->updates[p->nupdates];
            u->ids = p->ids + (size_t)level * per_level + j * (g->m0 + 1);
            plan_reverse(g, node, s->res[j].node, level, tmp, u);
            p->nupdates++;
        }
    }
    free(tmp);
    return rc;
}

int ann_graph_insert(struct ann_graph *g, struct ann_scratch *s, const float *vec, uint64_t key,
                     int level, uint32_t ef_construction, pthread_rwlock_t *lock)
{
    uint32_t node = (uint32_t)g->n;
    if (g->n == g->cap) {
        if (lock) pthread_rwlock_wrlock(lock);
        int rc = graph_reserve(g);
        if (lock) pthread_rwlock_unlock(lock);
        if (rc != 0) return -1;
    }
    /* Slot `node` is past g->n: no search reads it until the node is
     * stored, so it is filled without the lock. */
    ann_encode(vec, g->dim, g->code + (size_t)node * (size_t)g->dim, &g->scale[node]);
    struct insert_plan p = {0};
    if (level > 0) {
        p.upper = calloc((size_t)level * (g->m + 1), sizeof(uint32_t));
        if (!p.upper) return -1;
    }
    p.own[0] = links_of(g, node, 0);
    p.own[0][0] = 0;
    for (int l = 1; l <= level; l++)
        p.own[l] = p.upper + (size_t)(l - 1) * (g->m + 1);

    if (g->n > 0) {
        struct query q = node_query(g, node);
        uint32_t ep = g->entry;
        float ep_sim = sim_to(g, q, ep);
        for (int l = g->max_level; l > level; l--)
            ep = greedy(g, q, ep, &ep_sim, l);
        int top = level < g->max_level ? level : g->max_level;
        if (plan_links(g, s, node, top, ep, ep_sim, ef_construction, &p) != 0) {
            plan_free(&p);
            return -1;
        }
    }

    if (lock) pthread_rwlock_wrlock(lock);
    g->level[node] = (uint8_t)level;
    g->key[node] = key;
    g->upper[node] = p.upper;
    p.upper = NULL;
    for (size_t i = 0; i < p.nupdates; i++) {
        const struct link_update *u = &p.updates[i];
        uint32_t *l = links_of(g, u->node, u->level);
        uint32_t max = u->level == 0 ? g->m0 : g->m;
        l[0] = u->n;
        memcpy(l + 1, u->ids, u->n * sizeof(uint32_t));
        memset(l + 1 + u->n, 0, (max - u->n) * sizeof(uint32_t));
    }
    if (level > g->max_level) {
        g->max_level = level;
        g->entry = node;
    }
    g->n++;
    if (lock) pthread_rwlock_unlock(lock);
    plan_free(&p);
    return 0;
}

int ann_graph_encode_rows(struct ann_graph *g, const float *vecs)
{
    free(g->code);
    free(g->scale);
    g->code = malloc((g->cap ? g->cap : 1) * (size_t)g->dim);
    g->scale = malloc((g->cap ? g->cap : 1) * sizeof(*g->scale));
    if (!g->code || !g->scale) return -1;
    for (size_t i = 0; i < g->n; i++)
        ann_encode(vecs + i * (size_t)g->dim, g->dim, g->code + i * (size_t)g->dim, &g->scale[i]);
    return 0;
}
