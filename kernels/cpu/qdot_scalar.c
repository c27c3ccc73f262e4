/* Portable dot products of quantized weight rows with quantized activations:
 * the reference the SIMD versions are tested against, and the code path on
 * CPUs without them. Written the plain way (signed weights, one block at a
 * time), not with the SIMD versions' offset tricks, so the two are
 * independent. */
#include "internal.h"

static float dot_q8_0(const void *w, const struct k_qact *a, int t)
{
    const struct block_q8_0 *wb = w;
    int64_t nb = a->cols / MM_QBLOCK;
    const int8_t *q = a->qs + (int64_t)t * a->cols;
    const float *d = a->d + (int64_t)t * nb;
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        int isum = 0;
        for (int i = 0; i < MM_QBLOCK; i++)
            isum += wb[b].qs[i] * q[b * MM_QBLOCK + i];
        sum += k_f16_to_f32(wb[b].d) * d[b] * (float)isum;
    }
    return sum;
}

static float dot_q4_0(const void *w, const struct k_qact *a, int t)
{
    const struct block_q4_0 *wb = w;
    int64_t nb = a->cols / MM_QBLOCK;
    const int8_t *q = a->qs + (int64_t)t * a->cols;
    const float *d = a->d + (int64_t)t * nb;
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        const int8_t *qb = q + b * MM_QBLOCK;
        int isum = 0;
        for (int i = 0; i < MM_QBLOCK / 2; i++) {
            isum += ((wb[b].qs[i] & 0x0f) - 8) * qb[i];
            isum += ((wb[b].qs[i] >> 4) - 8) * qb[i + MM_QBLOCK / 2];
        }
        sum += k_f16_to_f32(wb[b].d) * d[b] * (float)isum;
    }
    return sum;
}

static float dot_q4_1(const void *w, const struct k_qact *a, int t)
{
    const struct block_q4_1 *wb = w;
    int64_t nb = a->cols / MM_QBLOCK;
    const int8_t *q = a->qs + (int64_t)t * a->cols;
    const float *d = a->d + (int64_t)t * nb;
    const float *s = a->s + (int64_t)t * nb;
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        const int8_t *qb = q + b * MM_QBLOCK;
        int isum = 0;
        for (int i = 0; i < MM_QBLOCK / 2; i++) {
            isum += (wb[b].qs[i] & 0x0f) * qb[i];
            isum += (wb[b].qs[i] >> 4) * qb[i + MM_QBLOCK / 2];
        }
        /* sum_i (d_w n_i + m)(d_a q_i) = d_w d_a sum(n q) + m s */
        sum += k_f16_to_f32(wb[b].d) * d[b] * (float)isum + k_f16_to_f32(wb[b].m) * s[b];
    }
    return sum;
}

/* A tile is every (row, token) pair in turn: res[r * nt + j]. */
static void dot_tiles(enum mm_dtype type, const void *w, size_t row_bytes, int nr,
                      const struct k_qact *a, int t0, int nt, float *res)
{
    float (*dot)(const void *, const struct k_qact *, int) = type == MM_Q8_0   ? dot_q8_0
                                                             : type == MM_Q4_0 ? dot_q4_0
                                                                               : dot_q4_1;
    for (int r = 0; r < nr; r++)
        for (int j = 0; j < nt; j++)
            res[r * nt + j] = dot((const char *)w + r * row_bytes, a, t0 + j);
}

const struct k_qdot_impl k_qdot_scalar = {
    .name = "scalar",
    .rows = 4,
    .tokens = 4,
    .dot = dot_tiles,
};
