#include "id_set.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash_id(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

int id_set_has(const struct id_set *set, const char *id)
{
    if (set->cap == 0) return 0;
    for (size_t i = hash_id(id) & (set->cap - 1);; i = (i + 1) & (set->cap - 1)) {
        if (!set->slot[i]) return 0;
        if (!strcmp(set->slot[i], id)) return 1;
    }
}

int id_set_add(struct id_set *set, const char *id)
{
    if (id_set_has(set, id)) return 0;
    if (2 * (set->n + 1) > set->cap) {
        size_t cap = set->cap ? 2 * set->cap : 1024;
        char **slot = calloc(cap, sizeof(*slot));
        if (!slot) return -1;
        for (size_t k = 0; k < set->cap; k++) {
            if (!set->slot[k]) continue;
            size_t i = hash_id(set->slot[k]) & (cap - 1);
            while (slot[i])
                i = (i + 1) & (cap - 1);
            slot[i] = set->slot[k];
        }
        free(set->slot);
        set->slot = slot;
        set->cap = cap;
    }
    size_t i = hash_id(id) & (set->cap - 1);
    while (set->slot[i])
        i = (i + 1) & (set->cap - 1);
    if (!(set->slot[i] = strdup(id))) return -1;
    set->n++;
    return 1;
}

void id_set_free(struct id_set *set)
{
    for (size_t i = 0; i < set->cap; i++)
        free(set->slot[i]);
    free(set->slot);
    set->slot = NULL;
    set->cap = set->n = 0;
}
