/* Engine speed on one model file: prefill tokens/s of a P-token prompt,
 * decode tokens/s over D tokens, decode as a fraction of the memory
 * roofline (bytes of weights and KV read per token over the measured read
 * bandwidth), and peak RSS. Prints 'name: value' lines; bench/compare.py
 * runs it next to llama.cpp on the same file and prints the ratios.
 *
 *   bench_engine MODEL [prompt_tokens=512] [decode_tokens=128] */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "forward.h"
#include "kernels.h"
#include "model.h"
#include "progress.h"

/* Read bandwidth of this machine for a working set of `bytes`: all threads
 * summing a buffer of that size, best of a few passes. The sum is over
 * 64-bit integers, which the compiler vectorizes (a float sum would be
 * bound by the latency of its additions, not by memory). */
static double read_bandwidth_gbs(size_t bytes)
{
    const size_t n = bytes / sizeof(uint64_t);
    uint64_t *buf = malloc(n * sizeof(uint64_t));
    if (!buf) return 0.0;
#pragma omp parallel for
    for (size_t i = 0; i < n; i++)
        buf[i] = i & 7;
    double best = 0.0;
    volatile uint64_t sink = 0;
    for (int pass = 0; pass < 5; pass++) {
        double t0 = progress_now();
        uint64_t total = 0;
#pragma omp parallel for reduction(+ : total)
        for (size_t i = 0; i < n; i++)
            total += buf[i];
        double t = progress_now() - t0;
        sink += total;
        double gbs = (double)(n * sizeof(uint64_t)) / t / 1e9;
        if (gbs > best) best = gbs;
    }
    (void)sink;
    free(buf);
    return best;
}

static size_t matrix_bytes(const struct k_matrix *w)
{
    return (size_t)w->rows * w->row_bytes;
}

static size_t weight_bytes_per_token(const struct model *m)
{
    size_t bytes = matrix_bytes(&m->lm_head);
    for (int l = 0; l < m->layer_end - m->layer_begin; l++)
        for (int i = 0; i < LIN_COUNT; i++)
            bytes += matrix_bytes(&m->layers[l].lin[i]);
    return bytes;
}

static void run(struct stage *s, const int32_t *ids, int n, int pos0, float *logits)
{
    int32_t *pos = malloc((size_t)n * sizeof(int32_t)), *slot = calloc((size_t)n, sizeof(int32_t));
    uint8_t *want = calloc((size_t)n, 1);
    for (int i = 0; i < n; i++)
        pos[i] = pos0 + i;
    want[n - 1] = 1;
    struct stage_batch b = {.n = n, .tokens = ids, .pos = pos, .slot = slot, .logits = want};
    struct mm_err err = {{0}};
    if (stage_forward(s, &b, NULL, logits, &err)) {
        fprintf(stderr, "bench_engine: %s\n", err.msg);
        exit(1);
    }
    free(pos);
    free(slot);
    free(want);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_engine MODEL [prompt_tokens] [decode_tokens]\n");
        return 2;
    }
    int n_prompt = argc > 2 ? atoi(argv[2]) : 512, n_decode = argc > 3 ? atoi(argv[3]) : 128;
    struct mm_err err = {{0}};
    struct model *m = model_load(argv[1], 0, -1, &err);
    if (!m) {
        fprintf(stderr, "bench_engine: %s\n", err.msg);
        return 1;
    }
    struct stage s;
    if (stage_init(&s, m, 1, n_prompt + n_decode + 1, &err)) {
        fprintf(stderr, "bench_engine: %s\n", err.msg);
        return 1;
    }
    const int V = m->cfg.vocab_size;
    int32_t *ids = malloc((size_t)(n_prompt + n_decode) * sizeof(int32_t));
    for (int i = 0; i < n_prompt; i++)
        ids[i] = (int32_t)((i * 7919 + 13) % V);
    float *logits = malloc((size_t)V * sizeof(float));

    run(&s, ids, 8, 0, logits); /* warm-up: page in the weights */
    double t0 = progress_now();
    run(&s, ids, n_prompt, 0, logits);
    double prefill = progress_now() - t0;

    t0 = progress_now();
    for (int t = 0; t < n_decode; t++) {
        ids[n_prompt + t] = k_argmax(logits, V);
        run(&s, &ids[n_prompt + t], 1, n_prompt + t, logits);
    }
    double decode = progress_now() - t0;

    /* Per decoded token: every weight once, plus the K and V rows so far. */
    size_t w_bytes = weight_bytes_per_token(m);
    double kv_bytes = 2.0 * (double)(m->cfg.n_layers) * (double)model_config_kv_dim(&m->cfg) *
                      sizeof(float) * (n_prompt + n_decode / 2.0);
    /* RSS before the bandwidth probe, whose buffer is not the engine's. */
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    /* Two rooflines: DRAM (a 1 GiB working set), and a working set the size
     * of what one token reads, which a large last-level cache may hold. */
    double bw = read_bandwidth_gbs((size_t)1 << 30);
    double bw_ws = read_bandwidth_gbs(w_bytes + (size_t)kv_bytes);
    double roofline = bw * 1e9 / ((double)w_bytes + kv_bytes);
    double roofline_ws = bw_ws * 1e9 / ((double)w_bytes + kv_bytes);

    printf("model: %s\n", argv[1]);
    printf("threads: %d\n", omp_get_max_threads());
    printf("prompt_tokens: %d\ndecode_tokens: %d\n", n_prompt, n_decode);
    printf("prefill_tokens_per_s: %.1f\n", n_prompt / prefill);
    printf("decode_tokens_per_s: %.2f\n", n_decode / decode);
    printf("weight_bytes_per_token: %zu\n", w_bytes);
    printf("read_bandwidth_gb_s: %.2f\n", bw);
    printf("decode_roofline_tokens_per_s: %.2f\n", roofline);
    printf("decode_fraction_of_roofline: %.3f\n", (n_decode / decode) / roofline);
    printf("read_bandwidth_working_set_gb_s: %.2f\n", bw_ws);
    printf("decode_fraction_of_working_set_roofline: %.3f\n", (n_decode / decode) / roofline_ws);
    printf("kv_cache_bytes: %.0f\n", 2.0 * m->cfg.n_layers * model_config_kv_dim(&m->cfg) *
                                         sizeof(float) * (n_prompt + n_decode));
    printf("peak_rss_mib: %.1f\n", ru.ru_maxrss / 1024.0);
    free(ids);
    free(logits);
    stage_free(&s);
    model_free(m);
    return 0;
}
