/* Inside the tokenizer: the shared state of tokenizer*.c. Not for callers.
 *
 * Encoding runs the HF pipeline on each stretch of text between added
 * tokens: normalizer steps, pre-tokenizer steps (cutting the text into
 * words), then the model on each word. The loaders (tokenizer_json.c,
 * tokenizer_gguf.c) fill in which steps and which model. */
#ifndef MEMLLM_COORDINATOR_TOKENIZER_IMPL_H
#define MEMLLM_COORDINATOR_TOKENIZER_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"
#include "tokenizer.h"

/* ---- loading errors ----------------------------------------------------- */

/* In a loader L (any struct with the tokenizer `t` and the error `err`):
 * sets L->err to "<the tokenizer's file>: <message>" and returns -1. */
#define TOK_FAIL(L, ...)                                                                           \
    do {                                                                                           \
        char msg_[MM_ERR_LEN];                                                                     \
        snprintf(msg_, sizeof(msg_), __VA_ARGS__);                                                 \
        mm_err_set((L)->err, "%s: %s", (L)->t->name, msg_);                                        \
        return -1;                                                                                 \
    } while (0)

/* ---- growable buffers ------------------------------------------------- */

struct tok_bytes {
    char *data;
    size_t len, cap;
};

struct tok_ids {
    int32_t *data;
    size_t len, cap;
};

int tok_bytes_reserve(struct tok_bytes *b, size_t extra);
int tok_bytes_append(struct tok_bytes *b, const void *p, size_t n);
int tok_ids_push(struct tok_ids *v, int32_t id);

/* Words: word i is buf.data[off[i] .. off[i + 1]). */
struct tok_words {
    struct tok_bytes buf;
    size_t *off;
    size_t n, cap;
};

void tok_words_clear(struct tok_words *w);
/* Appends bytes to the word being built. */
int tok_words_add_bytes(struct tok_words *w, const void *p, size_t n);
/* Ends the word being built (an empty word is dropped). */
int tok_words_end(struct tok_words *w);
void tok_words_free(struct tok_words *w);

/* Code points of a word with their byte offsets: cp[i] starts at off[i];
 * off[n] is the length. Bytes that are not UTF-8 are UNI_INVALID. */
struct tok_cps {
    uint32_t *cp, *off;
    size_t n, cap;
};

/* ---- string -> id table ----------------------------------------------- */

/* Open addressing over the token strings; slots hold id + 1 (0 = empty). */
struct tok_strmap {
    uint32_t *slots;
    size_t mask;
};

/* ---- normalizers, pre-tokenizers, models, decoders --------------------- */

enum tok_norm_kind {
    TOK_NORM_PREPEND, /* HF Prepend: arg before any non-empty text */
    TOK_NORM_REPLACE, /* HF Replace with a string pattern: arg -> arg2 */
    TOK_NORM_LOWERCASE,
    TOK_NORM_NFD,
    TOK_NORM_STRIP_ACCENTS, /* drop Mn code points (after NFD) */
    TOK_NORM_BERT,          /* HF BertNormalizer, options below */
    /* llama.cpp SPM: a space before the first stretch of text and before a
     * stretch that follows an added token (add_space_prefix). */
    TOK_NORM_SPACE_PREFIX_LLAMA,
    /* HF Metaspace's prepend: arg unless the text already starts with it;
     * "first" = only for the stretch at the very start of the input. */
    TOK_NORM_METASPACE_PREPEND,
};

struct tok_norm {
    enum tok_norm_kind kind;
    char *arg, *arg2;
    int first_only; /* METASPACE_PREPEND */
    /* BERT */
    int clean_text, chinese, strip_accents, lowercase;
    int strip_all_marks; /* llama.cpp strips every mark (M*), HF only Mn */
};

enum tok_pretok_kind {
    TOK_PRE_GPT2,   /* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
    TOK_PRE_DIGITS, /* HF Digits: each digit alone, or runs of digits */
    TOK_PRE_PUNCT_RUNS,       /* llama.cpp "default": [\p{P}\$\+<=>\^~\|]+ */
    TOK_PRE_NUMBER_RUNS,      /* \p{N}+ */
    TOK_PRE_ASCII_DIGIT3,     /* [0-9][0-9][0-9] */
    TOK_PRE_BYTELEVEL_PREFIX, /* HF ByteLevel add_prefix_space */
    TOK_PRE_METASPACE_SPLIT,  /* cut before each replacement character */
    TOK_PRE_BERT,             /* whitespace removed, punctuation isolated */
    TOK_PRE_WHITESPACE_SPLIT, /* HF WhitespaceSplit */
};

struct tok_pretok {
    enum tok_pretok_kind kind;
    int individual; /* DIGITS */
    char *arg;      /* METASPACE_SPLIT: the replacement character */
};

enum tok_model_kind {
    TOK_MODEL_BPE,       /* merges by rank (HF BPE, llama.cpp "gpt2") */
    TOK_MODEL_SPM,       /* merges by score (llama.cpp "llama") */
    TOK_MODEL_WORDPIECE, /* greedy longest match (HF WordPiece, llama.cpp "bert") */
};

enum tok_decode_kind {
    TOK_DEC_PLAIN,     /* pieces as they are, U+2581 as space, <0xNN> as bytes */
    TOK_DEC_BYTELEVEL, /* GPT-2 byte-to-unicode reversed */
    TOK_DEC_WORDPIECE, /* continuation pieces joined, words spaced */
};

/* Token attributes. */
enum {
    TOK_ATTR_SPECIAL = 1,      /* control: BOS, EOS, added special tokens */
    TOK_ATTR_ADDED = 2,        /* recognised in the text before the model runs */
    TOK_ATTR_BYTE = 4,         /* <0xNN> byte-fallback token */
    TOK_ATTR_LSTRIP = 8,       /* added token that eats whitespace on its left */
    TOK_ATTR_RSTRIP = 16,      /* ... and on its right */
    TOK_ATTR_SINGLE_WORD = 32, /* matched only as a whole word */
    TOK_ATTR_UNUSED = 64,      /* in the id range but without a string */
    /* Not in the model's vocabulary (HF added tokens outside model.vocab,
     * tok_add_special's new tokens): only added-token matching yields it. */
    TOK_ATTR_EXTRA = 128,
};

struct tok_merge_slot {
    uint64_t key; /* (left id << 32 | right id) + 1; 0 = empty */
    int32_t rank;
    int32_t merged;
};

/* Memory for the strings: blocks that are never moved, so pointers into
 * them stay valid as the vocabulary grows. */
struct tok_arena_block;

struct tokenizer {
    char *name; /* the file it came from, for messages */

    /* vocabulary */
    int n_vocab, cap_vocab;
    char **piece; /* NUL-terminated */
    uint32_t *piece_len;
    char **decoded; /* bytes a token decodes to (not NUL-terminated) */
    uint32_t *decoded_len;
    float *score; /* SPM: merge priority; NULL otherwise */
    uint8_t *attr;
    struct tok_strmap map;
    struct tok_arena_block *arena;
    size_t max_decoded_len;

    /* specials */
    int bos, eos, unk;
    int add_bos_default;
    int32_t prefix[4], suffix[4]; /* what add_bos adds */
    int n_prefix, n_suffix;

    /* added tokens, by first byte, longest first */
    int *added; /* ids */
    int n_added;
    int added_start[257]; /* added[added_start[b] .. added_start[b + 1]) start with byte b */

    /* pipeline */
    struct tok_norm *norms;
    int n_norms;
    struct tok_pretok *pretoks;
    int n_pretoks;
    int byte_level; /* map the bytes of each word to GPT-2's unicode form */

    enum tok_model_kind model;
    /* BPE */
    struct tok_merge_slot *merges;
    size_t merges_mask;
    int n_merges;
    int byte_fallback, fuse_unk, ignore_merges;
    char *cont_prefix;       /* BPE continuing_subword_prefix; WordPiece "##" */
    char *word_suffix;       /* BPE end_of_word_suffix */
    int32_t byte_token[256]; /* byte fallback <0xNN> or byte-level byte char; -1 */
    char byte_utf8[256][2];  /* GPT-2's character for each byte, UTF-8 */
    uint8_t byte_utf8_len[256];
    int byte_chars_direct; /* byte-level words map to byte_token directly */
    /* WordPiece */
    char *word_prefix;  /* llama.cpp "bert" vocabularies mark word starts with U+2581 */
    int max_word_chars; /* longer words become unk; 0 = no limit */
    size_t max_piece_len;

    /* decoding */
    enum tok_decode_kind decode;
    int strip_leading_space;
};

/* ---- building a tokenizer (loaders) ------------------------------------ */

struct tokenizer *tok_new(const char *name, struct mm_err *err);
/* Puts a string at a given id (tokenizer.json vocabularies list ids in any
 * order), growing n_vocab to id + 1; ids left without a string become
 * TOK_ATTR_UNUSED in tok_finish. Fails on a repeated id or string. */
int tok_set_piece(struct tokenizer *t, int id, const char *s, size_t n, struct mm_err *err);
/* The same at id n_vocab. */
int tok_push_piece(struct tokenizer *t, const char *s, size_t n, struct mm_err *err);
/* Id of a string, -1 if none. */
int tok_lookup(const struct tokenizer *t, const char *s, size_t n);
/* The same, among the tokens the model itself produces (not TOK_ATTR_EXTRA). */
int tok_lookup_model(const struct tokenizer *t, const char *s, size_t n);
/* A copy in the tokenizer's string arena (freed with it). */
char *tok_strdup(struct tokenizer *t, const char *s, size_t n);
void tok_arena_free(struct tokenizer *t);
/* Records that (left, right) merge into `merged` with priority `rank`; a
 * repeated pair keeps its first rank (keep_first) or takes the new one. */
int tok_add_merge(struct tokenizer *t, int32_t left, int32_t right, int32_t rank, int32_t merged,
                  int keep_first, struct mm_err *err);
const struct tok_merge_slot *tok_find_merge(const struct tokenizer *t, int32_t left, int32_t right);
int tok_add_norm(struct tokenizer *t, const struct tok_norm *n, struct mm_err *err);
int tok_add_pretok(struct tokenizer *t, const struct tok_pretok *p, struct mm_err *err);
/* After the vocabulary and options are in: holes, byte tables, decoded
 * strings, the added-token index. */
int tok_finish(struct tokenizer *t, struct mm_err *err);

/* The GPT-2 byte-to-unicode map: the code point byte b is written as. */
uint32_t tok_byte_to_cp(uint8_t b);
/* The reverse; -1 for a code point that stands for no byte. */
int tok_cp_to_byte(uint32_t cp);

/* ---- running the pipeline ---------------------------------------------- */

/* Normalizes one stretch of text (between added tokens) into out; tmp and
 * tmp2 are work buffers. */
int tok_normalize(const struct tokenizer *t, const char *s, size_t n, int at_input_start,
                  int after_added, struct tok_bytes *out, struct tok_bytes *tmp,
                  struct tok_bytes *tmp2);
/* Cuts normalized text into words with the pre-tokenizer steps (one word,
 * the whole text, when there are none). */
int tok_pretokenize(const struct tokenizer *t, const char *s, size_t n, struct tok_words *out,
                    struct tok_words *tmp, struct tok_cps *cps);
/* One pre-tokenizer step on one word, adding its pieces to out. */
int tok_pretok_apply(const struct tok_pretok *p, const char *s, size_t n, struct tok_cps *cps,
                     struct tok_words *out);

/* Models: the ids of one word (rank BPE, WordPiece) or of a whole stretch
 * of text (score BPE), appended to out. */
struct tok_bpe_work;
struct tok_bpe_work *tok_bpe_work_new(void);
void tok_bpe_work_free(struct tok_bpe_work *w);
int tok_bpe_word(const struct tokenizer *t, const char *s, size_t n, struct tok_ids *out,
                 struct tok_bpe_work *w);
int tok_spm_text(const struct tokenizer *t, const char *s, size_t n, struct tok_ids *out,
                 struct tok_bpe_work *w);
int tok_wordpiece_word(const struct tokenizer *t, const char *s, size_t n, struct tok_ids *out,
                       struct tok_bytes *key);

#endif
