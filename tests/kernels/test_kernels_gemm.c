/* The training GEMM (kernels/cpu/gemm.c): every SIMD level equals the
 * portable code bit for bit (one FMA chain over k per output, then alpha
 * and the accumulate), on shapes with every remainder of the tiles (tokens
 * past a multiple of 6, columns past a multiple of 16, k of 0 and 1); the
 * result is right against a double-precision sum; x given as its transpose
 * and B packed beforehand give the same bits as the plain call; a token's
 * row does not depend on the other tokens of the call, nor on the thread
 * count; the panels of a weight in every dtype hold its dequantized values
 * as W and as W^T, and setting a row of them is exact. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cpu/internal.h"

static uint64_t rng = 0x9E3779B97F4A7C15ULL;

static float uniform(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static float *randf(size_t n)
{
    float *x = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++)
        x[i] = uniform();
    return x;
}

static float *transposed(const float *x, int rows, int cols)
{
    float *t = malloc(((size_t)rows * (size_t)cols + 1) * sizeof(float));
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            t[(size_t)c * rows + r] = x[(size_t)r * cols + c];
    return t;
}

/* One shape: b is [k, cols] inside rows of ldb = cols + 3 floats (a
 * stride that is not the width), out starts from `init` for accumulate. */
static void shape(int n, int k, int cols)
{
    int64_t ldb = cols + 3;
    float *x = randf((size_t)n * k), *b = randf((size_t)k * ldb), *init = randf((size_t)n * cols);
    float *ref = malloc(((size_t)n * cols + 1) * sizeof(float));
    float *got = malloc(((size_t)n * cols + 1) * sizeof(float));
    float *xt = transposed(x, n, k);
    float alpha = 0.75f;
    for (int acc = 0; acc < 2; acc++) {
        memcpy(ref, init, (size_t)n * cols * sizeof(float));
        k_gemm_f32_at(ref, x, k, 0, n, k, b, cols, ldb, alpha, acc, &k_gemm_scalar);
        /* the portable code against a sum in double */
        double worst = 0;
        for (int t = 0; t < n; t++)
            for (int j = 0; j < cols; j++) {
                double s = 0;
                for (int i = 0; i < k; i++)
                    s += (double)x[(size_t)t * k + i] * b[(size_t)i * ldb + j];
                double want = alpha * s + (acc ? init[(size_t)t * cols + j] : 0.0);
                worst = fmax(worst, fabs(want - ref[(size_t)t * cols + j]));
            }
        CHECKF(worst <= 1e-5 * (k + 1), "n %d k %d cols %d: off by %g", n, k, cols, worst);
        for (int l = 0; l < k_gemm_impl_count; l++) {
            const struct k_gemm_impl *impl = k_gemm_impls[l];
            memcpy(got, init, (size_t)n * cols * sizeof(float));
            k_gemm_f32_at(got, x, k, 0, n, k, b, cols, ldb, alpha, acc, impl);
            CHECKF(!memcmp(got, ref, (size_t)n * cols * sizeof(float)),
                   "%s: n %d k %d cols %d accumulate %d differs from the portable code", impl->name,
                   n, k, cols, acc);
            memcpy(got, init, (size_t)n * cols * sizeof(float));
            k_gemm_f32_at(got, xt, n, 1, n, k, b, cols, ldb, alpha, acc, impl);
            CHECKF(!memcmp(got, ref, (size_t)n * cols * sizeof(float)),
                   "%s: n %d k %d cols %d: x given transposed differs", impl->name, n, k, cols);
            float *packed = malloc((k_panels_floats(k, cols) + 1) * sizeof(float));
            k_panels_pack(packed, b, k, cols, ldb);
            struct k_panels pn = {k, cols, packed};
            memcpy(got, init, (size_t)n * cols * sizeof(float));
            k_gemm_panels_at(got, x, n, &pn, alpha, acc, impl);
            CHECKF(!memcmp(got, ref, (size_t)n * cols * sizeof(float)),
                   "%s: n %d k %d cols %d: packed beforehand differs", impl->name, n, k, cols);
            free(packed);
        }
    }
    free(x), free(b), free(init), free(ref), free(got), free(xt);
}

/* A token's row: the same bits alone, in a call of many, at any place in a
 * tile, and on 1 or 3 threads (the panels are split between threads). */
static void invariance(void)
{
    int n = 23, k = 96, cols = 200;
    float *x = randf((size_t)n * k), *b = randf((size_t)k * cols);
    float *all = malloc((size_t)n * cols * sizeof(float)),
          *three = malloc((size_t)n * cols * sizeof(float)),
          *part = malloc((size_t)n * cols * sizeof(float));
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    k_gemm_f32(all, x, n, k, b, cols, cols, 1.0f, 0);
    omp_set_num_threads(3);
    k_gemm_f32(three, x, n, k, b, cols, cols, 1.0f, 0);
    omp_set_num_threads(threads);
    CHECK(!memcmp(all, three, (size_t)n * cols * sizeof(float)));
    for (int t0 = 0; t0 < n; t0 += 5) {
        int m = n - t0 < 4 ? n - t0 : 4;
        k_gemm_f32(part, x + (size_t)t0 * k, m, k, b, cols, cols, 1.0f, 0);
        CHECKF(!memcmp(part, all + (size_t)t0 * cols, (size_t)m * cols * sizeof(float)),
               "tokens %d..%d alone differ from the same tokens in a call of %d", t0, t0 + m, n);
    }
    free(x), free(b), free(all), free(three), free(part);
}

/* The panels of W (dy W) and of W^T (x W^T) hold W's dequantized values. */
static void weight_panels(void)
{
    enum mm_dtype types[] = {MM_F32, MM_F16, MM_BF16, MM_Q8_0, MM_Q4_0, MM_Q4_1};
    int rows = 21, cols = 320; /* rows past a panel of 16, both ways */
    float *src = randf((size_t)rows * cols), *row = malloc(cols * sizeof(float));
    for (size_t ty = 0; ty < sizeof(types) / sizeof(types[0]); ty++) {
        size_t rb = mm_dtype_row_bytes(types[ty], cols);
        uint8_t *data = malloc(rb * rows);
        for (int r = 0; r < rows; r++)
            mm_quantize_row(types[ty], src + (size_t)r * cols, data + r * rb, cols);
        struct k_matrix w = {types[ty], rows, cols, rb, data};
        float *deq = malloc((size_t)rows * cols * sizeof(float));
        for (int r = 0; r < rows; r++)
            mm_dequantize_row(types[ty], data + r * rb, deq + (size_t)r * cols, cols);
        float *deq_t = transposed(deq, rows, cols);
        /* each layout against packing the dequantized matrix itself */
        for (int tr = 0; tr < 2; tr++) {
            int64_t k = tr ? cols : rows, width = tr ? rows : cols;
            size_t nf = k_panels_floats(k, width);
            float *a = malloc(nf * sizeof(float)), *e = malloc(nf * sizeof(float));
            k_panels_of_matrix(a, &w, tr);
            k_panels_pack(e, tr ? deq_t : deq, k, width, width);
            CHECKF(!memcmp(a, e, nf * sizeof(float)), "panels of dtype %d, transposed %d",
                   (int)types[ty], tr);
            free(a), free(e);
        }
        free(data), free(deq), free(deq_t);
    }
    /* a row set in the panels of W: the product dy W sees it */
    int k = 40, n = 7;
    float *w = randf((size_t)k * cols), *dy = randf((size_t)n * k);
    float *pk = malloc(k_panels_floats(k, cols) * sizeof(float));
    k_panels_pack(pk, w, k, cols, cols);
    for (int c = 0; c < cols; c++)
        row[c] = w[(size_t)11 * cols + c] = uniform();
    k_panels_set_row(pk, k, cols, 11, row);
    struct k_panels pn = {k, cols, pk};
    float *got = malloc((size_t)n * cols * sizeof(float)),
          *want = malloc((size_t)n * cols * sizeof(float));
    k_gemm_panels(got, dy, n, &pn, 1.0f, 0);
    k_gemm_f32(want, dy, n, k, w, cols, cols, 1.0f, 0);
    CHECK(!memcmp(got, want, (size_t)n * cols * sizeof(float)));
    free(src), free(row), free(w), free(dy), free(pk), free(got), free(want);
}

int main(void)
{
    int ns[] = {1, 5, 6, 7, 13, 24};
    int ks[] = {0, 1, 9, 64};
    int colss[] = {1, 15, 16, 17, 40};
    for (size_t a = 0; a < sizeof(ns) / sizeof(ns[0]); a++)
        for (size_t b = 0; b < sizeof(ks) / sizeof(ks[0]); b++)
            for (size_t c = 0; c < sizeof(colss) / sizeof(colss[0]); c++)
                shape(ns[a], ks[b], colss[c]);
    shape(3, 700, 33); /* a long sum */
    invariance();
    weight_panels();
    return check_report("test_kernels_gemm");
}
