/* The memory's semantic embedder: a sentence-transformers model of the BERT
 * family (default all-MiniLM-L6-v2) running on memllm's kernels
 * (worker/bert_model.h), as sentence-transformers runs it:
 *
 *   WordPiece tokens of the text with [CLS] ... [SEP] (tokenizer.json),
 *   truncated to max_seq_length (sentence_bert_config.json; else the
 *   model's max_position_embeddings), encoded, mean-pooled over every token
 *   (1_Pooling/config.json must say mean pooling), L2-normalised.
 *
 * The model directory is the sentence-transformers layout: config.json,
 * model.safetensors, tokenizer.json, and optionally modules.json (Transformer,
 * Pooling, Normalize; any other module is refused because it would change
 * the vectors), 1_Pooling/config.json, sentence_bert_config.json. Vectors are
 * always L2-normalised: the memory compares them by dot product.
 *
 * The name, recorded by every shard the embedder fills, is
 * "<directory name>/mean/normalized/<fingerprint>", e.g.
 * "all-MiniLM-L6-v2/mean/normalized/1a2b3c4d": the fingerprint hashes what
 * decides the vectors (the tokenizer, the token limit, each tensor's name,
 * shape, dtype and leading bytes), so a memory refuses another model even
 * under the same directory name. */
#ifndef MEMLLM_COORDINATOR_EMBEDDER_BERT_H
#define MEMLLM_COORDINATOR_EMBEDDER_BERT_H

#include "embedder.h"
#include "err.h"

#include <stddef.h>
#include <stdint.h>

/* The name's first part: the model directory's name. */
#define MM_BERT_EMBEDDER_SUFFIX "/mean/normalized/"

struct mm_embedder *mm_bert_embedder_new(const char *model_dir, struct mm_err *err);

/* The token ids the encoder gets for text, after truncation (malloc'd into
 * *ids; the caller frees them). e must come from mm_bert_embedder_new. */
int mm_bert_embedder_tokenize(const struct mm_embedder *e, const char *text, int32_t **ids,
                              size_t *n, struct mm_err *err);

#endif
