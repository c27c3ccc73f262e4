/* Element types of weight tensors and their block layouts.
 *
 * The quantized layouts are bit-identical to GGML's (llama.cpp's GGUF files)
 * so that GGUF tensors are used in place, without conversion. */
#ifndef MEMLLM_KERNELS_DTYPE_H
#define MEMLLM_KERNELS_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum mm_dtype { MM_F32, MM_F16, MM_BF16, MM_Q8_0, MM_Q4_0, MM_Q4_1, MM_DTYPE_COUNT };

#define MM_QBLOCK 32 /* elements per block of every quantized type */

/* q8_0: x = d * qs[i] */
struct block_q8_0 {
    uint16_t d; /* f16 */
    int8_t qs[MM_QBLOCK];
};

/* q4_0: x = d * (nibble - 8); element i in low nibble of qs[i], element
 * i + 16 in the high nibble of qs[i]. */
struct block_q4_0 {
    uint16_t d; /* f16 */
    uint8_t qs[MM_QBLOCK / 2];
};

/* q4_1: x = d * nibble + m; nibble order as q4_0. */
struct block_q4_1 {
    uint16_t d; /* f16 */
    uint16_t m; /* f16 */
    uint8_t qs[MM_QBLOCK / 2];
};

/* Elements per storage block: 1 for float types, MM_QBLOCK otherwise. */
int mm_dtype_block_elems(enum mm_dtype t);
/* Bytes per storage block. */
size_t mm_dtype_block_bytes(enum mm_dtype t);
/* Bytes of a row of n elements; n must be a multiple of the block size. */
size_t mm_dtype_row_bytes(enum mm_dtype t, int64_t n);
const char *mm_dtype_name(enum mm_dtype t);

/* Converts n elements of a row in dtype t to f32 (n a multiple of the block
 * size). */
void mm_dequantize_row(enum mm_dtype t, const void *src, float *dst, int64_t n);
/* Quantizes n f32 values to dtype t (n a multiple of the block size), with
 * GGML's rounding rules, so files we write match llama.cpp's. */
void mm_quantize_row(enum mm_dtype t, const float *src, void *dst, int64_t n);

static inline float mm_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

static inline uint16_t mm_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64); /* quiet NaN */
    return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1u))) >> 16); /* round to nearest even */
}

float mm_f16_to_f32(uint16_t h);
uint16_t mm_f32_to_f16(float f);

#endif
