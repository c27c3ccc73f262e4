/* Shared by the CUDA kernel tests: the device context (or a SKIP line and
 * exit 0 where there is no device), random data, device buffers that stop
 * the test on failure, and the comparison of outputs with the CPU op's. */
#ifndef MEMLLM_TESTS_KERNELS_CUDA_H
#define MEMLLM_TESTS_KERNELS_CUDA_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "kernels_cuda.h"

/* The error of the tests' kc_ calls; KC_OK stops the test when one fails. */
static struct mm_err cuda_err;
#define KC_OK(call) REQUIRE((call) == 0, "%s: %s", #call, cuda_err.msg)

/* A context on device 0. Without a device: checks that the library says so
 * through mm_err instead of failing later, prints the SKIP line and exits
 * with success (or failure when that check failed). */
static inline struct kc_ctx *cuda_test_ctx(const char *name)
{
    struct mm_err err = {{0}};
    if (kc_device_count() == 0) {
        struct kc_ctx *c = kc_ctx_create(0, &err);
        CHECKF(c == NULL && err.msg[0], "a context without a device: \"%s\"", err.msg);
        if (c) kc_ctx_free(c);
        printf("%s: SKIP: no CUDA device (%s)\n", name, err.msg);
        exit(check_failures ? 1 : 0);
    }
    struct kc_ctx *c = kc_ctx_create(0, &err);
    REQUIRE(c, "%s", err.msg);
    return c;
}

static inline uint32_t cuda_test_lcg(uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return *state >> 8;
}

/* Uniform in [-scale, scale). */
static inline void cuda_test_fill(float *x, size_t n, float scale, uint32_t *state)
{
    for (size_t i = 0; i < n; i++)
        x[i] = ((float)cuda_test_lcg(state) / 8388608.0f - 1.0f) * scale;
}

static inline void *dev_from(struct kc_ctx *c, const void *host, size_t bytes)
{
    void *d = kc_alloc(bytes, &cuda_err);
    REQUIRE(d, "%s", cuda_err.msg);
    KC_OK(kc_upload(c, d, host, bytes, &cuda_err));
    return d;
}

static inline void dev_to(struct kc_ctx *c, void *host, const void *dev, size_t bytes)
{
    KC_OK(kc_download(c, host, dev, bytes, &cuda_err));
}

/* |got - want| <= tol * (1 + |want|) for every element; counts the misses. */
static inline void cuda_check_close(const char *what, const float *got, const float *want, size_t n,
                                    double tol)
{
    int bad = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]) / (1.0 + fabs(want[i]));
        bad += !(e <= tol);
        worst = e > worst ? e : worst;
    }
    CHECKF(bad == 0, "%s: %d of %zu off (worst relative error %g)", what, bad, n, worst);
}

#endif
