/* The trainable tensors of a LoRA finetune, in one flat f32 buffer (so the
 * optimizer, the gradient all-reduce and checkpoints see one array), with
 * their PEFT names:
 *   - lora_A [r, in] and lora_B [out, r] of each targeted linear layer of
 *     each block, and of the LM head;
 *   - the rows of chosen token ids in the embedding (PEFT's
 *     trainable_token_indices: the stored rows replace the base rows; with
 *     tied embeddings the LM head uses the same rows).
 * Layouts are the model's: for a GGUF Llama, whose Q/K rows are permuted
 * for llama.cpp's rope, lora_B of q/k is kept permuted the same way and
 * converted back to HF order when saved, so the saved adapter is PEFT's. */
#ifndef MEMLLM_WORKER_TRAIN_PARAMS_H
#define MEMLLM_WORKER_TRAIN_PARAMS_H

#include <jansson.h>
#include <stdint.h>

#include "err.h"
#include "kernels.h"
#include "model.h"

/* Module index of the LM head, after the block's linear layers. */
#define TRAIN_LM_HEAD LIN_COUNT
#define TRAIN_MAX_TOKENS 64

struct train_lora_config {
    int rank;
    double alpha;
    float dropout;
    unsigned targets;     /* bit l: linear l of every block; bit TRAIN_LM_HEAD: the LM head */
    json_t *rank_pattern; /* PEFT's patterns: module-name suffix -> number; may be NULL */
    json_t *alpha_pattern;
    int n_tokens; /* trainable token rows */
    int32_t token_ids[TRAIN_MAX_TOKENS];
};

struct train_tensor {
    char *name; /* PEFT name, e.g. base_model.model.lm_head.lora_A.weight */
    int64_t rows, cols;
    size_t off; /* into value / grad */
};

struct train_module {
    int a, b; /* tensor indices; a < 0: not trained */
    int rank;
    float scale; /* alpha / rank */
};

struct train_params {
    struct train_lora_config cfg;
    const struct model *model;
    struct train_tensor *t;
    int n_t;
    size_t count; /* floats in value */
    float *value; /* [count] */
    struct train_module
        *mod;   /* [n_layers * LIN_COUNT + 1]: layer l, linear j at l*LIN_COUNT+j; LM head last */
    int rows_t; /* tensor of the trainable token rows [n_tokens, dim], -1: none */
};

/* Fresh parameters as PEFT initialises them: A uniform in +-1/sqrt(in)
 * (kaiming_uniform with a = sqrt(5)), B zero, token rows copied from the
 * embedding. The model must hold every layer (one stage). */
int train_params_init(struct train_params *p, const struct model *m,
                      const struct train_lora_config *cfg, uint64_t seed, struct mm_err *err);

/* Parameters read from a PEFT adapter directory (its config decides rank,
 * alpha, targets and token rows; `dropout` is the training's). */
int train_params_load(struct train_params *p, const struct model *m, const char *dir, float dropout,
                      struct mm_err *err);

/* Writes a PEFT adapter directory (adapter_config.json and
 * adapter_model.safetensors in `dtype`: F32, F16 or BF16), each file
 * through a temporary name. */
int train_params_save(const struct train_params *p, const char *dir, enum mm_dtype dtype,
                      struct mm_err *err);

void train_params_free(struct train_params *p);

static inline const struct train_module *train_module_at(const struct train_params *p, int layer,
                                                         int lin)
{
    return &p->mod[lin == TRAIN_LM_HEAD ? (size_t)p->model->cfg.n_layers * LIN_COUNT
                                        : (size_t)layer * LIN_COUNT + (size_t)lin];
}

/* A tensor as an f32 matrix over `base` (value, a gradient buffer, ...). */
static inline struct k_matrix train_matrix(const struct train_params *p, int tensor,
                                           const float *base)
{
    const struct train_tensor *t = &p->t[tensor];
    struct k_matrix m = {MM_F32, t->rows, t->cols, (size_t)t->cols * sizeof(float), base + t->off};
    return m;
}

/* The target module names PEFT uses ("q_proj", ..., "lm_head") for bit i of
 * train_lora_config.targets; parses "q,k,v,o,gate,up,down,lm_head" (short
 * or PEFT names, comma-separated). */
const char *train_target_name(int i);
int train_parse_targets(const char *list, unsigned *targets, struct mm_err *err);

#endif
