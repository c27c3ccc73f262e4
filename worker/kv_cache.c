#include "kv_cache.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int kv_cache_init(struct kv_cache *c, int n_layers, int n_slots, int capacity, int kv_dim,
                  struct mm_err *err)
{
    memset(c, 0, sizeof(*c));
    if (n_layers <= 0 || n_slots <= 0 || capacity <= 0 || kv_dim <= 0) {
        mm_err_set(err, "kv cache: layers, slots, capacity and kv_dim must be positive");
        return -1;
    }
    size_t n = (size_t)n_layers * (size_t)n_slots * (size_t)capacity * (size_t)kv_dim;
    if (n > SIZE_MAX / sizeof(float) / 2) {
        mm_err_set(err, "kv cache: %d layers x %d slots x %d positions is too large", n_layers,
                   n_slots, capacity);
        return -1;
    }
    c->k = calloc(n, sizeof(float));
    c->v = calloc(n, sizeof(float));
    c->len = calloc((size_t)n_slots, sizeof(int));
    if (!c->k || !c->v || !c->len) {
        kv_cache_free(c);
        mm_err_set(err, "kv cache: out of memory for %zu MiB",
                   2 * n * sizeof(float) / (1024 * 1024));
        return -1;
    }
    c->n_layers = n_layers;
    c->n_slots = n_slots;
    c->capacity = capacity;
    c->kv_dim = kv_dim;
    return 0;
}

void kv_cache_free(struct kv_cache *c)
{
    free(c->k);
    free(c->v);
    free(c->len);
    memset(c, 0, sizeof(*c));
}

void kv_cache_truncate(struct kv_cache *c, int slot, int len)
{
    if (len < c->len[slot]) c->len[slot] = len;
}
