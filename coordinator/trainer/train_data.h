/* Training examples as `memllm data` writes them (one JSON object a line,
 * {"kind", "doc", "title", "segments": [{"text", "loss"}, ...]}), turned
 * into token ids and a loss mask: each segment is tokenized on its own
 * (MemLLM's "({", "})", "-->" recognised as the tokenizer's tokens where it
 * has them) and the pieces concatenated, the tokenizer's BOS first when it
 * adds one; the tokens of "loss": true segments are targets. A segment may
 * give "tokens": [ids] instead of "text" (used as they are; no BOS is added
 * before a first segment of tokens). */
#ifndef MEMLLM_COORDINATOR_TRAIN_DATA_H
#define MEMLLM_COORDINATOR_TRAIN_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "tokenizer.h"

struct train_example {
    int32_t *tokens;
    uint8_t *target; /* [n]: token t is a loss target */
    int n, n_target;
    int line; /* in the file, from 1 */
};

struct train_set {
    struct train_example *ex;
    int n;
    int64_t tokens, targets;
};

/* Reads `path`. Every example must have at least one target token after
 * its first token and at most max_tokens tokens; any problem fails the
 * whole file, naming the line and what is wrong. */
int train_set_load(struct train_set *s, const char *path, const struct tokenizer *tok,
                   int max_tokens, struct mm_err *err);
void train_set_free(struct train_set *s);

/* One line's example, into e (zeroed by the caller; free it with
 * train_example_free whatever the outcome); *err names the problem without
 * the line. `memllm data` counts its examples' tokens with it, so that
 * what it keeps under --max-tokens is what train_set_load accepts. */
int train_example_parse(struct train_example *e, const char *line, size_t len,
                        const struct tokenizer *tok, struct mm_err *err);
void train_example_free(struct train_example *e);

#endif
