#include "late_stop.h"

void late_stop_init(struct late_stop *ls, int delay)
{
    *ls = (struct late_stop){.delay = delay > 0 ? delay : 0};
}

enum late_stop_action late_stop_offer(struct late_stop *ls, size_t at, double sum_logprob,
                                      int n_generated, double logprob_close)
{
    /* Enough cuts, and the best is delay cuts old: no later point beat it,
     * so stop waiting for one. */
    if (ls->n_cuts >= ls->delay && ls->best <= ls->n_cuts - ls->delay) return LATE_STOP_END;
    double score = (sum_logprob + logprob_close) / (double)(n_generated + 1);
    ls->last_score = score;
    if (ls->n_cuts == 0 || score > ls->best_score) {
        ls->best = ls->n_cuts;
        ls->best_score = score;
        ls->best_at = at;
    }
    ls->n_cuts++;
    return LATE_STOP_SUPPRESS;
}

int late_stop_best(const struct late_stop *ls, size_t *at)
{
    if (ls->n_cuts == 0) return 0;
    *at = ls->best_at;
    return 1;
}
