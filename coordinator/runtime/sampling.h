/* Picking the next token from logits: greedy, or temperature with top-k and
 * top-p (nucleus) filtering, from a seeded generator so runs repeat. */
#ifndef MEMLLM_COORDINATOR_SAMPLING_H
#define MEMLLM_COORDINATOR_SAMPLING_H

#include <stdint.h>

#include "err.h"

struct sampler_params {
    int greedy;        /* argmax; the other fields are ignored */
    float temperature; /* > 0 */
    int top_k;         /* 0: off */
    float top_p;       /* 1: off */
    uint64_t seed;
};

struct sampler {
    struct sampler_params p;
    uint64_t rng[4];
    int vocab;
    int32_t *order; /* candidate ids, scratch */
    float *probs;   /* scratch */
};

void sampler_params_default(struct sampler_params *p);
int sampler_init(struct sampler *s, const struct sampler_params *p, int vocab, struct mm_err *err);
void sampler_free(struct sampler *s);

/* Chooses a token. Tokens listed in `banned` are never chosen (the MemLLM
 * read loop bans "({" right after a rollback). *logprob receives the chosen
 * token's log-probability under the model (before temperature and
 * filtering). `logits` is not modified. */
int32_t sampler_sample(struct sampler *s, const float *logits, const int32_t *banned, int n_banned,
                       float *logprob);

/* log softmax(logits)[id], computed stably. */
float logits_logprob(const float *logits, int vocab, int32_t id);

#endif
