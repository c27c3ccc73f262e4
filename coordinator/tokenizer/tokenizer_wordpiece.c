/* WordPiece (BERT): each word becomes the longest vocabulary piece at its
 * start, then the longest continuation piece at each following position; a
 * word with any position that no piece covers is a single unk.
 *
 * HF vocabularies mark continuations with "##" (cont_prefix); llama.cpp's
 * "bert" GGUF vocabularies mark word starts with U+2581 instead (word_prefix)
 * and store continuations bare. */
#include <string.h>

#include "tokenizer_impl.h"

static size_t prev_boundary(const char *s, size_t start, size_t end)
{
    do {
        end--;
    } while (end > start && ((uint8_t)s[end] & 0xC0) == 0x80);
    return end;
}

static size_t count_chars(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += ((uint8_t)s[i] & 0xC0) != 0x80;
    return k;
}

int tok_wordpiece_word(const struct tokenizer *t, const char *s, size_t n, struct tok_ids *out,
                       struct tok_bytes *key)
{
    if (t->max_word_chars > 0 && count_chars(s, n) > (size_t)t->max_word_chars)
        return t->unk >= 0 ? tok_ids_push(out, t->unk) : 0;
    size_t mark = out->len, start = 0;
    while (start < n) {
        const char *prefix = start == 0 ? t->word_prefix : t->cont_prefix;
        size_t plen = prefix ? strlen(prefix) : 0;
        /* No piece is longer than max_piece_len, which bounds the search. */
        size_t end = n;
        if (end - start > t->max_piece_len) {
            end = start + t->max_piece_len + 1;
            end = prev_boundary(s, start, end);
        }
        int found = -1;
        while (end > start) {
            key->len = 0;
            if (tok_bytes_append(key, prefix, plen) ||
                tok_bytes_append(key, s + start, end - start))
                return -1;
            found = tok_lookup_model(t, key->data, key->len);
            if (found >= 0) break;
            end = prev_boundary(s, start, end);
        }
        if (found < 0) {
            out->len = mark;
            return t->unk >= 0 ? tok_ids_push(out, t->unk) : 0;
        }
        if (tok_ids_push(out, found)) return -1;
        start = end;
    }
    return 0;
}
