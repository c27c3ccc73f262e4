/* Line charts as PNG images, for the figures memllm's reports show
 * (training loss curves, later perplexity and latency): a white canvas,
 * axes with 4 to 6 round ticks and a light grid, a title, axis labels, one
 * colour per series and a legend. Text uses a built-in bitmap font
 * (printable ASCII). Written with libpng. */
#ifndef MEMLLM_COMMON_PLOT_PNG_H
#define MEMLLM_COMMON_PLOT_PNG_H

#include <stddef.h>

#include "err.h"

struct plot_series {
    const char *label;   /* NULL: left out of the legend */
    const double *x, *y; /* [n]; a NAN y (or x) leaves a gap */
    size_t n;
};

struct plot_spec {
    const char *title, *x_label, *y_label; /* each may be NULL */
    int width, height;                     /* pixels; 0: 800 wide, 500 high */
    int log_y;                             /* log10 y axis; points with y <= 0 are gaps */
};

/* The palette: series i is drawn in colour i % PLOT_N_COLOURS. */
#define PLOT_N_COLOURS 6
extern const unsigned char plot_colours[PLOT_N_COLOURS][3];

/* Lines join a series' consecutive points; a point with no neighbour to
 * join (a series of one point, or one between gaps) is drawn as a dot.
 * Writes `path` through a temporary file beside it, renamed at the end.
 * Fails, naming the path, on no series, no point to draw, a range too wide
 * for a double, a size outside 160 x 120 to 8192 x 8192, or a file or
 * libpng error, leaving `path` as it was. */
int plot_png_write(const char *path, const struct plot_spec *spec, const struct plot_series *s,
                   size_t n_series, struct mm_err *err);

#endif
