/* The graph file: a cache of the indexer's work, so that a large shard does
 * not rebuild its graph on every open.
 *
 *   "MMHNSW01", u32 dim, m, ef_construction, 0, u64 seed, u64 n, u32 entry,
 *   i32 max_level, u64 key[n], u8 level[n], u32 links0[n][2m + 1],
 *   u32 upper links of each node with a level (level x (m + 1)), u64 checksum
 *
 * in the host's byte order (the file never leaves the shard's machine). A
 * file that is truncated, damaged or made with other parameters is reported
 * as unusable, never trusted: the caller rebuilds the graph. */
#include "ann_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char magic[8] = {'M', 'M', 'H', 'N', 'S', 'W', '0', '1'};

struct header {
    char magic[8];
    uint32_t dim, m, ef_construction, reserved;
    uint64_t seed, n;
    uint32_t entry;
    int32_t max_level;
};

static void checksum(uint64_t *h, const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t x = *h;
    for (; n >= 8; n -= 8, b += 8) {
        uint64_t w;
        memcpy(&w, b, 8);
        x = (x ^ w) * 0x100000001b3ULL;
        x ^= x >> 29;
    }
    for (; n; n--, b++)
        x = (x ^ *b) * 0x100000001b3ULL;
    *h = x;
}

static int put(FILE *f, uint64_t *h, const void *p, size_t n)
{
    checksum(h, p, n);
    return n == 0 || fwrite(p, 1, n, f) == n ? 0 : -1;
}

int ann_graph_save(const struct ann_graph *g, uint32_t ef_construction, uint64_t seed,
                   const char *path, struct mm_err *err)
{
    size_t len = strlen(path) + 5;
    char *tmp = malloc(len);
    if (!tmp) {
        mm_err_set(err, "%s: out of memory", path);
        return -1;
    }
    snprintf(tmp, len, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        mm_err_set(err, "%s: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    struct header hd = {.dim = (uint32_t)g->dim,
                        .m = g->m,
                        .ef_construction = ef_construction,
                        .seed = seed,
                        .n = g->n,
                        .entry = g->entry,
                        .max_level = g->max_level};
    memcpy(hd.magic, magic, sizeof(magic));
    uint64_t h = 0xcbf29ce484222325ULL;
    int rc = put(f, &h, &hd, sizeof(hd));
    if (rc == 0) rc = put(f, &h, g->key, g->n * sizeof(*g->key));
    if (rc == 0) rc = put(f, &h, g->level, g->n * sizeof(*g->level));
    if (rc == 0) rc = put(f, &h, g->links0, g->n * (g->m0 + 1) * sizeof(*g->links0));
    for (size_t i = 0; rc == 0 && i < g->n; i++)
        if (g->level[i])
            rc = put(f, &h, g->upper[i], (size_t)g->level[i] * (g->m + 1) * sizeof(uint32_t));
    if (rc == 0 && fwrite(&h, sizeof(h), 1, f) != 1) rc = -1;
    if (fclose(f) != 0) rc = -1;
    if (rc == 0 && rename(tmp, path) != 0) rc = -1;
    if (rc != 0) {
        mm_err_set(err, "%s: %s", tmp, strerror(errno));
        remove(tmp);
    }
    free(tmp);
    return rc;
}

static int get(FILE *f, uint64_t *h, void *p, size_t n)
{
    if (n && fread(p, 1, n, f) != n) return -1;
    checksum(h, p, n);
    return 0;
}

/* Checks links: counts within bounds, ids of existing nodes, levels that
 * exist; returns 0 when the graph is well formed. */
static int check_graph(const struct ann_graph *g)
{
    if (g->n && (g->entry >= g->n || g->max_level != g->level[g->entry])) return -1;
    for (size_t i = 0; i < g->n; i++) {
        if (g->level[i] > g->max_level) return -1;
        for (int l = 0; l <= g->level[i]; l++) {
            const uint32_t *links =
                l == 0 ? g->links0 + i * (g->m0 + 1) : g->upper[i] + (size_t)(l - 1) * (g->m + 1);
            if (links[0] > (l == 0 ? g->m0 : g->m)) return -1;
            for (uint32_t j = 1; j <= links[0]; j++)
                if (links[j] >= g->n || g->level[links[j]] < l) return -1;
        }
    }
    return 0;
}

static int load_body(struct ann_graph *g, FILE *f, uint64_t *h, size_t n)
{
    g->key = malloc((n ? n : 1) * sizeof(*g->key));
    g->level = malloc(n ? n : 1);
    g->upper = calloc(n ? n : 1, sizeof(*g->upper));
    g->links0 = malloc((n ? n : 1) * (g->m0 + 1) * sizeof(*g->links0));
    if (!g->key || !g->level || !g->upper || !g->links0) return -1;
    g->cap = n;
    if (get(f, h, g->key, n * sizeof(*g->key)) != 0 || get(f, h, g->level, n) != 0 ||
        get(f, h, g->links0, n * (g->m0 + 1) * sizeof(*g->links0)) != 0)
        return 1;
    for (size_t i = 0; i < n; i++) {
        g->n = i; /* so that a failure frees only what was allocated */
        if (g->level[i] == 0) continue;
        if (g->level[i] > ANN_MAX_LEVEL) return 1;
        size_t words = (size_t)g->level[i] * (g->m + 1);
        g->upper[i] = malloc(words * sizeof(uint32_t));
        if (!g->upper[i]) return -1;
        if (get(f, h, g->upper[i], words * sizeof(uint32_t)) != 0) {
            g->n = i + 1;
            return 1;
        }
    }
    g->n = n;
    return 0;
}

int ann_graph_load(struct ann_graph *g, uint32_t ef_construction, uint64_t seed, const char *path,
                   struct mm_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        mm_err_set(err, "%s: %s", path, strerror(errno));
        return 1;
    }
    struct header hd;
    uint64_t h = 0xcbf29ce484222325ULL;
    int rc = 1;
    if (get(f, &h, &hd, sizeof(hd)) != 0 || memcmp(hd.magic, magic, sizeof(magic)) != 0) {
        mm_err_set(err, "%s: not a graph file", path);
    } else if (hd.dim != (uint32_t)g->dim || hd.m != g->m ||
               hd.ef_construction != ef_construction || hd.seed != seed) {
        mm_err_set(err,
                   "%s: made with dim %u, m %u, ef_construction %u, seed %llu; the index has "
                   "dim %d, m %u, ef_construction %u, seed %llu",
                   path, hd.dim, hd.m, hd.ef_construction, (unsigned long long)hd.seed, g->dim,
                   g->m, ef_construction, (unsigned long long)seed);
    } else if (hd.n >= UINT32_MAX || hd.max_level < -1 || hd.max_level > ANN_MAX_LEVEL ||
               (hd.n == 0) != (hd.max_level == -1)) {
        mm_err_set(err, "%s: damaged header", path);
    } else {
        g->entry = hd.entry;
        g->max_level = hd.max_level;
        rc = load_body(g, f, &h, (size_t)hd.n);
        uint64_t stored;
        if (rc == 1 || (rc == 0 && (fread(&stored, sizeof(stored), 1, f) != 1 || stored != h ||
                                    fgetc(f) != EOF || check_graph(g) != 0))) {
            mm_err_set(err, "%s: damaged or truncated", path);
            rc = 1;
        } else if (rc < 0) {
            mm_err_set(err, "%s: out of memory for %llu nodes", path, (unsigned long long)hd.n);
        }
        if (rc != 0) ann_graph_free(g);
    }
    fclose(f);
    return rc;
}
