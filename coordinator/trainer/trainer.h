/* memllm train: LoRA finetuning over training examples (train_data.h),
 * data parallel over MPI ranks.
 *
 * A global batch of `batch` examples is one optimizer step. Each rank runs
 * its share of the batch's examples one at a time (forward and backward,
 * worker/train), adds each example's gradient to an exact fixed-point sum,
 * and the sums are all-reduced; the loss is the batch's mean over target
 * tokens, as HF's Trainer computes it. Since every example's gradient is
 * the same bits wherever it runs and integer sums do not depend on order,
 * the adapter is the same bits for any number of ranks, and a run resumed
 * from a checkpoint ends where an uninterrupted one does. */
#ifndef MEMLLM_COORDINATOR_TRAINER_H
#define MEMLLM_COORDINATOR_TRAINER_H

#include <stdint.h>

#include "cluster.h"
#include "dtype.h"
#include "err.h"
#include "train_params.h"

struct trainer_options {
    const char *model, *data, *val, *out;
    const char *init;              /* start from this PEFT adapter; NULL: PEFT's init */
    struct train_lora_config lora; /* ignored with init, but for the dropout */
    int auto_tokens;               /* make "({", "})", "-->" trainable where each is one token */
    double lr, weight_decay, beta1, beta2, eps, max_grad_norm;
    int epochs, batch, warmup, max_steps; /* max_steps > 0 stops early */
    int max_tokens;
    uint64_t seed;
    int val_every, save_every; /* steps; 0: at the end only */
    int resume;
    int quiet;           /* no progress lines */
    int cuda;            /* --device cuda: each rank on its node-local GPU */
    enum mm_dtype dtype; /* of the saved adapter */
};

/* The paper's defaults (r 16, alpha 8, dropout 0.1, lr 2e-5, 2 epochs,
 * batch 96, q,k,v,o,gate,up,down,lm_head). */
void trainer_options_default(struct trainer_options *o);

/* Trains and writes the adapter to o->out, with loss.csv and loss.png
 * beside it and checkpoint/ while it runs. */
int trainer_run(const struct trainer_options *o, const struct cluster *c, struct mm_err *err);

#endif
