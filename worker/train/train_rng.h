/* Counter-based random numbers for training: each draw is a hash of the
 * seed and the draw's coordinates (tensor and element for initialisation;
 * step, example, module, token and feature for dropout), never a stream
 * consumed in order. So a dropout mask does not depend on how examples are
 * split into micro-batches or over ranks, and a resumed run draws what an
 * uninterrupted one would. */
#ifndef MEMLLM_WORKER_TRAIN_RNG_H
#define MEMLLM_WORKER_TRAIN_RNG_H

#include <stdint.h>

/* splitmix64's finaliser: a bijective mix of 64 bits. */
static inline uint64_t train_rng_mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t train_rng_u64(uint64_t seed, uint64_t a, uint64_t b)
{
    return train_rng_mix(train_rng_mix(train_rng_mix(seed) ^ a) ^ b);
}

/* Uniform in [0, 1), 24 bits. */
static inline float train_rng_uniform(uint64_t seed, uint64_t a, uint64_t b)
{
    return (float)(train_rng_u64(seed, a, b) >> 40) * (1.0f / 16777216.0f);
}

#endif
