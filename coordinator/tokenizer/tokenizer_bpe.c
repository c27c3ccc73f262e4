/* The two BPE merge engines.
 *
 * Rank BPE (HF BPE models, llama.cpp "gpt2"): the symbols of a word start as
 * its characters' ids; the adjacent pair with the lowest merge rank (leftmost
 * on ties) is merged until no pair has a merge. Pairs wait in a binary heap
 * and the symbols form a linked list, so a word of n characters costs
 * O(n log n); entries made stale by an earlier merge are skipped when popped.
 *
 * Score BPE (llama.cpp "llama", SentencePiece vocabularies in GGUF): as
 * llama.cpp's llm_tokenizer_spm, the adjacent pair whose concatenation is
 * the token with the highest score (leftmost on ties) is merged; symbols that
 * end up outside the vocabulary become byte tokens. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"
#include "unicode.h"

struct sym {
    int32_t id; /* -1 once merged into its left neighbour */
    int32_t prev, next;
    uint32_t start, len; /* bytes of the text (score BPE) */
};

struct rank_item {
    int32_t rank, pos, merged;
};

struct score_item {
    float score;
    int32_t left, right;
    uint32_t size;
};

struct tok_bpe_work {
    struct sym *syms;
    size_t n_syms, cap_syms;
    void *heap;
    size_t n_heap, cap_heap;
    struct tok_bytes word; /* a byte-level word in its unicode form */
    struct tok_bytes key;  /* a character with prefix/suffix */
};

struct tok_bpe_work *tok_bpe_work_new(void)
{
    return calloc(1, sizeof(struct tok_bpe_work));
}

void tok_bpe_work_free(struct tok_bpe_work *w)
{
    if (!w) return;
    free(w->syms);
    free(w->heap);
    free(w->word.data);
    free(w->key.data);
    free(w);
}

static int add_sym(struct tok_bpe_work *w, int32_t id, uint32_t start, uint32_t len)
{
    if (w->n_syms == w->cap_syms) {
        size_t cap = w->cap_syms ? w->cap_syms * 2 : 256;
        struct sym *p = realloc(w->syms, cap * sizeof(*p));
        if (!p) return -1;
        w->syms = p;
        w->cap_syms = cap;
    }
    struct sym *s = &w->syms[w->n_syms];
    s->id = id;
    s->prev = (int32_t)w->n_syms - 1;
    s->next = -1;
    if (w->n_syms) w->syms[w->n_syms - 1].next = (int32_t)w->n_syms;
    s->start = start;
    s->len = len;
    w->n_syms++;
    return 0;
}

static int heap_reserve(struct tok_bpe_work *w, size_t item)
{
    if (w->n_heap < w->cap_heap) return 0;
    size_t cap = w->cap_heap ? w->cap_heap * 2 : 256;
    void *p = realloc(w->heap, cap * item);
    if (!p) return -1;
    w->heap = p;
    w->cap_heap = cap;
    return 0;
}

/* ---- rank heap: lowest rank first, then leftmost ---------------------- */

static int rank_before(const struct rank_item *a, const struct rank_item *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static int rank_push(struct tok_bpe_work *w, struct rank_item it)
{
    if (heap_reserve(w, sizeof(it))) return -1;
    struct rank_item *h = w->heap;
    size_t i = w->n_heap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!rank_before(&it, &h[parent])) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = it;
    return 0;
}

static struct rank_item rank_pop(struct tok_bpe_work *w)
{
    struct rank_item *h = w->heap;
    struct rank_item top = h[0], last = h[--w->n_heap];
    size_t i = 0, n = w->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && rank_before(&h[c + 1], &h[c])) c++;
        if (!rank_before(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (n) h[i] = last;
    return top;
}

static int push_pair(const struct tokenizer *t, struct tok_bpe_work *w, int32_t left)
{
    if (left < 0) return 0;
    int32_t right = w->syms[left].next;
    if (right < 0) return 0;
    const struct tok_merge_slot *m = tok_find_merge(t, w->syms[left].id, w->syms[right].id);
    if (!m) return 0;
    struct rank_item it = {m->rank, left, m->merged};
    return rank_push(w, it);
}

static int merge_all(const struct tokenizer *t, struct tok_bpe_work *w)
{
    w->n_heap = 0;
    for (size_t i = 0; i + 1 < w->n_syms; i++)
        if (push_pair(t, w, (int32_t)i)) return -1;
    while (w->n_heap) {
        struct rank_item top = rank_pop(w);
        struct sym *s = &w->syms[top.pos];
        if (s->id < 0 || s->next < 0) continue;
        struct sym *r = &w->syms[s->next];
        const struct tok_merge_slot *m = tok_find_merge(t, s->id, r->id);
        if (!m || m->merged != top.merged) continue; /* stale */
        s->id = top.merged;
        r->id = -1;
        s->next = r->next;
        if (r->next >= 0) w->syms[r->next].prev = top.pos;
        if (push_pair(t, w, s->prev) || push_pair(t, w, top.pos)) return -1;
    }
    return 0;
}

/* ---- the initial symbols of a word -------------------------------------- */

/* Ids of the <0xNN> tokens of key's bytes, as HF's byte fallback; 0 if one
 * is missing. */
static int add_byte_fallback(const struct tokenizer *t, struct tok_bpe_work *w, const char *key,
                             size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (t->byte_token[(uint8_t)key[i]] < 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (add_sym(w, t->byte_token[(uint8_t)key[i]], 0, 1)) return -1;
    return 1;
}

/* As HF's BPE::merge_word: each character (with continuing_subword_prefix
 * after the first and end_of_word_suffix on the last) is its token, or its
 * byte-fallback tokens, or unk (runs of unk fused when fuse_unk). */
static int chars_to_syms(const struct tokenizer *t, struct tok_bpe_work *w, const char *s, size_t n)
{
    int32_t pending_unk = -1;
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t len = uni_decode((const uint8_t *)s + i, n - i, &cp);
        const char *key = s + i;
        size_t klen = len;
        if ((t->cont_prefix && i > 0) || (t->word_suffix && i + len == n)) {
            w->key.len = 0;
            if (t->cont_prefix && i > 0 &&
                tok_bytes_append(&w->key, t->cont_prefix, strlen(t->cont_prefix)))
                return -1;
            if (tok_bytes_append(&w->key, s + i, len)) return -1;
            if (t->word_suffix && i + len == n &&
                tok_bytes_append(&w->key, t->word_suffix, strlen(t->word_suffix)))
                return -1;
            key = w->key.data;
            klen = w->key.len;
        }
        i += len;
        int id = tok_lookup_model(t, key, klen);
        if (id >= 0) {
            if (pending_unk >= 0 && add_sym(w, pending_unk, 0, 0)) return -1;
            pending_unk = -1;
            if (add_sym(w, id, 0, 0)) return -1;
            continue;
        }
        if (t->byte_fallback) {
            int r = add_byte_fallback(t, w, key, klen);
            if (r < 0) return -1;
            if (r) continue;
        }
        if (t->unk >= 0) {
            if (pending_unk >= 0 && !t->fuse_unk && add_sym(w, pending_unk, 0, 0)) return -1;
            pending_unk = t->unk;
        }
    }
    if (pending_unk >= 0 && add_sym(w, pending_unk, 0, 0)) return -1;
    return 0;
}

int tok_bpe_word(const struct tokenizer *t, const char *s, size_t n, struct tok_ids *out,
                 struct tok_bpe_work *w)
{
    w->n_syms = 0;
    if (t->byte_level) {
        /* Every byte is the character GPT-2's map assigns it. */
        if (t->byte_chars_direct && !t->ignore_merges) {
            for (size_t i = 0; i < n; i++)
                if (add_sym(w, t->byte_token[(uint8_t)s[i]], 0, 0)) return -1;
            goto merge;
        }
        w->word.len = 0;
        for (size_t i = 0; i < n; i++) {
            uint8_t b = (uint8_t)s[i];
            if (tok_bytes_append(&w->word, t->byte_utf8[b], t->byte_utf8_len[b])) return -1;
        }
        s = w->word.data;
        n = w->word.len;
    }
    if (t->ignore_merges) {
        int id = tok_lookup_model(t, s, n);
        if (id >= 0) return tok_ids_push(out, id);
    }
    if (chars_to_syms(t, w, s, n)) return -1;
merge:
    if (merge_all(t, w)) return -1;
    for (int32_t i = w->n_syms ? 0 : -1; i >= 0; i = w->syms[i].next)
        if (tok_ids_push(out, w->syms[i].id)) return -1;
    return 0;
}

/* ---- score BPE ------------------------------------------------------------ */

static int score_before(const struct score_item *a, const struct score_item *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static int score_push(struct tok_bpe_work *w, struct score_item it)
{
    if (heap_reserve(w, sizeof(it))) return -1;
    struct score_item *h = w->heap;
    size_t i = w->n_heap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!score_before(&it, &h[parent])) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = it;
    return 0;
}

static struct score_item score_pop(struct tok_bpe_work *w)
{
    struct score_item *h = w->heap;
    struct score_item top = h[0], last = h[--w->n_heap];
    size_t i = 0, n = w->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && score_before(&h[c + 1], &h[c])) c++;
        if (!score_before(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (n) h[i] = last;
    return top;
}

static int try_bigram(const struct tokenizer *t, struct tok_bpe_work *w, const char *s,
                      int32_t left, int32_t right)
{
    if (left < 0 || right < 0) return 0;
    uint32_t size = w->syms[left].len + w->syms[right].len;
    int id = tok_lookup_model(t, s + w->syms[left].start, size);
    if (id < 0) return 0;
    struct score_item it = {t->score[id], left, right, size};
    return score_push(w, it);
}

int tok_spm_text(const struct tokenizer *t, const char *s, size_t n, struct tok_ids *out,
                 struct tok_bpe_work *w)
{
    w->n_syms = 0;
    w->n_heap = 0;
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t len = uni_decode((const uint8_t *)s + i, n - i, &cp);
        if (add_sym(w, 0, (uint32_t)i, (uint32_t)len)) return -1;
        i += len;
    }
    for (size_t k = 1; k < w->n_syms; k++)
        if (try_bigram(t, w, s, (int32_t)k - 1, (int32_t)k)) return -1;
    while (w->n_heap) {
        struct score_item top = score_pop(w);
        struct sym *l = &w->syms[top.left], *r = &w->syms[top.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != top.size) continue;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) w->syms[r->next].prev = top.left;
        if (try_bigram(t, w, s, l->prev, top.left) || try_bigram(t, w, s, top.left, l->next))
            return -1;
    }
    for (int32_t k = w->n_syms ? 0 : -1; k >= 0; k = w->syms[k].next) {
        const struct sym *sy = &w->syms[k];
        int id = tok_lookup_model(t, s + sy->start, sy->len);
        if (id >= 0) {
            if (tok_ids_push(out, id)) return -1;
            continue;
        }
        /* Outside the vocabulary: one token per byte, <0xNN> or the byte's
         * own single-character token, as llama.cpp's byte_to_token. */
        for (uint32_t b = 0; b < sy->len; b++) {
            uint8_t byte = (uint8_t)s[sy->start + b];
            int bid = t->byte_token[byte];
            if (bid < 0) bid = tok_lookup_model(t, (const char *)&byte, 1);
            if (bid < 0) bid = t->unk;
            if (bid >= 0 && tok_ids_push(out, bid)) return -1;
        }
    }
    return 0;
}
