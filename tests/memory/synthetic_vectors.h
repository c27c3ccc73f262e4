/* Synthetic unit vectors shaped like sentence embeddings of entity names, for
 * measuring approximate search (test_memory_ann, bench_memory).
 *
 * Uniform random directions would be the wrong test: in 384 dimensions they
 * are all nearly orthogonal, "nearest" is noise, and any index looks either
 * perfect or hopeless. Embeddings from a sentence encoder have a shared mean
 * direction, topics within topics, and a variance spectrum that decays (a
 * hundred directions carry most of it). The model here:
 *
 *   x = normalise(Q (c[t] + c[t, s] + 0.8 e) + 0.62 mu)
 *
 * with 256 topics t, 16 subtopics s each, c[t] ~ N(0, L), c[t, s] ~
 * N(0, 0.81 L), e ~ N(0, L), L = diag(k^-0.7) / sum (k = 1..dim), mu a unit
 * vector and Q a random rotation (so no coordinate is special). Its
 * parameters were fitted to all-MiniLM-L6-v2 embeddings of the 8029 distinct
 * entity mentions of Re-DocRED dev (sentence-transformers, normalised);
 * on 8029 vectors of each:
 *
 *                          MiniLM names   this model
 *   random pair cosine     0.161 +- 0.095 0.138 +- 0.091
 *   1st / 10th / 100th NN  0.72/0.53/0.40 0.76/0.53/0.32
 *   10th - 11th NN gap     0.0057         0.0053
 *   participation ratio    104            99
 *
 * The rotation runs on k_matmul_forward, a batch of vectors at a time. */
#ifndef MEMLLM_TESTS_MEMORY_SYNTHETIC_VECTORS_H
#define MEMLLM_TESTS_MEMORY_SYNTHETIC_VECTORS_H

#include "kernels.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SYNTH_TOPICS 256
#define SYNTH_SUBTOPICS 16

struct synth_rng {
    uint64_t s;
};

static inline double synth_uniform(struct synth_rng *r)
{
    r->s = r->s * 6364136223846793005ULL + 1442695040888963407ULL;
    uint64_t x = r->s;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return ((double)(x >> 11) + 0.5) * 0x1.0p-53;
}

static inline double synth_normal(struct synth_rng *r)
{
    double u = synth_uniform(r), v = synth_uniform(r);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

struct synth_model {
    int dim;
    double *sd;    /* dim: sqrt of the spectrum */
    float *mu;     /* dim */
    float *centre; /* topics x subtopics x dim: c[t] + c[t, s], unrotated */
    float *q;      /* dim x dim rotation, row-major */
};

static inline int synth_model_init(struct synth_model *m, int dim, uint64_t seed)
{
    struct synth_rng r = {seed};
    size_t d = (size_t)dim;
    m->dim = dim;
    m->sd = malloc(d * sizeof(double));
    m->mu = malloc(d * sizeof(float));
    m->centre = malloc((size_t)SYNTH_TOPICS * SYNTH_SUBTOPICS * d * sizeof(float));
    m->q = malloc(d * d * sizeof(float));
    double *g = malloc(d * d * sizeof(double));
    if (!m->sd || !m->mu || !m->centre || !m->q || !g) {
        free(g);
        return -1;
    }
    double total = 0;
    for (size_t k = 0; k < d; k++)
        total += pow((double)(k + 1), -0.7);
    for (size_t k = 0; k < d; k++)
        m->sd[k] = sqrt(pow((double)(k + 1), -0.7) / total);
    double norm = 0;
    for (size_t k = 0; k < d; k++) {
        double x = synth_normal(&r);
        m->mu[k] = (float)x;
        norm += x * x;
    }
    for (size_t k = 0; k < d; k++)
        m->mu[k] = (float)(m->mu[k] / sqrt(norm));
    for (size_t t = 0; t < SYNTH_TOPICS; t++) {
        double topic[d];
        for (size_t k = 0; k < d; k++)
            topic[k] = m->sd[k] * synth_normal(&r);
        for (size_t s = 0; s < SYNTH_SUBTOPICS; s++) {
            float *c = m->centre + (t * SYNTH_SUBTOPICS + s) * d;
            for (size_t k = 0; k < d; k++)
                c[k] = (float)(topic[k] + 0.9 * m->sd[k] * synth_normal(&r));
        }
    }
    /* A random rotation: Gram-Schmidt on a Gaussian matrix (twice, for
     * orthogonality to double precision). */
    for (size_t i = 0; i < d * d; i++)
        g[i] = synth_normal(&r);
    for (size_t i = 0; i < d; i++) {
        double *gi = g + i * d;
        for (int pass = 0; pass < 2; pass++)
            for (size_t j = 0; j < i; j++) {
                const double *gj = g + j * d;
                double dot = 0;
                for (size_t k = 0; k < d; k++)
                    dot += gi[k] * gj[k];
                for (size_t k = 0; k < d; k++)
                    gi[k] -= dot * gj[k];
            }
        double n2 = 0;
        for (size_t k = 0; k < d; k++)
            n2 += gi[k] * gi[k];
        for (size_t k = 0; k < d; k++)
            gi[k] /= sqrt(n2);
    }
    for (size_t i = 0; i < d * d; i++)
        m->q[i] = (float)g[i];
    free(g);
    return 0;
}

static inline void synth_model_free(struct synth_model *m)
{
    free(m->sd);
    free(m->mu);
    free(m->centre);
    free(m->q);
}

/* Vectors first .. first+n-1 into out (n x dim); vector i depends only on
 * the model and i. -1 when out of memory. */
static inline int synth_vectors(const struct synth_model *m, uint64_t first, size_t n, float *out)
{
    size_t d = (size_t)m->dim;
    float *raw = malloc((n ? n : 1) * d * sizeof(float));
    if (!raw) return -1;
    for (size_t i = 0; i < n; i++) {
        struct synth_rng r = {(first + i) * 0x9e3779b97f4a7c15ULL + 12345};
        size_t t = (size_t)(synth_uniform(&r) * SYNTH_TOPICS) % SYNTH_TOPICS;
        size_t s = (size_t)(synth_uniform(&r) * SYNTH_SUBTOPICS) % SYNTH_SUBTOPICS;
        const float *c = m->centre + (t * SYNTH_SUBTOPICS + s) * d;
        for (size_t k = 0; k < d; k++)
            raw[i * d + k] = (float)(c[k] + 0.8 * m->sd[k] * synth_normal(&r));
    }
    struct k_matrix rot = {.dtype = MM_F32,
                           .rows = m->dim,
                           .cols = m->dim,
                           .row_bytes = d * sizeof(float),
                           .data = m->q};
    for (size_t done = 0; done < n; done += 4096) {
        int rows = n - done < 4096 ? (int)(n - done) : 4096;
        k_matmul_forward(out + done * d, raw + done * d, &rot, rows);
    }
    free(raw);
    for (size_t i = 0; i < n; i++) {
        float *x = out + i * d;
        double n2 = 0;
        for (size_t k = 0; k < d; k++) {
            x[k] += 0.62f * m->mu[k];
            n2 += (double)x[k] * x[k];
        }
        float inv = (float)(1.0 / sqrt(n2));
        for (size_t k = 0; k < d; k++)
            x[k] *= inv;
    }
    return 0;
}

#endif
