/* Late stopping for the MemLLM write loop (DESIGN.md §2).
 *
 * A memory write ends with "})". Stopping at the first "})" the model would
 * emit loses the relations it would have listed next, so instead: whenever
 * "})" is the most likely next token, the runtime records that point as a
 * possible cut, scores it by its length-normalised log-probability (the mean
 * log-probability of the tokens generated so far and of the "})" itself),
 * bans "})" for that one sample and decodes on. It stops letting "})" pass
 * only when `delay` cuts are recorded and the best of them has not been
 * beaten by the delay - 1 cuts after it (the rule of the original MemLLM
 * code); the write is then cut at the best point. If decoding ends another
 * way (token limit, end of sequence), the best recorded cut is still used,
 * or everything generated when none was recorded.
 *
 * This unit is only the bookkeeping, so that it can be tested on a scripted
 * score stream; memllm_write.c drives it from the scheduler's logits. */
#ifndef MEMLLM_COORDINATOR_LATE_STOP_H
#define MEMLLM_COORDINATOR_LATE_STOP_H

#include <stddef.h>

#define LATE_STOP_DEFAULT_DELAY 5

struct late_stop {
    int delay;
    int n_cuts;
    int best;          /* index of the best cut so far (first one on ties) */
    double best_score; /* its score */
    size_t best_at;    /* its position, as the caller gave it */
    double last_score; /* the score of the cut recorded last */
};

/* delay 0: no cut is ever recorded, the first "})" ends the write. */
void late_stop_init(struct late_stop *ls, int delay);

enum late_stop_action {
    LATE_STOP_SUPPRESS, /* cut recorded: ban "})" for this sample and go on */
    LATE_STOP_END,      /* let "})" through: the write ends, cut at the best */
};

/* "})" is the most likely next token. `at` is the caller's position of the
 * cut (e.g. the text length before "})"), sum_logprob the summed
 * log-probabilities of the n_generated tokens so far, logprob_close that of
 * "})" here. */
enum late_stop_action late_stop_offer(struct late_stop *ls, size_t at, double sum_logprob,
                                      int n_generated, double logprob_close);

/* The position of the best recorded cut; 0 when none was recorded (then
 * the whole generation is kept). */
int late_stop_best(const struct late_stop *ls, size_t *at);

#endif
