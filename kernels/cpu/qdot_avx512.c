/* Quantized dot products with AVX-512 VNNI: four weight blocks (128 values)
 * per step, in tiles of up to 2 rows x 8 tokens.
 *
 * vpdpbusd multiplies unsigned by signed bytes, so every weight type is
 * brought to unsigned values u:
 *   q4_1: u = nibble, w = d_w u + m;
 *   q4_0: u = nibble, w = d_w (u - 8);
 *   q8_0: u = q xor 0x80 = q + 128, w = d_w (u - 128).
 * Each block of a step owns 4 of the 16 int32 lanes: two vpdpbusd put its
 * first 16 values (vector A) and its last 16 (vector B) into the same lanes,
 * so a step ends with one int-to-float conversion, one scale and one FMA per
 * 128 products (the float work, not vpdpbusd, bounds prefill). For q4_0 and
 * q8_0 the offset's share, -8 sum(q_a) or -128 sum(q_a) spread over the 4
 * lanes, is the accumulator vpdpbusd starts from, so the integer sums come
 * out exact; q4_1 adds m * s / 4 per lane in float. Each lane is scaled by
 * d_w d_a and accumulated over the steps in order; the 16 lanes are summed
 * at the end (_mm512_reduce_add_ps). Every (row, token) pair of a tile does
 * exactly this, whatever the tile, so results do not depend on the batch.
 *
 * The activations are rearranged once per call to match (prepare_lanes):
 * per token and step, A and B (64 bytes each), d_a per lane and the offset
 * per lane (64 bytes each). A last step of fewer than four blocks reads the
 * weights with a byte mask and finds zeros in the activations' padding. */
#include <string.h>

#include "internal.h"

#ifdef K_HAVE_AVX512

#define INLINE static inline __attribute__((always_inline))

/* Bytes of a step of one token's activations: A, B, d_a, offsets. */
#define STEP_BYTES 256

static size_t lane_bytes(int64_t cols)
{
    int64_t steps = (cols / MM_QBLOCK + 3) / 4;
    return (size_t)steps * STEP_BYTES;
}

/* Token t's step layout from its plain quantized row. */
static void prepare_lanes(struct k_qact *a, int t, enum mm_dtype wtype)
{
    int64_t nb = a->cols / MM_QBLOCK;
    const int8_t *q = a->qs + (int64_t)t * a->cols;
    char *row = a->lanes + (int64_t)t * (int64_t)a->lane_stride;
    memset(row, 0, a->lane_stride);
    for (int64_t b = 0; b < nb; b++) {
        char *step = row + b / 4 * STEP_BYTES;
        int j = (int)(b % 4);
        memcpy(step + 16 * j, q + b * MM_QBLOCK, 16);
        memcpy(step + 64 + 16 * j, q + b * MM_QBLOCK + 16, 16);
        float *d4 = (float *)(step + 128) + 4 * j;
        float s4 = a->s[(int64_t)t * nb + b] * 0.25f;
        int sum = 0;
        for (int i = 0; i < MM_QBLOCK; i++)
            sum += q[b * MM_QBLOCK + i];
        /* the offset (8 or 128) times sum(q), a quarter per lane */
        int32_t off = wtype == MM_Q4_0 ? -2 * sum : -32 * sum;
        for (int l = 0; l < 4; l++) {
            d4[l] = a->d[(int64_t)t * nb + b];
            if (wtype == MM_Q4_1)
                memcpy(step + 192 + 16 * j + 4 * l, &s4, 4);
            else
                memcpy(step + 192 + 16 * j + 4 * l, &off, 4);
        }
    }
}

/* A step of one weight row: vectors A and B of u, d_w per lane and, for
 * q4_1, m per lane. */
struct wstep {
    __m512i ua, ub;
    __m512 dw, mw;
};

/* A mask of the first n bytes of a 64-byte load (n may be out of 0..64). */
INLINE __mmask64 first_bytes(int n)
{
    return n >= 64 ? ~0ull : n <= 0 ? 0 : (1ull << n) - 1;
}

/* q4_0 / q4_1: blocks of 18 / 20 bytes, nibbles qs[i] = elements i (low)
 * and i + 16 (high): the 16 bytes of each block side by side give A (low
 * nibbles) and B (high nibbles) at once. */
INLINE struct wstep load_q4(enum mm_dtype type, const uint8_t *p, int nblk)
{
    int bsz = type == MM_Q4_0 ? 18 : 20;
    __m512i r0 = _mm512_maskz_loadu_epi8(first_bytes(nblk * bsz), p);
    __m512i r1 = _mm512_maskz_loadu_epi8(first_bytes(nblk * bsz - 64), p + 64);
    /* byte 16j + i <- block j's qs[i], at bsz j + (bsz - 16) + i */
    __m512i idx;
    if (type == MM_Q4_0)
        idx = _mm512_set_epi8(71, 70, 69, 68, 67, 66, 65, 64, 63, 62, 61, 60, 59, 58, 57, 56, 53,
                              52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39, 38, 35, 34,
                              33, 32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 17, 16, 15,
                              14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2);
    else
        idx = _mm512_set_epi8(79, 78, 77, 76, 75, 74, 73, 72, 71, 70, 69, 68, 67, 66, 65, 64, 59,
                              58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 39, 38,
                              37, 36, 35, 34, 33, 32, 31, 30, 29, 28, 27, 26, 25, 24, 19, 18, 17,
                              16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4);
    __m512i g = _mm512_permutex2var_epi8(r0, idx, r1);
    struct wstep s;
    s.ua = _mm512_and_si512(g, _mm512_set1_epi8(0x0f));
    s.ub = _mm512_and_si512(_mm512_srli_epi16(g, 4), _mm512_set1_epi8(0x0f));
    /* words 0..15: d of block j in 4j..4j+3; 16..31: m likewise (q4_1) */
    __m512i widx;
    if (type == MM_Q4_0)
        widx = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 27, 27, 27, 27, 18,
                                18, 18, 18, 9, 9, 9, 9, 0, 0, 0, 0);
    else
        widx = _mm512_set_epi16(31, 31, 31, 31, 21, 21, 21, 21, 11, 11, 11, 11, 1, 1, 1, 1, 30, 30,
                                30, 30, 20, 20, 20, 20, 10, 10, 10, 10, 0, 0, 0, 0);
    __m512i h = _mm512_permutexvar_epi16(widx, r0);
    s.dw = _mm512_cvtph_ps(_mm512_castsi512_si256(h));
    s.mw = type == MM_Q4_1 ? _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1)) : _mm512_setzero_ps();
    return s;
}

/* q8_0: blocks of 34 bytes (d, then 32 values). A and B each gather 16-byte
 * pieces of the four blocks from a 128-byte window: A from bytes 0..127, B
 * from bytes 8..135. */
INLINE struct wstep load_q8(const uint8_t *p, int nblk)
{
    int len = nblk * 34;
    __m512i r0 = _mm512_maskz_loadu_epi8(first_bytes(len), p);
    __m512i r1 = _mm512_maskz_loadu_epi8(first_bytes(len - 64), p + 64);
    __m512i r2 = _mm512_maskz_loadu_epi8(first_bytes(len - 8), p + 8);
    __m512i r3 = _mm512_maskz_loadu_epi8(first_bytes(len - 72), p + 72);
    const __m512i ia = _mm512_set_epi8(
        119, 118, 117, 116, 115, 114, 113, 112, 111, 110, 109, 108, 107, 106, 105, 104, 85, 84, 83,
        82, 81, 80, 79, 78, 77, 76, 75, 74, 73, 72, 71, 70, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42,
        41, 40, 39, 38, 37, 36, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2);
    const __m512i ib = _mm512_set_epi8(
        127, 126, 125, 124, 123, 122, 121, 120, 119, 118, 117, 116, 115, 114, 113, 112, 93, 92, 91,
        90, 89, 88, 87, 86, 85, 84, 83, 82, 81, 80, 79, 78, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50,
        49, 48, 47, 46, 45, 44, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10);
    const __m512i sign = _mm512_set1_epi8((char)0x80);
    struct wstep s;
    s.ua = _mm512_xor_si512(_mm512_permutex2var_epi8(r0, ia, r1), sign);
    s.ub = _mm512_xor_si512(_mm512_permutex2var_epi8(r2, ib, r3), sign);
    /* d of block j: word 17j */
    const __m512i widx = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 51, 51,
                                          51, 51, 34, 34, 34, 34, 17, 17, 17, 17, 0, 0, 0, 0);
    s.dw = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutex2var_epi16(r0, widx, r1)));
    s.mw = _mm512_setzero_ps();
    return s;
}

/* One step (nblk blocks, from block 4k) of an NR x NT tile, prefetching
 * `ahead` bytes on (decode streams the weights from memory). NR and NT are
 * constants at every call site, so the loops unroll and the accumulators
 * stay in registers. */
INLINE void step(enum mm_dtype type, int NR, int NT, const uint8_t *w, size_t row_bytes,
                 size_t ahead, const char *act, size_t act_stride, int64_t k, int nblk,
                 __m512 acc[][8])
{
    int bsz = type == MM_Q8_0 ? 34 : type == MM_Q4_0 ? 18 : 20;
    struct wstep ws[2];
    for (int r = 0; r < NR; r++) {
        const uint8_t *p = w + r * row_bytes + k * 4 * bsz;
        k_prefetch_step((const char *)p + ahead, 4 * bsz);
        ws[r] = type == MM_Q8_0 ? load_q8(p, nblk) : load_q4(type, p, nblk);
    }
    for (int t = 0; t < NT; t++) {
        const char *s = act + t * act_stride + k * STEP_BYTES;
        __m512i qa = _mm512_load_si512(s), qb = _mm512_load_si512(s + 64);
        __m512 da = _mm512_load_ps((const float *)(s + 128));
        __m512i aux = _mm512_load_si512(s + 192);
        for (int r = 0; r < NR; r++) {
            __m512i start = type == MM_Q4_1 ? _mm512_setzero_si512() : aux;
            __m512i isum =
                _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(start, ws[r].ua, qa), ws[r].ub, qb);
            acc[r][t] =
                _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(ws[r].dw, da), acc[r][t]);
            if (type == MM_Q4_1)
                acc[r][t] = _mm512_fmadd_ps(ws[r].mw, _mm512_castsi512_ps(aux), acc[r][t]);
        }
    }
}

/* res[r * ld + t] = dot(row r, token t) for an NR x NT tile. */
INLINE void tile(enum mm_dtype type, int NR, int NT, const uint8_t *w, size_t row_bytes,
                 const struct k_qact *a, int t0, float *res, int ld)
{
    int64_t nb = a->cols / MM_QBLOCK;
    const char *act = a->lanes + (int64_t)t0 * (int64_t)a->lane_stride;
    __m512 acc[2][8];
    for (int r = 0; r < NR; r++)
        for (int t = 0; t < NT; t++)
            acc[r][t] = _mm512_setzero_ps();
    size_t ahead = k_prefetch_distance(row_bytes, NR);
    int64_t k = 0;
    for (; 4 * k + 4 <= nb; k++)
        step(type, NR, NT, w, row_bytes, ahead, act, a->lane_stride, k, 4, acc);
    if (4 * k < nb)
        step(type, NR, NT, w, row_bytes, ahead, act, a->lane_stride, k, (int)(nb - 4 * k), acc);
    for (int r = 0; r < NR; r++)
        for (int t = 0; t < NT; t++)
            res[r * ld + t] = _mm512_reduce_add_ps(acc[r][t]);
}

/* NR rows x nt tokens, cut into tiles of 8, 4, 2 and 1 tokens: the shapes
 * instantiated. */
INLINE void tile_tokens(enum mm_dtype type, int NR, const uint8_t *w, size_t row_bytes,
                        const struct k_qact *a, int t0, int nt, float *res)
{
    for (int j = 0; j < nt;) {
        int T = nt - j >= 8 ? 8 : nt - j >= 4 ? 4 : nt - j >= 2 ? 2 : 1;
        if (T == 8)
            tile(type, NR, 8, w, row_bytes, a, t0 + j, res + j, nt);
        else if (T == 4)
            tile(type, NR, 4, w, row_bytes, a, t0 + j, res + j, nt);
        else if (T == 2)
            tile(type, NR, 2, w, row_bytes, a, t0 + j, res + j, nt);
        else
            tile(type, NR, 1, w, row_bytes, a, t0 + j, res + j, nt);
        j += T;
    }
}

/* Rows in pairs, an odd last one alone. */
INLINE void tiles(enum mm_dtype type, const void *w, size_t row_bytes, int nr,
                  const struct k_qact *a, int t0, int nt, float *res)
{
    const uint8_t *p = w;
    int r = 0;
    for (; r + 2 <= nr; r += 2)
        tile_tokens(type, 2, p + r * row_bytes, row_bytes, a, t0, nt, res + r * nt);
    if (r < nr) tile_tokens(type, 1, p + r * row_bytes, row_bytes, a, t0, nt, res + r * nt);
}

/* The weight type becomes a constant inside, so the loops specialise. */
static void dot_tiles(enum mm_dtype type, const void *w, size_t row_bytes, int nr,
                      const struct k_qact *a, int t0, int nt, float *res)
{
    if (type == MM_Q8_0)
        tiles(MM_Q8_0, w, row_bytes, nr, a, t0, nt, res);
    else if (type == MM_Q4_0)
        tiles(MM_Q4_0, w, row_bytes, nr, a, t0, nt, res);
    else
        tiles(MM_Q4_1, w, row_bytes, nr, a, t0, nt, res);
}

/* Tiles of 2 rows x 8 tokens: 16 accumulators and the 2 rows' step (u for
 * A and B, d_w, m) in 24 of the 32 zmm registers (3 x 6 and 4 x 6 run as
 * fast). */
const struct k_qdot_impl k_qdot_avx512 = {
    .name = "avx512vnni",
    .rows = 2,
    .tokens = 8,
    .dot = dot_tiles,
    .lane_bytes = lane_bytes,
    .prepare_lanes = prepare_lanes,
};

#endif
