/* A bump allocator for building protobuf-c messages: a request or response
 * is a tree of small allocations that all die together after packing, so
 * they come from one arena that is freed at once. */
#ifndef MEMLLM_MEMSHARD_ARENA_H
#define MEMLLM_MEMSHARD_ARENA_H

#include <stddef.h>

struct mm_arena_block;

struct mm_arena {
    struct mm_arena_block *head;
    int failed; /* set once an allocation failed; callers check it before use */
};

/* Zeroed memory aligned for any type; NULL (and failed = 1) when out of
 * memory. */
void *mm_arena_alloc(struct mm_arena *a, size_t n);
char *mm_arena_strdup(struct mm_arena *a, const char *s);
void *mm_arena_memdup(struct mm_arena *a, const void *p, size_t n);
/* An array of n elements of size sz, zeroed (n may be 0: returns NULL without
 * failing). */
void *mm_arena_array(struct mm_arena *a, size_t n, size_t sz);
void mm_arena_free(struct mm_arena *a);

#endif
