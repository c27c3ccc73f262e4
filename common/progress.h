/* A progress bar on stderr for long jobs (generation, imports). Drawn only
 * when stderr is a terminal, at most ten times a second; a log file gets the
 * final summary line alone. */
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
