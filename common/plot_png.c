#include "plot_png.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A 5x7 font: 7 rows of 5 bits (the high bit is the left column). */
struct glyph {
    char c;
    uint8_t rows[7];
};

static const struct glyph font[] = {
    {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}},
    {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}},
    {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
    {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}},
    {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
    {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}},
    {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}},
    {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
    {'A', {0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}},
    {'B', {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E}},
    {'C', {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}},
    {'D', {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C}},
    {'E', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}},
    {'F', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10}},
    {'G', {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}},
    {'H', {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}},
    {'I', {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'J', {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C}},
    {'K', {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}},
    {'L', {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F}},
    {'M', {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}},
    {'N', {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}},
    {'O', {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}},
    {'P', {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10}},
    {'Q', {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}},
    {'R', {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11}},
    {'S', {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}},
    {'T', {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}},
    {'U', {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}},
    {'V', {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04}},
    {'W', {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}},
    {'X', {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11}},
    {'Y', {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04}},
    {'Z', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F}},
    {'.', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}},
    {',', {0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08}},
    {'-', {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}},
    {'+', {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00}},
    {':', {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00}},
    {'(', {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}},
    {')', {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}},
    {'/', {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00}},
    {'%', {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}},
    {'=', {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00}},
    {'_', {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F}},
    {'<', {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02}},
    {'>', {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08}},
    {'*', {0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00}},
};

static const uint8_t palette[][3] = {{31, 119, 180}, {255, 127, 14},  {44, 160, 44},
                                     {214, 39, 40},  {148, 103, 189}, {140, 86, 75}};
#define N_COLOURS (sizeof(palette) / sizeof(palette[0]))

struct canvas {
    int w, h;
    uint8_t *px; /* RGB */
};

static void put(struct canvas *c, int x, int y, const uint8_t *rgb)
{
    if (x < 0 || y < 0 || x >= c->w || y >= c->h) return;
    memcpy(c->px + ((size_t)y * c->w + x) * 3, rgb, 3);
}

static const uint8_t *glyph_rows(char ch)
{
    if (ch >= 'a' && ch <= 'z') ch = (char)(ch - 'a' + 'A');
    for (size_t i = 0; i < sizeof(font) / sizeof(font[0]); i++)
        if (font[i].c == ch) return font[i].rows;
    return NULL; /* a space, or a character the font lacks */
}

/* Text with its top-left corner at (x, y), each font pixel scale x scale. */
static void text(struct canvas *c, int x, int y, const char *s, int scale, const uint8_t *rgb)
{
    for (; *s; s++, x += 6 * scale) {
        const uint8_t *rows = glyph_rows(*s);
        for (int r = 0; rows && r < 7; r++)
            for (int col = 0; col < 5; col++)
                if (rows[r] & (0x10 >> col))
                    for (int dy = 0; dy < scale; dy++)
                        for (int dx = 0; dx < scale; dx++)
                            put(c, x + col * scale + dx, y + r * scale + dy, rgb);
    }
}

static int text_width(const char *s, int scale)
{
    return (int)strlen(s) * 6 * scale;
}

/* A line 2 pixels thick (Bresenham, each point with its right and lower
 * neighbours). */
static void line(struct canvas *c, int x0, int y0, int x1, int y1, const uint8_t *rgb, int thick)
{
    int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int e = dx + dy;
    for (;;) {
        put(c, x0, y0, rgb);
        if (thick) {
            put(c, x0 + 1, y0, rgb);
            put(c, x0, y0 + 1, rgb);
        }
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * e;
        if (e2 >= dy) e += dy, x0 += sx;
        if (e2 <= dx) e += dx, y0 += sy;
    }
}

/* A round tick step (1, 2 or 5 times a power of ten) for about 5 ticks. */
static double nice_step(double range)
{
    double raw = range / 5.0, p = pow(10.0, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

struct axis {
    double lo, hi;
    int p0, p1; /* pixels of lo and hi */
};

static int to_px(const struct axis *a, double v)
{
    return a->p0 + (int)lround((v - a->lo) / (a->hi - a->lo) * (a->p1 - a->p0));
}

static double yval(const struct plot_spec *spec, double y)
{
    return spec->log_y ? (y > 0 ? log10(y) : NAN) : y;
}

static int ranges(const struct plot_spec *spec, const struct plot_series *s, size_t n_series,
                  struct axis *x, struct axis *y)
{
    x->lo = y->lo = INFINITY;
    x->hi = y->hi = -INFINITY;
    for (size_t i = 0; i < n_series; i++)
        for (size_t j = 0; j < s[i].n; j++) {
            double v = yval(spec, s[i].y[j]);
            if (!isfinite(v) || !isfinite(s[i].x[j])) continue;
            x->lo = fmin(x->lo, s[i].x[j]);
            x->hi = fmax(x->hi, s[i].x[j]);
            y->lo = fmin(y->lo, v);
            y->hi = fmax(y->hi, v);
        }
    if (!isfinite(x->lo)) return -1;
    struct axis *both[2] = {x, y};
    for (int i = 0; i < 2; i++) {
        struct axis *a = both[i];
        if (a->hi - a->lo < 1e-12 * fmax(1.0, fabs(a->hi))) {
            a->lo -= 0.5 * fmax(1.0, fabs(a->lo));
            a->hi += 0.5 * fmax(1.0, fabs(a->hi));
        }
        double pad = (a->hi - a->lo) * 0.04;
        a->lo -= pad;
        a->hi += pad;
    }
    return 0;
}

static void axes(struct canvas *c, const struct plot_spec *spec, const struct axis *x,
                 const struct axis *y)
{
    static const uint8_t black[3] = {0, 0, 0}, grid[3] = {225, 225, 225};
    char label[32];
    double step = nice_step(x->hi - x->lo);
    for (double v = ceil(x->lo / step) * step; v <= x->hi; v += step) {
        int px = to_px(x, v);
        line(c, px, y->p0, px, y->p1, grid, 0);
        line(c, px, y->p0, px, y->p0 + 5, black, 0);
        snprintf(label, sizeof(label), "%.4g", fabs(v) < step * 1e-9 ? 0.0 : v);
        text(c, px - text_width(label, 1) / 2, y->p0 + 9, label, 1, black);
    }
    step = nice_step(y->hi - y->lo);
    for (double v = ceil(y->lo / step) * step; v <= y->hi; v += step) {
        int py = to_px(y, v);
        line(c, x->p0, py, x->p1, py, grid, 0);
        line(c, x->p0 - 5, py, x->p0, py, black, 0);
        double shown = fabs(v) < step * 1e-9 ? 0.0 : v;
        snprintf(label, sizeof(label), "%.4g", spec->log_y ? pow(10.0, shown) : shown);
        text(c, x->p0 - 9 - text_width(label, 1), py - 3, label, 1, black);
    }
    line(c, x->p0, y->p0, x->p1, y->p0, black, 0);
    line(c, x->p0, y->p0, x->p0, y->p1, black, 0);
}

static void legend(struct canvas *c, const struct plot_series *s, size_t n_series, int right,
                   int top)
{
    static const uint8_t black[3] = {0, 0, 0}, white[3] = {255, 255, 255};
    int w = 0;
    for (size_t i = 0; i < n_series; i++) {
        int tw = text_width(s[i].label ? s[i].label : "", 1);
        w = tw > w ? tw : w;
    }
    w += 40;
    int h = (int)n_series * 14 + 8, x0 = right - w - 8, y0 = top + 8;
    for (int yy = y0; yy < y0 + h; yy++)
        line(c, x0, yy, x0 + w, yy, white, 0);
    line(c, x0, y0, x0 + w, y0, black, 0);
    line(c, x0, y0 + h, x0 + w, y0 + h, black, 0);
    line(c, x0, y0, x0, y0 + h, black, 0);
    line(c, x0 + w, y0, x0 + w, y0 + h, black, 0);
    for (size_t i = 0; i < n_series; i++) {
        int yy = y0 + 7 + (int)i * 14;
        line(c, x0 + 6, yy + 3, x0 + 26, yy + 3, palette[i % N_COLOURS], 1);
        text(c, x0 + 32, yy, s[i].label ? s[i].label : "", 1, black);
    }
}

static int write_png(const char *path, const struct canvas *c, struct mm_err *err)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    png_image img;
    memset(&img, 0, sizeof(img));
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)c->w;
    img.height = (png_uint_32)c->h;
    img.format = PNG_FORMAT_RGB;
    if (!png_image_write_to_file(&img, tmp, 0, c->px, 0, NULL)) {
        mm_err_set(err, "%s: cannot write the PNG: %s", path, img.message);
        remove(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        mm_err_set(err, "%s: %s", path, strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}

int plot_png_write(const char *path, const struct plot_spec *spec, const struct plot_series *s,
                   size_t n_series, struct mm_err *err)
{
    static const uint8_t black[3] = {0, 0, 0};
    struct canvas c = {spec->width > 0 ? spec->width : 800, spec->height > 0 ? spec->height : 500,
                       NULL};
    struct axis x, y;
    if (n_series == 0 || ranges(spec, s, n_series, &x, &y)) {
        mm_err_set(err, "%s: nothing to plot (no series with a finite point)", path);
        return -1;
    }
    c.px = malloc((size_t)c.w * c.h * 3);
    if (!c.px) {
        mm_err_set(err, "%s: out of memory", path);
        return -1;
    }
    memset(c.px, 255, (size_t)c.w * c.h * 3);
    x.p0 = 80;
    x.p1 = c.w - 24;
    y.p0 = c.h - 48; /* pixel rows grow downwards */
    y.p1 = 40;
    axes(&c, spec, &x, &y);
    if (spec->title) text(&c, (c.w - text_width(spec->title, 2)) / 2, 8, spec->title, 2, black);
    if (spec->x_label)
        text(&c, (x.p0 + x.p1 - text_width(spec->x_label, 1)) / 2, c.h - 18, spec->x_label, 1,
             black);
    if (spec->y_label) text(&c, 8, 28, spec->y_label, 1, black);
    for (size_t i = 0; i < n_series; i++) {
        int have = 0, px = 0, py = 0;
        for (size_t j = 0; j < s[i].n; j++) {
            double v = yval(spec, s[i].y[j]);
            if (!isfinite(v) || !isfinite(s[i].x[j])) {
                have = 0;
                continue;
            }
            int nx = to_px(&x, s[i].x[j]), ny = to_px(&y, v);
            if (have)
                line(&c, px, py, nx, ny, palette[i % N_COLOURS], 1);
            else
                line(&c, nx, ny, nx, ny, palette[i % N_COLOURS], 1);
            px = nx, py = ny, have = 1;
        }
    }
    legend(&c, s, n_series, x.p1, y.p1);
    int rc = write_png(path, &c, err);
    free(c.px);
    return rc;
}
