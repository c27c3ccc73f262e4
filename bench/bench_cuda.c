/* The GPU stage's speed on a model with random weights of a real model's
 * shape (no 7B weights can be downloaded here): decode tokens/s at batch 1
 * as a fraction of the HBM bandwidth roofline, decode tokens/s at batch B,
 * and prefill TFLOP/s against the card's bf16 peak, in the batch-invariant
 * numerics (the default; unprefixed names) and side by side in the fast
 * ones (fast_*: kernels by batch shape, bf16 GEMMs on split activations;
 * fast_bf16_*: one bf16), with the invariant / fast ratios (cost_*: what
 * the invariance costs). Prints 'name: value' lines;
 * bench/compare_hf_cuda.py runs it next to HF transformers' generate on the
 * same shapes and prints the ratios.
 *
 *   bench_cuda [--shape mistral7b|smollm2] [--model FILE] [--prompt 128]
 *              [--decode 128] [--batch 32] [--prefill 2048] [--peak-tflops X]
 *
 * --model runs a model file instead (GGUF or HF directory, any dtype). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "forward_cuda.h"
#include "kc_internal.h"
#include "model.h"
#include "progress.h"

struct options {
    const char *shape, *model;
    int prompt, decode, batch, prefill;
    double peak_tflops;
};

static void die(const char *what, const struct mm_err *err)
{
    fprintf(stderr, "bench_cuda: %s: %s\n", what, err ? err->msg : "");
    exit(1);
}

static int shape_config(const char *shape, struct model_config *c)
{
    memset(c, 0, sizeof(*c));
    c->arch = MODEL_ARCH_LLAMA;
    c->rope_style = K_ROPE_NEOX;
    c->norm_eps = 1e-5f;
    if (!strcmp(shape, "mistral7b")) { /* Mistral-7B-v0.1 */
        c->arch = MODEL_ARCH_MISTRAL;
        c->n_layers = 32;
        c->dim = 4096;
        c->ffn_dim = 14336;
        c->n_heads = 32;
        c->n_kv_heads = 8;
        c->head_dim = 128;
        c->vocab_size = 32000;
        c->max_positions = 32768;
        c->sliding_window = 4096;
        c->rope_theta = 10000.0f;
        return 0;
    }
    if (!strcmp(shape, "smollm2")) { /* SmolLM2-135M */
        c->n_layers = 30;
        c->dim = 576;
        c->ffn_dim = 1536;
        c->n_heads = 9;
        c->n_kv_heads = 3;
        c->head_dim = 64;
        c->vocab_size = 49152;
        c->max_positions = 8192;
        c->rope_theta = 100000.0f;
        c->tied_embeddings = 1;
        return 0;
    }
    return -1;
}

/* A whole model in host memory whose bf16 matrices all point into one
 * random buffer (the stage uploads each to its own device copy, so the
 * device reads as many distinct bytes as a real model's). */
static struct model *random_model(const struct model_config *c)
{
    struct model *m = calloc(1, sizeof(*m));
    m->cfg = *c;
    m->layer_begin = 0;
    m->layer_end = c->n_layers;
    m->layers = calloc((size_t)c->n_layers, sizeof(*m->layers));
    int64_t q = model_config_q_dim(c), kv = model_config_kv_dim(c);
    const int64_t shapes[LIN_COUNT][2] = {
        {q, c->dim},          {kv, c->dim},         {kv, c->dim},        {c->dim, q},
        {c->ffn_dim, c->dim}, {c->ffn_dim, c->dim}, {c->dim, c->ffn_dim}};
    int64_t most = (int64_t)c->vocab_size * c->dim;
    for (int i = 0; i < LIN_COUNT; i++)
        if (shapes[i][0] * shapes[i][1] > most) most = shapes[i][0] * shapes[i][1];
    /* one more element: an untied head starts one in (see below) */
    uint16_t *w = malloc((size_t)(most + 1) * sizeof(uint16_t));
    float *ones = malloc((size_t)c->dim * sizeof(float));
    if (!m->layers || !w || !ones) die("out of host memory", NULL);
    uint32_t state = 1;
    for (int64_t i = 0; i <= most; i++) {
        state = state * 1664525u + 1013904223u;
        w[i] = mm_f32_to_bf16(((float)(state >> 8) / 8388608.0f - 1.0f) * 0.02f);
    }
    for (int i = 0; i < c->dim; i++)
        ones[i] = 1.0f;
    for (int l = 0; l < c->n_layers; l++) {
        m->layers[l].attn_norm = m->layers[l].ffn_norm = ones;
        for (int i = 0; i < LIN_COUNT; i++)
            m->layers[l].lin[i] =
                (struct k_matrix){.dtype = MM_BF16,
                                  .rows = shapes[i][0],
                                  .cols = shapes[i][1],
                                  .row_bytes = mm_dtype_row_bytes(MM_BF16, shapes[i][1]),
                                  .data = w};
    }
    m->tok_embd = (struct k_matrix){.dtype = MM_BF16,
                                    .rows = c->vocab_size,
                                    .cols = c->dim,
                                    .row_bytes = mm_dtype_row_bytes(MM_BF16, c->dim),
                                    .data = w};
    m->lm_head = m->tok_embd;
    if (!c->tied_embeddings) {
        /* a distinct host pointer, so the stage uploads its own copy */
        m->lm_head.data = w + 1;
    }
    m->out_norm = ones;
    return m;
}

static void free_random_model(struct model *m)
{
    free((void *)m->tok_embd.data);
    free(m->out_norm);
    free(m->layers);
    free(m);
}

static size_t weight_bytes(const struct model *m)
{
    size_t bytes = (size_t)m->lm_head.rows * m->lm_head.row_bytes;
    for (int l = 0; l < m->layer_end - m->layer_begin; l++)
        for (int i = 0; i < LIN_COUNT; i++)
            bytes += (size_t)m->layers[l].lin[i].rows * m->layers[l].lin[i].row_bytes;
    return bytes;
}

static size_t matmul_params(const struct model *m)
{
    size_t p = 0;
    for (int l = 0; l < m->layer_end - m->layer_begin; l++)
        for (int i = 0; i < LIN_COUNT; i++)
            p += (size_t)m->layers[l].lin[i].rows * (size_t)m->layers[l].lin[i].cols;
    return p;
}

/* One forward: `seqs` sequences in slots slot0.., each per_seq tokens from
 * pos0; ids (may be NULL) gets the argmax after each sequence's last token. */
static void forward(struct stage_cuda *s, const int32_t *tokens, int slot0, int seqs, int per_seq,
                    int pos0, int32_t *ids)
{
    int n = seqs * per_seq;
    int32_t *pos = malloc((size_t)n * sizeof(int32_t)), *slot = malloc((size_t)n * sizeof(int32_t));
    uint8_t *want = calloc((size_t)n, 1);
    if (!pos || !slot || !want) die("out of host memory", NULL);
    for (int j = 0; j < seqs; j++) {
        for (int i = 0; i < per_seq; i++) {
            pos[j * per_seq + i] = pos0 + i;
            slot[j * per_seq + i] = slot0 + j;
        }
        want[j * per_seq + per_seq - 1] = 1;
    }
    struct stage_batch b = {.n = n, .tokens = tokens, .pos = pos, .slot = slot, .logits = want};
    struct mm_err err = {{0}};
    if (stage_cuda_forward(s, &b, NULL, NULL, ids, &err)) die("forward", &err);
    free(pos);
    free(slot);
    free(want);
}

/* Greedy decoding of `steps` tokens in each of `seqs` slots after a prompt
 * of `prompt` tokens per slot; returns generated tokens/s (the steps only). */
static double decode_rate(struct stage_cuda *s, int seqs, int prompt, int steps, int vocab)
{
    int32_t *tok = malloc((size_t)prompt * sizeof(int32_t));
    int32_t *ids = malloc((size_t)seqs * sizeof(int32_t));
    if (!tok || !ids) die("out of host memory", NULL);
    for (int i = 0; i < prompt; i++)
        tok[i] = (int32_t)((unsigned)(i + 1) * 7919u % (unsigned)vocab);
    for (int j = 0; j < seqs; j++)
        forward(s, tok, j, 1, prompt, 0, ids + j);
    double t0 = progress_now();
    for (int t = 0; t < steps; t++)
        forward(s, ids, 0, seqs, 1, prompt + t, ids);
    double dt = progress_now() - t0;
    free(tok);
    free(ids);
    return (double)seqs * steps / dt;
}

/* Seconds of one forward of a `tokens`-long prompt in slot 0 (best of 3,
 * after a warm-up that sizes the buffers and picks the cuBLAS kernels). */
static double prefill_seconds(struct stage_cuda *s, int tokens, int vocab)
{
    int32_t *tok = malloc((size_t)tokens * sizeof(int32_t)), id;
    if (!tok) die("out of host memory", NULL);
    for (int i = 0; i < tokens; i++)
        tok[i] = (int32_t)((unsigned)(i + 3) * 104729u % (unsigned)vocab);
    forward(s, tok, 0, 1, tokens, 0, &id);
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = progress_now();
        forward(s, tok, 0, 1, tokens, 0, &id);
        double dt = progress_now() - t0;
        best = dt < best ? dt : best;
    }
    free(tok);
    return best;
}

/* Device-to-device copy bandwidth (bytes read + written per second). */
static double copy_gbs(struct kc_ctx *c)
{
    size_t bytes = (size_t)1 << 30;
    struct mm_err err = {{0}};
    void *a = kc_alloc(bytes, &err), *b = a ? kc_alloc(bytes, &err) : NULL;
    if (!b) die("copy buffers", &err);
    double best = 0;
    for (int r = 0; r < 4; r++) {
        double t0 = progress_now();
        if (kc_copy(c, b, a, bytes, &err) || kc_sync(c, &err)) die("copy", &err);
        double gbs = 2.0 * (double)bytes / (progress_now() - t0) / 1e9;
        best = gbs > best ? gbs : best;
    }
    kc_free(a);
    kc_free(b);
    return best;
}

typedef int (*matmul_path)(struct kc_ctx *c, float *out, const float *x, const struct kc_matrix *w,
                           int n, float alpha, int accumulate, struct mm_err *err);

static int dispatched(struct kc_ctx *c, float *out, const float *x, const struct kc_matrix *w,
                      int n, float alpha, int accumulate, struct mm_err *err)
{
    (void)alpha;
    (void)accumulate;
    return kc_matmul_forward(c, out, x, w, n, err);
}

/* The matmul of one layer matrix alone through `path` (the dispatcher in
 * the context's numerics, or the dot kernels or cuBLAS regardless of n):
 * seconds per call at n tokens, back-to-back launches after a warm-up. */
static double matmul_seconds(struct kc_ctx *c, const struct k_matrix *w, int n, matmul_path path)
{
    struct mm_err err = {{0}};
    struct kc_matrix dw;
    if (kc_matrix_upload(c, &dw, w, &err)) die("matmul weights", &err);
    float *x = kc_alloc((size_t)n * w->cols * sizeof(float), &err);
    float *out = x ? kc_alloc((size_t)n * w->rows * sizeof(float), &err) : NULL;
    if (!out) die("matmul buffers", &err);
    float *hx = calloc((size_t)n * w->cols, sizeof(float));
    if (!hx) die("out of host memory", NULL);
    for (int64_t i = 0; i < (int64_t)n * w->cols; i++)
        hx[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    if (kc_upload(c, x, hx, (size_t)n * w->cols * sizeof(float), &err)) die("upload", &err);
    const int reps = n > 64 ? 10 : 50;
    double t0 = 0;
    for (int r = n > 64 ? -2 : -5; r < reps; r++) {
        if (r == 0) {
            if (kc_sync(c, &err)) die("matmul", &err);
            t0 = progress_now();
        }
        if (path(c, out, x, &dw, n, 1.0f, 0, &err)) die("matmul", &err);
    }
    if (kc_sync(c, &err)) die("matmul", &err);
    double dt = (progress_now() - t0) / reps;
    free(hx);
    kc_free(x);
    kc_free(out);
    kc_matrix_free(&dw);
    return dt;
}

/* GB/s of weights read at n tokens (decode's share of the roofline is
 * mostly this figure: the FFN's matrices are the largest, K and V's the
 * smallest). */
static double matmul_gbs(struct kc_ctx *c, const struct k_matrix *w, int n, matmul_path path)
{
    return (double)w->rows * w->row_bytes / matmul_seconds(c, w, n, path) / 1e9;
}

/* TFLOP/s at n tokens (prefill's matmuls). */
static double matmul_tflops(struct kc_ctx *c, const struct k_matrix *w, int n, matmul_path path)
{
    return 2.0 * (double)w->rows * w->cols * n / matmul_seconds(c, w, n, path) / 1e12;
}

/* Layer 0's projections that share an input through the fused kernels at
 * one token: Q, K and V in one launch (swiglu = 0), or gate and up with
 * SwiGLU's gate in one (swiglu = 1); GB/s of the weights read, timed as
 * matmul_gbs (next to matmul_up_n1 and matmul_k_n1, what one launch for
 * several matrices gains). */
static double fused_gbs(struct kc_ctx *c, const struct model *m, int swiglu)
{
    static const enum model_linear qkv[] = {LIN_Q, LIN_K, LIN_V}, gate_up[] = {LIN_GATE, LIN_UP};
    const enum model_linear *lin = swiglu ? gate_up : qkv;
    int count = swiglu ? 2 : 3;
    struct mm_err err = {{0}};
    struct kc_matrix dw[KC_MULTI_MAX];
    const struct kc_matrix *pw[KC_MULTI_MAX];
    float *out[KC_MULTI_MAX];
    double bytes = 0;
    for (int i = 0; i < count; i++) {
        const struct k_matrix *w = &m->layers[0].lin[lin[i]];
        if (kc_matrix_upload(c, &dw[i], w, &err)) die("fused weights", &err);
        if (!(out[i] = kc_alloc((size_t)w->rows * sizeof(float), &err))) die("fused buffers", &err);
        pw[i] = &dw[i];
        bytes += (double)w->rows * w->row_bytes;
    }
    int64_t cols = dw[0].cols;
    float *x = kc_alloc((size_t)cols * sizeof(float), &err);
    float *hx = calloc((size_t)cols, sizeof(float));
    if (!x || !hx) die("fused buffers", &err);
    for (int64_t i = 0; i < cols; i++)
        hx[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    if (kc_upload(c, x, hx, (size_t)cols * sizeof(float), &err)) die("upload", &err);
    /* a model whose gate and up differ in dtype has no figure: 0 */
    int reps = !swiglu || kc_matmul_swiglu_supported(c, pw[0], pw[1], 1) ? 50 : 0;
    double t0 = 0;
    for (int r = reps ? -5 : 0; r < reps; r++) {
        if (r == 0) {
            if (kc_sync(c, &err)) die("fused matmul", &err);
            t0 = progress_now();
        }
        int rc = swiglu ? kc_matmul_swiglu_forward(c, out[0], x, pw[0], pw[1], 1, &err)
                        : kc_matmul_forward_multi(c, out, x, pw, count, 1, &err);
        if (rc) die("fused matmul", &err);
    }
    if (kc_sync(c, &err)) die("fused matmul", &err);
    double dt = (progress_now() - t0) / (reps ? reps : 1);
    free(hx);
    kc_free(x);
    for (int i = 0; i < count; i++) {
        kc_free(out[i]);
        kc_matrix_free(&dw[i]);
    }
    return reps ? bytes / dt / 1e9 : 0.0;
}

/* Dense bf16 tensor-core peak by device name (no API reports it). */
static double bf16_peak_tflops(const char *name)
{
    if (strstr(name, "H200")) return 989.4;
    if (strstr(name, "H100") && strstr(name, "PCIe")) return 756.0;
    if (strstr(name, "H100") && strstr(name, "NVL")) return 835.0;
    if (strstr(name, "H100")) return 989.4;
    if (strstr(name, "A100")) return 312.0;
    return 0.0;
}

int main(int argc, char **argv)
{
    struct options o = {
        .shape = "mistral7b", .prompt = 128, .decode = 128, .batch = 32, .prefill = 2048};
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) goto usage;
        if (!strcmp(a, "--shape"))
            o.shape = v;
        else if (!strcmp(a, "--model"))
            o.model = v;
        else if (!strcmp(a, "--prompt"))
            o.prompt = atoi(v);
        else if (!strcmp(a, "--decode"))
            o.decode = atoi(v);
        else if (!strcmp(a, "--batch"))
            o.batch = atoi(v);
        else if (!strcmp(a, "--prefill"))
            o.prefill = atoi(v);
        else if (!strcmp(a, "--peak-tflops"))
            o.peak_tflops = atof(v);
        else
            goto usage;
    }
    if (o.prompt < 1 || o.decode < 1 || o.batch < 1 || o.prefill < 1) goto usage;
    if (kc_device_count() == 0) {
        printf("SKIP: no CUDA device\n");
        return 0;
    }

    struct mm_err err = {{0}};
    struct model_config cfg;
    struct model *m;
    if (o.model) {
        if (!(m = model_load(o.model, 0, -1, &err))) die(o.model, &err);
    } else {
        if (shape_config(o.shape, &cfg)) goto usage;
        m = random_model(&cfg);
    }
    int device = stage_cuda_local_device(&err);
    if (device < 0) die("device", &err);
    int capacity = o.prompt + o.decode > o.prefill ? o.prompt + o.decode : o.prefill;
    double t0 = progress_now();
    struct stage_cuda *s = stage_cuda_open(m, o.batch, capacity, device, &err);
    if (!s) die("open", &err);
    double upload_s = progress_now() - t0;
    struct kc_ctx *ctx = stage_cuda_context(s);
    const struct model_config *c = &m->cfg;

    struct cudaDeviceProp prop;
    int clock_khz = 0, bus_bits = 0;
    if (cudaGetDeviceProperties(&prop, device) != cudaSuccess ||
        cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, device) != cudaSuccess ||
        cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, device) != cudaSuccess)
        die("device properties", NULL);
    double hbm_gbs = 2.0 * clock_khz * 1e3 * (bus_bits / 8.0) / 1e9;
    double peak = o.peak_tflops > 0 ? o.peak_tflops : bf16_peak_tflops(prop.name);
    printf("device: %s\n", prop.name);
    printf("model: %s\n", o.model ? o.model : o.shape);
    printf("weight_bytes: %zu\n", weight_bytes(m));
    printf("upload_s: %.2f\n", upload_s);
    printf("hbm_peak_gbs: %.0f\n", hbm_gbs);
    printf("copy_gbs: %.0f\n", copy_gbs(ctx));

    /* the matmul alone: each numerics' dispatcher (the invariant one takes
     * the dot kernels for every n), and each path */
    static const struct {
        enum kc_numerics numerics;
        const char *prefix;
    } modes[] = {{KC_NUMERICS_INVARIANT, ""},
                 {KC_NUMERICS_FAST, "fast_"},
                 {KC_NUMERICS_FAST_BF16, "fast_bf16_"}};
    enum { MODES = sizeof(modes) / sizeof(modes[0]) };
    static const int matmul_tokens[] = {1, 2, 4, 8, 16, 32};
    const struct k_matrix *up = &m->layers[0].lin[LIN_UP];
    for (size_t i = 0; i < sizeof(matmul_tokens) / sizeof(matmul_tokens[0]); i++) {
        int n = matmul_tokens[i];
        for (int k = 0; k < 2; k++) {
            kc_ctx_set_numerics(ctx, modes[k].numerics);
            printf("%smatmul_up_n%d_weight_gbs: %.0f\n", modes[k].prefix, n,
                   matmul_gbs(ctx, up, n, dispatched));
        }
        printf("matmul_up_n%d_dots_weight_gbs: %.0f\n", n, matmul_gbs(ctx, up, n, kc_matmul_dots));
        printf("matmul_up_n%d_gemm_weight_gbs: %.0f\n", n, matmul_gbs(ctx, up, n, kc_matmul_gemm));
    }
    for (int k = 0; k < MODES; k++) {
        kc_ctx_set_numerics(ctx, modes[k].numerics);
        printf("%smatmul_up_n%d_tflops: %.1f\n", modes[k].prefix, o.prefill,
               matmul_tflops(ctx, up, o.prefill, dispatched));
    }
    kc_ctx_set_numerics(ctx, KC_NUMERICS_INVARIANT);
    printf("matmul_k_n1_weight_gbs: %.0f\n",
           matmul_gbs(ctx, &m->layers[0].lin[LIN_K], 1, dispatched));
    printf("matmul_qkv_n1_fused_weight_gbs: %.0f\n", fused_gbs(ctx, m, 0));
    printf("matmul_gate_up_swiglu_n1_fused_weight_gbs: %.0f\n", fused_gbs(ctx, m, 1));

    /* decode: batch 1 (every token reads all weights and its KV cache) and
     * batch B, in the invariant and the fast numerics */
    double kv_bytes =
        2.0 * c->n_layers * model_config_kv_dim(c) * sizeof(float) * (o.prompt + o.decode / 2.0);
    double roofline = hbm_gbs * 1e9 / ((double)weight_bytes(m) + kv_bytes);
    printf("decode_b1_roofline_tokens_per_s: %.1f\n", roofline);
    printf("decode_batch: %d\n", o.batch);
    double b1[2], bb[2];
    for (int k = 0; k < 2; k++) {
        kc_ctx_set_numerics(ctx, modes[k].numerics);
        b1[k] = decode_rate(s, 1, o.prompt, o.decode, c->vocab_size);
        bb[k] = decode_rate(s, o.batch, o.prompt, o.decode, c->vocab_size);
        printf("%sdecode_b1_tokens_per_s: %.1f\n", modes[k].prefix, b1[k]);
        printf("%sdecode_b1_roofline_fraction: %.3f\n", modes[k].prefix, b1[k] / roofline);
        printf("%sdecode_batch_tokens_per_s: %.1f\n", modes[k].prefix, bb[k]);
    }

    /* prefill: the matmuls' 2 flops per weight and token, and causal
     * attention's QK^T and PV over half the square */
    double flops =
        2.0 * (double)matmul_params(m) * o.prefill +
        4.0 * c->n_layers * (double)model_config_q_dim(c) * o.prefill * (o.prefill + 1) / 2.0;
    printf("prefill_tokens: %d\n", o.prefill);
    printf("bf16_peak_tflops: %.1f\n", peak);
    double rate[MODES];
    for (int k = 0; k < MODES; k++) {
        kc_ctx_set_numerics(ctx, modes[k].numerics);
        double sec = prefill_seconds(s, o.prefill, c->vocab_size);
        double tflops = flops / sec / 1e12;
        rate[k] = o.prefill / sec;
        printf("%sprefill_tokens_per_s: %.0f\n", modes[k].prefix, rate[k]);
        printf("%sprefill_tflops: %.1f\n", modes[k].prefix, tflops);
        if (peak > 0) printf("%sprefill_peak_fraction: %.3f\n", modes[k].prefix, tflops / peak);
    }
    /* invariant / fast: 1 costs nothing, 0.5 halves the speed */
    printf("cost_decode_b1: %.3f\n", b1[0] / b1[1]);
    printf("cost_decode_batch: %.3f\n", bb[0] / bb[1]);
    printf("cost_prefill: %.3f\n", rate[0] / rate[1]);
    kc_ctx_set_numerics(ctx, KC_NUMERICS_INVARIANT);
    stage_cuda_free(s);
    if (o.model)
        model_free(m);
    else
        free_random_model(m);
    return 0;
usage:
    fprintf(stderr, "usage: bench_cuda [--shape mistral7b|smollm2] [--model FILE] [--prompt N] "
                    "[--decode N] [--batch N] [--prefill N] [--peak-tflops X]\n");
    return 2;
}
