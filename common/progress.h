/* A progress bar on stderr for long jobs (generation, imports): on a
 * terminal redrawn in place at most ten times a second; in a log file a
 * line every 30 seconds (a background job shows it is alive), and the final
 * summary line. */
#ifndef MEMLLM_COMMON_PROGRESS_H
#define MEMLLM_COMMON_PROGRESS_H

#include <stdint.h>

struct progress {
    const char *label;
    int64_t total;
    double start, last_draw;
    int tty;
};

void progress_start(struct progress *p, const char *label, int64_t total);
/* `rate_count` / `rate_unit`: the throughput shown, e.g. tokens and "tok". */
void progress_update(struct progress *p, int64_t done, int64_t rate_count, const char *rate_unit);
void progress_finish(struct progress *p, int64_t done, int64_t rate_count, const char *rate_unit);

double progress_now(void);

#endif
