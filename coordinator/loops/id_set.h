/* A set of strings (document ids): open addressing, FNV-1a. */
#ifndef MEMLLM_COORDINATOR_ID_SET_H
#define MEMLLM_COORDINATOR_ID_SET_H

#include <stddef.h>

struct id_set {
    char **slot; /* NULL: empty */
    size_t cap, n;
};

int id_set_has(const struct id_set *set, const char *id);
/* Adds id (copied); 0 if it was there already, 1 if added, -1 when OOM. */
int id_set_add(struct id_set *set, const char *id);
/* Empties the set (it can be freed again). */
void id_set_free(struct id_set *set);

#endif
