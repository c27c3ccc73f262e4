/* Open addressing with linear probing, kept at most half full. */
#include "id_map.h"

#include <stdlib.h>
#include <string.h>

const void *id_map_find(const struct id_map *m, uint64_t id)
{
    if (!m->val) return NULL;
    for (size_t i = (size_t)(id ^ id >> 29) & m->mask; m->val[i]; i = (i + 1) & m->mask)
        if (m->id[i] == id) return m->val[i];
    return NULL;
}

/* At most half full, so that probes stay short. */
static int id_map_fits(const struct id_map *m, size_t n)
{
    return m->val && 2 * n <= m->mask + 1;
}

int id_map_reserve(struct id_map *m, size_t extra)
{
    if (id_map_fits(m, m->n + extra)) return 0;
    size_t cap = m->val ? 2 * (m->mask + 1) : 1024;
    while (2 * (m->n + extra) > cap)
        cap *= 2;
    struct id_map g = {.id = malloc(cap * sizeof(*g.id)), .val = calloc(cap, sizeof(*g.val))};
    if (!g.id || !g.val) {
        id_map_free(&g);
        return -1;
    }
    g.mask = cap - 1;
    for (size_t i = 0; m->val && i <= m->mask; i++)
        if (m->val[i]) id_map_put(&g, m->id[i], m->val[i]);
    id_map_free(m);
    *m = g;
    return 0;
}

int id_map_put(struct id_map *m, uint64_t id, const void *val)
{
    if (!id_map_fits(m, m->n + 1) && id_map_reserve(m, 1) != 0) return -1;
    size_t i = (size_t)(id ^ id >> 29) & m->mask;
    while (m->val[i] && m->id[i] != id)
        i = (i + 1) & m->mask;
    if (!m->val[i]) m->n++;
    m->id[i] = id;
    m->val[i] = val;
    return 0;
}

void id_map_free(struct id_map *m)
{
    free(m->id);
    free(m->val);
    memset(m, 0, sizeof(*m));
}
