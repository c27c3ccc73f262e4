/* dtype.c against numpy's IEEE half conversion and llama.cpp's quantizers
 * (the gguf package): bit-exact, plus the F16C path against the portable
 * one over every half and a sweep of floats. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cpu/internal.h"
#include "test_kernels_fixture.h"

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

static void test_layouts(void)
{
    CHECK(sizeof(struct block_q8_0) == 34);
    CHECK(sizeof(struct block_q4_0) == 18);
    CHECK(sizeof(struct block_q4_1) == 20);
    CHECK(mm_dtype_row_bytes(MM_F32, 10) == 40);
    CHECK(mm_dtype_row_bytes(MM_BF16, 10) == 20);
    CHECK(mm_dtype_row_bytes(MM_Q8_0, 64) == 68);
    CHECK(mm_dtype_row_bytes(MM_Q4_1, 96) == 60);
    CHECK(mm_dtype_block_elems(MM_Q4_0) == 32 && mm_dtype_block_elems(MM_F16) == 1);
    CHECK(!strcmp(mm_dtype_name(MM_Q4_1), "q4_1") && !strcmp(mm_dtype_name(MM_BF16), "bf16"));
}

static void test_f16(struct fx *f)
{
    size_t n;
    float *x = fx_tensor(f, "f16_from_f32", "x", &n);
    uint16_t *h = fx_tensor(f, "f16_from_f32", "h", NULL);
    int bad = 0, bad_portable = 0;
    for (size_t i = 0; i < n; i++) {
        bad += mm_f32_to_f16(x[i]) != h[i];
        bad_portable += k_f32_to_f16_portable(x[i]) != h[i];
        if (mm_f32_to_f16(x[i]) != h[i] && bad < 5)
            fprintf(stderr, "f32 %a -> %04x, numpy %04x\n", (double)x[i], mm_f32_to_f16(x[i]),
                    h[i]);
    }
    CHECKF(bad == 0, "%d of %zu f32 -> f16 differ from numpy", bad, n);
    CHECKF(bad_portable == 0, "%d of %zu portable f32 -> f16 differ from numpy", bad_portable, n);
    free(x);
    free(h);

    h = fx_tensor(f, "f16_to_f32", "h", &n);
    x = fx_tensor(f, "f16_to_f32", "x", NULL);
    bad = bad_portable = 0;
    for (size_t i = 0; i < n; i++) {
        bad += bits(mm_f16_to_f32(h[i])) != bits(x[i]);
        bad_portable += bits(k_f16_to_f32_portable(h[i])) != bits(x[i]);
    }
    CHECKF(bad == 0 && bad_portable == 0, "f16 -> f32 differ from numpy: %d, portable %d", bad,
           bad_portable);
    free(x);
    free(h);

    /* every half: the portable conversion equals the library one (F16C when
     * built with it), and converting back gives the same half; NaNs stay
     * NaNs of the same sign */
    bad = 0;
    for (uint32_t i = 0; i < 65536; i++) {
        float a = mm_f16_to_f32((uint16_t)i), b = k_f16_to_f32_portable((uint16_t)i);
        int nan = (i & 0x7c00) == 0x7c00 && (i & 0x3ff);
        if (nan) {
            bad += !isnan(a) || !isnan(b) || signbit(a) != signbit(b) ||
                   (mm_f32_to_f16(a) & 0x8200) != (i & 0x8000) + 0x200;
        } else {
            bad += bits(a) != bits(b) || mm_f32_to_f16(a) != i || k_f32_to_f16_portable(b) != i;
        }
    }
    CHECKF(bad == 0, "%d halves convert inconsistently", bad);

    /* a sweep of float bit patterns (all exponents, many mantissas) */
    bad = 0;
    for (uint64_t u = 0; u < 0x100000000ull; u += 4093) {
        float v = from_bits((uint32_t)u);
        if (isnan(v)) continue;
        bad += mm_f32_to_f16(v) != k_f32_to_f16_portable(v);
    }
    CHECKF(bad == 0, "%d floats convert differently on the two f16 paths", bad);
}

static void test_bf16(struct fx *f)
{
    size_t n;
    float *x = fx_tensor(f, "bf16", "x", &n);
    uint16_t *h = fx_tensor(f, "bf16", "h", NULL);
    uint16_t *got = malloc(n * sizeof(*got));
    float *back = malloc(n * sizeof(*back));
    mm_quantize_row(MM_BF16, x, got, (int64_t)n);
    mm_dequantize_row(MM_BF16, got, back, (int64_t)n);
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        bad += got[i] != h[i];
        bad += bits(back[i]) != (uint32_t)h[i] << 16;
    }
    CHECKF(bad == 0, "%d bf16 conversions differ from gguf", bad);
    free(x);
    free(h);
    free(got);
    free(back);
}

static void test_quant(struct fx *f, const char *name, enum mm_dtype t)
{
    int rows = fx_int(f, name, "rows"), cols = fx_int(f, name, "cols");
    size_t nq;
    float *x = fx_tensor(f, name, "x", NULL);
    uint8_t *q = fx_tensor(f, name, "q", &nq);
    float *deq = fx_tensor(f, name, "deq", NULL);
    size_t rb = mm_dtype_row_bytes(t, cols);
    REQUIRE(nq == rb * (size_t)rows, "%s: %zu bytes of q, expected %zu", name, nq, rb * rows);
    uint8_t *got = malloc(nq);
    float *back = malloc((size_t)rows * cols * sizeof(float));
    for (int r = 0; r < rows; r++) {
        mm_quantize_row(t, x + r * cols, got + r * rb, cols);
        mm_dequantize_row(t, q + r * rb, back + r * cols, cols);
    }
    int bad_bytes = 0;
    for (size_t i = 0; i < nq; i++)
        bad_bytes += got[i] != q[i];
    CHECKF(bad_bytes == 0, "%s: %d quantized bytes differ from gguf", name, bad_bytes);
    int bad = 0;
    for (int i = 0; i < rows * cols; i++)
        bad += bits(back[i]) != bits(deq[i]);
    CHECKF(bad == 0, "%s: %d dequantized values differ from gguf", name, bad);
    free(x);
    free(q);
    free(deq);
    free(got);
    free(back);
}

/* f32 and f16 rows survive a quantize/dequantize round trip exactly when
 * the values are representable. */
static void test_float_rows(void)
{
    float x[40], y[40];
    uint16_t h[40];
    for (int i = 0; i < 40; i++)
        x[i] = (float)(i - 20) * 0.125f;
    mm_quantize_row(MM_F32, x, y, 40);
    CHECK(memcmp(x, y, sizeof(x)) == 0);
    mm_quantize_row(MM_F16, x, h, 40);
    mm_dequantize_row(MM_F16, h, y, 40);
    CHECK(memcmp(x, y, sizeof(x)) == 0);
}

int main(void)
{
    struct fx *f = fx_open();
    test_layouts();
    test_f16(f);
    test_bf16(f);
    test_quant(f, "quant_q8_0", MM_Q8_0);
    test_quant(f, "quant_q4_0", MM_Q4_0);
    test_quant(f, "quant_q4_1", MM_Q4_1);
    test_float_rows();
    fx_close(f);
    return check_report("test_kernels_dtype");
}
