/* plot_png_write's charts read back with libpng: the size, a white
 * background, each series inside the frame of the plot area and where its
 * data says (a rising series low on the left and high on the right, a gap
 * where a y is NAN, a straight line for an exponential on a log axis, a dot
 * for a single point), a legend swatch per series, text in the title band
 * only when there is a title; bad input fails naming the path and leaves no
 * file. */
#include <dirent.h>
#include <math.h>
#include <png.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "plot_png.h"

static const uint8_t white[3] = {255, 255, 255}, black[3] = {0, 0, 0};
#define BLUE plot_colours[0]
#define ORANGE plot_colours[1]
#define GREEN plot_colours[2]

struct image {
    int w, h;
    uint8_t *px;
};

static struct image read_png(const char *path)
{
    png_image img;
    memset(&img, 0, sizeof(img));
    img.version = PNG_IMAGE_VERSION;
    REQUIRE(png_image_begin_read_from_file(&img, path), "%s: %s", path, img.message);
    img.format = PNG_FORMAT_RGB;
    struct image im = {(int)img.width, (int)img.height, malloc(PNG_IMAGE_SIZE(img))};
    REQUIRE(im.px && png_image_finish_read(&img, NULL, im.px, 0, NULL), "%s: %s", path,
            img.message);
    return im;
}

static int is(const struct image *im, int x, int y, const uint8_t *rgb)
{
    return memcmp(im->px + ((size_t)y * im->w + x) * 3, rgb, 3) == 0;
}

/* Pixels of colour rgb in [x0, x1) x [y0, y1). */
static int count(const struct image *im, int x0, int x1, int y0, int y1, const uint8_t *rgb)
{
    int n = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            n += is(im, x, y, rgb);
    return n;
}

/* The mean row of colour rgb in columns [x0, x1), -1 if none. */
static double mean_row(const struct image *im, int x0, int x1, const uint8_t *rgb)
{
    double sum = 0;
    int n = 0;
    for (int y = 0; y < im->h; y++)
        for (int x = x0; x < x1; x++)
            if (is(im, x, y, rgb)) sum += y, n++;
    return n ? sum / n : -1;
}

/* The bounding box of colour rgb; 0 if it is nowhere. */
static int extent(const struct image *im, const uint8_t *rgb, int *x0, int *x1, int *y0, int *y1)
{
    *x0 = *y0 = 1 << 30;
    *x1 = *y1 = -1;
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++)
            if (is(im, x, y, rgb)) {
                *x0 = x < *x0 ? x : *x0, *x1 = x > *x1 ? x : *x1;
                *y0 = y < *y0 ? y : *y0, *y1 = y > *y1 ? y : *y1;
            }
    return *x1 >= 0;
}

/* The plot area's frame: the black rows and columns more than half the
 * image long (the top and bottom edges, the left and right edges). */
static void frame(const struct image *im, int *left, int *right, int *top, int *bottom)
{
    *left = *top = 1 << 30;
    *right = *bottom = -1;
    for (int y = 0; y < im->h; y++)
        if (count(im, 0, im->w, y, y + 1, black) > im->w / 2)
            *top = y < *top ? y : *top, *bottom = y > *bottom ? y : *bottom;
    for (int x = 0; x < im->w; x++)
        if (count(im, x, x + 1, 0, im->h, black) > im->h / 2)
            *left = x < *left ? x : *left, *right = x > *right ? x : *right;
}

/* Whether a row holds a horizontal run of at least len pixels of rgb: a
 * legend swatch (the series here are never that flat). */
static int has_run(const struct image *im, const uint8_t *rgb, int len)
{
    for (int y = 0; y < im->h; y++)
        for (int x = 0, run = 0; x < im->w; x++) {
            run = is(im, x, y, rgb) ? run + 1 : 0;
            if (run >= len) return 1;
        }
    return 0;
}

static int files_in(const char *dir)
{
    DIR *d = opendir(dir);
    REQUIRE(d, "%s", dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

/* A rising and a falling series (with a gap at x = 20), no legend: where
 * the lines are. */
static void lines_where_the_data_says(const char *path)
{
    double x[50], up[50], down[50];
    for (int i = 0; i < 50; i++) {
        x[i] = i;
        up[i] = i * 0.5;
        down[i] = i == 20 ? NAN : 25 - i * 0.5;
    }
    struct plot_series s[2] = {{NULL, x, up, 50}, {NULL, x, down, 50}};
    struct plot_spec spec = {"a title", "step", "loss", 640, 400, 0};
    struct mm_err err = {{0}};
    CHECKF(plot_png_write(path, &spec, s, 2, &err) == 0, "%s", err.msg);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0644);
    struct image im = read_png(path);
    CHECK(im.w == 640 && im.h == 400);
    CHECK(is(&im, 0, 0, white) && is(&im, im.w - 1, im.h - 1, white));
    CHECKF(count(&im, 0, im.w, 0, im.h, white) > im.w * im.h * 3 / 4, "background not white");

    int left, right, top, bottom;
    frame(&im, &left, &right, &top, &bottom);
    CHECKF(left > 20 && right < im.w - 5 && top > 20 && bottom < im.h - 20 && right - left > 400 &&
               bottom - top > 200,
           "frame %d..%d x %d..%d", left, right, top, bottom);
    int x0, x1, y0, y1;
    const uint8_t *colours[2] = {BLUE, ORANGE};
    for (int i = 0; i < 2; i++) {
        CHECK(extent(&im, colours[i], &x0, &x1, &y0, &y1));
        CHECKF(x0 > left && x1 < right && y0 > top && y1 < bottom, "series %d outside the frame",
               i);
        /* the data fills most of the area */
        CHECK(x1 - x0 > (right - left) * 8 / 10 && y1 - y0 > (bottom - top) * 8 / 10);
    }
    /* the rising series: from the bottom left to the top right, straight;
     * its extent gives the pixels of x = 0 and 49, y = 0 and 24.5 */
    extent(&im, BLUE, &x0, &x1, &y0, &y1);
    int px10 = x0 + (int)lround((x1 - x0) * 10 / 49.0);
    double row10 = mean_row(&im, px10, px10 + 1, BLUE), want = y1 - (y1 - y0) * 5 / 24.5;
    CHECKF(fabs(row10 - want) < 4, "rising series at x = 10: row %g, want %g", row10, want);
    double l = mean_row(&im, x0, x0 + 50, BLUE), r = mean_row(&im, x1 - 50, x1, BLUE);
    CHECKF(l > r + 100, "rising series rows: left %g, right %g", l, r);
    l = mean_row(&im, x0, x0 + 50, ORANGE);
    r = mean_row(&im, x1 - 50, x1, ORANGE);
    CHECKF(l + 100 < r, "falling series rows: left %g, right %g", l, r);
    /* the gap: nothing between x = 19 and 21, the line on either side */
    double px_per_x = (x1 - x0) / 49.0;
    int gap0 = x0 + (int)(19 * px_per_x) + 3, gap1 = x0 + (int)(21 * px_per_x) - 2;
    CHECKF(gap1 - gap0 > 10 && count(&im, gap0, gap1, top, bottom, ORANGE) == 0,
           "the falling series has no gap at x = 20 (columns %d..%d)", gap0, gap1);
    CHECK(count(&im, gap0 - 8, gap0 - 3, top, bottom, ORANGE) > 0);
    CHECK(count(&im, gap1 + 3, gap1 + 8, top, bottom, ORANGE) > 0);

    /* text: the title centred above the area, tick labels left of and below it */
    CHECKF(count(&im, im.w / 4, im.w * 3 / 4, 0, top - 12, black) > 50, "no title");
    CHECKF(count(&im, 0, left - 5, top, bottom, black) > 50, "no y tick labels");
    CHECKF(count(&im, left, right, bottom + 6, im.h, black) > 50, "no x tick labels");
    /* no legend without labels */
    CHECK(!has_run(&im, BLUE, 16) && !has_run(&im, ORANGE, 16));
    free(im.px);
}

/* Labels make a legend; no title leaves the title band empty; on a log
 * axis 10^(-x/10) is a straight line; a single point is a dot. */
static void legend_log_axis_and_a_dot(const char *path)
{
    double x[31], y[31], one_x = 15, one_y = 1;
    for (int i = 0; i <= 30; i++) {
        x[i] = i;
        y[i] = pow(10.0, -i / 10.0);
    }
    struct plot_series s[3] = {
        {"exponential", x, y, 31}, {"nothing", x, NULL, 0}, {"one point", &one_x, &one_y, 1}};
    struct plot_spec spec = {NULL, "x", "10^(-x/10)", 0, 0, 1};
    struct mm_err err = {{0}};
    CHECKF(plot_png_write(path, &spec, s, 3, &err) == 0, "%s", err.msg);
    struct image im = read_png(path);
    CHECK(im.w == 800 && im.h == 500);
    int left, right, top, bottom;
    frame(&im, &left, &right, &top, &bottom);
    CHECKF(count(&im, im.w / 4, im.w * 3 / 4, 0, top - 12, black) == 0, "text where no title is");
    CHECK(has_run(&im, BLUE, 16) && has_run(&im, GREEN, 16));

    /* straight: halfway along, halfway down (on a linear axis it would be
     * at a tenth of the height above the bottom) */
    int x0, x1, y0, y1;
    CHECK(extent(&im, BLUE, &x0, &x1, &y0, &y1));
    int mid = (x0 + x1) / 2;
    double row = mean_row(&im, mid, mid + 1, BLUE);
    CHECKF(fabs(row - (y0 + y1) / 2.0) < 5, "x = 15 at row %g, ends at %d and %d", row, y0, y1);

    /* the dot: a disc of the third colour at x = 15, y = 1 (above the line,
     * which reaches 1 at x = 0) */
    int inside = 0;
    for (int yy = top + 1; yy < bottom; yy++)
        for (int xx = left + 1; xx < right; xx++)
            inside += is(&im, xx, yy, GREEN) && abs(xx - mid) < 10 && abs(yy - y0) < 10;
    CHECKF(inside >= 20, "%d pixels of the single point's dot", inside);
    free(im.px);
}

/* Text longer than the chart is wide (title, labels, a legend wider than
 * the plot area) and characters beyond ASCII are clipped, not refused. */
static void long_text(const char *path)
{
    char text[600];
    memset(text, 'W', sizeof(text) - 1);
    text[sizeof(text) - 1] = 0;
    memcpy(text, "na\xc3\xafve ", 7);
    double x[2] = {0, 1}, y[2] = {1, 2};
    struct plot_series s[2] = {{text, x, y, 2}, {"short", x, x, 2}};
    struct plot_spec spec = {text, text, text, 200, 150, 0};
    struct mm_err err = {{0}};
    CHECKF(plot_png_write(path, &spec, s, 2, &err) == 0, "%s", err.msg);
    struct image im = read_png(path);
    CHECK(im.w == 200 && im.h == 150 && count(&im, 0, im.w, 0, im.h, BLUE) > 0);
    free(im.px);
}

static void bad_input(const char *dir, const char *path)
{
    double x[3] = {0, 1, 2}, y[3] = {1, 2, 3}, nan_y[3] = {NAN, NAN, NAN}, neg_y[3] = {0, -1, -2};
    double huge_x[2] = {-1e308, 1e308};
    struct plot_series good = {"good", x, y, 3};
    struct plot_spec spec = {"t", "x", "y", 320, 200, 0}, log_spec = spec, tiny = spec;
    log_spec.log_y = 1;
    tiny.width = 100;
    struct {
        const char *what;
        const struct plot_spec *spec;
        struct plot_series s;
        size_t n_series;
        const char *message;
    } cases[] = {
        {"no series", &spec, good, 0, "no series"},
        {"all NAN", &spec, {"nan", x, nan_y, 3}, 1, "nothing to plot"},
        {"no positive y on a log axis", &log_spec, {"neg", x, neg_y, 3}, 1, "positive"},
        {"x too wide", &spec, {"huge", huge_x, y, 2}, 1, "too wide"},
        {"no y array", &spec, {"null", x, NULL, 3}, 1, "no x or y"},
        {"too small", &tiny, good, 1, "outside"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mm_err err = {{0}};
        int rc = plot_png_write(path, cases[i].spec, &cases[i].s, cases[i].n_series, &err);
        CHECKF(rc == -1 && strstr(err.msg, path) && strstr(err.msg, cases[i].message),
               "%s: rc %d, \"%s\"", cases[i].what, rc, err.msg);
    }
    CHECKF(files_in(dir) == 0, "a failed chart left a file in %s", dir);

    /* a folder that cannot be made: its parent is a file */
    char parent[300], inside[320];
    snprintf(parent, sizeof(parent), "%s/plain", dir);
    snprintf(inside, sizeof(inside), "%s/c.png", parent);
    FILE *f = fopen(parent, "w");
    REQUIRE(f, "%s", parent);
    fclose(f);
    struct mm_err err = {{0}};
    CHECKF(plot_png_write(inside, &spec, &good, 1, &err) == -1 && strstr(err.msg, inside), "\"%s\"",
           err.msg);
    CHECK(files_in(dir) == 1);
    unlink(parent);
}

int main(void)
{
    char dir[] = "/tmp/memllm_plot_XXXXXX", path[256];
    REQUIRE(mkdtemp(dir), "mkdtemp");
    snprintf(path, sizeof(path), "%s/chart.png", dir);
    lines_where_the_data_says(path);
    CHECK(unlink(path) == 0);
    legend_log_axis_and_a_dot(path);
    CHECK(unlink(path) == 0);
    long_text(path);
    CHECK(unlink(path) == 0);
    bad_input(dir, path);
    CHECK(rmdir(dir) == 0);
    return check_report("test_plot_png");
}
