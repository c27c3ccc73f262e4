/* What a training run records and how it survives a kill: the loss curve
 * (loss.csv and loss.png in the output folder) and checkpoints
 * (checkpoint/: the parameters, AdamW's moments, the step and the curve so
 * far, in f32 so that a resumed run continues with the same bits). */
#ifndef MEMLLM_COORDINATOR_TRAINER_LOG_H
#define MEMLLM_COORDINATOR_TRAINER_LOG_H

#include <jansson.h>
#include <stdint.h>

#include "err.h"
#include "optimizer.h"
#include "train_params.h"

struct trainer_options;

struct trainer_log {
    int64_t n;                                 /* steps recorded */
    double *train_loss, *val_loss, *grad_norm; /* [total steps]; val NAN where not run */
    json_t *meta;                              /* the run's identity: a resume must match it */
};

int trainer_log_init(struct trainer_log *l, const struct trainer_options *o,
                     const struct train_params *p, int64_t total_steps, struct mm_err *err);
void trainer_log_free(struct trainer_log *l);
/* Records step (from 1). */
int trainer_log_step(struct trainer_log *l, int64_t step, double loss, double val, double norm,
                     struct mm_err *err);
/* dir/loss.csv and dir/loss.png. */
int trainer_log_write(const struct trainer_log *l, const char *dir, struct mm_err *err);

/* dir/checkpoint/, replaced whole: written to checkpoint.tmp/, then swapped
 * in by renames, so a kill at any point leaves a complete checkpoint. */
int trainer_checkpoint_save(const char *dir, const struct train_params *p, const struct adamw *o,
                            int64_t step, const struct trainer_log *l, struct mm_err *err);
/* Loads the checkpoint of dir into p, o, *step and l; *found = 0 (and
 * nothing changed) when there is none. A checkpoint of another run (other
 * data, model, batch, seed... : l->meta differs) is an error. */
int trainer_checkpoint_load(const char *dir, struct train_params *p, struct adamw *o, int64_t *step,
                            struct trainer_log *l, int *found, struct mm_err *err);

#endif
