/* CUDA attention against the CPU op (itself held to PyTorch by
 * test_kernels_attention) on random queries and caches, within 1e-5
 * relative: decode at short and long positions, prefill from the start and
 * as a chunk after a past, GQA ratios 1, 3, 4 and 32 (a group wider than a
 * block's 16 rows), head sizes 1 to 512 (odd ones too), sliding windows
 * shorter and longer than the cache, BERT's unmasked case; every case with
 * the dispatcher's key splits and with splits forced (1, 2, 3, 7: some
 * splits get no keys for some rows, or none at all). */
#include <math.h>
#include <string.h>

#include "kc_internal.h"
#include "kernels.h"
#include "test_kernels_cuda.h"

struct att_case {
    const char *name;
    int n, pos0, n_heads, n_kv_heads, head_dim, window, causal;
};

static const struct att_case cases[] = {
    {"decode first token", 1, 0, 32, 8, 128, 0, 1},
    {"decode", 1, 700, 32, 8, 128, 0, 1},
    {"decode long", 1, 5000, 32, 8, 128, 0, 1},
    {"decode window inside", 1, 1000, 8, 2, 64, 300, 1},
    {"decode window past the cache", 1, 1000, 8, 2, 64, 4096, 1},
    {"decode 3 tokens", 3, 400, 12, 4, 64, 0, 1},
    {"prefill gqa 4", 37, 0, 8, 2, 64, 0, 1},
    {"prefill gqa 3", 100, 0, 6, 2, 32, 0, 1},
    {"chunk after a past", 37, 50, 8, 2, 64, 0, 1},
    {"chunk with a window", 70, 90, 8, 2, 64, 33, 1},
    {"mha head_dim 80", 45, 3, 4, 4, 80, 0, 1},
    {"head_dim 256", 20, 10, 2, 1, 256, 0, 1},
    {"head_dim 512", 9, 30, 2, 2, 512, 0, 1},
    {"head_dim 6", 19, 2, 4, 2, 6, 0, 1},
    {"head_dim 1", 5, 0, 2, 1, 1, 0, 1},
    {"group 32", 3, 40, 32, 1, 64, 0, 1},
    {"bert", 40, 0, 12, 12, 64, 0, 0},
};

static uint32_t seed = 11;

static void run_case(struct kc_ctx *c, const struct att_case *ac)
{
    int kv_len = ac->pos0 + ac->n;
    size_t qn = (size_t)ac->n * ac->n_heads * ac->head_dim;
    size_t kvn = (size_t)kv_len * ac->n_kv_heads * ac->head_dim;
    float *q = malloc(qn * sizeof(float)), *k = malloc(kvn * sizeof(float));
    float *v = malloc(kvn * sizeof(float));
    float *want = malloc(qn * sizeof(float)), *got = malloc(qn * sizeof(float));
    /* queries large enough that the softmax is far from uniform */
    cuda_test_fill(q, qn, 3.0f, &seed);
    cuda_test_fill(k, kvn, 1.0f, &seed);
    cuda_test_fill(v, kvn, 1.0f, &seed);
    k_attention_forward(want, q, k, v, ac->n, ac->pos0, ac->n_heads, ac->n_kv_heads, ac->head_dim,
                        ac->window, ac->causal);
    float *dq = dev_from(c, q, qn * sizeof(float)), *dk = dev_from(c, k, kvn * sizeof(float));
    float *dv = dev_from(c, v, kvn * sizeof(float)), *dout = dev_from(c, q, qn * sizeof(float));

    static const int splits[] = {0, 1, 2, 3, 7}; /* 0: the dispatcher's choice */
    for (size_t s = 0; s < sizeof(splits) / sizeof(splits[0]); s++) {
        if (splits[s] == 0)
            KC_OK(kc_attention_forward(c, dout, dq, dk, dv, ac->n, ac->pos0, ac->n_heads,
                                       ac->n_kv_heads, ac->head_dim, ac->window, ac->causal,
                                       &cuda_err));
        else
            KC_OK(kc_attention_split(c, dout, dq, dk, dv, ac->n, ac->pos0, ac->n_heads,
                                     ac->n_kv_heads, ac->head_dim, ac->window, ac->causal,
                                     splits[s], &cuda_err));
        dev_to(c, got, dout, qn * sizeof(float));
        char what[128];
        snprintf(what, sizeof(what), "attention %s, %d splits", ac->name, splits[s]);
        cuda_check_close(what, got, want, qn, 1e-5);
    }
    kc_free(dq);
    kc_free(dk);
    kc_free(dv);
    kc_free(dout);
    free(q);
    free(k);
    free(v);
    free(want);
    free(got);
}

/* Shapes the kernels cannot take are refused through mm_err. */
static void test_refusals(struct kc_ctx *c)
{
    struct mm_err err = {{0}};
    CHECK(kc_attention_forward(c, NULL, NULL, NULL, NULL, 1, 0, 6, 4, 64, 0, 1, &err) == -1 &&
          strstr(err.msg, "4 KV heads"));
    CHECK(kc_attention_forward(c, NULL, NULL, NULL, NULL, 1, 0, 4, 4, K_MAX_HEAD_DIM + 1, 0, 1,
                               &err) == -1 &&
          strstr(err.msg, "head_dim"));
}

int main(void)
{
    struct kc_ctx *c = cuda_test_ctx("test_kernels_cuda_attention");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_case(c, &cases[i]);
    test_refusals(c);
    kc_ctx_free(c);
    return check_report("test_kernels_cuda_attention");
}
