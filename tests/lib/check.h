/* Minimal test assertions: a failed check prints where and why and makes the
 * test program exit non-zero at the end (CHECK) or at once (REQUIRE). */
#ifndef MEMLLM_TESTS_CHECK_H
#define MEMLLM_TESTS_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int check_failures;

/* SANITIZED: 1 in an AddressSanitizer build, which runs several times
 * slower; the few tests that would dominate CI's time there do less. (The
 * test scripts learn the same from MEMLLM_TEST_SIZE=small: see
 * tests/CMakeLists.txt.) */
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            check_failures++;                                                                      \
        }                                                                                          \
    } while (0)

#define CHECKF(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            check_failures++;                                                                      \
        }                                                                                          \
    } while (0)

#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: REQUIRE failed: %s: ", __FILE__, __LINE__, #cond);             \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                      \
    CHECKF(fabs((double)(a) - (double)(b)) <= (tol), "%g vs %g (tol %g)", (double)(a),             \
           (double)(b), (double)(tol))

/* The largest |a[i] - b[i]|; NaN anywhere makes it NaN, which fails any
 * "<= tol" check. */
static inline double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d;
    }
    return m;
}

/* Path of a file under an environment-named folder (set by ctest). */
static inline const char *test_path(const char *env, const char *rel, char *buf, size_t n)
{
    const char *base = getenv(env);
    if (!base) {
        fprintf(stderr, "environment variable %s is not set (run under ctest)\n", env);
        exit(1);
    }
    snprintf(buf, n, "%s/%s", base, rel);
    return buf;
}

static inline int check_report(const char *name)
{
    if (check_failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, check_failures);
        return 1;
    }
    printf("%s: all checks passed\n", name);
    return 0;
}

#endif
