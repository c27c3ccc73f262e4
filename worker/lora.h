/* LoRA adapters in PEFT layout (adapter_config.json +
 * adapter_model.safetensors), applied at run time on top of the base
 * weights: y = W x + scale * B (A x). Several adapters can be loaded on one
 * base (MemLLM's MR and MW) and each sequence picks one per forward pass.
 * lora_merge folds one adapter into f32 copies of the base weights instead,
 * for speed when a run uses a single adapter. Besides the blocks' linear
 * layers an adapter may adapt the LM head and replace token rows (what
 * memllm train writes). */
#ifndef MEMLLM_WORKER_LORA_H
#define MEMLLM_WORKER_LORA_H

#include <jansson.h>

#include "err.h"
#include "kernels.h"
#include "model.h"

struct lora_module {
    struct k_matrix a; /* [r, in] f32; a.data == NULL: module not adapted */
    struct k_matrix b; /* [out, r] f32 */
    float scale;       /* lora_alpha / r (or / sqrt(r) with use_rslora) */
};

struct lora_adapter {
    char *name;
    int max_rank;
    int layer_begin, layer_end;  /* the stage's layers, as the model */
    struct lora_module *modules; /* [(layer_end - layer_begin) * LIN_COUNT] */
    struct lora_module head;     /* the LM head's (last stage); head.a.data NULL: none */
    /* PEFT's trainable_token_indices: the full new rows of these tokens
     * replace the embedding's (first stage) and, with tied embeddings, the
     * LM head's (last stage), as PEFT ties them. n_rows 0: none. */
    int n_rows;
    int32_t *row_ids;
    float *rows; /* [n_rows, dim] */
};

/* Loads the adapter in directory `dir` for the layers the model's stage
 * holds. Tensors are converted to f32 (they are small). Shapes are checked
 * against the base model. */
int lora_load(struct lora_adapter *a, const struct model *m, const char *dir, const char *name,
              struct mm_err *err);
void lora_free(struct lora_adapter *a);

static inline const struct lora_module *lora_module_at(const struct lora_adapter *a, int layer,
                                                       enum model_linear l)
{
    return &a->modules[(size_t)(layer - a->layer_begin) * LIN_COUNT + l];
}

/* Replaces the model's adapted matrices by f32 copies of W + scale * B A,
 * and of the embedding / head with the token rows (owned by the model). The
 * adapter must then not be applied again. */
int lora_merge(struct model *m, const struct lora_adapter *a, struct mm_err *err);

/* PEFT's rank_pattern / alpha_pattern: a key names a module by a suffix of
 * its full name ("q_proj", "layers.0.self_attn.q_proj"); the value of the
 * first key that matches, else dflt. */
int lora_pattern_matches(const char *key, const char *module);
double lora_pattern_value(json_t *patterns, const char *module, double dflt);

/* GGUF Llama tensors have the rows of each Q/K head permuted from
 * [2][head_dim/2] to [head_dim/2][2] (for llama.cpp's adjacent-pair rope);
 * lora_B's rows produce those outputs, so they get the same permutation
 * (back = 1: the inverse, to HF order). -1: out of memory. */
int lora_permute_rows_for_norm_rope(float *b, int64_t rows, int64_t cols, int n_heads, int back);

/* Whether the adapter needs more than the blocks' linear layers (the LM
 * head's LoRA or token rows): the CUDA stage refuses those. */
static inline int lora_adapts_ends(const struct lora_adapter *a)
{
    return a->head.a.data != NULL || a->n_rows > 0;
}

/* Applies the adapter's token rows to the embedded tokens x [n, dim] (first
 * stage): rows of tokens[t] among row_ids replace x[t]. */
void lora_apply_rows(const struct lora_adapter *a, const int32_t *tokens, int n, float *x, int dim);

/* Applies the adapter's LM-head part to logits [n, vocab] of the normed
 * hidden xn [n, dim] (last stage): the tied rows' columns, then the head's
 * LoRA; tmp: n * max_rank (and n * n_rows) floats. */
void lora_apply_head(const struct lora_adapter *a, const struct model *m, const float *xn, int n,
                     float *logits, float *tmp);

#endif
