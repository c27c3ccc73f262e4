/* A pipeline stage on a GPU: the forward pass of worker/forward.h with its
 * weights, KV cache and activations on the device.
 *
 * The weights are uploaded once at open, in their stored dtype (quantized
 * stays quantized); the KV cache ([layer][slot][position][kv_dim] f32 for K
 * and V) and the activations never leave the device. What crosses to the
 * host per batch: token ids and positions in, and either the hidden states
 * for the next stage, or the logits of the rows that want them, or only
 * their argmax ids, all through page-locked buffers.
 *
 * The batch rules, the errors and the KV-cache semantics (a position below a
 * slot's length rolls it back) are those of stage_forward, so that the
 * output does not depend on where a stage runs. */
#ifndef MEMLLM_WORKER_FORWARD_CUDA_H
#define MEMLLM_WORKER_FORWARD_CUDA_H

#include <stdint.h>

#include "err.h"
#include "forward.h"
#include "kernels_cuda.h"
#include "lora.h"
#include "model.h"

struct stage_cuda;

/* The device a rank should use: its node-local rank (OMPI_COMM_WORLD_LOCAL_RANK,
 * else MPI_LOCALRANKID or SLURM_LOCALID; 0 without any) modulo the device
 * count. -1 with err set when there is no device. */
int stage_cuda_local_device(struct mm_err *err);

/* Uploads the layers model `m` binds (and its embedding / head when it is
 * the first / last stage) to `device`, and allocates a KV cache of n_slots
 * sequences of `capacity` positions (at most the model's maximum). The
 * model stays owned by the caller and must outlive the stage. */
struct stage_cuda *stage_cuda_open(struct model *m, int n_slots, int capacity, int device,
                                   struct mm_err *err);
void stage_cuda_free(struct stage_cuda *s);

/* The stage's CUDA context (for kc_ctx_set_numerics: batch-invariant by
 * default, KC_NUMERICS_FAST for speed; or its stream). */
struct kc_ctx *stage_cuda_context(struct stage_cuda *s);

/* Uploads an adapter for the stage's layers; adapters are numbered in the
 * order they are added, as stage_batch.adapter counts them. The host
 * adapter may be freed afterwards. */
int stage_cuda_add_adapter(struct stage_cuda *s, const struct lora_adapter *a, struct mm_err *err);

/* As stage_kv_share: the rows are copied on the device (the GPU cache is
 * not paged), so outputs are the same, without the memory saving. */
int stage_cuda_kv_share(struct stage_cuda *s, int dst, int src, int len, struct mm_err *err);

/* As stage_forward, with on the last stage: logits (may be NULL) receives
 * the rows that want logits, and ids (may be NULL) their argmax, computed
 * on the device so that only the ids cross when sampling is greedy. */
int stage_cuda_forward(struct stage_cuda *s, const struct stage_batch *b, float *hidden,
                       float *logits, int32_t *ids, struct mm_err *err);

#endif
