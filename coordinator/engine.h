/* The model as the coordinator sees it: tokenizer, adapters, and a forward
 * call over a batch that returns logits. With one process the engine runs
 * the single stage itself. */
#ifndef MEMLLM_COORDINATOR_ENGINE_H
#define MEMLLM_COORDINATOR_ENGINE_H

#include "err.h"
#include "forward.h"
#include "tokenizer.h"

#define ENGINE_MAX_ADAPTERS 8

struct engine_options {
    const char *model_path;
    /* "DIR" or "NAME=DIR"; a bare DIR is named after its last path part. */
    const char *adapters[ENGINE_MAX_ADAPTERS];
    int n_adapters;
    int merge; /* fold the single adapter into the weights */
    int n_slots;
    int context; /* 0: the model's maximum */
};

struct engine {
    struct model *model;
    struct tokenizer *tok;
    struct lora_adapter adapters[ENGINE_MAX_ADAPTERS];
    int n_adapters;
    int merged; /* adapters[0] was merged: it is always on */
    struct stage stage;
    int vocab;
    int context;
};

int engine_open(struct engine *e, const struct engine_options *o, struct mm_err *err);
void engine_close(struct engine *e);

/* Index of the adapter called `name`, -1 with err set if none. */
int engine_adapter(const struct engine *e, const char *name, struct mm_err *err);

int engine_forward(struct engine *e, const struct stage_batch *b, float *logits,
                   struct mm_err *err);

#endif
