/* Hyper-parameters of a decoder-only transformer (Llama / Mistral family),
 * read from HF config.json or from GGUF metadata. */
#ifndef MEMLLM_WORKER_MODEL_CONFIG_H
#define MEMLLM_WORKER_MODEL_CONFIG_H

#include "err.h"
#include "gguf.h"
#include "kernels.h"

enum model_arch { MODEL_ARCH_LLAMA, MODEL_ARCH_MISTRAL };

struct model_config {
    enum model_arch arch;
    int n_layers;
    int dim;     /* hidden size */
    int ffn_dim; /* intermediate size */
    int n_heads;
    int n_kv_heads;
    int head_dim;
    int vocab_size;
    int max_positions;
    int sliding_window; /* 0: full causal attention */
    float rope_theta;
    float norm_eps;
    int tied_embeddings;
    enum k_rope_style rope_style; /* NEOX for HF tensors, NORM for GGUF's permuted Q/K */
};

int model_config_from_json(struct model_config *c, const char *path, struct mm_err *err);
int model_config_from_gguf(struct model_config *c, const struct gguf_file *g, struct mm_err *err);

/* Checks the numbers are usable together (heads divide, sizes positive...).
 * `source` names the file in the message. */
int model_config_validate(const struct model_config *c, const char *source, struct mm_err *err);

static inline int model_config_q_dim(const struct model_config *c)
{
    return c->n_heads * c->head_dim;
}
static inline int model_config_kv_dim(const struct model_config *c)
{
    return c->n_kv_heads * c->head_dim;
}

#endif
