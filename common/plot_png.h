/* Line charts as PNG images, for the figures memllm's reports compare
 * (training loss curves, and later perplexity and latency): axes with
 * round ticks, a title, axis labels, a legend, one colour per series.
 * Text uses a built-in 5x7 bitmap font (upper case only: lower-case letters
 * are drawn as capitals). Written with libpng. */
#ifndef MEMLLM_COMMON_PLOT_PNG_H
#define MEMLLM_COMMON_PLOT_PNG_H

#include <stddef.h>

#include "err.h"

struct plot_series {
    const char *label;
    const double *x, *y; /* [n]; a NAN y leaves a gap */
    size_t n;
};

struct plot_spec {
    const char *title, *x_label, *y_label;
    int width, height; /* pixels; 0: 800 x 500 */
    int log_y;         /* log10 y axis (non-positive y left out) */
};

/* Draws the series into `path` (through a temporary file renamed at the
 * end). Fails, naming the path, on no series, no finite point, or a write
 * error. */
int plot_png_write(const char *path, const struct plot_spec *spec, const struct plot_series *s,
                   size_t n_series, struct mm_err *err);

#endif
