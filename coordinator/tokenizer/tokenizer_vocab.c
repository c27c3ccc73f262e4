/* The vocabulary: token strings, the string -> id table, merges, and the
 * growable buffers the rest of the tokenizer uses. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"
#include "unicode.h"

/* ---- growable buffers ------------------------------------------------- */

int tok_bytes_reserve(struct tok_bytes *b, size_t extra)
{
    if (b->len + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int tok_bytes_append(struct tok_bytes *b, const void *p, size_t n)
{
    if (tok_bytes_reserve(b, n)) return -1;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int tok_ids_push(struct tok_ids *v, int32_t id)
{
    if (v->len == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        int32_t *p = realloc(v->data, cap * sizeof(*p));
        if (!p) return -1;
        v->data = p;
        v->cap = cap;
    }
    v->data[v->len++] = id;
    return 0;
}

void tok_words_clear(struct tok_words *w)
{
    w->buf.len = 0;
    w->n = 0;
}

int tok_words_add_bytes(struct tok_words *w, const void *p, size_t n)
{
    return tok_bytes_append(&w->buf, p, n);
}

int tok_words_end(struct tok_words *w)
{
    size_t start = w->n ? w->off[w->n] : 0;
    if (w->buf.len == start) return 0;
    /* off holds n + 1 boundaries: off[0] = 0 and the end of every word. */
    if (w->n + 2 > w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        size_t *p = realloc(w->off, cap * sizeof(*p));
        if (!p) return -1;
        w->off = p;
        w->cap = cap;
    }
    w->off[0] = 0;
    w->off[++w->n] = w->buf.len;
    return 0;
}

void tok_words_free(struct tok_words *w)
{
    free(w->buf.data);
    free(w->off);
    memset(w, 0, sizeof(*w));
}

/* ---- arena ------------------------------------------------------------- */

struct tok_arena_block {
    struct tok_arena_block *next;
    size_t used, cap;
    char data[];
};

static char *arena_alloc(struct tokenizer *t, size_t n)
{
    struct tok_arena_block *b = t->arena;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 60000 ? n : 60000;
        b = malloc(sizeof(*b) + cap);
        if (!b) return NULL;
        b->next = t->arena;
        b->used = 0;
        b->cap = cap;
        t->arena = b;
    }
    char *p = b->data + b->used;
    b->used += n;
    return p;
}

char *tok_strdup(struct tokenizer *t, const char *s, size_t n)
{
    char *p = arena_alloc(t, n + 1);
    if (!p) return NULL;
    if (n) memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void tok_arena_free(struct tokenizer *t)
{
    struct tok_arena_block *b = t->arena;
    while (b) {
        struct tok_arena_block *next = b->next;
        free(b);
        b = next;
    }
    t->arena = NULL;
}

/* ---- string -> id ------------------------------------------------------ */

static uint64_t tok_hash_bytes(const void *p, size_t n)
{
    const uint8_t *s = p;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xC2B2AE3D27D4EB4Full);
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, s, 8);
        h = (h ^ v) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
        s += 8;
        n -= 8;
    }
    uint64_t v = 0;
    memcpy(&v, s, n);
    h = (h ^ v) * 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 29;
    return h;
}

static int map_grow(struct tokenizer *t)
{
    size_t size = t->map.slots ? (t->map.mask + 1) * 2 : 1024;
    uint32_t *slots = calloc(size, sizeof(*slots));
    if (!slots) return -1;
    for (int id = 0; id < t->n_vocab; id++) {
        if (!t->piece[id] || (t->attr[id] & TOK_ATTR_UNUSED)) continue;
        size_t i = tok_hash_bytes(t->piece[id], t->piece_len[id]) & (size - 1);
        while (slots[i])
            i = (i + 1) & (size - 1);
        slots[i] = (uint32_t)id + 1;
    }
    free(t->map.slots);
    t->map.slots = slots;
    t->map.mask = size - 1;
    return 0;
}

int tok_lookup(const struct tokenizer *t, const char *s, size_t n)
{
    if (!t->map.slots) return -1;
    size_t i = tok_hash_bytes(s, n) & t->map.mask;
    for (;;) {
        uint32_t slot = t->map.slots[i];
        if (!slot) return -1;
        int id = (int)slot - 1;
        if (t->piece_len[id] == n && memcmp(t->piece[id], s, n) == 0) return id;
        i = (i + 1) & t->map.mask;
    }
}

int tok_lookup_model(const struct tokenizer *t, const char *s, size_t n)
{
    int id = tok_lookup(t, s, n);
    return id >= 0 && !(t->attr[id] & TOK_ATTR_EXTRA) ? id : -1;
}

static int map_insert(struct tokenizer *t, int id)
{
    if (!t->map.slots || (size_t)t->n_vocab * 2 > t->map.mask + 1) {
        if (map_grow(t)) return -1;
        return 0; /* map_grow inserted every piece, id included */
    }
    size_t i = tok_hash_bytes(t->piece[id], t->piece_len[id]) & t->map.mask;
    while (t->map.slots[i])
        i = (i + 1) & t->map.mask;
    t->map.slots[i] = (uint32_t)id + 1;
    return 0;
}

static int vocab_reserve(struct tokenizer *t, int n)
{
    if (n <= t->cap_vocab) return 0;
    int cap = t->cap_vocab ? t->cap_vocab : 256;
    while (cap < n)
        cap *= 2;
    char **piece = realloc(t->piece, (size_t)cap * sizeof(*piece));
    if (!piece) return -1;
    t->piece = piece;
    uint32_t *len = realloc(t->piece_len, (size_t)cap * sizeof(*len));
    if (!len) return -1;
    t->piece_len = len;
    char **dec = realloc(t->decoded, (size_t)cap * sizeof(*dec));
    if (!dec) return -1;
    t->decoded = dec;
    uint32_t *dlen = realloc(t->decoded_len, (size_t)cap * sizeof(*dlen));
    if (!dlen) return -1;
    t->decoded_len = dlen;
    uint8_t *attr = realloc(t->attr, (size_t)cap);
    if (!attr) return -1;
    t->attr = attr;
    if (t->score) {
        float *score = realloc(t->score, (size_t)cap * sizeof(*score));
        if (!score) return -1;
        t->score = score;
    }
    for (int i = t->cap_vocab; i < cap; i++) {
        t->piece[i] = NULL;
        t->piece_len[i] = 0;
        t->decoded[i] = NULL;
        t->decoded_len[i] = 0;
        t->attr[i] = 0;
        if (t->score) t->score[i] = 0;
    }
    t->cap_vocab = cap;
    return 0;
}

int tok_set_piece(struct tokenizer *t, int id, const char *s, size_t n, struct mm_err *err)
{
    if (id < 0 || id >= (1 << 30)) {
        mm_err_set(err, "%s: token id %d is out of range", t->name, id);
        return -1;
    }
    if (n > (1u << 20)) {
        mm_err_set(err, "%s: token %d is %zu bytes long", t->name, id, n);
        return -1;
    }
    if (vocab_reserve(t, id + 1)) {
        mm_err_set(err, "%s: out of memory for the vocabulary", t->name);
        return -1;
    }
    if (id < t->n_vocab && t->piece[id]) {
        mm_err_set(err, "%s: token id %d is given twice ('%s' and '%.*s')", t->name, id,
                   t->piece[id], (int)(n > 100 ? 100 : n), s);
        return -1;
    }
    int other = tok_lookup(t, s, n);
    if (other >= 0) {
        mm_err_set(err, "%s: token '%.*s' has two ids, %d and %d", t->name,
                   (int)(n > 100 ? 100 : n), s, other, id);
        return -1;
    }
    char *p = tok_strdup(t, s, n);
    if (!p) {
        mm_err_set(err, "%s: out of memory for the vocabulary", t->name);
        return -1;
    }
    t->piece[id] = p;
    t->piece_len[id] = (uint32_t)n;
    if (id >= t->n_vocab) t->n_vocab = id + 1;
    if (map_insert(t, id)) {
        mm_err_set(err, "%s: out of memory for the vocabulary", t->name);
        return -1;
    }
    return 0;
}

int tok_push_piece(struct tokenizer *t, const char *s, size_t n, struct mm_err *err)
{
    return tok_set_piece(t, t->n_vocab, s, n, err);
}

/* ---- merges ------------------------------------------------------------- */

static uint64_t merge_key(int32_t left, int32_t right)
{
    return ((uint64_t)(uint32_t)left << 32 | (uint32_t)right) + 1;
}

static size_t merge_slot_index(uint64_t key, size_t mask)
{
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 20) & mask;
}

static int merges_grow(struct tokenizer *t)
{
    size_t size = t->merges ? (t->merges_mask + 1) * 2 : 4096;
    struct tok_merge_slot *slots = calloc(size, sizeof(*slots));
    if (!slots) return -1;
    if (t->merges) {
        for (size_t i = 0; i <= t->merges_mask; i++) {
            if (!t->merges[i].key) continue;
            size_t j = merge_slot_index(t->merges[i].key, size - 1);
            while (slots[j].key)
                j = (j + 1) & (size - 1);
            slots[j] = t->merges[i];
        }
    }
    free(t->merges);
    t->merges = slots;
    t->merges_mask = size - 1;
    return 0;
}

int tok_add_merge(struct tokenizer *t, int32_t left, int32_t right, int32_t rank, int32_t merged,
                  int keep_first, struct mm_err *err)
{
    if (!t->merges || (size_t)(t->n_merges + 1) * 2 > t->merges_mask + 1) {
        if (merges_grow(t)) {
            mm_err_set(err, "%s: out of memory for the merges", t->name);
            return -1;
        }
    }
    uint64_t key = merge_key(left, right);
    size_t i = merge_slot_index(key, t->merges_mask);
    while (t->merges[i].key && t->merges[i].key != key)
        i = (i + 1) & t->merges_mask;
    if (t->merges[i].key) {
        if (keep_first) return 0;
    } else {
        t->n_merges++;
    }
    t->merges[i].key = key;
    t->merges[i].rank = rank;
    t->merges[i].merged = merged;
    return 0;
}

const struct tok_merge_slot *tok_find_merge(const struct tokenizer *t, int32_t left, int32_t right)
{
    if (!t->merges) return NULL;
    uint64_t key = merge_key(left, right);
    size_t i = merge_slot_index(key, t->merges_mask);
    while (t->merges[i].key) {
        if (t->merges[i].key == key) return &t->merges[i];
        i = (i + 1) & t->merges_mask;
    }
    return NULL;
}

/* ---- GPT-2's byte <-> unicode map --------------------------------------- */

/* Printable Latin-1 bytes stand for themselves; the other 68 bytes take the
 * code points from U+0100 on, in byte order. */
static int byte_is_printable(int b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t tok_byte_to_cp(uint8_t b)
{
    if (byte_is_printable(b)) return b;
    uint32_t n = 0;
    for (int c = 0; c < b; c++)
        n += !byte_is_printable(c);
    return 0x100 + n;
}

int tok_cp_to_byte(uint32_t cp)
{
    if (cp < 0x100) return byte_is_printable((int)cp) ? (int)cp : -1;
    if (cp >= 0x100 + 68) return -1;
    uint32_t n = 0;
    for (int b = 0; b < 256; b++) {
        if (byte_is_printable(b)) continue;
        if (n == cp - 0x100) return b;
        n++;
    }
    return -1;
}
