/* The bitmap font of the charts: a glyph for every printable ASCII
 * character, each different, inside the 5-column cell; descenders only
 * where a letter has one; anything else drawn as '?'. */
#include <string.h>

#include "check.h"
#include "plot_font.h"

static int uses_row(const uint8_t *g, int row)
{
    return g[row] != 0;
}

int main(void)
{
    for (int c = '!'; c <= '~'; c++) {
        const uint8_t *g = plot_font_glyph((unsigned char)c);
        int lit = 0;
        for (int r = 0; r < PLOT_FONT_H; r++) {
            lit += g[r] != 0;
            CHECKF(g[r] < (1u << PLOT_FONT_W), "'%c' row %d wider than the cell", c, r);
        }
        CHECKF(lit > 0, "'%c' has an empty glyph", c);
        for (int d = '!'; d < c; d++)
            CHECKF(memcmp(g, plot_font_glyph((unsigned char)d), PLOT_FONT_H) != 0,
                   "'%c' and '%c' look the same", c, d);
        int descends = uses_row(g, 7) || uses_row(g, 8);
        int should = strchr("gjpqy,;_|", c) != NULL;
        CHECKF(descends == should, "'%c' %s below the baseline", c,
               descends ? "reaches" : "does not reach");
    }
    const uint8_t *space = plot_font_glyph(' ');
    for (int r = 0; r < PLOT_FONT_H; r++)
        CHECK(space[r] == 0);
    const uint8_t *question = plot_font_glyph('?');
    CHECK(plot_font_glyph('\n') == question);
    CHECK(plot_font_glyph(0x7F) == question);
    CHECK(plot_font_glyph(0xC3) == question);
    return check_report("test_plot_font");
}
