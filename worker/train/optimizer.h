/* The optimizer side of training: exact gradient sums, clipping, AdamW and
 * the learning-rate schedule, each matching PyTorch's definitions
 * (torch.optim.AdamW, clip_grad_norm_, transformers'
 * get_linear_schedule_with_warmup). */
#ifndef MEMLLM_WORKER_TRAIN_OPTIMIZER_H
#define MEMLLM_WORKER_TRAIN_OPTIMIZER_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* A gradient sum in fixed point (units of 2^-GRAD_SUM_BITS). Integer
 * addition is exact and associative, so the sum of a global batch's
 * per-example gradients is the same bits whatever the order, the
 * micro-batches and the number of ranks adding them (MPI_SUM of int64). */
#define GRAD_SUM_BITS 48

struct grad_sum {
    size_t count;
    int64_t *q;
};

int grad_sum_init(struct grad_sum *s, size_t count, struct mm_err *err);
void grad_sum_free(struct grad_sum *s);
void grad_sum_zero(struct grad_sum *s);
/* Adds g (count floats); fails, naming the element, if one is beyond the
 * fixed-point range (|g| >= 2^14), which only a diverged run reaches. */
int grad_sum_add(struct grad_sum *s, const float *g, struct mm_err *err);
/* out[i] = the sum as float. */
void grad_sum_read(const struct grad_sum *s, float *out);

/* The L2 norm of g (in double, fixed order) and, when it exceeds max_norm
 * > 0, g scaled by max_norm / (norm + 1e-6) as clip_grad_norm_ does.
 * Returns the norm before clipping. */
double grad_clip(float *g, size_t count, double max_norm);

struct adamw {
    double lr, beta1, beta2, eps, weight_decay;
    int64_t step; /* updates done */
    size_t count;
    float *m, *v; /* first and second moments */
};

int adamw_init(struct adamw *o, size_t count, struct mm_err *err);
void adamw_free(struct adamw *o);
/* One update of param with gradient g at learning rate lr (the schedule's
 * value for this step). */
void adamw_step(struct adamw *o, float *param, const float *g, double lr);

/* transformers' linear schedule: lr * step / warmup during warmup, then
 * linear decay to 0 at total; step counts the updates done before this one. */
double lr_linear_warmup(double lr, int64_t step, int64_t warmup, int64_t total);

#endif
