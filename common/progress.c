#include "progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

double progress_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void progress_start(struct progress *p, const char *label, int64_t total)
{
    p->label = label;
    p->total = total;
    p->start = progress_now();
    p->tty = isatty(STDERR_FILENO);
    p->last_draw = p->tty ? 0.0 : p->start;
}

static void draw(struct progress *p, int64_t done, int64_t rate_count, const char *unit, char end)
{
    double elapsed = progress_now() - p->start;
    double rate = elapsed > 0.0 ? (double)rate_count / elapsed : 0.0;
    int width = 30, filled = p->total > 0 ? (int)(width * done / p->total) : width;
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "%s%s [%s] %lld/%lld  %.1f %s/s  %.1fs%c", p->tty ? "\r" : "", p->label, bar,
            (long long)done, (long long)p->total, rate, unit, elapsed, end);
    fflush(stderr);
}

void progress_update(struct progress *p, int64_t done, int64_t rate_count, const char *rate_unit)
{
    double now = progress_now();
    /* a terminal's bar is redrawn in place; a log gets a line every 30 s */
    if (now - p->last_draw < (p->tty ? 0.1 : 30.0)) return;
    p->last_draw = now;
    draw(p, done, rate_count, rate_unit, p->tty ? ' ' : '\n');
}

void progress_finish(struct progress *p, int64_t done, int64_t rate_count, const char *rate_unit)
{
    draw(p, done, rate_count, rate_unit, '\n');
}
