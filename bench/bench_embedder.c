/* Sentence-embedding throughput of the BERT embedder (memllm's kernels):
 * embeddings per second at batch 1 and at batch 32 over the texts of a file
 * (one per line; bench/compare_embedder.py writes Re-DocRED entity names
 * and runs sentence-transformers on the same texts).
 *
 *   bench_embedder MODEL_DIR TEXTS_FILE [N_BATCH1]
 *
 * Prints one line per batch size:
 *   batch 32: 1024 texts, 7.9 tokens/text, 0.52 s, 1969.2 embeddings/s
 * Batch 1 embeds only the first N_BATCH1 texts (default 256). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "embedder_bert.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char **read_lines(const char *path, size_t *n)
{
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    char **lines = NULL;
    size_t cap = 0;
    *n = 0;
    char *line = NULL;
    size_t len = 0;
    ssize_t got;
    while ((got = getline(&line, &len, f)) >= 0) {
        if (got > 0 && line[got - 1] == '\n') line[got - 1] = 0;
        if (*n == cap) {
            cap = cap ? 2 * cap : 256;
            char **grown = realloc(lines, cap * sizeof(*lines));
            if (!grown) break;
            lines = grown;
        }
        lines[(*n)++] = strdup(line);
    }
    free(line);
    fclose(f);
    return lines;
}

/* Embeds texts[0..n) in calls of `batch` texts; returns the seconds taken. */
static double run(struct mm_embedder *e, char **texts, size_t n, size_t batch, float *out)
{
    struct mm_err err;
    double t0 = now();
    for (size_t i = 0; i < n; i += batch) {
        size_t k = n - i < batch ? n - i : batch;
        if (mm_embed(e, (const char *const *)texts + i, k, out, &err) != 0) {
            fprintf(stderr, "bench_embedder: %s\n", err.msg);
            exit(1);
        }
    }
    return now() - t0;
}

static double mean_tokens(struct mm_embedder *e, char **texts, size_t n)
{
    size_t total = 0;
    struct mm_err err;
    for (size_t i = 0; i < n; i++) {
        int32_t *ids;
        size_t k;
        if (mm_bert_embedder_tokenize(e, texts[i], &ids, &k, &err) != 0) {
            fprintf(stderr, "bench_embedder: %s\n", err.msg);
            exit(1);
        }
        total += k;
        free(ids);
    }
    return (double)total / (double)n;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_embedder MODEL_DIR TEXTS_FILE [N_BATCH1]\n");
        return 2;
    }
    size_t n;
    char **texts = read_lines(argv[2], &n);
    if (!texts || n == 0) {
        fprintf(stderr, "bench_embedder: %s: no texts\n", argv[2]);
        return 1;
    }
    size_t n1 = argc > 3 ? (size_t)atol(argv[3]) : 256;
    if (n1 == 0 || n1 > n) n1 = n;
    struct mm_err err;
    struct mm_embedder *e = mm_bert_embedder_new(argv[1], &err);
    if (!e) {
        fprintf(stderr, "bench_embedder: %s\n", err.msg);
        return 1;
    }
    float *out = malloc(32 * (size_t)e->dim * sizeof(float));
    printf("embedder: %s\n", e->name);
    run(e, texts, n1 < 32 ? n1 : 32, 32, out); /* warm-up: page in the weights */

    double s1 = run(e, texts, n1, 1, out);
    printf("batch 1: %zu texts, %.1f tokens/text, %.2f s, %.1f embeddings/s\n", n1,
           mean_tokens(e, texts, n1), s1, (double)n1 / s1);
    double s32 = run(e, texts, n, 32, out);
    printf("batch 32: %zu texts, %.1f tokens/text, %.2f s, %.1f embeddings/s\n", n,
           mean_tokens(e, texts, n), s32, (double)n / s32);

    mm_embedder_free(e);
    free(out);
    for (size_t i = 0; i < n; i++)
        free(texts[i]);
    free(texts);
    return 0;
}
