/* Device-side helpers of the CUDA kernels: half-precision and quantized
 * element loads, warp and block reductions, launch sizes. */
#ifndef MEMLLM_KERNELS_CUDA_DEVICE_CUH
#define MEMLLM_KERNELS_CUDA_DEVICE_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include "kc_internal.h"

#define KC_WARP 32
#define KC_FULL_MASK 0xffffffffu

static __device__ __forceinline__ float kc_f16(uint16_t h)
{
    return __half2float(__ushort_as_half(h));
}

static __device__ __forceinline__ float kc_bf16(uint16_t h)
{
    return __uint_as_float((uint32_t)h << 16);
}

/* A 16-bit load from a 2-byte aligned address: GGML blocks of 18 and 34
 * bytes leave their fields at odd multiples of 2. */
static __device__ __forceinline__ uint16_t kc_u16(const char *p)
{
    return __ldg(reinterpret_cast<const unsigned short *>(p));
}

/* Four bytes at a 2-byte aligned address, as one little-endian int. */
static __device__ __forceinline__ int kc_int_at2(const char *p)
{
    return (int)((uint32_t)kc_u16(p) | ((uint32_t)kc_u16(p + 2) << 16));
}

/* Element c of a row in dtype t, with the CPU's rounding (mm_dequantize_row
 * multiplies and adds separately: no fused multiply-add here either). */
static __device__ __forceinline__ float kc_elem(enum mm_dtype t, const char *row, int64_t c)
{
    switch (t) {
    case MM_F32:
        return __ldg(reinterpret_cast<const float *>(row) + c);
    case MM_F16:
        return kc_f16(kc_u16(row + 2 * c));
    case MM_BF16:
        return kc_bf16(kc_u16(row + 2 * c));
    case MM_Q8_0: {
        const char *b = row + (c / MM_QBLOCK) * (int64_t)sizeof(struct block_q8_0);
        int8_t q = (int8_t)__ldg(reinterpret_cast<const signed char *>(b + 2 + c % MM_QBLOCK));
        return __fmul_rn(kc_f16(kc_u16(b)), (float)q);
    }
    case MM_Q4_0: {
        const char *b = row + (c / MM_QBLOCK) * (int64_t)sizeof(struct block_q4_0);
        int j = (int)(c % MM_QBLOCK);
        uint8_t byte = __ldg(reinterpret_cast<const unsigned char *>(b + 2 + j % 16));
        int nib = j < 16 ? (byte & 0x0f) : (byte >> 4);
        return __fmul_rn(kc_f16(kc_u16(b)), (float)(nib - 8));
    }
    case MM_Q4_1: {
        const char *b = row + (c / MM_QBLOCK) * (int64_t)sizeof(struct block_q4_1);
        int j = (int)(c % MM_QBLOCK);
        uint8_t byte = __ldg(reinterpret_cast<const unsigned char *>(b + 4 + j % 16));
        int nib = j < 16 ? (byte & 0x0f) : (byte >> 4);
        return __fadd_rn(__fmul_rn(kc_f16(kc_u16(b)), (float)nib), kc_f16(kc_u16(b + 2)));
    }
    default:
        return 0.0f;
    }
}

static __device__ __forceinline__ float kc_warp_sum(float v)
{
    for (int o = KC_WARP / 2; o > 0; o /= 2)
        v += __shfl_xor_sync(KC_FULL_MASK, v, o);
    return v;
}

static __device__ __forceinline__ double kc_warp_sum_d(double v)
{
    for (int o = KC_WARP / 2; o > 0; o /= 2)
        v += __shfl_xor_sync(KC_FULL_MASK, v, o);
    return v;
}

static __device__ __forceinline__ float kc_warp_max(float v)
{
    for (int o = KC_WARP / 2; o > 0; o /= 2)
        v = fmaxf(v, __shfl_xor_sync(KC_FULL_MASK, v, o));
    return v;
}

/* Sum / max over a block of blockDim.x threads (a multiple of 32, at most
 * 1024); every thread gets the result. `shared` holds 32 values; the call
 * may be repeated with the same array. */
template <typename T, typename Op>
static __device__ __forceinline__ T kc_block_reduce(T v, T *shared, Op op)
{
    int lane = threadIdx.x % KC_WARP, warp = threadIdx.x / KC_WARP;
    int warps = blockDim.x / KC_WARP;
    for (int o = KC_WARP / 2; o > 0; o /= 2)
        v = op(v, __shfl_xor_sync(KC_FULL_MASK, v, o));
    __syncthreads(); /* a previous call's readers are done with `shared` */
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    v = shared[0];
    for (int i = 1; i < warps; i++)
        v = op(v, shared[i]);
    return v;
}

struct kc_add_op {
    template <typename T> __device__ T operator()(T a, T b) const
    {
        return a + b;
    }
};

struct kc_max_op {
    __device__ float operator()(float a, float b) const
    {
        return fmaxf(a, b);
    }
};

/* Blocks for a grid-stride loop over len elements, threads per block. */
static inline unsigned kc_grid(int64_t len, int threads)
{
    int64_t blocks = (len + threads - 1) / threads;
    return (unsigned)(blocks < (1 << 20) ? blocks : (1 << 20));
}

#endif
