/* The bitmap font of plot_png's charts: printable ASCII in a 5 x 9 pixel
 * cell (7 rows from the cap line to the baseline, 2 below it for the
 * descenders of g, j, p, q, y), so that no font library is needed. */
#ifndef MEMLLM_COMMON_PLOT_FONT_H
#define MEMLLM_COMMON_PLOT_FONT_H

#include <stdint.h>

#define PLOT_FONT_W 5       /* glyph columns */
#define PLOT_FONT_H 9       /* glyph rows */
#define PLOT_FONT_ADVANCE 6 /* columns from one glyph to the next */

/* The rows of character c, top first, bit 4 the leftmost column. A
 * character outside printable ASCII gets the glyph of '?'. */
const uint8_t *plot_font_glyph(unsigned char c);

#endif
