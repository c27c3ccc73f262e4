/* The forward and backward of one training example on a GPU: the CUDA
 * twin of train_model.h, with the same contract (train_model_example's
 * arguments and results), so the trainer runs either.
 *
 * The frozen base is dequantized once to f32 on the device and every
 * product is a cuBLAS f32 GEMM (kc_gemm_f32), the transposes the backward
 * needs being operation flags; the activations a backward needs stay on
 * the device; the LoRA parameters are uploaded after each optimizer step
 * and an example's gradient comes back to the host, where the trainer's
 * exact sums, clipping and AdamW run as on the CPU. One example at a time,
 * as on the CPU, so an example's gradient does not depend on its batch;
 * the GPU's sums run in a fixed order, so a run repeats bit for bit on the
 * same GPU and toolkit, and agrees with the CPU trainer within f32
 * rounding (not bit for bit: quantized bases are dequantized here where
 * the CPU multiplies 8-bit activations). */
#ifndef MEMLLM_WORKER_TRAIN_MODEL_CUDA_H
#define MEMLLM_WORKER_TRAIN_MODEL_CUDA_H

#include <stdint.h>

#include "err.h"
#include "model.h"
#include "train_params.h"

struct train_model_cuda;

/* On CUDA device `device`, for examples of at most max_tokens tokens.
 * NULL with err set when there is no device or it lacks the memory. */
struct train_model_cuda *train_model_cuda_init(const struct model *m, struct train_params *p,
                                               int max_tokens, int device, struct mm_err *err);
void train_model_cuda_free(struct train_model_cuda *tm);

/* After the parameters changed: uploads them. */
int train_model_cuda_refresh(struct train_model_cuda *tm, struct mm_err *err);

/* As train_model_example. */
int train_model_cuda_example(struct train_model_cuda *tm, const int32_t *tokens,
                             const uint8_t *target, int n, float grad_scale, uint64_t dropout_key,
                             float *grad, double *loss, int *n_loss, struct mm_err *err);

#endif
