/* Counter-based random numbers for training: each draw is a hash of the
 * seed and the draw's coordinates (tensor and element for initialisation;
 * step, example, module, token and feature for dropout), never a stream
 * consumed in order. So a dropout mask does not depend on how examples are
 * split into micro-batches or over ranks, and a resumed run draws what an
 * uninterrupted one would. */
#ifndef MEMLLM_COMMON_TRAIN_RNG_H
#define MEMLLM_COMMON_TRAIN_RNG_H

#include <stdint.h>

/* The CUDA trainer draws the same masks on the device (kernels/cuda). */
#ifdef __CUDACC__
#define TRAIN_RNG_FN static inline __host__ __device__
#else
#define TRAIN_RNG_FN static inline
#endif

/* splitmix64's finaliser: a bijective mix of 64 bits. */
TRAIN_RNG_FN uint64_t train_rng_mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

TRAIN_RNG_FN uint64_t train_rng_u64(uint64_t seed, uint64_t a, uint64_t b)
{
    return train_rng_mix(train_rng_mix(train_rng_mix(seed) ^ a) ^ b);
}

/* Uniform in [0, 1), 24 bits. */
TRAIN_RNG_FN float train_rng_uniform(uint64_t seed, uint64_t a, uint64_t b)
{
    return (float)(train_rng_u64(seed, a, b) >> 40) * (1.0f / 16777216.0f);
}

#endif
