/* The ticks of a chart axis: 4 to 6 round values (1, 2 or 5 times a power
 * of ten; on a log axis also whole decades) and their labels. */
#ifndef MEMLLM_COMMON_PLOT_TICKS_H
#define MEMLLM_COMMON_PLOT_TICKS_H

#include <stddef.h>

#define PLOT_TICKS_MAX 8
#define PLOT_TICK_LABEL_LEN 24

struct plot_ticks {
    /* The axis range, in axis units: the value on a linear axis, log10 of
     * the value on a log axis. Holds the data with a small margin, widened
     * to round values when that gives a better number of ticks. */
    double lo, hi;
    size_t n;
    double at[PLOT_TICKS_MAX]; /* in axis units, ascending */
    char label[PLOT_TICKS_MAX][PLOT_TICK_LABEL_LEN];
};

/* Chooses the range and ticks of an axis whose data spans [lo, hi] in axis
 * units (finite, lo <= hi, hi - lo finite). */
void plot_ticks_choose(struct plot_ticks *t, double lo, double hi, int log_axis);

#endif
