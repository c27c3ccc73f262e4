/* Block layouts of the weight dtypes, half-precision conversion, and
 * row-wise dequantization / quantization with GGML's rounding rules
 * (ggml-quants.c, quantize_row_*_ref), so that rows we write are the bytes
 * llama.cpp would write. */
#include "dtype.h"

#include <float.h>
#include <math.h>

#include "cpu/internal.h"

int mm_dtype_block_elems(enum mm_dtype t)
{
    switch (t) {
    case MM_Q8_0:
    case MM_Q4_0:
    case MM_Q4_1:
        return MM_QBLOCK;
    default:
        return 1;
    }
}

size_t mm_dtype_block_bytes(enum mm_dtype t)
{
    switch (t) {
    case MM_F32:
        return 4;
    case MM_F16:
    case MM_BF16:
        return 2;
    case MM_Q8_0:
        return sizeof(struct block_q8_0);
    case MM_Q4_0:
        return sizeof(struct block_q4_0);
    case MM_Q4_1:
        return sizeof(struct block_q4_1);
    default:
        return 0;
    }
}

size_t mm_dtype_row_bytes(enum mm_dtype t, int64_t n)
{
    return (size_t)(n / mm_dtype_block_elems(t)) * mm_dtype_block_bytes(t);
}

const char *mm_dtype_name(enum mm_dtype t)
{
    switch (t) {
    case MM_F32:
        return "f32";
    case MM_F16:
        return "f16";
    case MM_BF16:
        return "bf16";
    case MM_Q8_0:
        return "q8_0";
    case MM_Q4_0:
        return "q4_0";
    case MM_Q4_1:
        return "q4_1";
    default:
        return "unknown";
    }
}

float k_f16_to_f32_portable(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24 is exact in f32 */
        float f = (float)mant * 0x1p-24f;
        memcpy(&bits, &f, sizeof(bits));
        bits |= sign;
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13); /* inf, NaN keeps its payload */
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

uint16_t k_f32_to_f16_portable(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof(x));
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) /* NaN: quiet it and keep the top of the payload, as F16C does */
        return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    if (ax >= 0x477ff000u) /* at or past 65520, halfway between 65504 and 2^16: inf */
        return (uint16_t)(sign | 0x7c00u);
    if (ax < 0x38800000u) {
        /* below 2^-14, the result is subnormal: adding 0.5 puts the value's
         * bits at the f16 subnormal unit 2^-24 in the low mantissa bits, and
         * the float addition rounds to nearest even for us. */
        float t;
        memcpy(&t, &ax, sizeof(t));
        t += 0.5f;
        uint32_t u;
        memcpy(&u, &t, sizeof(u));
        return (uint16_t)(sign | (u - 0x3f000000u));
    }
    /* normal: rebias the exponent and round the 13 dropped bits to nearest
     * even (0xfff plus the lowest kept bit carries exactly when it should). */
    uint32_t odd = (ax >> 13) & 1u;
    ax += ((uint32_t)(15 - 127) << 23) + 0xfffu + odd;
    return (uint16_t)(sign | (ax >> 13));
}

float mm_f16_to_f32(uint16_t h)
{
    return k_f16_to_f32(h);
}

uint16_t mm_f32_to_f16(float f)
{
#ifdef __F16C__
    return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
#else
    return k_f32_to_f16_portable(f);
#endif
}

static void dequantize_f16(const uint16_t *src, float *dst, int64_t n)
{
    int64_t i = 0;
#ifdef __F16C__
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
#endif
    for (; i < n; i++)
        dst[i] = k_f16_to_f32(src[i]);
}

void mm_dequantize_row(enum mm_dtype t, const void *src, float *dst, int64_t n)
{
    int64_t nb = n / MM_QBLOCK;
    switch (t) {
    case MM_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        break;
    case MM_F16: {
        const uint16_t *h = src;
        dequantize_f16(h, dst, n);
        break;
    }
    case MM_BF16: {
        const uint16_t *h = src;
        for (int64_t i = 0; i < n; i++)
            dst[i] = mm_bf16_to_f32(h[i]);
        break;
    }
    case MM_Q8_0: {
        const struct block_q8_0 *b = src;
        for (int64_t i = 0; i < nb; i++) {
            float d = k_f16_to_f32(b[i].d);
            for (int j = 0; j < MM_QBLOCK; j++)
                dst[i * MM_QBLOCK + j] = d * (float)b[i].qs[j];
        }
        break;
    }
    case MM_Q4_0: {
        const struct block_q4_0 *b = src;
        for (int64_t i = 0; i < nb; i++) {
            float d = k_f16_to_f32(b[i].d);
            float *y = dst + i * MM_QBLOCK;
            for (int j = 0; j < MM_QBLOCK / 2; j++) {
                y[j] = d * (float)((b[i].qs[j] & 0x0f) - 8);
                y[j + MM_QBLOCK / 2] = d * (float)((b[i].qs[j] >> 4) - 8);
            }
        }
        break;
    }
    case MM_Q4_1: {
        const struct block_q4_1 *b = src;
        for (int64_t i = 0; i < nb; i++) {
            float d = k_f16_to_f32(b[i].d);
            float m = k_f16_to_f32(b[i].m);
            float *y = dst + i * MM_QBLOCK;
            for (int j = 0; j < MM_QBLOCK / 2; j++) {
                y[j] = d * (float)(b[i].qs[j] & 0x0f) + m;
                y[j + MM_QBLOCK / 2] = d * (float)(b[i].qs[j] >> 4) + m;
            }
        }
        break;
    }
    default:
        break;
    }
}

/* GGML: d = amax / 127, x scaled by the reciprocal of d (not divided by d:
 * the results differ in the last bit), rounded half away from zero. */
static void quantize_q8_0(const float *x, struct block_q8_0 *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += MM_QBLOCK) {
        float amax = 0.0f;
        for (int j = 0; j < MM_QBLOCK; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = mm_f32_to_f16(d);
        for (int j = 0; j < MM_QBLOCK; j++)
            y[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

/* GGML: the scale maps the value of largest magnitude (first one on ties,
 * keeping its sign) to -8, so it uses the full [-8, 7] range. */
static void quantize_q4_0(const float *x, struct block_q4_0 *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += MM_QBLOCK) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < MM_QBLOCK; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        float d = max / -8.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = mm_f32_to_f16(d);
        for (int j = 0; j < MM_QBLOCK / 2; j++) {
            int8_t lo = (int8_t)(x[j] * id + 8.5f);
            int8_t hi = (int8_t)(x[j + MM_QBLOCK / 2] * id + 8.5f);
            uint8_t q0 = (uint8_t)(lo < 15 ? lo : 15);
            uint8_t q1 = (uint8_t)(hi < 15 ? hi : 15);
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

static void quantize_q4_1(const float *x, struct block_q4_1 *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += MM_QBLOCK) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < MM_QBLOCK; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        float d = (max - min) / 15.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = mm_f32_to_f16(d);
        y[i].m = mm_f32_to_f16(min);
        for (int j = 0; j < MM_QBLOCK / 2; j++) {
            int8_t lo = (int8_t)((x[j] - min) * id + 0.5f);
            int8_t hi = (int8_t)((x[j + MM_QBLOCK / 2] - min) * id + 0.5f);
            uint8_t q0 = (uint8_t)(lo < 15 ? lo : 15);
            uint8_t q1 = (uint8_t)(hi < 15 ? hi : 15);
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void mm_quantize_row(enum mm_dtype t, const float *src, void *dst, int64_t n)
{
    int64_t nb = n / MM_QBLOCK;
    switch (t) {
    case MM_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        break;
    case MM_F16: {
        uint16_t *h = dst;
        for (int64_t i = 0; i < n; i++)
            h[i] = mm_f32_to_f16(src[i]);
        break;
    }
    case MM_BF16: {
        uint16_t *h = dst;
        for (int64_t i = 0; i < n; i++)
            h[i] = mm_f32_to_bf16(src[i]);
        break;
    }
    case MM_Q8_0:
        quantize_q8_0(src, dst, nb);
        break;
    case MM_Q4_0:
        quantize_q4_0(src, dst, nb);
        break;
    case MM_Q4_1:
        quantize_q4_1(src, dst, nb);
        break;
    default:
        break;
    }
}
