/* The matmul paths against PyTorch (x @ W^T in float64 with the weights
 * exactly as stored, from tools/make_op_fixtures.py), the SIMD dot products
 * against the portable ones, and batch invariance: a token's outputs are the
 * same bits whatever else shares its call. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cpu/internal.h"
#include "test_kernels_fixture.h"

static enum mm_dtype dtype_named(const char *s)
{
    for (int t = 0; t < MM_DTYPE_COUNT; t++)
        if (!strcmp(mm_dtype_name((enum mm_dtype)t), s)) return (enum mm_dtype)t;
    REQUIRE(0, "unknown dtype %s", s);
}

static int is_quant(enum mm_dtype t)
{
    return t == MM_Q8_0 || t == MM_Q4_0 || t == MM_Q4_1;
}

/* One fixture case, with what the tolerances need. */
struct mm_case {
    const char *name;
    int n;
    struct k_matrix w;
    float *x, *ref;
    float *wf;    /* the weights dequantized: [rows, cols] */
    double *mag;  /* sum_c |x_c w_c| per output: the scale of f32 rounding */
    double *qerr; /* bound on the error from quantizing the activations */
};

static void load_case(struct fx *f, const char *name, struct mm_case *c)
{
    c->name = name;
    c->n = fx_int(f, name, "n");
    c->w.dtype = dtype_named(fx_str(f, name, "dtype"));
    c->w.rows = fx_int(f, name, "rows");
    c->w.cols = fx_int(f, name, "cols");
    c->w.row_bytes = mm_dtype_row_bytes(c->w.dtype, c->w.cols);
    size_t nbytes;
    c->w.data = fx_tensor(f, name, "w", &nbytes);
    REQUIRE(nbytes == c->w.row_bytes * (size_t)c->w.rows, "%s: weight size", name);
    c->x = fx_tensor(f, name, "x", NULL);
    c->ref = fx_tensor(f, name, "out", NULL);

    int64_t rows = c->w.rows, cols = c->w.cols;
    c->wf = malloc((size_t)(rows * cols) * sizeof(float));
    for (int64_t r = 0; r < rows; r++)
        mm_dequantize_row(c->w.dtype, (const char *)c->w.data + r * c->w.row_bytes,
                          c->wf + r * cols, cols);
    /* Quantizing the activations rounds each x_c to a multiple of its
     * block's d = amax / 127, an error of at most d / 2, so an output can
     * move by at most sum over blocks of d/2 * sum |w_c|. This bound is
     * about 1% of sum |x w| for Gaussian data: a wrong nibble order, sign or
     * scale moves outputs by far more. */
    c->mag = malloc((size_t)(c->n * rows) * sizeof(double));
    c->qerr = malloc((size_t)(c->n * rows) * sizeof(double));
    for (int t = 0; t < c->n; t++) {
        for (int64_t r = 0; r < rows; r++) {
            double mag = 0, qerr = 0;
            for (int64_t b = 0; b < cols; b += MM_QBLOCK) {
                double amax = 0, wabs = 0;
                for (int64_t i = b; i < b + MM_QBLOCK && i < cols; i++) {
                    amax = fmax(amax, fabs(c->x[t * cols + i]));
                    wabs += fabs(c->wf[r * cols + i]);
                    mag += fabs(c->x[t * cols + i] * c->wf[r * cols + i]);
                }
                qerr += amax / 127.0 / 2.0 * wabs;
            }
            c->mag[t * rows + r] = mag;
            c->qerr[t * rows + r] = qerr;
        }
    }
}

static void free_case(struct mm_case *c)
{
    free((void *)c->w.data);
    free(c->x);
    free(c->ref);
    free(c->wf);
    free(c->mag);
    free(c->qerr);
}

/* f32 rounding: sums of a few hundred products, each rounded to 2^-24
 * relative; 1e-5 of the sum of magnitudes leaves ample room. */
#define F32_TOL 1e-5

/* out vs out0 + alpha * ref (out0 = 0 and alpha = 1 for a forward). */
static void check_out(const struct mm_case *c, const char *path, const float *out,
                      const float *out0, float alpha, int quantized_act)
{
    int64_t rows = c->w.rows;
    int bad = 0;
    double worst = 0;
    for (int64_t i = 0; i < c->n * rows; i++) {
        double want = (out0 ? out0[i] : 0.0) + alpha * c->ref[i];
        double tol = F32_TOL * (c->mag[i] + fabs(want)) + 1e-6;
        if (quantized_act) tol += 1.01 * c->qerr[i];
        double err = fabs(out[i] - want);
        if (err > tol) bad++;
        if (err / tol > worst) worst = err / tol;
    }
    CHECKF(bad == 0, "%s via %s: %d of %lld outputs off (worst %.2f x tolerance)", c->name, path,
           bad, (long long)(c->n * rows), worst);
}

static void test_case(struct fx *f, const char *name)
{
    struct mm_case c;
    load_case(f, name, &c);
    size_t outn = (size_t)(c.n * c.w.rows);
    float *out = malloc(outn * sizeof(float));
    float *out0 = malloc(outn * sizeof(float));
    int q = is_quant(c.w.dtype);

    k_matmul_forward(out, c.x, &c.w, c.n);
    check_out(&c, "k_matmul_forward", out, NULL, 1.0f, q);

    for (size_t i = 0; i < outn; i++)
        out[i] = out0[i] = (float)((int)(i % 7) - 3) * 0.25f;
    k_matmul_accumulate(out, c.x, &c.w, c.n, -0.5f);
    check_out(&c, "k_matmul_accumulate", out, out0, -0.5f, q);

    char path[64];
    if (q) {
        for (int i = 0; i < k_qdot_impl_count; i++) {
            REQUIRE(k_matmul_qdots(out, c.x, &c.w, c.n, 1.0f, 0, k_qdot_impls[i]) == 0, "qdots");
            snprintf(path, sizeof(path), "qdots/%s", k_qdot_impls[i]->name);
            check_out(&c, path, out, NULL, 1.0f, 1);
        }
    } else {
        for (int i = 0; i < k_fdot_impl_count; i++) {
            k_matmul_fdots(out, c.x, &c.w, c.n, 1.0f, 0, k_fdot_impls[i]);
            snprintf(path, sizeof(path), "fdots/%s", k_fdot_impls[i]->name);
            check_out(&c, path, out, NULL, 1.0f, 0);
        }
    }
    free(out);
    free(out0);
    free_case(&c);
}

/* Activation quantization: d = amax / 127, every value within d/2 of
 * d * q, and s = d * sum(q). */
static void test_quantize_act(void)
{
    enum { COLS = 96 };
    float x[COLS], d[COLS / 32], s[COLS / 32];
    int8_t q[COLS];
    for (int i = 0; i < COLS; i++)
        x[i] = sinf((float)i * 1.7f) * (float)(1 + i / 32) * 3.0f;
    for (int i = 64; i < COLS; i++)
        x[i] = 0.0f; /* an all-zero block: d = 0, q = 0 */
    k_quantize_act_row(x, COLS, q, d, s);
    for (int b = 0; b < COLS / 32; b++) {
        float amax = 0;
        int sum = 0;
        for (int i = b * 32; i < b * 32 + 32; i++) {
            amax = fmaxf(amax, fabsf(x[i]));
            sum += q[i];
            CHECKF(fabsf(x[i] - d[b] * q[i]) <= d[b] * 0.5f * 1.0001f, "x %g q %d d %g", x[i], q[i],
                   d[b]);
        }
        CHECK_NEAR(d[b], amax / 127.0f, 1e-7 * amax);
        CHECK_NEAR(s[b], d[b] * (float)sum, 1e-6 * fabsf(s[b]) + 1e-12);
    }
}

static uint32_t lcg(uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return *state >> 8;
}

/* Every SIMD dot product equals the portable one up to f32 summation order,
 * on model-sized rows (576 and 1536 columns, odd block counts too) for 1-4
 * tokens, against a float64 reference from the quantized operands. */
static void test_qdot_impls(void)
{
    const int64_t col_sizes[] = {576, 1536, 160};
    const enum mm_dtype types[] = {MM_Q8_0, MM_Q4_0, MM_Q4_1};
    uint32_t seed = 12345;
    for (int ci = 0; ci < 3; ci++) {
        int64_t cols = col_sizes[ci], nb = cols / MM_QBLOCK;
        float *x = malloc((size_t)(4 * cols) * sizeof(float));
        float *wrow = malloc((size_t)cols * sizeof(float));
        float *wdq = malloc((size_t)cols * sizeof(float));
        for (int64_t i = 0; i < 4 * cols; i++)
            x[i] = ((float)(lcg(&seed) % 20001) - 10000.0f) / 3000.0f;
        for (int64_t i = 0; i < cols; i++)
            wrow[i] = ((float)(lcg(&seed) % 20001) - 9000.0f) / 20000.0f; /* offset: m != 0 */
        for (int ti = 0; ti < 3; ti++) {
            enum mm_dtype t = types[ti];
            void *w = malloc(mm_dtype_row_bytes(t, cols));
            mm_quantize_row(t, wrow, w, cols);
            mm_dequantize_row(t, w, wdq, cols);
            double want[4], mag[4];
            struct k_qact a;
            REQUIRE(k_qact_init(&a, x, 4, cols, t, &k_qdot_scalar) == 0, "out of memory");
            for (int j = 0; j < 4; j++) {
                want[j] = mag[j] = 0;
                for (int64_t i = 0; i < cols; i++) {
                    double xq = (double)a.d[j * nb + i / 32] * a.qs[j * cols + i];
                    want[j] += xq * wdq[i];
                    mag[j] += fabs(xq * wdq[i]);
                }
            }
            k_qact_free(&a);
            for (int k = 0; k < k_qdot_impl_count; k++) {
                const struct k_qdot_impl *impl = k_qdot_impls[k];
                REQUIRE(k_qact_init(&a, x, 4, cols, t, impl) == 0, "out of memory");
                for (int nt = 1; nt <= 4; nt++) {
                    for (int t0 = 0; t0 + nt <= 4; t0++) {
                        float res[4];
                        impl->dot(t, w, mm_dtype_row_bytes(t, cols), 1, &a, t0, nt, res);
                        for (int j = 0; j < nt; j++)
                            CHECKF(fabs(res[j] - want[t0 + j]) <= 1e-5 * mag[t0 + j] + 1e-6,
                                   "%s %s cols %lld nt %d t0 %d: %g vs %g", impl->name,
                                   mm_dtype_name(t), (long long)cols, nt, t0, res[j], want[t0 + j]);
                    }
                }
                k_qact_free(&a);
            }
            free(w);
        }
        free(x);
        free(wrow);
        free(wdq);
    }
}

/* Random weights of type t, [rows, cols], from lcg seed. */
static struct k_matrix random_matrix(enum mm_dtype t, int64_t rows, int64_t cols, uint32_t seed)
{
    struct k_matrix w = {.dtype = t, .rows = rows, .cols = cols};
    w.row_bytes = mm_dtype_row_bytes(t, cols);
    char *data = malloc(w.row_bytes * (size_t)rows);
    float *row = malloc((size_t)cols * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t i = 0; i < cols; i++)
            row[i] = ((float)(lcg(&seed) % 20001) - 9000.0f) / 10000.0f; /* offset: m != 0 */
        mm_quantize_row(t, row, data + r * w.row_bytes, cols);
    }
    free(row);
    w.data = data;
    return w;
}

static float *random_floats(size_t n, float scale, uint32_t seed)
{
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        x[i] = ((float)(lcg(&seed) % 20001) - 10000.0f) / 10000.0f * scale;
    return x;
}

/* A decode-sized matmul spread over the OpenMP threads (rows not a multiple
 * of any thread count or tile) against a float64 reference from the
 * dequantized weights. */
static void test_threaded_rows(void)
{
    enum { ROWS = 1001, COLS = 576 };
    const enum mm_dtype types[] = {MM_F32, MM_F16, MM_BF16, MM_Q8_0, MM_Q4_0, MM_Q4_1};
    float *x = random_floats(COLS, 2.0f, 99);
    float *out = malloc(ROWS * sizeof(float)), *wrow = malloc(COLS * sizeof(float));
    for (int ti = 0; ti < 6; ti++) {
        struct k_matrix w = random_matrix(types[ti], ROWS, COLS, 7);
        k_matmul_forward(out, x, &w, 1);
        int bad = 0;
        for (int r = 0; r < ROWS; r++) {
            mm_dequantize_row(w.dtype, (const char *)w.data + r * w.row_bytes, wrow, COLS);
            double want = 0;
            for (int i = 0; i < COLS; i++)
                want += (double)wrow[i] * x[i];
            /* quantized: activation rounding, at most 1% of the magnitude here */
            double tol = is_quant(w.dtype) ? 0.02 * COLS : 1e-3;
            bad += fabs(out[r] - want) > tol;
        }
        CHECKF(bad == 0, "%s: %d threaded rows off", mm_dtype_name(w.dtype), bad);
        free((void *)w.data);
    }
    free(x);
    free(out);
    free(wrow);
}

/* ---- batch invariance ----
 *
 * A token's outputs must be the same bits whatever else shares its call: how
 * many tokens, its position among them, which rows, the thread count. Each
 * path is run on every token alone (n = 1), then on calls of n = 2..70 tokens
 * taken from a pool at several offsets (so each token sits at many
 * positions, in forward and reverse order), and on the weights with their
 * rows permuted; every output must equal the token's own, memcmp-equal. */

enum { POOL = 73, MAX_N = 70 };

/* One way of computing out = [alpha] x W^T: a level's path or the dispatcher. */
struct mm_path {
    const char *name;
    const struct k_qdot_impl *q;
    const struct k_fdot_impl *f;
    int dispatch, accumulate;
};

static void run_path(const struct mm_path *p, float *out, const float *x, const struct k_matrix *w,
                     int n)
{
    if (p->dispatch && p->accumulate)
        k_matmul_accumulate(out, x, w, n, -0.75f);
    else if (p->dispatch)
        k_matmul_forward(out, x, w, n);
    else if (p->q)
        REQUIRE(k_matmul_qdots(out, x, w, n, 1.0f, 0, p->q) == 0, "out of memory");
    else
        k_matmul_fdots(out, x, w, n, 1.0f, 0, p->f);
}

/* What an output starts as before an accumulating call: a value of its own
 * (token t, row r), so that a misplaced store shows. */
static float out0(int t, int64_t r)
{
    return (float)((t * 131 + (int)r * 7) % 17 - 8) * 0.125f;
}

/* Runs p on tokens ids[0..n) of pool and checks each output row against
 * single[id] (the token alone). perm, when not NULL, says which row of the
 * reference each of w's rows is. Returns the number of differing tokens. */
static int check_call(const struct mm_path *p, const struct k_matrix *w, const float *pool,
                      const float *single, const int *ids, int n, const int64_t *perm, float *x,
                      float *out)
{
    int64_t rows = w->rows, cols = w->cols;
    for (int t = 0; t < n; t++) {
        memcpy(x + t * cols, pool + ids[t] * cols, (size_t)cols * sizeof(float));
        for (int64_t r = 0; r < rows; r++)
            out[t * rows + r] = out0(ids[t], perm ? perm[r] : r);
    }
    run_path(p, out, x, w, n);
    int bad = 0;
    for (int t = 0; t < n; t++) {
        const float *want = single + ids[t] * rows;
        int same = 1;
        for (int64_t r = 0; r < rows; r++)
            same &= memcmp(&out[t * rows + r], &want[perm ? perm[r] : r], sizeof(float)) == 0;
        bad += !same;
    }
    return bad;
}

/* w with its rows in the order perm (a shuffle). */
static struct k_matrix permuted(const struct k_matrix *w, int64_t *perm, uint32_t seed)
{
    struct k_matrix pw = *w;
    char *data = malloc(w->row_bytes * (size_t)w->rows);
    for (int64_t r = 0; r < w->rows; r++)
        perm[r] = r;
    for (int64_t r = w->rows - 1; r > 0; r--) {
        int64_t j = lcg(&seed) % (r + 1), tmp = perm[r];
        perm[r] = perm[j];
        perm[j] = tmp;
    }
    for (int64_t r = 0; r < w->rows; r++)
        memcpy(data + r * w->row_bytes, (const char *)w->data + perm[r] * w->row_bytes,
               w->row_bytes);
    pw.data = data;
    return pw;
}

static void check_invariance(const struct mm_path *p, enum mm_dtype t, int64_t rows, int64_t cols)
{
    struct k_matrix w = random_matrix(t, rows, cols, (uint32_t)(rows * 31 + cols));
    int64_t *perm = malloc((size_t)rows * sizeof(int64_t));
    struct k_matrix pw = permuted(&w, perm, 5);
    float *pool = random_floats((size_t)(POOL * cols), 3.0f, (uint32_t)cols);
    float *single = malloc((size_t)(POOL * rows) * sizeof(float));
    float *x = malloc((size_t)(MAX_N * cols) * sizeof(float));
    float *out = malloc((size_t)(MAX_N * rows) * sizeof(float));
    for (int id = 0; id < POOL; id++) {
        for (int64_t r = 0; r < rows; r++)
            single[id * rows + r] = out0(id, r);
        run_path(p, single + id * rows, pool + id * cols, &w, 1);
    }
    int bad = 0, calls = 0, ids[MAX_N];
    for (int n = 2; n <= MAX_N; n++) {
        /* offsets that put every token at a different position, then the
         * same tokens backwards, then on the permuted rows */
        for (int k = 0; k < 3; k++) {
            int off = (n * 7 + k * 29) % POOL;
            for (int i = 0; i < n; i++)
                ids[i] = k == 1 ? (off + n - 1 - i) % POOL : (off + i) % POOL;
            bad += check_call(p, k == 2 ? &pw : &w, pool, single, ids, n, k == 2 ? perm : NULL, x,
                              out);
            calls++;
        }
    }
    CHECKF(bad == 0, "%s %s %lldx%lld: %d tokens of %d calls differ from the token alone", p->name,
           mm_dtype_name(t), (long long)rows, (long long)cols, bad, calls);
    free((void *)w.data);
    free((void *)pw.data);
    free(perm);
    free(pool);
    free(single);
    free(x);
    free(out);
}

/* Every path x dtype x awkward shape x thread count. Rows: not a multiple
 * of any tile (2, 4) nor of the 16-row tasks. Columns: for the quantized
 * types odd numbers of blocks (a last partial step of 1, 2 or 3 blocks in
 * the AVX-512 kernel, an odd last block elsewhere); for the float types not
 * a multiple of 8 or 16 (a masked or scalar tail). */
static void test_batch_invariance(void)
{
    const enum mm_dtype types[] = {MM_F32, MM_F16, MM_BF16, MM_Q8_0, MM_Q4_0, MM_Q4_1};
    const int64_t qcols[] = {32, 96, 224, 288}, fcols[] = {13, 157, 200, 576};
    const int64_t rows[] = {1, 37};
    int saved_threads = omp_get_max_threads(), runs = 0;
    for (int ti = 0; ti < 6; ti++) {
        int q = is_quant(types[ti]);
        /* the dispatcher's two entries, then every level */
        struct mm_path paths[2 + 8] = {{"k_matmul_forward", NULL, NULL, 1, 0},
                                       {"k_matmul_accumulate", NULL, NULL, 1, 1}};
        int np = 2;
        for (int li = 0; li < (q ? k_qdot_impl_count : k_fdot_impl_count); li++, np++) {
            if (q)
                paths[np] = (struct mm_path){k_qdot_impls[li]->name, k_qdot_impls[li], NULL, 0, 0};
            else
                paths[np] = (struct mm_path){k_fdot_impls[li]->name, NULL, k_fdot_impls[li], 0, 0};
        }
        for (int pi = 0; pi < np; pi++) {
            for (int ci = 0; ci < 4; ci++) {
                for (int ri = 0; ri < 2; ri++) {
                    omp_set_num_threads(1 + runs++ % 3);
                    check_invariance(&paths[pi], types[ti], rows[ri], q ? qcols[ci] : fcols[ci]);
                }
            }
        }
        /* a matrix of several row blocks (matmul.c's cache blocking: 256 KB
         * of weights), its tasks split over 2 and 3 threads */
        for (int th = 2; th <= 3; th++) {
            omp_set_num_threads(th);
            check_invariance(&paths[0], types[ti], 1001, q ? 1024 : 577);
        }
    }
    omp_set_num_threads(saved_threads);
}

int main(void)
{
    struct fx *f = fx_open();
    int cases = 0;
    for (int i = 0; i < fx_case_count(f); i++) {
        const char *name = fx_case_name(f, i);
        if (strncmp(name, "matmul_", 7) != 0) continue;
        test_case(f, name);
        cases++;
    }
    CHECKF(cases == 24, "%d matmul fixture cases", cases);
    fx_close(f);
    test_quantize_act();
    test_qdot_impls();
    test_threaded_rows();
    test_batch_invariance();
    return check_report("test_kernels_matmul");
}
