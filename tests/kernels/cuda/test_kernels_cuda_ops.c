/* The CUDA row and elementwise ops against the CPU ones (themselves held to
 * PyTorch by test_kernels_ops) on random inputs, within 1e-5 relative:
 * RMSNorm and LayerNorm (in place too), RMSNorm fused with the residual
 * add, RoPE in both layouts and at far positions, RoPE fused with the KV
 * cache store, SwiGLU, GELU, add, softmax and log-softmax up to a large
 * vocabulary; the embedding lookup bit for bit for every dtype; argmax with
 * ties; top-k against a sort. Sizes from 1 to past a block's worth. */
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "test_kernels_cuda.h"

#define TOL 1e-5

static uint32_t seed = 7;

static void test_norms(struct kc_ctx *c)
{
    static const int dims[] = {1, 7, 576, 4096};
    for (size_t d = 0; d < sizeof(dims) / sizeof(dims[0]); d++) {
        int n = 5, dim = dims[d];
        size_t len = (size_t)n * dim;
        float *x = malloc(len * sizeof(float)), *w = malloc((size_t)dim * sizeof(float));
        float *b = malloc((size_t)dim * sizeof(float));
        float *want = malloc(len * sizeof(float)), *got = malloc(len * sizeof(float));
        cuda_test_fill(x, len, 3.0f, &seed);
        cuda_test_fill(w, (size_t)dim, 1.5f, &seed);
        cuda_test_fill(b, (size_t)dim, 0.5f, &seed);
        float *dx = dev_from(c, x, len * sizeof(float)), *dw = dev_from(c, w, dim * sizeof(float));
        float *db = dev_from(c, b, dim * sizeof(float)),
              *dout = dev_from(c, x, len * sizeof(float));
        char what[64];

        k_rmsnorm_forward(want, x, w, n, dim, 1e-5f);
        KC_OK(kc_rmsnorm_forward(c, dout, dx, dw, n, dim, 1e-5f, &cuda_err));
        dev_to(c, got, dout, len * sizeof(float));
        snprintf(what, sizeof(what), "rmsnorm dim %d", dim);
        cuda_check_close(what, got, want, len, TOL);
        KC_OK(kc_rmsnorm_forward(c, dout, dout, dw, n, dim, 1e-5f, &cuda_err));
        k_rmsnorm_forward(want, want, w, n, dim, 1e-5f);
        dev_to(c, got, dout, len * sizeof(float));
        snprintf(what, sizeof(what), "rmsnorm in place dim %d", dim);
        cuda_check_close(what, got, want, len, TOL);

        /* the residual add and the norm fused, the output over y's rows */
        float *y = malloc(len * sizeof(float)), *sum = malloc(len * sizeof(float));
        cuda_test_fill(y, len, 2.0f, &seed);
        for (size_t i = 0; i < len; i++)
            sum[i] = x[i] + y[i];
        k_rmsnorm_forward(want, sum, w, n, dim, 1e-5f);
        float *dsum = dev_from(c, x, len * sizeof(float)),
              *dy = dev_from(c, y, len * sizeof(float));
        KC_OK(kc_add_rmsnorm_forward(c, dsum, dy, dy, dw, n, dim, 1e-5f, &cuda_err));
        dev_to(c, got, dsum, len * sizeof(float));
        CHECKF(memcmp(got, sum, len * sizeof(float)) == 0, "add and rmsnorm dim %d: x + y differs",
               dim);
        dev_to(c, got, dy, len * sizeof(float));
        snprintf(what, sizeof(what), "add and rmsnorm dim %d", dim);
        cuda_check_close(what, got, want, len, TOL);
        kc_free(dsum);
        kc_free(dy);
        free(y);
        free(sum);

        k_layernorm_forward(want, x, w, b, n, dim, 1e-12f);
        KC_OK(kc_layernorm_forward(c, dout, dx, dw, db, n, dim, 1e-12f, &cuda_err));
        dev_to(c, got, dout, len * sizeof(float));
        snprintf(what, sizeof(what), "layernorm dim %d", dim);
        /* dim 1: x - mean is 0 and the output is the bias, exactly */
        cuda_check_close(what, got, want, len, TOL);
        KC_OK(kc_layernorm_forward(c, dx, dx, dw, db, n, dim, 1e-12f, &cuda_err));
        dev_to(c, got, dx, len * sizeof(float));
        snprintf(what, sizeof(what), "layernorm in place dim %d", dim);
        cuda_check_close(what, got, want, len, TOL);

        kc_free(dx);
        kc_free(dw);
        kc_free(db);
        kc_free(dout);
        free(x);
        free(w);
        free(b);
        free(want);
        free(got);
    }
}

static void test_rope(struct kc_ctx *c)
{
    static const int head_dims[] = {2, 32, 64, 80, 128, 512};
    int32_t pos[] = {0, 1, 17, 4095, 131071};
    int n = 5, heads = 3;
    int32_t *dpos = dev_from(c, pos, sizeof(pos));
    for (size_t h = 0; h < sizeof(head_dims) / sizeof(head_dims[0]); h++) {
        for (int style = K_ROPE_NEOX; style <= K_ROPE_NORM; style++) {
            int hd = head_dims[h];
            size_t len = (size_t)n * heads * hd;
            float *x = malloc(len * sizeof(float)), *got = malloc(len * sizeof(float));
            cuda_test_fill(x, len, 2.0f, &seed);
            float *dx = dev_from(c, x, len * sizeof(float));
            k_rope_forward(x, pos, n, heads, hd, 10000.0f, (enum k_rope_style)style);
            KC_OK(kc_rope_forward(c, dx, dpos, n, heads, hd, 10000.0f, (enum k_rope_style)style,
                                  &cuda_err));
            dev_to(c, got, dx, len * sizeof(float));
            char what[64];
            snprintf(what, sizeof(what), "rope %s head_dim %d", style ? "norm" : "neox", hd);
            cuda_check_close(what, got, x, len, TOL);
            kc_free(dx);
            free(x);
            free(got);
        }
    }
    struct mm_err err = {{0}};
    CHECK(kc_rope_forward(c, NULL, dpos, n, heads, 7, 1e4f, K_ROPE_NEOX, &err) == -1 &&
          strstr(err.msg, "head_dim 7"));
    kc_free(dpos);
}

/* kc_rope_kv_store against the CPU's RoPE of q and k, and the cache rows
 * it writes: tokens of two slots (one out of order), GQA head counts, both
 * layouts. Bit for bit against kc_rope_forward and kc_kv_store, which it
 * fuses; rows of the cache it does not own keep their contents. */
static void test_rope_kv_store(struct kc_ctx *c)
{
    static const int head_dims[] = {2, 64, 128};
    enum { N = 3, HEADS = 4, KV_HEADS = 2, SLOTS = 2, CAP = 8 };
    int32_t pos[N] = {5, 0, 7}, slot[N] = {1, 0, 1};
    int32_t *dpos = dev_from(c, pos, sizeof(pos)), *dslot = dev_from(c, slot, sizeof(slot));
    for (size_t h = 0; h < sizeof(head_dims) / sizeof(head_dims[0]); h++) {
        for (int style = K_ROPE_NEOX; style <= K_ROPE_NORM; style++) {
            int hd = head_dims[h], kv_dim = KV_HEADS * hd;
            int64_t stride = (int64_t)CAP * kv_dim;
            size_t qlen = (size_t)N * HEADS * hd, kvlen = (size_t)N * kv_dim;
            size_t cache_len = (size_t)SLOTS * (size_t)stride, cache_bytes = cache_len * 4;
            float *q = malloc(qlen * 4), *k = malloc(kvlen * 4), *v = malloc(kvlen * 4);
            float *cache0 = malloc(cache_bytes), *want_k = malloc(cache_bytes),
                  *want_v = malloc(cache_bytes), *got = malloc(cache_bytes);
            cuda_test_fill(q, qlen, 2.0f, &seed);
            cuda_test_fill(k, kvlen, 2.0f, &seed);
            cuda_test_fill(v, kvlen, 2.0f, &seed);
            cuda_test_fill(cache0, cache_len, 1.0f, &seed);
            float *dq = dev_from(c, q, qlen * 4), *dk = dev_from(c, k, kvlen * 4);
            float *dv = dev_from(c, v, kvlen * 4);
            float *dkc = dev_from(c, cache0, cache_bytes), *dvc = dev_from(c, cache0, cache_bytes);
            /* the unfused pair on copies */
            float *dq2 = dev_from(c, q, qlen * 4), *dk2 = dev_from(c, k, kvlen * 4);
            float *dkc2 = dev_from(c, cache0, cache_bytes),
                  *dvc2 = dev_from(c, cache0, cache_bytes);

            KC_OK(kc_rope_kv_store(c, dq, dk, dv, dkc, dvc, dslot, dpos, N, HEADS, KV_HEADS, hd,
                                   10000.0f, (enum k_rope_style)style, stride, &cuda_err));
            KC_OK(kc_rope_forward(c, dq2, dpos, N, HEADS, hd, 10000.0f, (enum k_rope_style)style,
                                  &cuda_err));
            KC_OK(kc_rope_forward(c, dk2, dpos, N, KV_HEADS, hd, 10000.0f, (enum k_rope_style)style,
                                  &cuda_err));
            KC_OK(kc_kv_store(c, dkc2, dvc2, dk2, dv, dslot, dpos, N, kv_dim, stride, &cuda_err));

            k_rope_forward(q, pos, N, HEADS, hd, 10000.0f, (enum k_rope_style)style);
            k_rope_forward(k, pos, N, KV_HEADS, hd, 10000.0f, (enum k_rope_style)style);
            memcpy(want_k, cache0, cache_bytes);
            memcpy(want_v, cache0, cache_bytes);
            for (int t = 0; t < N; t++) {
                size_t dst = (size_t)slot[t] * (size_t)stride + (size_t)pos[t] * kv_dim;
                memcpy(want_k + dst, k + (size_t)t * kv_dim, (size_t)kv_dim * 4);
                memcpy(want_v + dst, v + (size_t)t * kv_dim, (size_t)kv_dim * 4);
            }
            char what[80];
            const char *sty = style ? "norm" : "neox";
            float *gq = malloc(qlen * 4), *gq2 = malloc(qlen * 4), *got2 = malloc(cache_bytes);
            dev_to(c, gq, dq, qlen * 4);
            dev_to(c, gq2, dq2, qlen * 4);
            snprintf(what, sizeof(what), "rope+store %s head_dim %d: q", sty, hd);
            cuda_check_close(what, gq, q, qlen, TOL);
            CHECKF(memcmp(gq, gq2, qlen * 4) == 0, "%s differs from kc_rope_forward's", what);
            dev_to(c, gq, dk, kvlen * 4);
            dev_to(c, gq2, dk2, kvlen * 4);
            snprintf(what, sizeof(what), "rope+store %s head_dim %d: k", sty, hd);
            cuda_check_close(what, gq, k, kvlen, TOL);
            CHECKF(memcmp(gq, gq2, kvlen * 4) == 0, "%s differs from kc_rope_forward's", what);
            dev_to(c, got, dkc, cache_bytes);
            dev_to(c, got2, dkc2, cache_bytes);
            snprintf(what, sizeof(what), "rope+store %s head_dim %d: k cache", sty, hd);
            cuda_check_close(what, got, want_k, cache_len, TOL);
            CHECKF(memcmp(got, got2, cache_bytes) == 0, "%s differs from kc_kv_store's", what);
            dev_to(c, got, dvc, cache_bytes);
            snprintf(what, sizeof(what), "rope+store %s head_dim %d: v cache", sty, hd);
            CHECKF(memcmp(got, want_v, cache_bytes) == 0, "%s: rows differ", what);

            kc_free(dq);
            kc_free(dk);
            kc_free(dv);
            kc_free(dkc);
            kc_free(dvc);
            kc_free(dq2);
            kc_free(dk2);
            kc_free(dkc2);
            kc_free(dvc2);
            free(q);
            free(k);
            free(v);
            free(cache0);
            free(want_k);
            free(want_v);
            free(got);
            free(got2);
            free(gq);
            free(gq2);
        }
    }
    struct mm_err err = {{0}};
    CHECK(kc_rope_kv_store(c, NULL, NULL, NULL, NULL, NULL, dslot, dpos, N, HEADS, KV_HEADS, 7,
                           1e4f, K_ROPE_NEOX, 0, &err) == -1 &&
          strstr(err.msg, "head_dim 7"));
    kc_free(dpos);
    kc_free(dslot);
}

static void test_elementwise(struct kc_ctx *c)
{
    static const int64_t lens[] = {1, 1000, (1 << 20) + 3};
    for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
        int64_t len = lens[l];
        size_t bytes = (size_t)len * sizeof(float);
        float *a = malloc(bytes), *b = malloc(bytes), *want = malloc(bytes), *got = malloc(bytes);
        cuda_test_fill(a, (size_t)len, 8.0f, &seed);
        cuda_test_fill(b, (size_t)len, 3.0f, &seed);
        float *da = dev_from(c, a, bytes), *db = dev_from(c, b, bytes);
        float *dout = dev_from(c, a, bytes);
        char what[64];

        k_swiglu_forward(want, a, b, len);
        KC_OK(kc_swiglu_forward(c, dout, da, db, len, &cuda_err));
        dev_to(c, got, dout, bytes);
        snprintf(what, sizeof(what), "swiglu %lld", (long long)len);
        cuda_check_close(what, got, want, (size_t)len, TOL);

        k_gelu_forward(want, a, len);
        KC_OK(kc_gelu_forward(c, dout, da, len, &cuda_err));
        dev_to(c, got, dout, bytes);
        snprintf(what, sizeof(what), "gelu %lld", (long long)len);
        cuda_check_close(what, got, want, (size_t)len, TOL);

        memcpy(want, a, bytes);
        k_add_inplace(want, b, len);
        KC_OK(kc_add_inplace(c, da, db, len, &cuda_err));
        dev_to(c, got, da, bytes);
        snprintf(what, sizeof(what), "add %lld", (long long)len);
        CHECKF(memcmp(got, want, bytes) == 0, "%s: sums differ", what);

        kc_free(da);
        kc_free(db);
        kc_free(dout);
        free(a);
        free(b);
        free(want);
        free(got);
    }
}

static void test_softmax(struct kc_ctx *c)
{
    static const int dims[] = {1, 7, 32000, 151936};
    for (size_t d = 0; d < sizeof(dims) / sizeof(dims[0]); d++) {
        int n = 3, dim = dims[d];
        size_t len = (size_t)n * dim, bytes = len * sizeof(float);
        float *x = malloc(bytes), *want = malloc(bytes), *got = malloc(bytes);
        cuda_test_fill(x, len, 20.0f, &seed);
        float *dx = dev_from(c, x, bytes);
        memcpy(want, x, bytes);
        k_softmax_forward(want, n, dim);
        KC_OK(kc_softmax_forward(c, dx, n, dim, &cuda_err));
        dev_to(c, got, dx, bytes);
        /* relative to each probability, not to 1: most are tiny */
        int bad = 0;
        for (size_t i = 0; i < len; i++)
            bad += !(fabs(got[i] - want[i]) <= TOL * fabs(want[i]) + 1e-37);
        CHECKF(bad == 0, "softmax dim %d: %d of %zu off", dim, bad, len);

        memcpy(want, x, bytes);
        k_log_softmax_forward(want, n, dim);
        KC_OK(kc_upload(c, dx, x, bytes, &cuda_err));
        KC_OK(kc_log_softmax_forward(c, dx, n, dim, &cuda_err));
        dev_to(c, got, dx, bytes);
        char what[64];
        snprintf(what, sizeof(what), "log_softmax dim %d", dim);
        cuda_check_close(what, got, want, len, TOL);
        kc_free(dx);
        free(x);
        free(want);
        free(got);
    }
}

static void test_embedding(struct kc_ctx *c)
{
    int rows = 300, cols = 160, n = 6;
    int32_t ids[] = {0, 299, 7, 7, 150, 1};
    int32_t *dids = dev_from(c, ids, sizeof(ids));
    float *raw = malloc((size_t)rows * cols * sizeof(float));
    float *want = malloc((size_t)n * cols * sizeof(float)), *got = malloc((size_t)n * cols * 4);
    float *dout = kc_alloc((size_t)n * cols * sizeof(float), &cuda_err);
    REQUIRE(dout, "%s", cuda_err.msg);
    for (int t = 0; t < MM_DTYPE_COUNT; t++) {
        struct k_matrix table = {.dtype = (enum mm_dtype)t, .rows = rows, .cols = cols};
        table.row_bytes = mm_dtype_row_bytes(table.dtype, cols);
        char *data = malloc(table.row_bytes * rows);
        cuda_test_fill(raw, (size_t)rows * cols, 4.0f, &seed);
        for (int r = 0; r < rows; r++)
            mm_quantize_row(table.dtype, raw + r * cols, data + r * table.row_bytes, cols);
        table.data = data;
        struct kc_matrix dt;
        KC_OK(kc_matrix_upload(c, &dt, &table, &cuda_err));
        k_embedding_forward(want, ids, n, &table);
        KC_OK(kc_embedding_forward(c, dout, dids, n, &dt, &cuda_err));
        dev_to(c, got, dout, (size_t)n * cols * sizeof(float));
        CHECKF(memcmp(got, want, (size_t)n * cols * sizeof(float)) == 0,
               "embedding %s: rows differ from the CPU's", mm_dtype_name(table.dtype));
        kc_matrix_free(&dt);
        free(data);
    }
    kc_free(dout);
    kc_free(dids);
    free(raw);
    free(want);
    free(got);
}

/* Order of top-k: larger value first, then lower index. */
static const float *sort_values;
static int by_value(const void *a, const void *b)
{
    int i = *(const int *)a, j = *(const int *)b;
    float x = sort_values[i], y = sort_values[j];
    if (x != y) return x > y ? -1 : 1;
    return i < j ? -1 : i > j;
}

static void test_sampling(struct kc_ctx *c)
{
    static const int dims[] = {1, 5, 1000, 32000};
    for (size_t d = 0; d < sizeof(dims) / sizeof(dims[0]); d++) {
        int n = 4, dim = dims[d];
        size_t len = (size_t)n * dim;
        float *x = malloc(len * sizeof(float));
        /* coarse values: many ties, the maximum repeated */
        for (size_t i = 0; i < len; i++)
            x[i] = (float)(cuda_test_lcg(&seed) % 50);
        float *dx = dev_from(c, x, len * sizeof(float));
        int32_t *dids = kc_alloc(len * sizeof(int32_t), &cuda_err);
        float *dvals = kc_alloc(len * sizeof(float), &cuda_err);
        REQUIRE(dids && dvals, "%s", cuda_err.msg);
        int32_t *ids = malloc(len * sizeof(int32_t));
        float *vals = malloc(len * sizeof(float));
        int *order = malloc((size_t)dim * sizeof(int));

        KC_OK(kc_argmax(c, dids, dx, n, dim, &cuda_err));
        dev_to(c, ids, dids, (size_t)n * sizeof(int32_t));
        for (int t = 0; t < n; t++)
            CHECKF(ids[t] == k_argmax(x + (size_t)t * dim, dim), "argmax dim %d row %d: %d vs %d",
                   dim, t, ids[t], k_argmax(x + (size_t)t * dim, dim));

        int ks[] = {1, 5, 40, dim <= 1000 ? dim : 100}; /* all of a short row */
        for (int ki = 0; ki < 4; ki++) {
            int k = ks[ki] < dim ? ks[ki] : dim;
            KC_OK(kc_topk(c, dids, dvals, dx, n, dim, k, &cuda_err));
            dev_to(c, ids, dids, (size_t)n * k * sizeof(int32_t));
            dev_to(c, vals, dvals, (size_t)n * k * sizeof(float));
            int bad = 0;
            for (int t = 0; t < n; t++) {
                sort_values = x + (size_t)t * dim;
                for (int i = 0; i < dim; i++)
                    order[i] = i;
                qsort(order, (size_t)dim, sizeof(int), by_value);
                for (int j = 0; j < k; j++)
                    bad += ids[t * k + j] != order[j] || vals[t * k + j] != sort_values[order[j]];
            }
            CHECKF(bad == 0, "topk dim %d k %d: %d entries differ from a sort", dim, k, bad);
        }
        kc_free(dx);
        kc_free(dids);
        kc_free(dvals);
        free(x);
        free(ids);
        free(vals);
        free(order);
    }

    /* NaNs are never chosen; past the other values the ids are -1 */
    float row[4] = {1.0f, NAN, 3.0f, NAN};
    float *dx = dev_from(c, row, sizeof(row));
    int32_t *dids = kc_alloc(4 * sizeof(int32_t), &cuda_err);
    float *dvals = kc_alloc(4 * sizeof(float), &cuda_err);
    REQUIRE(dids && dvals, "%s", cuda_err.msg);
    KC_OK(kc_topk(c, dids, dvals, dx, 1, 4, 4, &cuda_err));
    int32_t ids[4];
    dev_to(c, ids, dids, sizeof(ids));
    CHECKF(ids[0] == 2 && ids[1] == 0 && ids[2] == -1 && ids[3] == -1, "topk with NaN: %d %d %d %d",
           ids[0], ids[1], ids[2], ids[3]);
    KC_OK(kc_argmax(c, dids, dx, 1, 4, &cuda_err));
    dev_to(c, ids, dids, sizeof(int32_t));
    CHECK(ids[0] == 2);
    struct mm_err err = {{0}};
    CHECK(kc_topk(c, dids, dvals, dx, 1, 4, 5, &err) == -1 && strstr(err.msg, "k = 5"));
    kc_free(dx);
    kc_free(dids);
    kc_free(dvals);
}

int main(void)
{
    struct kc_ctx *c = cuda_test_ctx("test_kernels_cuda_ops");
    test_norms(c);
    test_rope(c);
    test_rope_kv_store(c);
    test_elementwise(c);
    test_softmax(c);
    test_embedding(c);
    test_sampling(c);
    KC_OK(kc_sync(c, &cuda_err));
    kc_ctx_free(c);
    return check_report("test_kernels_cuda_ops");
}
