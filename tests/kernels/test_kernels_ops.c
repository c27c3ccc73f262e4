/* The elementwise and row ops against PyTorch references
 * (tools/make_op_fixtures.py): embedding (gguf's dequantization for the
 * quantized tables), RMSNorm as HF's LlamaRMSNorm, LayerNorm, both RoPE
 * layouts as HF's apply_rotary_pos_emb, SwiGLU, GELU, softmax, log-softmax,
 * add, argmax. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kernels.h"
#include "test_kernels_fixture.h"

/* |got - want| <= tol * (1 + |want|) for every element; counts the misses. */
static void check_close(const char *what, const float *got, const float *want, size_t n, double tol)
{
    int bad = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]) / (1.0 + fabs(want[i]));
        bad += !(err <= tol);
        worst = err > worst ? err : worst;
    }
    CHECKF(bad == 0, "%s: %d of %zu off (worst relative error %g)", what, bad, n, worst);
}

static void test_embedding(struct fx *f)
{
    const char *names[] = {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_1"};
    for (int i = 0; i < 6; i++) {
        char c[64];
        snprintf(c, sizeof(c), "embedding_%s", names[i]);
        int n = fx_int(f, c, "n"), cols = fx_int(f, c, "cols");
        struct k_matrix table = {
            .dtype = (enum mm_dtype)i, .rows = fx_int(f, c, "rows"), .cols = cols};
        REQUIRE(!strcmp(mm_dtype_name(table.dtype), names[i]), "dtype order");
        table.row_bytes = mm_dtype_row_bytes(table.dtype, cols);
        table.data = fx_tensor(f, c, "table", NULL);
        int32_t *ids = fx_tensor(f, c, "ids", NULL);
        float *want = fx_tensor(f, c, "out", NULL);
        float *out = malloc((size_t)n * cols * sizeof(float));
        k_embedding_forward(out, ids, n, &table);
        CHECKF(memcmp(out, want, (size_t)n * cols * sizeof(float)) == 0, "%s: rows differ", c);
        free(out);
        free(want);
        free(ids);
        free((void *)table.data);
    }
}

static void test_norms(struct fx *f)
{
    int n = fx_int(f, "rmsnorm", "n"), dim = fx_int(f, "rmsnorm", "dim");
    float *x = fx_tensor(f, "rmsnorm", "x", NULL), *w = fx_tensor(f, "rmsnorm", "weight", NULL);
    float *want = fx_tensor(f, "rmsnorm", "out", NULL);
    float *out = malloc((size_t)n * dim * sizeof(float));
    k_rmsnorm_forward(out, x, w, n, dim, (float)fx_num(f, "rmsnorm", "eps"));
    check_close("rmsnorm", out, want, (size_t)n * dim, 1e-5);
    k_rmsnorm_forward(x, x, w, n, dim, (float)fx_num(f, "rmsnorm", "eps")); /* in place */
    check_close("rmsnorm in place", x, want, (size_t)n * dim, 1e-5);
    free(x);
    free(w);
    free(want);
    free(out);

    n = fx_int(f, "layernorm", "n"), dim = fx_int(f, "layernorm", "dim");
    x = fx_tensor(f, "layernorm", "x", NULL);
    w = fx_tensor(f, "layernorm", "weight", NULL);
    float *b = fx_tensor(f, "layernorm", "bias", NULL);
    want = fx_tensor(f, "layernorm", "out", NULL);
    out = malloc((size_t)n * dim * sizeof(float));
    k_layernorm_forward(out, x, w, b, n, dim, (float)fx_num(f, "layernorm", "eps"));
    check_close("layernorm", out, want, (size_t)n * dim, 1e-5);
    free(x);
    free(w);
    free(b);
    free(want);
    free(out);
}

static void test_rope(struct fx *f, const char *c, enum k_rope_style style)
{
    int n = fx_int(f, c, "n"), heads = fx_int(f, c, "n_heads"), hd = fx_int(f, c, "head_dim");
    float *x = fx_tensor(f, c, "x", NULL), *want = fx_tensor(f, c, "out", NULL);
    int32_t *pos = fx_tensor(f, c, "pos", NULL);
    k_rope_forward(x, pos, n, heads, hd, (float)fx_num(f, c, "theta"), style);
    /* angles up to 511 rad: one f32 ulp of an angle there is 3e-5, and HF
     * rounds the angle in f32 as we do, so the results agree to ~1e-6 */
    check_close(c, x, want, (size_t)n * heads * hd, 1e-5);
    free(x);
    free(want);
    free(pos);
}

static void test_activations(struct fx *f)
{
    int64_t len = fx_int(f, "swiglu", "len");
    float *g = fx_tensor(f, "swiglu", "gate", NULL), *u = fx_tensor(f, "swiglu", "up", NULL);
    float *want = fx_tensor(f, "swiglu", "out", NULL);
    float *out = malloc((size_t)len * sizeof(float));
    k_swiglu_forward(out, g, u, len);
    check_close("swiglu", out, want, (size_t)len, 1e-6);
    free(g);
    free(u);
    free(want);
    free(out);

    len = fx_int(f, "gelu", "len");
    float *x = fx_tensor(f, "gelu", "x", NULL);
    want = fx_tensor(f, "gelu", "out", NULL);
    out = malloc((size_t)len * sizeof(float));
    k_gelu_forward(out, x, len);
    check_close("gelu", out, want, (size_t)len, 1e-6);
    free(x);
    free(want);
    free(out);

    len = fx_int(f, "add", "len");
    x = fx_tensor(f, "add", "x", NULL);
    float *y = fx_tensor(f, "add", "y", NULL);
    want = fx_tensor(f, "add", "out", NULL);
    k_add_inplace(x, y, len);
    CHECK(memcmp(x, want, (size_t)len * sizeof(float)) == 0);
    free(x);
    free(y);
    free(want);
}

static void test_softmax(struct fx *f)
{
    int n = fx_int(f, "softmax", "n"), dim = fx_int(f, "softmax", "dim");
    float *x = fx_tensor(f, "softmax", "x", NULL), *x2 = fx_tensor(f, "softmax", "x", NULL);
    float *want = fx_tensor(f, "softmax", "out", NULL);
    float *log_want = fx_tensor(f, "softmax", "log_out", NULL);
    k_softmax_forward(x, n, dim);
    check_close("softmax", x, want, (size_t)n * dim, 1e-6);
    k_log_softmax_forward(x2, n, dim);
    /* log-probabilities reach -2000 here; relative 1e-6 of them is the f32
     * resolution of the shifted inputs */
    check_close("log_softmax", x2, log_want, (size_t)n * dim, 1e-6);
    free(x);
    free(x2);
    free(want);
    free(log_want);
}

static void test_argmax(struct fx *f)
{
    size_t n;
    float *x = fx_tensor(f, "argmax", "x", &n);
    CHECK(k_argmax(x, (int)n) == fx_int(f, "argmax", "index"));
    free(x);
    float ties[] = {1.0f, 3.0f, -2.0f, 3.0f};
    CHECK(k_argmax(ties, 4) == 1);
    CHECK(k_argmax(ties, 1) == 0);
}

/* ---- batch invariance ----
 *
 * A row op's result for a token must be the same bits whatever else shares
 * the call: each token alone, then in calls of n = 2..70 tokens at several
 * offsets of a pool (so each token sits at many positions and alignments),
 * memcmp-equal. Widths: odd, below and above a SIMD vector, and a model's. */

enum { POOL = 71, MAX_N = 70 };

enum row_op {
    OP_RMSNORM,
    OP_LAYERNORM,
    OP_SOFTMAX,
    OP_LOG_SOFTMAX,
    OP_SWIGLU,
    OP_ROPE_NEOX,
    OP_ROPE_NORM,
    OP_COUNT
};

static const char *const op_names[] = {"rmsnorm", "layernorm", "softmax",  "log_softmax",
                                       "swiglu",  "rope_neox", "rope_norm"};

/* The op on n rows of width dim: in (n rows, or 2n for swiglu's gate and
 * up), out (n rows), pos (rope's positions). */
static void run_op(enum row_op op, float *out, const float *in, const float *w, const int32_t *pos,
                   int n, int dim)
{
    size_t len = (size_t)n * dim;
    switch (op) {
    case OP_RMSNORM:
        k_rmsnorm_forward(out, in, w, n, dim, 1e-5f);
        break;
    case OP_LAYERNORM:
        k_layernorm_forward(out, in, w, w + dim, n, dim, 1e-12f);
        break;
    case OP_SOFTMAX:
    case OP_LOG_SOFTMAX:
        memcpy(out, in, len * sizeof(float));
        if (op == OP_SOFTMAX)
            k_softmax_forward(out, n, dim);
        else
            k_log_softmax_forward(out, n, dim);
        break;
    case OP_SWIGLU:
        k_swiglu_forward(out, in, in + len, (int64_t)len);
        break;
    default:
        /* heads of 16: dim must be a multiple of it */
        memcpy(out, in, len * sizeof(float));
        k_rope_forward(out, pos, n, dim / 16, 16, 10000.0f,
                       op == OP_ROPE_NEOX ? K_ROPE_NEOX : K_ROPE_NORM);
        break;
    }
}

static void check_op(enum row_op op, int dim)
{
    float *pool = malloc((size_t)POOL * dim * sizeof(float));
    float *single = malloc((size_t)POOL * dim * sizeof(float));
    float *w = malloc(2 * (size_t)dim * sizeof(float));
    float *in = malloc(2 * (size_t)MAX_N * dim * sizeof(float));
    float *out = malloc((size_t)MAX_N * dim * sizeof(float));
    int32_t pos[MAX_N];
    for (size_t i = 0; i < (size_t)POOL * dim; i++)
        pool[i] = sinf((float)i * 0.7316f) * (1.0f + (float)(i % 5));
    for (int i = 0; i < 2 * dim; i++)
        w[i] = cosf((float)i * 0.31f);
    /* swiglu: token id's gate is pool row id, its up row id + 1 */
    int swiglu = op == OP_SWIGLU;
    for (int id = 0; id < POOL; id++) {
        memcpy(in, pool + id * dim, (size_t)dim * sizeof(float));
        if (swiglu) memcpy(in + dim, pool + (id + 1) % POOL * dim, (size_t)dim * sizeof(float));
        pos[0] = id * 3;
        run_op(op, single + id * dim, in, w, pos, 1, dim);
    }
    int bad = 0;
    for (int n = 2; n <= MAX_N; n++) {
        for (int k = 0; k < 2; k++) {
            int off = (n * 5 + k * 31) % POOL, ids[MAX_N];
            for (int t = 0; t < n; t++) {
                ids[t] = (off + (k ? n - 1 - t : t)) % POOL;
                memcpy(in + t * dim, pool + ids[t] * dim, (size_t)dim * sizeof(float));
                if (swiglu)
                    memcpy(in + (n + t) * dim, pool + (ids[t] + 1) % POOL * dim,
                           (size_t)dim * sizeof(float));
                pos[t] = ids[t] * 3;
            }
            run_op(op, out, in, w, pos, n, dim);
            for (int t = 0; t < n; t++)
                bad +=
                    memcmp(out + t * dim, single + ids[t] * dim, (size_t)dim * sizeof(float)) != 0;
        }
    }
    CHECKF(bad == 0, "%s, width %d: %d rows differ from the row alone", op_names[op], dim, bad);
    free(pool);
    free(single);
    free(w);
    free(in);
    free(out);
}

static void test_batch_invariance(void)
{
    const int dims[] = {7, 35, 577, 1000, 48, 576};
    for (int op = 0; op < OP_COUNT; op++) {
        for (int d = 0; d < 6; d++) {
            int rope = op == OP_ROPE_NEOX || op == OP_ROPE_NORM;
            if (rope && dims[d] % 16) continue;
            check_op((enum row_op)op, dims[d]);
        }
    }
}

int main(void)
{
    struct fx *f = fx_open();
    test_embedding(f);
    test_norms(f);
    test_rope(f, "rope_neox_64", K_ROPE_NEOX);
    test_rope(f, "rope_norm_64", K_ROPE_NORM);
    test_rope(f, "rope_neox_32", K_ROPE_NEOX);
    test_rope(f, "rope_norm_32", K_ROPE_NORM);
    test_activations(f);
    test_softmax(f);
    test_argmax(f);
    fx_close(f);
    test_batch_invariance();
    return check_report("test_kernels_ops");
}
