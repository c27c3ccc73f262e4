/* plot_png_write's charts read back with libpng: size, a white background,
 * each series' colour where its data says (a rising series low on the left
 * and high on the right), text in the title band; bad input fails with the
 * path named and leaves no file. */
#include <math.h>
#include <png.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "plot_png.h"

static uint8_t *read_png(const char *path, int *w, int *h)
{
    png_image img;
    memset(&img, 0, sizeof(img));
    img.version = PNG_IMAGE_VERSION;
    REQUIRE(png_image_begin_read_from_file(&img, path), "%s: %s", path, img.message);
    img.format = PNG_FORMAT_RGB;
    uint8_t *px = malloc(PNG_IMAGE_SIZE(img));
    REQUIRE(px && png_image_finish_read(&img, NULL, px, 0, NULL), "%s: %s", path, img.message);
    *w = (int)img.width;
    *h = (int)img.height;
    return px;
}

/* The mean row of the pixels of colour rgb in columns [x0, x1), -1 if none. */
static double mean_row(const uint8_t *px, int w, int h, int x0, int x1, const uint8_t *rgb)
{
    double sum = 0;
    int n = 0;
    for (int y = 0; y < h; y++)
        for (int x = x0; x < x1; x++)
            if (!memcmp(px + ((size_t)y * w + x) * 3, rgb, 3)) sum += y, n++;
    return n ? sum / n : -1;
}

int main(void)
{
    char dir[] = "/tmp/memllm_plot_XXXXXX", path[256];
    REQUIRE(mkdtemp(dir), "mkdtemp");
    snprintf(path, sizeof(path), "%s/chart.png", dir);
    double x[50], up[50], down[50];
    for (int i = 0; i < 50; i++) {
        x[i] = i;
        up[i] = i * 0.5;
        down[i] = i == 20 ? NAN : 25 - i * 0.5; /* a gap at 20 */
    }
    struct plot_series s[2] = {{"rising", x, up, 50}, {"falling", x, down, 50}};
    struct plot_spec spec = {"a title", "step", "loss", 640, 400, 0};
    struct mm_err err = {{0}};
    CHECKF(plot_png_write(path, &spec, s, 2, &err) == 0, "%s", err.msg);
    int w, h;
    uint8_t *px = read_png(path, &w, &h);
    CHECK(w == 640 && h == 400);
    static const uint8_t white[3] = {255, 255, 255}, black[3] = {0, 0, 0};
    static const uint8_t blue[3] = {31, 119, 180}, orange[3] = {255, 127, 14};
    CHECK(!memcmp(px + ((size_t)(h - 2) * w + w - 2) * 3, white, 3));
    /* the rising series: low on screen (large row) at the left, high at the right */
    double l = mean_row(px, w, h, 90, 200, blue), r = mean_row(px, w, h, 450, 560, blue);
    CHECKF(l > 0 && r > 0 && l > r + 100, "rising series rows: left %g, right %g", l, r);
    l = mean_row(px, w, h, 90, 200, orange);
    r = mean_row(px, w, h, 450, 560, orange);
    CHECKF(l > 0 && r > 0 && l + 100 < r, "falling series rows: left %g, right %g", l, r);
    CHECKF(mean_row(px, w, h, 0, w, black) > 0, "no text or axes drawn");
    int title = 0;
    for (int y = 0; y < 30; y++)
        for (int xx = 0; xx < w; xx++)
            title += !memcmp(px + ((size_t)y * w + xx) * 3, black, 3);
    CHECKF(title > 50, "%d title pixels", title);
    free(px);
    unlink(path);

    /* nothing to plot, or an unwritable place: an error naming the path, no file */
    double nan_y[3] = {NAN, NAN, NAN};
    struct plot_series empty = {"nan", x, nan_y, 3};
    CHECK(plot_png_write(path, &spec, &empty, 1, &err) == -1 && strstr(err.msg, path));
    CHECK(plot_png_write(path, &spec, s, 0, &err) == -1);
    CHECK(access(path, F_OK) != 0);
    CHECK(plot_png_write("/nonexistent/dir/c.png", &spec, s, 2, &err) == -1 &&
          strstr(err.msg, "/nonexistent/dir/c.png"));
    rmdir(dir);
    return check_report("test_plot_png");
}
