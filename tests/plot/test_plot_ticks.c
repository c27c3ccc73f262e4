/* plot_ticks_choose over ranges of every size: 4 to 6 ticks (a log axis
 * under 1.5 decades may fall to 3 or 7), evenly spaced at 1, 2 or 5 times a
 * power of ten, inside an axis range that holds the data, with labels that
 * read back as the tick's value; and a few ranges worked out by hand. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "plot_ticks.h"

/* Whether step is 1, 2 or 5 times a power of ten, to a relative tolerance. */
static int round_step(double step, double tolerance)
{
    double p = pow(10.0, floor(log10(step) + 1e-6)), m = step / p;
    return fabs(m - 1) < tolerance || fabs(m - 2) < tolerance || fabs(m - 5) < tolerance;
}

/* Checks what holds for every axis; returns 0 when something failed. */
static int check_axis(const struct plot_ticks *t, double lo, double hi, int log_axis)
{
    int ok = t->lo <= lo && t->hi >= hi && t->n >= 2 && t->n <= PLOT_TICKS_MAX;
    if (!ok) return 0;
    double step = (t->at[t->n - 1] - t->at[0]) / (double)(t->n - 1);
    /* ticks far from zero with a small step differ by few bits */
    double rel = 1e-6 + 4 * DBL_EPSILON * fmax(fabs(t->lo), fabs(t->hi)) / step;
    for (size_t i = 0; i < t->n; i++) {
        ok &= t->at[i] >= t->lo && t->at[i] <= t->hi;
        if (i > 0) ok &= t->at[i] > t->at[i - 1] && strcmp(t->label[i], t->label[i - 1]) != 0;
        double value = log_axis ? pow(10.0, t->at[i]) : t->at[i];
        double tolerance = log_axis ? 1e-3 * value : 1e-3 * step;
        ok &= fabs(strtod(t->label[i], NULL) - value) <= tolerance;
    }
    if (!log_axis) {
        ok &= round_step(step, rel);
        for (size_t i = 1; i < t->n; i++)
            ok &= fabs(t->at[i] - t->at[i - 1] - step) <= rel * step;
        /* not much longer than the data and a tick beyond each end, or for
         * a flat series, than a range of 10% either side of its value */
        double flat = fmax(0.2 * fmax(fabs(lo), fabs(hi)), lo == 0 && hi == 0 ? 2 : 0);
        ok &= t->hi - t->lo <= fmax(hi - lo, flat) + 2.2 * step;
    }
    return ok;
}

static void sweep(int log_axis)
{
    int bad = 0, cases = 0;
    for (double base = -7; base < 7; base += 0.37)
        for (double span = 1e-6; span < 1e7; span *= 1.37) {
            double lo = log_axis ? base : base * pow(10.0, fabs(base));
            double hi = lo + (log_axis ? span * 7e-5 : span);
            if (log_axis && hi - lo > 40) continue;
            struct plot_ticks t;
            plot_ticks_choose(&t, lo, hi, log_axis);
            int few = log_axis && hi - lo < 1.5 ? 3 : 4, many = log_axis && hi - lo < 1.5 ? 7 : 6;
            int ok = check_axis(&t, lo, hi, log_axis) && (int)t.n >= few && (int)t.n <= many;
            if (!ok && bad++ < 5) {
                fprintf(stderr, "%s axis [%g, %g]: %zu ticks:", log_axis ? "log" : "linear", lo, hi,
                        t.n);
                for (size_t i = 0; i < t.n; i++)
                    fprintf(stderr, " %s", t.label[i]);
                fputc('\n', stderr);
            }
            cases++;
        }
    CHECKF(bad == 0, "%d of %d %s axes wrong", bad, cases, log_axis ? "log" : "linear");
    CHECK(cases > 1000);
}

/* The labels of the ticks, joined by spaces. */
static const char *labels(double lo, double hi, int log_axis)
{
    static char buf[PLOT_TICKS_MAX * PLOT_TICK_LABEL_LEN];
    struct plot_ticks t;
    plot_ticks_choose(&t, lo, hi, log_axis);
    CHECKF(check_axis(&t, lo, hi, log_axis), "[%g, %g]", lo, hi);
    buf[0] = 0;
    for (size_t i = 0; i < t.n; i++) {
        if (i) strcat(buf, " ");
        strcat(buf, t.label[i]);
    }
    return buf;
}

#define CHECK_LABELS(lo, hi, log_axis, want)                                                       \
    do {                                                                                           \
        const char *got = labels(lo, hi, log_axis);                                                \
        CHECKF(strcmp(got, want) == 0, "got \"%s\", want \"%s\"", got, want);                      \
    } while (0)

int main(void)
{
    sweep(0);
    sweep(1);

    /* a training run's steps, and losses */
    CHECK_LABELS(1, 300, 0, "0 100 200 300");
    CHECK_LABELS(0, 13, 0, "0 5 10 15");
    CHECK_LABELS(0.05, 4.05, 0, "0 1 2 3 4");
    CHECK_LABELS(-0.001, 0.002, 0, "-0.001 0.000 0.001 0.002");
    CHECK_LABELS(2.3e-7, 9.1e-7, 0, "2.0e-7 4.0e-7 6.0e-7 8.0e-7 1.0e-6");
    /* a flat series: a range around its value */
    CHECK_LABELS(3, 3, 0, "2.6 2.8 3.0 3.2 3.4");
    CHECK_LABELS(0, 0, 0, "-1.0 -0.5 0.0 0.5 1.0");
    /* log axes (in log10 units): decades, then 1-2-5, then plain steps */
    CHECK_LABELS(-3, 1, 1, "0.001 0.01 0.1 1 10");
    CHECK_LABELS(-30, 10, 1, "1e-30 1e-20 1e-10 1 1e10");
    CHECK_LABELS(0, 1, 1, "1 2 5 10");
    CHECK_LABELS(log10(0.5), log10(2), 1, "0.5 1.0 1.5 2.0");
    return check_report("test_plot_ticks");
}
