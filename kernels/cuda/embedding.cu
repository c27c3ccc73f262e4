/* Token embedding lookup: one block per token, the table row dequantized
 * element by element with the CPU's rounding (the outputs are bit-equal). */
#include "kc_device.cuh"

#define THREADS 256

template <enum mm_dtype T>
static __global__ void embedding_kernel(float *out, const int32_t *ids, const char *table,
                                        int64_t cols, size_t row_bytes)
{
    const char *row = table + (int64_t)ids[blockIdx.x] * (int64_t)row_bytes;
    float *o = out + (int64_t)blockIdx.x * cols;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
        o[c] = kc_elem(T, row, c);
}

extern "C" int kc_embedding_forward(struct kc_ctx *c, float *out, const int32_t *ids, int n,
                                    const struct kc_matrix *table, struct mm_err *err)
{
    if (n <= 0 || table->cols <= 0) return 0;
    const char *data = (const char *)table->data;
    cudaStream_t s = c->stream;
    switch (table->dtype) {
    case MM_F32:
        embedding_kernel<MM_F32>
            <<<n, THREADS, 0, s>>>(out, ids, data, table->cols, table->row_bytes);
        break;
    case MM_F16:
        embedding_kernel<MM_F16>
            <<<n, THREADS, 0, s>>>(out, ids, data, table->cols, table->row_bytes);
        break;
    case MM_BF16:
        embedding_kernel<MM_BF16>
            <<<n, THREADS, 0, s>>>(out, ids, data, table->cols, table->row_bytes);
        break;
    case MM_Q8_0:
        embedding_kernel<MM_Q8_0>
            <<<n, THREADS, 0, s>>>(out, ids, data, table->cols, table->row_bytes);
        break;
    case MM_Q4_0:
        embedding_kernel<MM_Q4_0>
            <<<n, THREADS, 0, s>>>(out, ids, data, table->cols, table->row_bytes);
        break;
    case MM_Q4_1:
        embedding_kernel<MM_Q4_1>
            <<<n, THREADS, 0, s>>>(out, ids, data, table->cols, table->row_bytes);
        break;
    default:
        mm_err_set(err, "embedding: dtype %s has no CUDA kernel", mm_dtype_name(table->dtype));
        return -1;
    }
    return kc_launched("embedding", err);
}
