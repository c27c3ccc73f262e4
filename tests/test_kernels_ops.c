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
    return check_report("test_kernels_ops");
}
