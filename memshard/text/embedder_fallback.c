/* The fallback embedder: signed feature hashing of character trigrams.
 *
 * The normalised text is padded with one space on each side so that word
 * starts and ends make their own trigrams ("adams" gives " ad", "ada", "dam",
 * "ams", "ms "). Each trigram adds +1 or -1 (a hash bit) to one of dim buckets
 * (another part of the hash); the signs make hash collisions cancel out on
 * average instead of inflating similarities. */
#include "embedder.h"
#include "text.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t trigram_hash(const unsigned char *g)
{
    uint64_t h =
        0x9e3779b97f4a7c15ULL ^ ((uint64_t)g[0] | (uint64_t)g[1] << 8 | (uint64_t)g[2] << 16);
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h;
}

static int embed_one(const char *text, int dim, float *out, struct mm_err *err)
{
    char *norm = mm_text_normalise(text);
    if (!norm) {
        mm_err_set(err, "fallback embedder: out of memory");
        return -1;
    }
    size_t len = strlen(norm);
    unsigned char *padded = malloc(len + 3);
    if (!padded) {
        free(norm);
        mm_err_set(err, "fallback embedder: out of memory");
        return -1;
    }
    padded[0] = ' ';
    memcpy(padded + 1, norm, len);
    padded[len + 1] = ' ';
    padded[len + 2] = '\0';
    free(norm);

    memset(out, 0, sizeof(float) * (size_t)dim);
    size_t n = len + 2;
    for (size_t i = 0; i + 3 <= n; i++) {
        uint64_t h = trigram_hash(padded + i);
        out[(h >> 1) % (uint64_t)dim] += (h & 1) ? 1.0f : -1.0f;
    }
    free(padded);

    double norm2 = 0;
    for (int d = 0; d < dim; d++)
        norm2 += (double)out[d] * out[d];
    /* A one-letter text has trigrams too (" a "), so the vector is never
     * zero unless every trigram cancelled; then it stays zero and matches
     * nothing, which is the honest answer. */
    if (norm2 > 0) {
        float inv = (float)(1.0 / sqrt(norm2));
        for (int d = 0; d < dim; d++)
            out[d] *= inv;
    }
    return 0;
}

static int fallback_embed(struct mm_embedder *self, const char *const *texts, size_t n, float *out,
                          struct mm_err *err)
{
    for (size_t i = 0; i < n; i++)
        if (embed_one(texts[i], self->dim, out + i * (size_t)self->dim, err) != 0) return -1;
    return 0;
}

static void fallback_destroy(struct mm_embedder *self)
{
    free(self);
}

struct mm_embedder *mm_fallback_embedder_new(struct mm_err *err)
{
    struct mm_embedder *e = calloc(1, sizeof(*e));
    if (!e) {
        mm_err_set(err, "fallback embedder: out of memory");
        return NULL;
    }
    e->name = MM_FALLBACK_EMBEDDER_NAME;
    e->dim = MM_FALLBACK_DIM;
    e->embed = fallback_embed;
    e->destroy = fallback_destroy;
    return e;
}
