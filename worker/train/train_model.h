/* The forward and backward pass of one training example through the whole
 * model with LoRA (llm.c style: the forward keeps what the backward needs).
 *
 * One example at a time (a trainer runs several at once on copies, one per
 * thread: train_model_init_copy): an example's gradient then depends on
 * nothing but the example (the kernels are batch-invariant), so gradients
 * are the same bits however examples are grouped into micro-batches, spread
 * over ranks or over threads. Every product runs through the training GEMM
 * (kernels.h k_gemm_f32), except a base that is not f32: its forward stays
 * as stored (quantized stays quantized, as QLoRA). The base matrices are
 * packed once at start into the GEMM's f32 panels (train_base). */
#ifndef MEMLLM_WORKER_TRAIN_MODEL_H
#define MEMLLM_WORKER_TRAIN_MODEL_H

#include <stdint.h>

#include "err.h"
#include "model.h"
#include "train_params.h"

struct train_layer_acts; /* train_model.c */

/* A base matrix W in the f32 panels of the training GEMM (kernels.h): fwd
 * as b = W^T for x W^T (f32 bases only: the others run their own dot
 * products, quantized stays quantized), bwd as b = W for dx = dy W. */
struct train_base {
    struct k_panels fwd, bwd;
};

struct train_model {
    const struct model *m;
    struct train_params *p;
    int max_tokens;
    struct train_base *base;       /* [n_layers * LIN_COUNT + 1], LM head last */
    float *lora_t;                 /* A^T and B^T of every LoRA tensor, at the tensors' offsets */
    struct train_layer_acts *acts; /* [n_layers] */
    float *arena;                  /* saved activations */
    float *work;                   /* scratch of the backward */
    size_t work_floats;
    int shared; /* base and lora_t belong to another train_model (a copy) */
};

/* Prepares training of `p` on model `m` (every layer in this process) for
 * examples of at most max_tokens tokens. Packs the base's f32 panels: 4
 * bytes per base parameter for the backward, as much again for an f32
 * base's forward. */
int train_model_init(struct train_model *tm, const struct model *m, struct train_params *p,
                     int max_tokens, struct mm_err *err);
void train_model_free(struct train_model *tm);

/* A copy of tm that runs other examples at the same time, on other threads:
 * its own activations and scratch, tm's panels and transposes (read-only while
 * examples run; tm's refresh updates them for every copy). Free it before
 * tm. */
int train_model_init_copy(struct train_model *copy, const struct train_model *tm,
                          struct mm_err *err);

/* After the parameters changed (an optimizer step, a load): refreshes the
 * transposes of the LoRA matrices and the LM head's trainable rows in its
 * backward panels. */
void train_model_refresh(struct train_model *tm);

/* Runs one example: tokens[0..n), target[t] != 0 when token t carries loss
 * (predicted from tokens 0..t-1; target[0] is ignored).
 *   grad (p->count floats) is overwritten with grad_scale * d(sum of the
 *   target tokens' cross-entropies) / d(parameters);
 *   (grad NULL: the forward and the loss only, as validation needs);
 *   *loss gets that sum (not scaled), *n_loss the number of target tokens.
 * dropout_key: the example's dropout stream (see train_rng.h); ignored when
 * the config's dropout is 0. Fails on an empty example or one longer than
 * max_tokens or with a token id outside the vocabulary. */
int train_model_example(struct train_model *tm, const int32_t *tokens, const uint8_t *target, int n,
                        float grad_scale, uint64_t dropout_key, float *grad, double *loss,
                        int *n_loss, struct mm_err *err);

/* Shared by both backends: the widest activation row (dim, q_dim or
 * ffn_dim), the largest LoRA rank of p, and the base matrix of linear lin of
 * a layer (the LM head for TRAIN_LM_HEAD). */
int train_wide_dim(const struct model_config *c);
int train_max_rank(const struct train_params *p);
const struct k_matrix *train_base_matrix(const struct model *m, int layer, int lin);

/* Whether n tokens make an example either backend runs: 2 to max_tokens
 * of them, each inside the model's vocabulary; -1 with err set if not. */
int train_example_check(const struct model_config *c, const int32_t *tokens, int n, int max_tokens,
                        struct mm_err *err);

#endif
