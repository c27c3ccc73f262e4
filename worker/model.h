/* The weights of one pipeline stage: layers [layer_begin, layer_end) of a
 * Llama/Mistral model, plus the token embedding when the stage is first and
 * the final norm and LM head when it is last. With one process the single
 * stage holds everything.
 *
 * Matrices point into the memory-mapped file in their stored dtype
 * (quantized stays quantized); only the small norm vectors are converted to
 * f32 copies. */
#ifndef MEMLLM_WORKER_MODEL_H
#define MEMLLM_WORKER_MODEL_H

#include "err.h"
#include "gguf.h"
#include "kernels.h"
#include "model_config.h"
#include "safetensors.h"

/* The linear layers of a block, in the order LoRA target names use. */
enum model_linear { LIN_Q, LIN_K, LIN_V, LIN_O, LIN_GATE, LIN_UP, LIN_DOWN, LIN_COUNT };

struct model_layer {
    float *attn_norm; /* [dim] */
    float *ffn_norm;  /* [dim] */
    struct k_matrix lin[LIN_COUNT];
};

struct model {
    struct model_config cfg;
    char *path;
    int layer_begin, layer_end;
    struct model_layer *layers; /* indexed by layer - layer_begin */
    struct k_matrix tok_embd;   /* first stage */
    float *out_norm;            /* last stage */
    struct k_matrix lm_head;    /* last stage */
    struct gguf_file *gguf;     /* the source: one of these two */
    struct st_set st;
    void **owned; /* buffers that replaced mapped weights (merged LoRA) */
    int n_owned;
};

/* Opens a model: `path` is a GGUF file or an HF directory (config.json +
 * safetensors). Binds layers [layer_begin, layer_end); pass 0 and -1 for the
 * whole model. Every tensor's shape and dtype is checked against the config. */
struct model *model_load(const char *path, int layer_begin, int layer_end, struct mm_err *err);
void model_free(struct model *m);

/* Reads only the hyper-parameters of the model at `path` (the coordinator
 * of a pipeline needs them; the stages load the weights). */
int model_read_config(const char *path, struct model_config *c, struct mm_err *err);

static inline int model_is_first_stage(const struct model *m)
{
    return m->layer_begin == 0;
}
static inline int model_is_last_stage(const struct model *m)
{
    return m->layer_end == m->cfg.n_layers;
}

/* Hands a malloc'd buffer to the model, freed by model_free. */
int model_own(struct model *m, void *buf, struct mm_err *err);

/* The PEFT/HF name of a linear layer ("q_proj", ...). */
const char *model_linear_hf_name(enum model_linear l);

#endif
