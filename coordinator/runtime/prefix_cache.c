#include "prefix_cache.h"

#include <stdlib.h>
#include <string.h>

#include "engine.h"

int prefix_cache_init(struct prefix_cache *pc, int first_slot, int n_slots, int64_t budget,
                      struct mm_err *err)
{
    memset(pc, 0, sizeof(*pc));
    if (n_slots > 0 && !(pc->entries = calloc((size_t)n_slots, sizeof(*pc->entries)))) {
        mm_err_set(err, "prefix cache: out of memory");
        return -1;
    }
    pc->first_slot = first_slot;
    pc->n_slots = n_slots;
    pc->budget = budget;
    return 0;
}

void prefix_cache_free(struct prefix_cache *pc)
{
    for (int i = 0; i < pc->n_slots; i++)
        free(pc->entries[i].tokens);
    free(pc->entries);
    memset(pc, 0, sizeof(*pc));
}

int prefix_common(const int32_t *a, int na, const int32_t *b, int nb)
{
    int n = na < nb ? na : nb, i = 0;
    while (i < n && a[i] == b[i])
        i++;
    return i;
}

int prefix_cache_best(struct prefix_cache *pc, const int32_t *prompt, int limit, int adapter,
                      int *slot)
{
    int best = 0, at = -1;
    for (int i = 0; i < pc->n_slots; i++) {
        const struct prefix_entry *en = &pc->entries[i];
        if (!en->used || en->adapter != adapter) continue;
        int m = prefix_common(prompt, limit, en->tokens, en->n);
        if (m > best) {
            best = m;
            at = i;
        }
    }
    if (at < 0) return 0;
    pc->entries[at].used = ++pc->clock;
    *slot = pc->first_slot + at;
    return best;
}

/* Empties entry i: its slot's pages go back (or stay with whoever shares
 * them). */
static int evict(struct prefix_cache *pc, struct engine *e, int i, struct prefix_stats *st,
                 struct mm_err *err)
{
    struct prefix_entry *en = &pc->entries[i];
    if (engine_kv_share(e, pc->first_slot + i, -1, 0, err)) return -1;
    pc->held -= en->n;
    en->n = 0;
    en->used = 0;
    st->evicted++;
    return 0;
}

int prefix_cache_park(struct prefix_cache *pc, struct engine *e, int src, const int32_t *tokens,
                      int n, int adapter, struct prefix_stats *st, struct mm_err *err)
{
    if (pc->n_slots == 0 || n <= 0 || n > pc->budget) return 0;
    for (int i = 0; i < pc->n_slots; i++) {
        struct prefix_entry *en = &pc->entries[i];
        if (en->used && en->adapter == adapter && en->n >= n &&
            prefix_common(tokens, n, en->tokens, en->n) == n) {
            en->used = ++pc->clock; /* already held */
            return 0;
        }
    }
    for (;;) {
        int lru = -1, empty = -1;
        for (int i = 0; i < pc->n_slots; i++) {
            const struct prefix_entry *en = &pc->entries[i];
            if (!en->used) {
                if (empty < 0) empty = i;
            } else if (lru < 0 || en->used < pc->entries[lru].used) {
                lru = i;
            }
        }
        if (empty >= 0 && pc->held + n <= pc->budget) {
            struct prefix_entry *en = &pc->entries[empty];
            if (n > en->cap) {
                int32_t *t = realloc(en->tokens, (size_t)n * sizeof(*t));
                if (!t) {
                    mm_err_set(err, "prefix cache: out of memory");
                    return -1;
                }
                en->tokens = t;
                en->cap = n;
            }
            if (engine_kv_share(e, pc->first_slot + empty, src, n, err)) return -1;
            memcpy(en->tokens, tokens, (size_t)n * sizeof(*tokens));
            en->n = n;
            en->adapter = adapter;
            en->used = ++pc->clock;
            pc->held += n;
            st->parked++;
            return 0;
        }
        /* n <= budget, so evicting everything makes room */
        if (evict(pc, e, lru, st, err)) return -1;
    }
}
