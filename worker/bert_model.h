/* A BERT-family encoder (BertModel: all-MiniLM-L6-v2, bert-base, BGE...)
 * on memllm's kernels: the sentence embedder of the memory (DESIGN.md §3).
 *
 * Loaded from an HF directory: config.json and model.safetensors (or its
 * sharded index), tensor names with or without the "bert." prefix of
 * BertFor* checkpoints. Every tensor's shape is checked against config.json.
 * Matrices stay in the mapped file in their stored dtype (F32, F16, BF16);
 * biases and LayerNorm vectors are f32 copies.
 *
 * The forward pass is the post-LN BERT encoder in inference mode: word +
 * absolute position + token-type-0 embeddings and LayerNorm, then per layer
 * bidirectional multi-head attention (Q, K, V and output projections with
 * biases) + residual + LayerNorm, and a GELU (erf) feed-forward + residual +
 * LayerNorm. The pooler head is not used. */
#ifndef MEMLLM_WORKER_BERT_MODEL_H
#define MEMLLM_WORKER_BERT_MODEL_H

#include <stdint.h>

#include "err.h"
#include "kernels.h"
#include "safetensors.h"

struct bert_config {
    int vocab_size;
    int dim; /* hidden_size */
    int n_layers;
    int n_heads;
    int head_dim; /* dim / n_heads */
    int ffn_dim;  /* intermediate_size */
    int max_positions;
    int type_vocab_size;
    float norm_eps;
};

struct bert_linear {
    struct k_matrix w; /* [out, in] */
    const float *bias; /* [out] */
};

struct bert_layer {
    struct bert_linear q, k, v, attn_out, ffn_up, ffn_down;
    const float *attn_norm_w, *attn_norm_b;
    const float *ffn_norm_w, *ffn_norm_b;
};

struct bert_model {
    struct bert_config cfg;
    char *path; /* the model directory */
    struct st_set st;
    struct k_matrix word_embd, pos_embd;
    const float *type0_embd; /* row 0 of token_type_embeddings: every token is segment A */
    const float *embd_norm_w, *embd_norm_b;
    struct bert_layer *layers;
    float *vectors; /* one allocation holding every f32 vector above */
};

/* Reads dir/config.json and binds the weights of dir/model.safetensors. */
struct bert_model *bert_model_load(const char *dir, struct mm_err *err);
void bert_model_free(struct bert_model *m);

/* Final hidden states of n_seqs sequences in one pass: ids holds the
 * sequences one after another, sequence i has lens[i] tokens (1 ..
 * max_positions); out receives [sum of lens, dim]. The matrix products run
 * over all tokens of all sequences at once; each sequence attends only to
 * itself, so no padding is computed. -1 for an id outside the vocabulary, a
 * length out of range, or no memory for the activations. */
int bert_forward(const struct bert_model *m, const int32_t *ids, const int *lens, int n_seqs,
                 float *out, struct mm_err *err);

#endif
