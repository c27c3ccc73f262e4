/* Tokenizers: text <-> token ids, as the model's own tokenizer does it.
 *
 * Kinds:
 *   SentencePiece-style BPE with byte fallback (Llama, Mistral): from
 *     tokenizer.json (BPE model with byte_fallback) or GGUF ("llama": scores,
 *     merged as llama.cpp's SPM tokenizer does).
 *   byte-level BPE (GPT-2 family, SmolLM2): from tokenizer.json (ByteLevel
 *     pre-tokenizer) or GGUF ("gpt2" with tokenizer.ggml.pre "default",
 *     "gpt-2" or "smollm").
 *   WordPiece (BERT): from tokenizer.json or GGUF ("bert").
 *
 * Ids match HF `tokenizers` for tokenizer.json and llama.cpp for GGUF.
 *
 * Text that is not valid UTF-8 never fails: byte-level BPE keeps the bytes
 * (each becomes its byte token), BPE with byte fallback gives the bytes'
 * <0xNN> tokens, and WordPiece drops them (as BERT drops U+FFFD). Decoding
 * always yields valid UTF-8: bytes that do not form UTF-8 come out as U+FFFD.
 *
 * Added tokens are matched on the raw text, leftmost and longest first (HF
 * matches those with normalized=true on the normalized text instead).
 * Truncation and padding are the caller's.
 *
 * A loaded tokenizer is only read by tok_encode, tok_decode and the decoder,
 * so they may run on several threads at once; tok_add_special must not run
 * alongside them. */
#ifndef MEMLLM_COORDINATOR_TOKENIZER_H
#define MEMLLM_COORDINATOR_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct tokenizer;
struct gguf_file;

struct tokenizer *tok_load_json(const char *tokenizer_json_path, struct mm_err *err);
/* The same from a tokenizer.json image in memory; `name` names it in errors.
 * Besides tokenizer.json, tok_load_json reads tokenizer_config.json next to
 * it when present (bos/eos token names, add_bos_token); this does not. */
struct tokenizer *tok_load_json_buffer(const char *data, size_t len, const char *name,
                                       struct mm_err *err);
/* From a GGUF file's tokenizer.ggml.* metadata. g may be closed afterwards. */
struct tokenizer *tok_load_gguf(const struct gguf_file *g, struct mm_err *err);
/* model_path: a GGUF file, a tokenizer.json, or a directory holding
 * tokenizer.json. */
struct tokenizer *tok_load(const char *model_path, struct mm_err *err);
void tok_free(struct tokenizer *t);

/* Number of ids, including the special tokens added with tok_add_special. */
int tok_n_vocab(const struct tokenizer *t);
/* -1 if none. For WordPiece, BOS is [CLS] and EOS is [SEP]. */
int tok_bos(const struct tokenizer *t);
int tok_eos(const struct tokenizer *t);
/* Whether this tokenizer adds BOS by default (HF post_processor template or
 * tokenizer_config.json add_bos_token; GGUF tokenizer.ggml.add_bos_token). */
int tok_add_bos_default(const struct tokenizer *t);

/* Encodes UTF-8 text into *ids (malloc'd; the caller frees it).
 *
 * add_bos: add the tokenizer's special prefix (BOS; [CLS] for WordPiece) and,
 *   where its template has one, its special suffix ([SEP] for WordPiece, EOS
 *   where tokenizer.ggml.add_eos_token says so).
 * parse_special: recognise special tokens (e.g. "<|im_start|>", or MemLLM's
 *   "({", "})", "-->" after tok_add_special) in the text as single tokens, as
 *   HF does for added tokens. Without it, special tokens are plain text; added
 *   tokens that are not special (HF added_tokens with special=false, GGUF
 *   user-defined tokens) are always recognised, as in HF and llama.cpp. */
int tok_encode(const struct tokenizer *t, const char *text, size_t len, int add_bos,
               int parse_special, int32_t **ids, size_t *n_ids, struct mm_err *err);

/* Id of a token by its exact vocabulary string, -1 if none. */
int tok_find(const struct tokenizer *t, const char *token_text);

/* Makes text a special token and returns its id: an existing token of that
 * text keeps its id, otherwise the new id is appended after the vocabulary
 * (the caller grows the embedding matrix). -1 with err set on failure. */
int tok_add_special(struct tokenizer *t, const char *text, struct mm_err *err);

/* The raw vocabulary string of id (NULL if out of range): byte-level BPE
 * pieces are in GPT-2's byte-to-unicode form, SentencePiece pieces use U+2581
 * for spaces. */
const char *tok_piece(const struct tokenizer *t, int id);

/* Whether id is a special (control) token: BOS/EOS/PAD and the like, and
 * those added by tok_add_special. */
int tok_is_special(const struct tokenizer *t, int id);

/* Streaming decoder: the text of a token sequence, one token at a time.
 *
 * tok_decoder_push writes only complete UTF-8 to out: a multi-byte character
 * split across tokens (byte-fallback or byte-level bytes) is held back until
 * the token that completes it; bytes that cannot become UTF-8 are written as
 * U+FFFD. tok_decoder_flush writes what is still held back, as U+FFFD. */
struct tok_decoder {
    const struct tokenizer *t;
    /* Strip the leading space that the tokenizer's decoder strips from the
     * start of a text (SentencePiece's "▁" prefix). tok_decoder_init sets it
     * where the tokenizer does that; clear it to decode a continuation. */
    int at_start;
    /* Skip special tokens (BOS, EOS, ...) instead of writing their text.
     * tok_decoder_init clears it. */
    int skip_special;
    /* An incomplete UTF-8 sequence held back from earlier tokens. */
    uint8_t pending[4];
    int n_pending;
};

void tok_decoder_init(struct tok_decoder *d, const struct tokenizer *t);

/* A push or flush never needs more than this many bytes of room. */
size_t tok_decoder_max_out(const struct tokenizer *t);

/* Returns the number of bytes written (>= 0), TOK_DECODE_BAD_ID for an id out
 * of range, or -(room needed) (< -1) when cap is too small; the last two
 * leave d unchanged. */
#define TOK_DECODE_BAD_ID (-1)
int tok_decoder_push(struct tok_decoder *d, int32_t id, char *out, size_t cap);
/* Returns the number of bytes written, or -(room needed) when cap is too
 * small. */
int tok_decoder_flush(struct tok_decoder *d, char *out, size_t cap);

/* Whole-sequence decode into a malloc'd, NUL-terminated string.
 * skip_special: leave out special tokens. NULL with err set for an id out of
 * range. */
char *tok_decode(const struct tokenizer *t, const int32_t *ids, size_t n, int skip_special,
                 struct mm_err *err);

#endif
