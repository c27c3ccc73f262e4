#include "plot_png.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plot_font.h"
#include "plot_ticks.h"

/* Tableau's first six: tell apart on screen and in print. */
const unsigned char plot_colours[PLOT_N_COLOURS][3] = {
    {31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40}, {148, 103, 189}, {140, 86, 75},
};

static const uint8_t white[3] = {255, 255, 255}, black[3] = {0, 0, 0}, grid[3] = {228, 228, 228};

#define MARGIN 10    /* pixels between the canvas edge and anything drawn */
#define TICK_LEN 5   /* tick marks, outside the plot area */
#define TEXT_GAP 4   /* between a tick mark and its label */
#define LINE_H 10    /* a text line at scale 1: glyph rows and a blank row */
#define CAP_MID 3    /* the glyph row at half the height of a capital */
#define DOT_RADIUS 3 /* a point with no neighbour to join */

struct canvas {
    int w, h;
    uint8_t *px;          /* RGB rows, top first */
    int clip_x0, clip_y0; /* drawing is kept inside [clip_x0, clip_x1] */
    int clip_x1, clip_y1; /* and [clip_y0, clip_y1], inclusive */
};

/* An axis: ticks.lo maps to pixel p_lo, ticks.hi to p_hi. */
struct axis {
    struct plot_ticks ticks;
    int p_lo, p_hi;
};

static void put(struct canvas *c, int x, int y, const uint8_t *rgb)
{
    if (x < c->clip_x0 || y < c->clip_y0 || x > c->clip_x1 || y > c->clip_y1) return;
    memcpy(c->px + ((size_t)y * c->w + x) * 3, rgb, 3);
}

static void fill_rect(struct canvas *c, int x0, int y0, int x1, int y1, const uint8_t *rgb)
{
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++)
            put(c, x, y, rgb);
}

/* Bresenham's line, each point drawn as a brush x brush square. */
static void draw_line(struct canvas *c, int x0, int y0, int x1, int y1, int brush,
                      const uint8_t *rgb)
{
    int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int e = dx + dy;
    for (;;) {
        fill_rect(c, x0, y0, x0 + brush - 1, y0 + brush - 1, rgb);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * e;
        if (e2 >= dy) e += dy, x0 += sx;
        if (e2 <= dx) e += dx, y0 += sy;
    }
}

static void draw_dot(struct canvas *c, int x, int y, const uint8_t *rgb)
{
    int r = DOT_RADIUS;
    for (int dy = -r; dy <= r; dy++)
        for (int dx = -r; dx <= r; dx++)
            if (dx * dx + dy * dy <= r * r + 1) put(c, x + dx, y + dy, rgb);
}

/* Characters drawn for s: UTF-8 continuation bytes add none, so that each
 * non-ASCII character takes one cell (drawn as '?'). */
static int text_cells(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static int text_width(const char *s, int scale)
{
    int n = text_cells(s);
    return n ? (n * PLOT_FONT_ADVANCE - 1) * scale : 0;
}

/* Text with the top-left corner of its first glyph at (x, y). */
static void draw_text(struct canvas *c, int x, int y, const char *s, int scale, const uint8_t *rgb)
{
    for (; *s; s++) {
        if (((unsigned char)*s & 0xC0) == 0x80) continue;
        const uint8_t *rows = plot_font_glyph((unsigned char)*s);
        for (int r = 0; r < PLOT_FONT_H; r++)
            for (int col = 0; col < PLOT_FONT_W; col++)
                if (rows[r] & (1u << (PLOT_FONT_W - 1 - col)))
                    fill_rect(c, x + col * scale, y + r * scale, x + (col + 1) * scale - 1,
                              y + (r + 1) * scale - 1, rgb);
        x += PLOT_FONT_ADVANCE * scale;
    }
}

static int to_px(const struct axis *a, double v)
{
    double f = (v - a->ticks.lo) / (a->ticks.hi - a->ticks.lo);
    return a->p_lo + (int)lround(f * (a->p_hi - a->p_lo));
}

/* The y of a point in axis units: log10 on a log axis, where y <= 0 has no
 * place (NAN: a gap). */
static double y_units(const struct plot_spec *spec, double y)
{
    if (!spec->log_y) return y;
    return y > 0 ? log10(y) : NAN;
}

static int point_drawn(const struct plot_spec *spec, const struct plot_series *s, size_t j)
{
    return isfinite(s->x[j]) && isfinite(y_units(spec, s->y[j]));
}

/* The data's extent in axis units; -1 when no point can be drawn. */
static int data_extent(const struct plot_spec *spec, const struct plot_series *s, size_t n_series,
                       double *x_lo, double *x_hi, double *y_lo, double *y_hi)
{
    *x_lo = *y_lo = INFINITY;
    *x_hi = *y_hi = -INFINITY;
    for (size_t i = 0; i < n_series; i++)
        for (size_t j = 0; j < s[i].n; j++) {
            if (!point_drawn(spec, &s[i], j)) continue;
            double y = y_units(spec, s[i].y[j]);
            *x_lo = fmin(*x_lo, s[i].x[j]);
            *x_hi = fmax(*x_hi, s[i].x[j]);
            *y_lo = fmin(*y_lo, y);
            *y_hi = fmax(*y_hi, y);
        }
    return isfinite(*x_lo) ? 0 : -1;
}

/* Checks the input and sets the canvas size *w x *h (the defaults for 0). */
static int check_input(const char *path, const struct plot_spec *spec, const struct plot_series *s,
                       size_t n_series, int *w, int *h, struct mm_err *err)
{
    if (n_series == 0) {
        mm_err_set(err, "%s: no series to plot", path);
        return -1;
    }
    for (size_t i = 0; i < n_series; i++)
        if (s[i].n > 0 && (!s[i].x || !s[i].y)) {
            mm_err_set(err, "%s: series %zu (%s) has %zu points but no x or y array", path, i,
                       s[i].label ? s[i].label : "no label", s[i].n);
            return -1;
        }
    *w = spec->width ? spec->width : 800;
    *h = spec->height ? spec->height : 500;
    if (*w < 160 || *w > 8192 || *h < 120 || *h > 8192) {
        mm_err_set(err, "%s: size %d x %d is outside 160 x 120 to 8192 x 8192", path, *w, *h);
        return -1;
    }
    return 0;
}

/* Chooses both axes' ranges and ticks from the data. */
static int choose_ticks(const char *path, const struct plot_spec *spec, const struct plot_series *s,
                        size_t n_series, struct axis *x, struct axis *y, struct mm_err *err)
{
    double x_lo, x_hi, y_lo, y_hi;
    if (data_extent(spec, s, n_series, &x_lo, &x_hi, &y_lo, &y_hi) != 0) {
        mm_err_set(err, "%s: nothing to plot: no point has a finite x and a finite%s y", path,
                   spec->log_y ? ", positive" : "");
        return -1;
    }
    if (!isfinite(x_hi - x_lo) || !isfinite(y_hi - y_lo)) {
        mm_err_set(err, "%s: the data's range (x %g to %g, y %g to %g) is too wide to draw", path,
                   x_lo, x_hi, y_lo, y_hi);
        return -1;
    }
    plot_ticks_choose(&x->ticks, x_lo, x_hi, 0);
    plot_ticks_choose(&y->ticks, y_lo, y_hi, spec->log_y);
    if (!isfinite(x->ticks.hi - x->ticks.lo) || !isfinite(y->ticks.hi - y->ticks.lo)) {
        mm_err_set(err, "%s: the data's range is too close to the largest double to draw", path);
        return -1;
    }
    return 0;
}

/* Places the plot area: room for the title above, the y label above the
 * area's top-left corner, tick labels left and below, the x label below. */
static int layout(const char *path, const struct canvas *c, const struct plot_spec *spec,
                  int title_scale, struct axis *x, struct axis *y, struct mm_err *err)
{
    int top = MARGIN, widest = 0;
    if (spec->title) top += PLOT_FONT_H * title_scale + 8;
    if (spec->y_label) top += LINE_H + 4;
    top += CAP_MID; /* the top y tick label is centred on the area's edge */
    for (size_t i = 0; i < y->ticks.n; i++) {
        int w = text_width(y->ticks.label[i], 1);
        widest = w > widest ? w : widest;
    }
    int last_x_label = x->ticks.n ? text_width(x->ticks.label[x->ticks.n - 1], 1) : 0;
    int bottom = c->h - 1 - MARGIN - TICK_LEN - TEXT_GAP - LINE_H;
    if (spec->x_label) bottom -= LINE_H + 4;
    x->p_lo = MARGIN + widest + TEXT_GAP + TICK_LEN;
    x->p_hi = c->w - 1 - MARGIN - last_x_label / 2;
    y->p_lo = bottom; /* pixel rows grow downwards */
    y->p_hi = top;
    if (x->p_hi - x->p_lo < 40 || y->p_lo - y->p_hi < 40) {
        mm_err_set(err, "%s: %d x %d pixels leave no room for the chart beside its labels", path,
                   c->w, c->h);
        return -1;
    }
    return 0;
}

static void draw_axes(struct canvas *c, const struct axis *x, const struct axis *y)
{
    for (size_t i = 0; i < x->ticks.n; i++) {
        int px = to_px(x, x->ticks.at[i]);
        const char *label = x->ticks.label[i];
        draw_line(c, px, y->p_hi, px, y->p_lo, 1, grid);
        draw_line(c, px, y->p_lo, px, y->p_lo + TICK_LEN, 1, black);
        draw_text(c, px - text_width(label, 1) / 2, y->p_lo + TICK_LEN + TEXT_GAP, label, 1, black);
    }
    for (size_t i = 0; i < y->ticks.n; i++) {
        int py = to_px(y, y->ticks.at[i]);
        const char *label = y->ticks.label[i];
        draw_line(c, x->p_lo, py, x->p_hi, py, 1, grid);
        draw_line(c, x->p_lo - TICK_LEN, py, x->p_lo, py, 1, black);
        draw_text(c, x->p_lo - TICK_LEN - TEXT_GAP - text_width(label, 1), py - CAP_MID, label, 1,
                  black);
    }
    draw_line(c, x->p_lo, y->p_lo, x->p_hi, y->p_lo, 1, black);
    draw_line(c, x->p_lo, y->p_hi, x->p_hi, y->p_hi, 1, black);
    draw_line(c, x->p_lo, y->p_lo, x->p_lo, y->p_hi, 1, black);
    draw_line(c, x->p_hi, y->p_lo, x->p_hi, y->p_hi, 1, black);
}

static void draw_series(struct canvas *c, const struct plot_spec *spec, const struct plot_series *s,
                        const uint8_t *rgb, const struct axis *x, const struct axis *y)
{
    int have_prev = 0, prev_x = 0, prev_y = 0;
    for (size_t j = 0; j < s->n; j++) {
        if (!point_drawn(spec, s, j)) {
            have_prev = 0;
            continue;
        }
        int px = to_px(x, s->x[j]), py = to_px(y, y_units(spec, s->y[j]));
        if (have_prev)
            draw_line(c, prev_x, prev_y, px, py, 2, rgb);
        else if (j + 1 == s->n || !point_drawn(spec, s, j + 1))
            draw_dot(c, px, py, rgb);
        have_prev = 1, prev_x = px, prev_y = py;
    }
}

/* Pixels in the rectangle that hold data (neither background nor grid). */
static long covered(const struct canvas *c, int x0, int y0, int x1, int y1)
{
    long n = 0;
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            const uint8_t *p = c->px + ((size_t)y * c->w + x) * 3;
            n += memcmp(p, white, 3) != 0 && memcmp(p, grid, 3) != 0;
        }
    return n;
}

/* The legend goes where it hides the least data: a corner of the plot area
 * or the middle of its top or bottom edge, the top right when they tie. */
static void draw_legend(struct canvas *c, const struct plot_series *s, size_t n_series,
                        const struct axis *x, const struct axis *y)
{
    enum { SWATCH = 20, PAD = 6, INSET = 8 };
    int widest = 0, rows = 0;
    for (size_t i = 0; i < n_series; i++) {
        if (!s[i].label) continue;
        int w = text_width(s[i].label, 1);
        widest = w > widest ? w : widest;
        rows++;
    }
    if (rows == 0) return;
    int w = PAD + SWATCH + PAD + widest + PAD, h = PAD + rows * (LINE_H + 3) - 3 + PAD;
    int left = x->p_lo + INSET, right = x->p_hi - INSET - w;
    int top = y->p_hi + INSET, low = y->p_lo - INSET - h;
    int centre = (x->p_lo + x->p_hi - w) / 2;
    int places[6][2] = {{right, top}, {left, top},   {right, low},
                        {left, low},  {centre, top}, {centre, low}};
    int x0 = right, y0 = top;
    long least = -1;
    for (int i = 0; i < 6; i++) {
        int cx = places[i][0], cy = places[i][1];
        if (cx < x->p_lo || cy < y->p_hi || cx + w > x->p_hi || cy + h > y->p_lo)
            continue; /* wider or taller than the area: drawn clipped at the top right */
        long n = covered(c, cx, cy, cx + w, cy + h);
        if (least < 0 || n < least) least = n, x0 = cx, y0 = cy;
    }
    fill_rect(c, x0, y0, x0 + w, y0 + h, white);
    draw_line(c, x0, y0, x0 + w, y0, 1, black);
    draw_line(c, x0, y0 + h, x0 + w, y0 + h, 1, black);
    draw_line(c, x0, y0, x0, y0 + h, 1, black);
    draw_line(c, x0 + w, y0, x0 + w, y0 + h, 1, black);
    int row_y = y0 + PAD;
    for (size_t i = 0; i < n_series; i++) {
        if (!s[i].label) continue;
        const uint8_t *rgb = plot_colours[i % PLOT_N_COLOURS];
        draw_line(c, x0 + PAD, row_y + CAP_MID, x0 + PAD + SWATCH, row_y + CAP_MID, 2, rgb);
        draw_text(c, x0 + PAD + SWATCH + PAD, row_y, s[i].label, 1, black);
        row_y += LINE_H + 3;
    }
}

/* Writes the canvas to a temporary file beside path (so that a reader never
 * sees half a chart) and renames it over path. */
static int write_png(const char *path, const struct canvas *c, struct mm_err *err)
{
    size_t len = strlen(path);
    char *tmp = malloc(len + sizeof(".XXXXXX"));
    if (!tmp) {
        mm_err_set(err, "%s: out of memory", path);
        return -1;
    }
    memcpy(tmp, path, len);
    memcpy(tmp + len, ".XXXXXX", sizeof(".XXXXXX"));
    int fd = mkstemp(tmp);
    if (fd < 0) {
        mm_err_set(err, "%s: cannot create a temporary file beside it: %s", path, strerror(errno));
        free(tmp);
        return -1;
    }
    /* mkstemp makes the file private; a chart is for everyone to read */
    FILE *f = fchmod(fd, 0644) == 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        mm_err_set(err, "%s: cannot open %s: %s", path, tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        free(tmp);
        return -1;
    }
    png_image img;
    memset(&img, 0, sizeof(img));
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)c->w;
    img.height = (png_uint_32)c->h;
    img.format = PNG_FORMAT_RGB;
    int rc = 0;
    if (!png_image_write_to_stdio(&img, f, 0, c->px, 0, NULL)) {
        mm_err_set(err, "%s: libpng: %s", path, img.message);
        png_image_free(&img);
        rc = -1;
    }
    if (fclose(f) != 0 && rc == 0) {
        mm_err_set(err, "%s: cannot write %s: %s", path, tmp, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        mm_err_set(err, "%s: cannot rename %s to it: %s", path, tmp, strerror(errno));
        rc = -1;
    }
    if (rc != 0) unlink(tmp);
    free(tmp);
    return rc;
}

int plot_png_write(const char *path, const struct plot_spec *spec, const struct plot_series *s,
                   size_t n_series, struct mm_err *err)
{
    struct axis x, y;
    struct canvas c = {0};
    if (check_input(path, spec, s, n_series, &c.w, &c.h, err) != 0 ||
        choose_ticks(path, spec, s, n_series, &x, &y, err) != 0)
        return -1;
    c.clip_x1 = c.w - 1;
    c.clip_y1 = c.h - 1;
    /* the title at double size unless that does not fit across */
    int title_scale = spec->title && text_width(spec->title, 2) <= c.w - 2 * MARGIN ? 2 : 1;
    if (layout(path, &c, spec, title_scale, &x, &y, err) != 0) return -1;
    c.px = malloc((size_t)c.w * c.h * 3);
    if (!c.px) {
        mm_err_set(err, "%s: out of memory for %d x %d pixels", path, c.w, c.h);
        return -1;
    }
    memset(c.px, 255, (size_t)c.w * c.h * 3);

    draw_axes(&c, &x, &y);
    if (spec->title)
        draw_text(&c, (c.w - text_width(spec->title, title_scale)) / 2, MARGIN, spec->title,
                  title_scale, black);
    if (spec->y_label)
        draw_text(&c, MARGIN, y.p_hi - CAP_MID - 4 - LINE_H, spec->y_label, 1, black);
    if (spec->x_label)
        draw_text(&c, (x.p_lo + x.p_hi - text_width(spec->x_label, 1)) / 2, c.h - MARGIN - LINE_H,
                  spec->x_label, 1, black);
    /* series inside the area's frame, so that none draws over the labels */
    c.clip_x0 = x.p_lo + 1, c.clip_x1 = x.p_hi - 1;
    c.clip_y0 = y.p_hi + 1, c.clip_y1 = y.p_lo - 1;
    for (size_t i = 0; i < n_series; i++)
        draw_series(&c, spec, &s[i], plot_colours[i % PLOT_N_COLOURS], &x, &y);
    draw_legend(&c, s, n_series, &x, &y);

    int rc = write_png(path, &c, err);
    free(c.px);
    return rc;
}
