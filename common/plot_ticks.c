#include "plot_ticks.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Tick sets, from the most to the least wanted when they tie on count. */
enum tick_kind {
    TICKS_STEP,   /* multiples of step in axis units (whole decades on a log axis) */
    TICKS_125,    /* log axis: 1, 2 and 5 times every power of ten */
    TICKS_VALUES, /* log axis: multiples of step in value units (spans under a decade) */
};

struct tick_set {
    enum tick_kind kind;
    double step;
};

#define MARGIN 0.03 /* of the span, between the data and the axis ends */
#define MAX_LISTED 1000

/* Lists the set's ticks in [lo, hi] into at[] (up to PLOT_TICKS_MAX) and
 * returns how many there are (capped at MAX_LISTED: far too many anyway). */
static size_t list_ticks(struct tick_set set, double lo, double hi, double *at)
{
    size_t n = 0;
    if (set.kind == TICKS_125) {
        static const double mantissas[3] = {1, 2, 5};
        for (double k = floor(lo); k <= ceil(hi) && n < MAX_LISTED; k++)
            for (int m = 0; m < 3; m++) {
                double v = k + log10(mantissas[m]);
                if (v < lo || v > hi) continue;
                if (n < PLOT_TICKS_MAX) at[n] = v;
                n++;
            }
        return n;
    }
    double first = lo, last = hi;
    if (set.kind == TICKS_VALUES) first = pow(10.0, lo), last = pow(10.0, hi);
    double k0 = ceil(first / set.step), k1 = floor(last / set.step);
    /* an infinite end, or multiples beyond where k++ still counts: unusable */
    if (!(fabs(k0) < 1e15 && fabs(k1) < 1e15)) return 0;
    for (double k = k0; k <= k1 && n < MAX_LISTED; k++) {
        double v = k * set.step;
        if (set.kind == TICKS_VALUES) {
            if (v <= 0) continue;
            v = log10(v);
        }
        if (n < PLOT_TICKS_MAX) at[n] = v;
        n++;
    }
    return n;
}

/* Lower is better: any set with 4 to 6 ticks beats every set without, and
 * among those the rounder kind (whole decades before 1-2-5 before plain
 * multiples on a log axis) comes first, then the count nearest 5. */
#define FEW_ENOUGH 100
static int score(struct tick_set set, size_t n)
{
    int off = n > 5 ? (int)n - 5 : 5 - (int)n;
    return off > 1 ? FEW_ENOUGH + off : 2 * (int)set.kind + off;
}

/* The 1-2-5 steps around span / 5, smallest first. */
static size_t round_steps(double span, double *steps)
{
    double p = pow(10.0, floor(log10(span / 5.0)) - 1);
    size_t n = 0;
    for (int e = 0; e < 3; e++, p *= 10)
        for (int m = 0; m < 3; m++)
            steps[n++] = p * (m == 0 ? 1 : m == 1 ? 2 : 5);
    return n;
}

/* The candidate tick sets of an axis. */
static size_t candidate_sets(double lo, double hi, int log_axis, struct tick_set *sets)
{
    double steps[9];
    size_t n = 0, n_steps;
    if (!log_axis) {
        n_steps = round_steps(hi - lo, steps);
        for (size_t i = 0; i < n_steps; i++)
            sets[n++] = (struct tick_set){TICKS_STEP, steps[i]};
        return n;
    }
    n_steps = round_steps(hi - lo, steps);
    for (size_t i = 0; i < n_steps; i++)
        if (steps[i] >= 1 && steps[i] == floor(steps[i]))
            sets[n++] = (struct tick_set){TICKS_STEP, steps[i]};
    if (hi - lo < 4) sets[n++] = (struct tick_set){TICKS_125, 0};
    if (hi - lo < 1.5) {
        n_steps = round_steps(pow(10.0, hi) - pow(10.0, lo), steps);
        for (size_t i = 0; i < n_steps; i++)
            sets[n++] = (struct tick_set){TICKS_VALUES, steps[i]};
    }
    return n;
}

/* [lo, hi] widened outwards to the set's nearest ticks. */
static int widen_to_ticks(struct tick_set set, double *lo, double *hi)
{
    if (set.kind == TICKS_125) return -1;
    if (set.kind == TICKS_STEP) {
        *lo = floor(*lo / set.step) * set.step;
        *hi = ceil(*hi / set.step) * set.step;
        return 0;
    }
    double first = floor(pow(10.0, *lo) / set.step) * set.step;
    if (first <= 0) return -1;
    *lo = log10(first);
    *hi = log10(ceil(pow(10.0, *hi) / set.step) * set.step);
    return 0;
}

/* Writes a "%g"-like label without the exponent's '+' and leading zeros
 * ("2e-5", not "2e-05"), with `decimals` digits after the point. */
static void exponent_label(char *buf, size_t len, double v, int decimals)
{
    snprintf(buf, len, "%.*e", decimals, v);
    char *e = strchr(buf, 'e');
    if (!e) return; /* inf or nan: nothing to shorten */
    char *from = e + 1, *to = e + 1;
    if (*from == '-') *to++ = *from++;
    if (*from == '+') from++;
    while (from[0] == '0' && from[1])
        from++;
    memmove(to, from, strlen(from) + 1);
}

/* Labels in plain decimals while the numbers are of everyday size, else in
 * exponent form with as many digits as the step needs to tell them apart. */
static void label_ticks(struct plot_ticks *t, struct tick_set set, int log_axis)
{
    double biggest = 0, step = set.step;
    for (size_t i = 0; i < t->n; i++) {
        double v = log_axis ? pow(10.0, t->at[i]) : t->at[i];
        biggest = fmax(biggest, fabs(v));
    }
    for (size_t i = 0; i < t->n; i++) {
        char *buf = t->label[i];
        double v = log_axis ? pow(10.0, t->at[i]) : t->at[i];
        if (log_axis && set.kind != TICKS_VALUES) {
            /* 1, 2 or 5 times a power of ten: one significant digit */
            if (v >= 1 && v < 1e6)
                snprintf(buf, PLOT_TICK_LABEL_LEN, "%.0f", v);
            else if (v >= 1e-4 && v < 1)
                snprintf(buf, PLOT_TICK_LABEL_LEN, "%.*f", (int)ceil(-log10(v) - 1e-9), v);
            else
                exponent_label(buf, PLOT_TICK_LABEL_LEN, v, 0);
            continue;
        }
        if (fabs(v) < step * 1e-6) v = 0; /* no "-0" or "1e-17" at zero */
        int step_digit = (int)floor(log10(step) + 1e-9);
        if (biggest < 1e6 && step >= 1e-4) {
            snprintf(buf, PLOT_TICK_LABEL_LEN, "%.*f", step_digit < 0 ? -step_digit : 0, v);
        } else {
            int decimals = (int)floor(log10(fmax(biggest, step)) + 1e-9) - step_digit;
            exponent_label(buf, PLOT_TICK_LABEL_LEN, v, decimals < 0 ? 0 : decimals);
        }
    }
}

void plot_ticks_choose(struct plot_ticks *t, double lo, double hi, int log_axis)
{
    if (hi - lo <= 1e-9 * fmax(fabs(lo), fabs(hi))) {
        /* a flat series: a range around its value */
        double half = log_axis ? 0.05 : (lo != 0 ? 0.1 * fabs(lo) : 1.0);
        lo -= half;
        hi += half;
    }
    struct tick_set sets[3 * 9 + 1];
    size_t n_sets = candidate_sets(lo, hi, log_axis, sets);
    double margin = MARGIN * (hi - lo);
    double best_lo = lo - margin, best_hi = hi + margin;
    struct tick_set best = sets[0];
    int best_score = 1 << 30;
    /* first the sets that fit the data's own range, then those that widen it */
    for (int widen = 0; widen < 2 && best_score >= FEW_ENOUGH; widen++)
        for (size_t i = 0; i < n_sets; i++) {
            double a = lo, b = hi, at[PLOT_TICKS_MAX];
            if (widen && widen_to_ticks(sets[i], &a, &b) != 0) continue;
            double m = MARGIN * (b - a);
            int sc = score(sets[i], list_ticks(sets[i], a - m, b + m, at));
            if (sc < best_score) {
                best_score = sc;
                best = sets[i];
                best_lo = a - m;
                best_hi = b + m;
            }
        }
    t->lo = best_lo;
    t->hi = best_hi;
    t->n = list_ticks(best, best_lo, best_hi, t->at);
    if (t->n > PLOT_TICKS_MAX) t->n = PLOT_TICKS_MAX;
    label_ticks(t, best, log_axis);
}
