/* A hash map from 64-bit ids to non-NULL pointers. The memory shards keep
 * entity and relation ids to their texts in one; the memory client keeps the
 * ids it knows a memory holds. */
#ifndef MEMLLM_COMMON_ID_MAP_H
#define MEMLLM_COMMON_ID_MAP_H

#include <stddef.h>
#include <stdint.h>

struct id_map {
    uint64_t *id;
    const void **val; /* NULL: free slot */
    size_t n, mask;
};

/* The value of id, or NULL when absent. */
const void *id_map_find(const struct id_map *m, uint64_t id);
/* Adds (or replaces) id; -1 when out of memory. */
int id_map_put(struct id_map *m, uint64_t id, const void *val);
/* Room for `extra` more ids, so that putting them cannot fail. */
int id_map_reserve(struct id_map *m, size_t extra);
void id_map_free(struct id_map *m);

#endif
