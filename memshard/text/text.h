/* Entity and relation texts: what the memory accepts, how texts are compared,
 * and the ids derived from them.
 *
 * Two texts name the same entity (or relation) when their normalised forms
 * are equal: surrounding whitespace dropped, inner runs of whitespace made one
 * space, ASCII letters lowercased (other bytes are kept as they are, so
 * non-ASCII case is significant). An id is a 64-bit hash of the normalised
 * text, so every process computes the same id without asking a shard, and an
 * entity's home shard is its id modulo the number of shards. */
#ifndef MEMLLM_MEMSHARD_TEXT_H
#define MEMLLM_MEMSHARD_TEXT_H

#include "err.h"

#include <stddef.h>
#include <stdint.h>

/* Bound on an entity, relation or alias text, in bytes: keeps keys, messages
 * and the embedder's input small. */
#define MM_TEXT_MAX 1024

/* Checks that `text` can be stored: valid UTF-8, no control characters, not
 * empty or blank, at most MM_TEXT_MAX bytes. `what` names the input in the
 * error ("subject of triple 3"). */
int mm_text_check(const char *what, const char *text, struct mm_err *err);

/* The normalised form (see above), malloc'ed; NULL when out of memory. */
char *mm_text_normalise(const char *text);

/* The id of a normalised text. */
uint64_t mm_text_id(const char *normalised);

/* The id of a text (normalises it first); -1 when out of memory. */
int mm_text_id_of(const char *text, uint64_t *id, struct mm_err *err);

/* The home shard of an id among `shards` shards. */
static inline uint32_t mm_home_shard(uint64_t id, uint32_t shards)
{
    return (uint32_t)(id % shards);
}

/* Writes a short, printable excerpt of `text` into buf for error messages:
 * at most ~40 bytes, non-printable bytes as \xNN. Returns buf. */
const char *mm_text_excerpt(const char *text, char *buf, size_t n);

#endif
