/* Input checks every handler runs before it touches the database: a request
 * from any program must not be able to store a text the memory cannot
 * print, a vector of the wrong size, or a copy on the wrong shard. */
#include "shard_internal.h"
#include "text.h"

#include <math.h>

int shard_check_text(const char *what, const char *text, struct shard_status *st)
{
    if (mm_text_check(what, text, &st->err) != 0) {
        st->code = MEMLLM__STATUS__STATUS_INVALID_ARGUMENT;
        return -1;
    }
    return 0;
}

int shard_check_vec(const char *what, size_t n, const float *vec, const struct mm_shard *sh,
                    struct shard_status *st)
{
    if (n != (size_t)sh->dim)
        return shard_fail(st, MEMLLM__STATUS__STATUS_INVALID_ARGUMENT,
                          "%s: embedding has %zu values; the memory's embedder %s has %d", what, n,
                          sh->embedder, sh->dim);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(vec[i]))
            return shard_fail(st, MEMLLM__STATUS__STATUS_INVALID_ARGUMENT,
                              "%s: embedding value %zu is not finite", what, i);
    return 0;
}

int shard_check_home(const char *what, const char *text, const struct mm_shard *sh, uint64_t *id,
                     struct shard_status *st)
{
    if (shard_check_text(what, text, st) != 0) return -1;
    if (mm_text_id_of(text, id, &st->err) != 0) {
        st->code = MEMLLM__STATUS__STATUS_STORAGE;
        return -1;
    }
    uint32_t home = mm_home_shard(*id, sh->count);
    if (home != sh->index) {
        char ex[200];
        return shard_fail(st, MEMLLM__STATUS__STATUS_INVALID_ARGUMENT,
                          "%s '%s' belongs on shard %u, not on shard %u", what,
                          mm_text_excerpt(text, ex, sizeof(ex)), home, sh->index);
    }
    return 0;
}

int shard_check_provenance(const char *what, const Memllm__Provenance *p, struct shard_status *st)
{
    if (!p) return shard_fail(st, MEMLLM__STATUS__STATUS_INVALID_ARGUMENT, "%s: missing", what);
    if (shard_check_text(what, p->source, st) != 0) return -1;
    if (p->sentence < -1)
        return shard_fail(st, MEMLLM__STATUS__STATUS_INVALID_ARGUMENT,
                          "%s: sentence %d (use -1 for none)", what, p->sentence);
    if (p->time_ms < 0)
        return shard_fail(st, MEMLLM__STATUS__STATUS_INVALID_ARGUMENT, "%s: negative time %lld",
                          what, (long long)p->time_ms);
    return 0;
}
