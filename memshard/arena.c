#include "arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_BLOCK 65536

struct mm_arena_block {
    struct mm_arena_block *next;
    size_t used, size;
    alignas(max_align_t) unsigned char data[];
};

void *mm_arena_alloc(struct mm_arena *a, size_t n)
{
    const size_t align = alignof(max_align_t);
    n = (n + align - 1) & ~(align - 1);
    if (n == 0) n = align;
    struct mm_arena_block *b = a->head;
    if (!b || b->size - b->used < n) {
        size_t size = n > ARENA_BLOCK ? n : ARENA_BLOCK;
        b = malloc(sizeof(*b) + size);
        if (!b) {
            a->failed = 1;
            return NULL;
        }
        b->used = 0;
        b->size = size;
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

char *mm_arena_strdup(struct mm_arena *a, const char *s)
{
    return mm_arena_memdup(a, s, strlen(s) + 1);
}

void *mm_arena_memdup(struct mm_arena *a, const void *p, size_t n)
{
    void *q = mm_arena_alloc(a, n);
    if (q && n) memcpy(q, p, n);
    return q;
}

void *mm_arena_array(struct mm_arena *a, size_t n, size_t sz)
{
    if (n == 0) return NULL;
    if (sz && n > SIZE_MAX / sz) {
        a->failed = 1;
        return NULL;
    }
    return mm_arena_alloc(a, n * sz);
}

void mm_arena_free(struct mm_arena *a)
{
    struct mm_arena_block *b = a->head;
    while (b) {
        struct mm_arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->failed = 0;
}
