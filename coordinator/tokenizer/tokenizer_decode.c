/* Decoding: token ids back to text. Each token's bytes are precomputed at
 * load (tokenizer.c: set_decoded); the decoder concatenates them, strips the
 * leading space the tokenizer added, and makes the stream valid UTF-8,
 * holding back a character that continues in the next token. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"
#include "unicode.h"

static const char REPLACEMENT[3] = {(char)0xEF, (char)0xBF, (char)0xBD};

void tok_decoder_init(struct tok_decoder *d, const struct tokenizer *t)
{
    memset(d, 0, sizeof(*d));
    d->t = t;
    d->at_start = t->strip_leading_space;
}

size_t tok_decoder_max_out(const struct tokenizer *t)
{
    /* Every byte may become a 3-byte U+FFFD, plus the held-back bytes. */
    return 3 * (t->max_decoded_len + 8);
}

/* Feeds one byte; writes what becomes complete (or invalid) to out[*k..]. */
static void feed(struct tok_decoder *d, uint8_t b, char *out, size_t *k)
{
    for (;;) {
        if (d->n_pending == 0) {
            if (b < 0x80) {
                out[(*k)++] = (char)b;
            } else if (uni_is_incomplete(&b, 1)) {
                d->pending[0] = b;
                d->n_pending = 1;
            } else {
                memcpy(out + *k, REPLACEMENT, 3);
                *k += 3;
            }
            return;
        }
        uint8_t buf[4];
        size_t n = (size_t)d->n_pending;
        memcpy(buf, d->pending, n);
        buf[n] = b;
        if (uni_is_incomplete(buf, n + 1)) {
            d->pending[n] = b;
            d->n_pending++;
            return;
        }
        uint32_t cp;
        if (uni_decode(buf, n + 1, &cp) == n + 1) {
            memcpy(out + *k, buf, n + 1);
            *k += n + 1;
            d->n_pending = 0;
            return;
        }
        /* b does not continue the held-back bytes: they are one malformed
         * sequence (one U+FFFD), and b starts afresh. */
        memcpy(out + *k, REPLACEMENT, 3);
        *k += 3;
        d->n_pending = 0;
    }
}

int tok_decoder_push(struct tok_decoder *d, int32_t id, char *out, size_t cap)
{
    const struct tokenizer *t = d->t;
    if (id < 0 || id >= t->n_vocab) return TOK_DECODE_BAD_ID;
    if (d->skip_special && (t->attr[id] & TOK_ATTR_SPECIAL)) return 0;
    const uint8_t *p = (const uint8_t *)t->decoded[id];
    size_t n = t->decoded_len[id];
    size_t need = 3 * (n + (size_t)d->n_pending + 1);
    if (cap < need) return -(int)need;
    if (n && d->at_start) {
        if (p[0] == ' ') {
            p++;
            n--;
        }
        d->at_start = 0;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        feed(d, p[i], out, &k);
    return (int)k;
}

int tok_decoder_flush(struct tok_decoder *d, char *out, size_t cap)
{
    if (d->n_pending == 0) return 0;
    if (cap < 3) return -3;
    memcpy(out, REPLACEMENT, 3);
    d->n_pending = 0;
    return 3;
}

char *tok_decode(const struct tokenizer *t, const int32_t *ids, size_t n, int skip_special,
                 struct mm_err *err)
{
    struct tok_decoder d;
    tok_decoder_init(&d, t);
    d.skip_special = skip_special;
    size_t room = tok_decoder_max_out(t);
    struct tok_bytes out = {0};
    for (size_t i = 0; i <= n; i++) {
        if (tok_bytes_reserve(&out, room + 1)) goto oom;
        int k = i < n ? tok_decoder_push(&d, ids[i], out.data + out.len, room)
                      : tok_decoder_flush(&d, out.data + out.len, room);
        if (k == TOK_DECODE_BAD_ID) {
            mm_err_set(err, "%s: token id %d at position %zu is out of range (vocabulary of %d)",
                       t->name, (int)ids[i], i, t->n_vocab);
            free(out.data);
            return NULL;
        }
        out.len += (size_t)k;
    }
    if (tok_bytes_reserve(&out, 1)) goto oom;
    out.data[out.len] = 0;
    return out.data;
oom:
    free(out.data);
    mm_err_set(err, "%s: out of memory while decoding %zu tokens", t->name, n);
    return NULL;
}
