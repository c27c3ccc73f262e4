#include "kv_cache.h"

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
    int slot_pages = (capacity + K_KV_PAGE - 1) / K_KV_PAGE;
    size_t pages = (size_t)n_slots * (size_t)slot_pages;
    size_t n = (size_t)n_layers * pages * K_KV_PAGE * (size_t)kv_dim;
    if (pages > INT32_MAX || n > SIZE_MAX / sizeof(float) / 2) {
        mm_err_set(err, "kv cache: %d layers x %d slots x %d positions is too large", n_layers,
                   n_slots, capacity);
        return -1;
    }
    c->k = calloc(n, sizeof(float));
    c->v = calloc(n, sizeof(float));
    c->table = malloc(pages * sizeof(int32_t));
    c->ref = calloc(pages, sizeof(int32_t));
    c->free_pages = malloc(pages * sizeof(int32_t));
    c->len = calloc((size_t)n_slots, sizeof(int));
    c->high = calloc((size_t)n_slots, sizeof(int));
    c->view_pages = malloc(2 * (size_t)slot_pages * sizeof(*c->view_pages));
    if (!c->k || !c->v || !c->table || !c->ref || !c->free_pages || !c->len || !c->high ||
        !c->view_pages) {
        kv_cache_free(c);
        mm_err_set(err, "kv cache: out of memory for %zu MiB",
                   2 * n * sizeof(float) / (1024 * 1024));
        return -1;
    }
    for (size_t i = 0; i < pages; i++)
        c->table[i] = -1;
    /* the stack hands out page 0 first, so the pool is touched from its start */
    for (size_t i = 0; i < pages; i++)
        c->free_pages[i] = (int32_t)(pages - 1 - i);
    c->n_free = (int)pages;
    c->n_layers = n_layers;
    c->n_slots = n_slots;
    c->capacity = capacity;
    c->kv_dim = kv_dim;
    c->slot_pages = slot_pages;
    c->n_pages = (int)pages;
    return 0;
}

void kv_cache_free(struct kv_cache *c)
{
    free(c->k);
    free(c->v);
    free(c->table);
    free(c->ref);
    free(c->free_pages);
    free(c->len);
    free(c->high);
    free(c->view_pages);
    memset(c, 0, sizeof(*c));
}

static int32_t *slot_table(const struct kv_cache *c, int slot)
{
    return c->table + (size_t)slot * (size_t)c->slot_pages;
}

/* Never fails: a slot's table entries are at most slot_pages, and the pool
 * has that many pages for every slot. */
static int32_t page_take(struct kv_cache *c)
{
    int32_t p = c->free_pages[--c->n_free];
    c->ref[p] = 1;
    if (c->n_pages - c->n_free > c->peak_pages) c->peak_pages = c->n_pages - c->n_free;
    return p;
}

static void page_drop(struct kv_cache *c, int32_t p)
{
    if (--c->ref[p] == 0) c->free_pages[c->n_free++] = p;
}

/* Releases the slot's table entries from page `first` on. */
static void release_from(struct kv_cache *c, int slot, int first)
{
    int32_t *t = slot_table(c, slot);
    for (int i = first; i < c->slot_pages && t[i] >= 0; i++) {
        page_drop(c, t[i]);
        t[i] = -1;
    }
}

void kv_cache_truncate(struct kv_cache *c, int slot, int len)
{
    if (len >= c->len[slot]) return;
    c->len[slot] = len;
    release_from(c, slot, (len + K_KV_PAGE - 1) / K_KV_PAGE);
}

/* Every layer's rows of page `from` into page `to`. */
static void page_copy(struct kv_cache *c, int32_t to, int32_t from)
{
    size_t page = (size_t)K_KV_PAGE * (size_t)c->kv_dim;
    for (int l = 0; l < c->n_layers; l++) {
        size_t base = (size_t)l * (size_t)c->n_pages;
        memcpy(c->k + (base + (size_t)to) * page, c->k + (base + (size_t)from) * page,
               page * sizeof(float));
        memcpy(c->v + (base + (size_t)to) * page, c->v + (base + (size_t)from) * page,
               page * sizeof(float));
    }
}

void kv_cache_prepare(struct kv_cache *c, int slot, int pos0, int n)
{
    kv_cache_truncate(c, slot, pos0);
    if (pos0 + n > c->high[slot]) c->high[slot] = pos0 + n;
    int32_t *t = slot_table(c, slot);
    for (int i = pos0 / K_KV_PAGE; i <= (pos0 + n - 1) / K_KV_PAGE; i++) {
        if (t[i] < 0) {
            t[i] = page_take(c);
        } else if (c->ref[t[i]] > 1) {
            int32_t own = page_take(c);
            page_copy(c, own, t[i]);
            page_drop(c, t[i]);
            t[i] = own;
        }
    }
}

int kv_cache_share(struct kv_cache *c, int dst, int src, int len, struct mm_err *err)
{
    if (dst < 0 || dst >= c->n_slots || src < 0 || src >= c->n_slots || dst == src) {
        mm_err_set(err, "kv cache: cannot share slot %d into slot %d (%d slots)", src, dst,
                   c->n_slots);
        return -1;
    }
    if (len < 0 || len > c->len[src]) {
        mm_err_set(err, "kv cache: slot %d holds %d positions, %d asked to share", src, c->len[src],
                   len);
        return -1;
    }
    release_from(c, dst, 0);
    int32_t *td = slot_table(c, dst);
    const int32_t *ts = slot_table(c, src);
    for (int i = 0; i < (len + K_KV_PAGE - 1) / K_KV_PAGE; i++) {
        td[i] = ts[i];
        c->ref[ts[i]]++;
    }
    c->len[dst] = len;
    if (len > c->high[dst]) c->high[dst] = len;
    return 0;
}

void kv_cache_view(struct kv_cache *c, int layer, int slot, int len, struct k_kv_view *k,
                   struct k_kv_view *v)
{
    const int32_t *t = slot_table(c, slot);
    const float **kp = c->view_pages, **vp = c->view_pages + c->slot_pages;
    size_t page = (size_t)K_KV_PAGE * (size_t)c->kv_dim;
    for (int i = 0; i < (len + K_KV_PAGE - 1) / K_KV_PAGE; i++) {
        size_t at = ((size_t)layer * (size_t)c->n_pages + (size_t)t[i]) * page;
        kp[i] = c->k + at;
        vp[i] = c->v + at;
    }
    *k = (struct k_kv_view){.pages = kp, .stride = c->kv_dim};
    *v = (struct k_kv_view){.pages = vp, .stride = c->kv_dim};
}

int kv_cache_pages_in_use(const struct kv_cache *c)
{
    return c->n_pages - c->n_free;
}

void kv_cache_memory(const struct kv_cache *c, int n_slots, int64_t *paged, int64_t *contiguous)
{
    int64_t row = 2 * (int64_t)c->n_layers * c->kv_dim * (int64_t)sizeof(float);
    *paged = (int64_t)c->peak_pages * K_KV_PAGE * row;
    *contiguous = 0;
    for (int s = 0; s < n_slots && s < c->n_slots; s++)
        *contiguous += c->high[s] * row;
}
