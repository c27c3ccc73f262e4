/* The tokenizer API: building a tokenizer, encoding (added tokens first,
 * then normalizer, pre-tokenizer and model on the text between them), the
 * accessors, tok_add_special and tok_load. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gguf.h"
#include "tokenizer_impl.h"
#include "unicode.h"

struct tokenizer *tok_new(const char *name, struct mm_err *err)
{
    struct tokenizer *t = calloc(1, sizeof(*t));
    if (!t || !(t->name = strdup(name))) {
        free(t);
        mm_err_set(err, "%s: out of memory", name);
        return NULL;
    }
    t->bos = t->eos = t->unk = -1;
    for (int b = 0; b < 256; b++)
        t->byte_token[b] = -1;
    return t;
}

void tok_free(struct tokenizer *t)
{
    if (!t) return;
    free(t->name);
    free(t->piece);
    free(t->piece_len);
    free(t->decoded);
    free(t->decoded_len);
    free(t->score);
    free(t->attr);
    free(t->map.slots);
    tok_arena_free(t);
    free(t->added);
    free(t->norms);
    free(t->pretoks);
    free(t->merges);
    free(t);
}

int tok_add_norm(struct tokenizer *t, const struct tok_norm *n, struct mm_err *err)
{
    struct tok_norm *p = realloc(t->norms, (size_t)(t->n_norms + 1) * sizeof(*p));
    if (!p) {
        mm_err_set(err, "%s: out of memory", t->name);
        return -1;
    }
    t->norms = p;
    t->norms[t->n_norms++] = *n;
    return 0;
}

int tok_add_pretok(struct tokenizer *t, const struct tok_pretok *pt, struct mm_err *err)
{
    struct tok_pretok *p = realloc(t->pretoks, (size_t)(t->n_pretoks + 1) * sizeof(*p));
    if (!p) {
        mm_err_set(err, "%s: out of memory", t->name);
        return -1;
    }
    t->pretoks = p;
    t->pretoks[t->n_pretoks++] = *pt;
    return 0;
}

/* ---- finishing a loaded tokenizer --------------------------------------- */

struct added_key {
    uint8_t first;
    uint32_t len;
    int id;
};

/* By first byte, then longest first, so the first match is the longest. */
static int cmp_added(const void *a, const void *b)
{
    const struct added_key *x = a, *y = b;
    if (x->first != y->first) return x->first < y->first ? -1 : 1;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Rebuilds the added-token index (after marking tokens TOK_ATTR_ADDED). */
static int tok_index_added(struct tokenizer *t, struct mm_err *err)
{
    int n = 0;
    for (int id = 0; id < t->n_vocab; id++)
        n += (t->attr[id] & TOK_ATTR_ADDED) && t->piece_len[id] > 0;
    struct added_key *keys = malloc((size_t)(n ? n : 1) * sizeof(*keys));
    int *added = malloc((size_t)(n ? n : 1) * sizeof(*added));
    if (!keys || !added) {
        free(keys);
        free(added);
        mm_err_set(err, "%s: out of memory", t->name);
        return -1;
    }
    n = 0;
    for (int id = 0; id < t->n_vocab; id++) {
        if (!(t->attr[id] & TOK_ATTR_ADDED) || t->piece_len[id] == 0) continue;
        keys[n].first = (uint8_t)t->piece[id][0];
        keys[n].len = t->piece_len[id];
        keys[n].id = id;
        n++;
    }
    qsort(keys, (size_t)n, sizeof(*keys), cmp_added);
    for (int k = 0; k < n; k++)
        added[k] = keys[k].id;
    free(keys);
    free(t->added);
    t->added = added;
    t->n_added = n;
    int k = 0;
    for (int b = 0; b <= 256; b++) {
        while (k < n && (uint8_t)t->piece[added[k]][0] < b)
            k++;
        t->added_start[b] = k;
    }
    return 0;
}

/* The bytes token id decodes to. */
static int set_decoded(struct tokenizer *t, int id)
{
    const char *p = t->piece[id];
    size_t n = t->piece_len[id];
    uint8_t a = t->attr[id];
    struct tok_bytes out = {0};
    int rc = 0;
    if (a & TOK_ATTR_BYTE) {
        uint8_t byte = 0;
        for (int b = 0; b < 256; b++)
            if (t->byte_token[b] == id) byte = (uint8_t)b;
        rc = tok_bytes_append(&out, &byte, 1);
    } else if (t->decode == TOK_DEC_BYTELEVEL) {
        /* Every character back to its byte; a token with a character that
         * stands for no byte (an added token with a space, say) is taken as
         * it is, as HF's ByteLevel decoder does. */
        size_t i = 0;
        while (i < n && !rc) {
            uint32_t cp;
            i += uni_decode((const uint8_t *)p + i, n - i, &cp);
            int b = cp == UNI_INVALID ? -1 : tok_cp_to_byte(cp);
            if (b < 0) {
                out.len = 0;
                rc = tok_bytes_append(&out, p, n);
                break;
            }
            uint8_t byte = (uint8_t)b;
            rc = tok_bytes_append(&out, &byte, 1);
        }
    } else if (t->decode == TOK_DEC_WORDPIECE) {
        size_t pl = t->cont_prefix ? strlen(t->cont_prefix) : 0;
        if (pl && n >= pl && memcmp(p, t->cont_prefix, pl) == 0)
            rc = tok_bytes_append(&out, p + pl, n - pl);
        else
            rc = tok_bytes_append(&out, " ", 1) || tok_bytes_append(&out, p, n);
    } else if (a & TOK_ATTR_SPECIAL) {
        rc = tok_bytes_append(&out, p, n);
    } else {
        /* U+2581 (SentencePiece's space) becomes a space. */
        size_t i = 0, start = 0;
        while (i + 3 <= n && !rc) {
            if (memcmp(p + i, "\xE2\x96\x81", 3) == 0) {
                rc = tok_bytes_append(&out, p + start, i - start) || tok_bytes_append(&out, " ", 1);
                i += 3;
                start = i;
            } else {
                i++;
            }
        }
        if (!rc) rc = tok_bytes_append(&out, p + start, n - start);
    }
    if (!rc) {
        char *d = tok_strdup(t, out.len ? out.data : "", out.len);
        if (!d) {
            rc = -1;
        } else {
            t->decoded[id] = d;
            t->decoded_len[id] = (uint32_t)out.len;
            if (out.len > t->max_decoded_len) t->max_decoded_len = out.len;
        }
    }
    free(out.data);
    return rc;
}

int tok_finish(struct tokenizer *t, struct mm_err *err)
{
    if (t->n_vocab == 0) {
        mm_err_set(err, "%s: the vocabulary is empty", t->name);
        return -1;
    }
    for (int id = 0; id < t->n_vocab; id++) {
        if (t->piece[id]) continue;
        /* An id no entry names: it exists (the embedding has a row for it)
         * but no text encodes to it. */
        if (!(t->piece[id] = tok_strdup(t, "", 0))) goto oom;
        t->attr[id] |= TOK_ATTR_UNUSED | TOK_ATTR_EXTRA;
    }
    for (int b = 0; b < 256; b++) {
        char buf[4];
        size_t n = uni_encode(tok_byte_to_cp((uint8_t)b), buf);
        memcpy(t->byte_utf8[b], buf, n);
        t->byte_utf8_len[b] = (uint8_t)n;
    }
    if (t->byte_level) {
        t->byte_chars_direct = !t->cont_prefix && !t->word_suffix;
        for (int b = 0; b < 256; b++) {
            t->byte_token[b] = tok_lookup_model(t, t->byte_utf8[b], t->byte_utf8_len[b]);
            if (t->byte_token[b] < 0) t->byte_chars_direct = 0;
        }
    } else if (t->model != TOK_MODEL_WORDPIECE) {
        for (int b = 0; b < 256; b++) {
            char name[7] = {'<', '0', 'x', "0123456789ABCDEF"[b >> 4], "0123456789ABCDEF"[b & 15],
                            '>', 0};
            int id = tok_lookup_model(t, name, 6);
            t->byte_token[b] = id;
            if (id >= 0) t->attr[id] |= TOK_ATTR_BYTE;
        }
    }
    t->max_piece_len = 0;
    t->max_decoded_len = 0;
    for (int id = 0; id < t->n_vocab; id++) {
        if (!(t->attr[id] & TOK_ATTR_EXTRA) && t->piece_len[id] > t->max_piece_len)
            t->max_piece_len = t->piece_len[id];
        if (set_decoded(t, id)) goto oom;
    }
    return tok_index_added(t, err);
oom:
    mm_err_set(err, "%s: out of memory", t->name);
    return -1;
}

/* ---- encoding ------------------------------------------------------------ */

struct tok_scratch {
    struct tok_bytes norm, tmp, tmp2, key;
    struct tok_words words, words_tmp;
    struct tok_cps cps;
    struct tok_bpe_work *bpe;
};

static void scratch_free(struct tok_scratch *s)
{
    free(s->norm.data);
    free(s->tmp.data);
    free(s->tmp2.data);
    free(s->key.data);
    tok_words_free(&s->words);
    tok_words_free(&s->words_tmp);
    free(s->cps.cp);
    free(s->cps.off);
    tok_bpe_work_free(s->bpe);
}

/* Runs normalizer, pre-tokenizer and model on the text between added
 * tokens. */
static int encode_text(const struct tokenizer *t, const char *s, size_t n, int at_input_start,
                       int after_added, struct tok_scratch *sc, struct tok_ids *out)
{
    if (n == 0) return 0;
    if (t->n_norms) {
        if (tok_normalize(t, s, n, at_input_start, after_added, &sc->norm, &sc->tmp, &sc->tmp2))
            return -1;
        s = sc->norm.data;
        n = sc->norm.len;
    }
    if (t->model == TOK_MODEL_SPM) return tok_spm_text(t, s, n, out, sc->bpe);
    if (tok_pretokenize(t, s, n, &sc->words, &sc->words_tmp, &sc->cps)) return -1;
    for (size_t w = 0; w < sc->words.n; w++) {
        const char *ws = sc->words.buf.data + sc->words.off[w];
        size_t wn = sc->words.off[w + 1] - sc->words.off[w];
        int rc = t->model == TOK_MODEL_WORDPIECE ? tok_wordpiece_word(t, ws, wn, out, &sc->key)
                                                 : tok_bpe_word(t, ws, wn, out, sc->bpe);
        if (rc) return -1;
    }
    return 0;
}

static int is_word_byte(uint8_t c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '_' ||
           c >= 0x80;
}

static int is_space_byte(uint8_t c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* The added token that starts at text[pos] (the longest one), -1 if none. */
static int match_added(const struct tokenizer *t, const char *text, size_t len, size_t pos,
                       int parse_special)
{
    uint8_t b = (uint8_t)text[pos];
    for (int k = t->added_start[b]; k < t->added_start[b + 1]; k++) {
        int id = t->added[k];
        size_t n = t->piece_len[id];
        if ((t->attr[id] & TOK_ATTR_SPECIAL) && !parse_special) continue;
        if (n > len - pos || memcmp(text + pos, t->piece[id], n) != 0) continue;
        if (t->attr[id] & TOK_ATTR_SINGLE_WORD) {
            if (pos > 0 && is_word_byte((uint8_t)text[pos - 1])) continue;
            if (pos + n < len && is_word_byte((uint8_t)text[pos + n])) continue;
        }
        return id;
    }
    return -1;
}

int tok_encode(const struct tokenizer *t, const char *text, size_t len, int add_bos,
               int parse_special, int32_t **ids, size_t *n_ids, struct mm_err *err)
{
    struct tok_ids out = {0};
    struct tok_scratch sc = {0};
    *ids = NULL;
    *n_ids = 0;
    if (!(sc.bpe = tok_bpe_work_new())) goto oom;
    if (add_bos)
        for (int i = 0; i < t->n_prefix; i++)
            if (tok_ids_push(&out, t->prefix[i])) goto oom;
    size_t seg = 0, pos = 0;
    int after_added = 0;
    while (pos < len) {
        int id = t->n_added ? match_added(t, text, len, pos, parse_special) : -1;
        if (id < 0) {
            pos++;
            continue;
        }
        size_t end = pos, next = pos + t->piece_len[id];
        if (t->attr[id] & TOK_ATTR_LSTRIP)
            while (end > seg && is_space_byte((uint8_t)text[end - 1]))
                end--;
        if (t->attr[id] & TOK_ATTR_RSTRIP)
            while (next < len && is_space_byte((uint8_t)text[next]))
                next++;
        if (encode_text(t, text + seg, end - seg, seg == 0, after_added, &sc, &out)) goto oom;
        if (tok_ids_push(&out, id)) goto oom;
        seg = pos = next;
        after_added = 1;
    }
    if (encode_text(t, text + seg, len - seg, seg == 0, after_added, &sc, &out)) goto oom;
    if (add_bos)
        for (int i = 0; i < t->n_suffix; i++)
            if (tok_ids_push(&out, t->suffix[i])) goto oom;
    scratch_free(&sc);
    if (!out.data && !(out.data = malloc(sizeof(int32_t)))) goto oom;
    *ids = out.data;
    *n_ids = out.len;
    return 0;
oom:
    scratch_free(&sc);
    free(out.data);
    mm_err_set(err, "%s: out of memory while encoding %zu bytes", t->name, len);
    return -1;
}

/* ---- accessors ----------------------------------------------------------- */

int tok_n_vocab(const struct tokenizer *t)
{
    return t->n_vocab;
}

int tok_bos(const struct tokenizer *t)
{
    return t->bos;
}

int tok_eos(const struct tokenizer *t)
{
    return t->eos;
}

int tok_add_bos_default(const struct tokenizer *t)
{
    return t->add_bos_default;
}

int tok_find(const struct tokenizer *t, const char *token_text)
{
    int id = tok_lookup(t, token_text, strlen(token_text));
    return id >= 0 && !(t->attr[id] & TOK_ATTR_UNUSED) ? id : -1;
}

const char *tok_piece(const struct tokenizer *t, int id)
{
    if (id < 0 || id >= t->n_vocab) return NULL;
    return t->piece[id];
}

int tok_is_special(const struct tokenizer *t, int id)
{
    return id >= 0 && id < t->n_vocab && (t->attr[id] & TOK_ATTR_SPECIAL);
}

int tok_add_special(struct tokenizer *t, const char *text, struct mm_err *err)
{
    size_t n = strlen(text);
    if (n == 0) {
        mm_err_set(err, "%s: a special token cannot be empty", t->name);
        return -1;
    }
    int id = tok_lookup(t, text, n);
    if (id < 0) {
        id = t->n_vocab;
        if (tok_push_piece(t, text, n, err)) return -1;
        t->attr[id] = TOK_ATTR_EXTRA;
        if (set_decoded(t, id)) {
            mm_err_set(err, "%s: out of memory", t->name);
            return -1;
        }
    }
    t->attr[id] |= TOK_ATTR_SPECIAL | TOK_ATTR_ADDED;
    if (tok_index_added(t, err)) return -1;
    return id;
}

/* ---- loading ---------------------------------------------------------------- */

static int has_gguf_magic(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char magic[4] = {0};
    size_t n = fread(magic, 1, 4, f);
    fclose(f);
    return n == 4 && memcmp(magic, "GGUF", 4) == 0;
}

struct tokenizer *tok_load(const char *model_path, struct mm_err *err)
{
    struct stat st;
    if (stat(model_path, &st) != 0) {
        mm_err_set(err, "%s: no such file or directory", model_path);
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        size_t n = strlen(model_path) + sizeof("/tokenizer.json");
        char *p = malloc(n);
        if (!p) {
            mm_err_set(err, "%s: out of memory", model_path);
            return NULL;
        }
        snprintf(p, n, "%s/tokenizer.json", model_path);
        struct tokenizer *t = tok_load_json(p, err);
        free(p);
        return t;
    }
    if (!has_gguf_magic(model_path)) return tok_load_json(model_path, err);
    struct gguf_file *g = gguf_open(model_path, err);
    if (!g) return NULL;
    struct tokenizer *t = tok_load_gguf(g, err);
    gguf_close(g);
    return t;
}
