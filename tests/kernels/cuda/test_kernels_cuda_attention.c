/* CUDA attention against the CPU op (itself held to PyTorch by
 * test_kernels_attention) on random queries and caches, within 1e-5
 * relative: decode at short and long positions, prefill from the start and
 * as a chunk after a past, GQA ratios 1, 3, 4 and 32 (a group wider than a
 * block's 16 rows), head sizes 1 to 512 (odd ones too), sliding windows
 * shorter and longer than the cache, BERT's unmasked case; every case with
 * the dispatcher's key splits and with splits forced (1, 2, 3, 7: some
 * splits get no keys for some rows, or none at all), and through the cuBLAS
 * path (which the dispatcher takes for runs of 64 tokens and more). Decode attention and
 * the KV store over several slots in one launch: runs of 1 to 8 tokens,
 * windows, groups up to 32 (over 8: several blocks per KV head), every
 * sub-warp width, forced key splits, with the dispatcher of the invariant
 * and of the fast numerics.
 *
 * Batch invariance (the invariant numerics' decode attention, which the
 * stage takes for every batch), bit for bit: every token of several
 * sequences computed alone against the same token in its sequence's whole
 * prefill, in all the sequences' tokens at once in a shuffled order, in
 * batches of 2 to 64 tokens, with max_keys over-estimated, and with the
 * tokens cut into chunks; with and without a sliding window, GQA ratios
 * 1 to 12, head sizes 20 to 256, caches across 1 to 3 key splits. */
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
    {"prefill mistral-like", 300, 0, 32, 8, 128, 4096, 1},
    {"long chunk after a past", 130, 200, 9, 3, 64, 0, 1},
    {"bert long", 80, 0, 12, 12, 64, 0, 0},
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

    /* 0: the dispatcher's choice, -1: cuBLAS, else the flash kernel's splits */
    static const int splits[] = {0, -1, 1, 2, 3, 7};
    for (size_t s = 0; s < sizeof(splits) / sizeof(splits[0]); s++) {
        KC_OK(kc_upload(c, dout, q, qn * sizeof(float), &cuda_err)); /* no leftover answer */
        if (splits[s] == -1)
            KC_OK(kc_attention_gemm(c, dout, dq, dk, dv, ac->n, ac->pos0, ac->n_heads,
                                    ac->n_kv_heads, ac->head_dim, ac->window, ac->causal,
                                    &cuda_err));
        else if (splits[s] == 0)
            KC_OK(kc_attention_forward(c, dout, dq, dk, dv, ac->n, ac->pos0, ac->n_heads,
                                       ac->n_kv_heads, ac->head_dim, ac->window, ac->causal,
                                       &cuda_err));
        else
            KC_OK(kc_attention_split(c, dout, dq, dk, dv, ac->n, ac->pos0, ac->n_heads,
                                     ac->n_kv_heads, ac->head_dim, ac->window, ac->causal,
                                     splits[s], &cuda_err));
        dev_to(c, got, dout, qn * sizeof(float));
        char what[128];
        if (splits[s] == -1)
            snprintf(what, sizeof(what), "attention %s, cuBLAS", ac->name);
        else
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

/* A decode batch: runs of tokens, each run a slot and its first position. */
struct decode_run {
    int slot, pos0, n;
};

struct decode_case {
    const char *name;
    int n_heads, n_kv_heads, head_dim, window, n_runs;
    struct decode_run runs[6];
};

static const struct decode_case decode_cases[] = {
    {"mistral-like, 4 slots", 32, 8, 128, 0, 4, {{2, 700, 1}, {0, 0, 1}, {3, 130, 1}, {1, 5, 1}}},
    {"smollm2-like, runs of 3 and 8", 9, 3, 64, 0, 3, {{1, 40, 3}, {0, 300, 8}, {2, 1, 1}}},
    {"window", 8, 2, 64, 100, 3, {{0, 600, 2}, {1, 50, 1}, {2, 99, 1}}},
    {"group 8, head_dim 256", 16, 2, 256, 0, 2, {{1, 260, 1}, {0, 17, 2}}},
    {"mha head_dim 32", 4, 4, 32, 0, 2, {{0, 90, 1}, {1, 3, 4}}},
    {"head_dim 20 (W 8)", 6, 2, 20, 0, 2, {{0, 45, 1}, {1, 0, 2}}},
    {"group 12 (two blocks per KV head)", 12, 1, 64, 0, 2, {{0, 300, 2}, {1, 7, 1}}},
    {"group 32, window", 32, 2, 64, 50, 2, {{2, 90, 3}, {0, 20, 1}}},
};

/* The batch's new K/V rows stored by kc_kv_store, then kc_attention_decode
 * (dispatcher's splits and forced ones) against the CPU op run sequence by
 * sequence on the same caches. */
static void run_decode_case(struct kc_ctx *c, const struct decode_case *dc)
{
    enum { SLOTS = 4, CAPACITY = 1024 };
    int kv_dim = dc->n_kv_heads * dc->head_dim, q_dim = dc->n_heads * dc->head_dim, n = 0;
    size_t cache_len = (size_t)SLOTS * CAPACITY * kv_dim;
    for (int r = 0; r < dc->n_runs; r++)
        n += dc->runs[r].n;
    float *kc = malloc(cache_len * sizeof(float)), *vc = malloc(cache_len * sizeof(float));
    float *k = malloc((size_t)n * kv_dim * sizeof(float));
    float *v = malloc((size_t)n * kv_dim * sizeof(float));
    float *q = malloc((size_t)n * q_dim * sizeof(float));
    float *want = malloc((size_t)n * q_dim * sizeof(float));
    float *got = malloc((size_t)n * q_dim * sizeof(float));
    float *cache_got = malloc(cache_len * sizeof(float));
    int32_t slot[64], pos[64];
    REQUIRE(kc && vc && k && v && q && want && got && cache_got && n <= 64, "out of memory");
    cuda_test_fill(kc, cache_len, 1.0f, &seed);
    cuda_test_fill(vc, cache_len, 1.0f, &seed);
    cuda_test_fill(k, (size_t)n * kv_dim, 1.0f, &seed);
    cuda_test_fill(v, (size_t)n * kv_dim, 1.0f, &seed);
    cuda_test_fill(q, (size_t)n * q_dim, 3.0f, &seed);
    float *dkc = dev_from(c, kc, cache_len * sizeof(float));
    float *dvc = dev_from(c, vc, cache_len * sizeof(float));
    int max_keys = 0;
    for (int r = 0, t = 0; r < dc->n_runs; r++) {
        const struct decode_run *run = &dc->runs[r];
        float *ks = kc + (size_t)run->slot * CAPACITY * kv_dim;
        float *vs = vc + (size_t)run->slot * CAPACITY * kv_dim;
        for (int i = 0; i < run->n; i++, t++) {
            slot[t] = run->slot;
            pos[t] = run->pos0 + i;
            memcpy(ks + (size_t)pos[t] * kv_dim, k + (size_t)t * kv_dim, kv_dim * sizeof(float));
            memcpy(vs + (size_t)pos[t] * kv_dim, v + (size_t)t * kv_dim, kv_dim * sizeof(float));
            int keys = dc->window > 0 && pos[t] + 1 > dc->window ? dc->window : pos[t] + 1;
            max_keys = keys > max_keys ? keys : max_keys;
        }
        k_attention_forward(want + (size_t)(t - run->n) * q_dim, q + (size_t)(t - run->n) * q_dim,
                            ks, vs, run->n, run->pos0, dc->n_heads, dc->n_kv_heads, dc->head_dim,
                            dc->window, 1);
    }
    float *dk = dev_from(c, k, (size_t)n * kv_dim * sizeof(float));
    float *dv = dev_from(c, v, (size_t)n * kv_dim * sizeof(float));
    float *dq = dev_from(c, q, (size_t)n * q_dim * sizeof(float));
    float *dout = dev_from(c, q, (size_t)n * q_dim * sizeof(float));
    int32_t *dslot = dev_from(c, slot, (size_t)n * sizeof(int32_t));
    int32_t *dpos = dev_from(c, pos, (size_t)n * sizeof(int32_t));
    int64_t stride = (int64_t)CAPACITY * kv_dim;
    char what[160];

    KC_OK(kc_kv_store(c, dkc, dvc, dk, dv, dslot, dpos, n, kv_dim, stride, &cuda_err));
    dev_to(c, cache_got, dkc, cache_len * sizeof(float));
    snprintf(what, sizeof(what), "kv store %s: keys", dc->name);
    CHECKF(memcmp(cache_got, kc, cache_len * sizeof(float)) == 0, "%s differ from the CPU's", what);
    dev_to(c, cache_got, dvc, cache_len * sizeof(float));
    CHECKF(memcmp(cache_got, vc, cache_len * sizeof(float)) == 0, "kv store %s: values differ",
           dc->name);

    static const int split_keys[] = {0, 1, 7, 32, KC_DECODE_SPLIT_KEYS}; /* 0: dispatcher */
    for (size_t i = 0; i < sizeof(split_keys) / sizeof(split_keys[0]); i++) {
        KC_OK(kc_upload(c, dout, q, (size_t)n * q_dim * sizeof(float),
                        &cuda_err)); /* no leftover answer */
        if (split_keys[i] == 0)
            KC_OK(kc_attention_decode(c, dout, dq, dkc, dvc, dslot, dpos, n, max_keys, stride,
                                      dc->n_heads, dc->n_kv_heads, dc->head_dim, dc->window,
                                      &cuda_err));
        else
            KC_OK(kc_attention_decode_split(c, dout, dq, dkc, dvc, dslot, dpos, n, max_keys, stride,
                                            dc->n_heads, dc->n_kv_heads, dc->head_dim, dc->window,
                                            split_keys[i], &cuda_err));
        dev_to(c, got, dout, (size_t)n * q_dim * sizeof(float));
        snprintf(what, sizeof(what), "decode attention %s, splits of %d keys", dc->name,
                 split_keys[i]);
        cuda_check_close(what, got, want, (size_t)n * q_dim, 1e-5);
    }
    void *dev[] = {dkc, dvc, dk, dv, dq, dout, dslot, dpos};
    for (size_t i = 0; i < sizeof(dev) / sizeof(dev[0]); i++)
        kc_free(dev[i]);
    void *host[] = {kc, vc, k, v, q, want, got, cache_got};
    for (size_t i = 0; i < sizeof(host) / sizeof(host[0]); i++)
        free(host[i]);
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
    CHECK(kc_attention_decode_supported(9, 1, 64)); /* a group wider than 8: two blocks */
    CHECK(!kc_attention_decode_supported(9 * 65535, 65535, 64)); /* 2 x 65535 blocks along y */
    CHECK(!kc_attention_decode_supported(4, 4, 66));             /* rows of whole float4s */
    CHECK(!kc_attention_decode_supported(4, 4, 260));
    CHECK(kc_attention_decode_supported(64, 8, 128));
    static const enum kc_numerics modes[] = {KC_NUMERICS_INVARIANT, KC_NUMERICS_FAST};
    for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
        kc_ctx_set_numerics(c, modes[m]);
        err.msg[0] = 0;
        CHECKF(kc_attention_decode(c, NULL, NULL, NULL, NULL, NULL, NULL, 1, 10, 0, 16, 4, 66, 0,
                                   &err) == -1 &&
                   strstr(err.msg, "16 heads, 4 KV heads, head_dim 66"),
               "numerics %d: \"%s\"", (int)modes[m], err.msg);
    }
    kc_ctx_set_numerics(c, KC_NUMERICS_INVARIANT);
}

/* Batch invariance of the invariant numerics' decode attention (see the
 * top): sequences of len[] tokens in slots 0.., every position's K/V row
 * in the cache and a query per position. */
struct inv_case {
    const char *name;
    int n_heads, n_kv_heads, head_dim, window, n_seqs;
    int len[4];
};

static const struct inv_case inv_cases[] = {
    {"mistral-like", 32, 8, 128, 0, 4, {700, 1, 300, 40}},
    {"mistral-like, window 300", 32, 8, 128, 300, 3, {700, 257, 33}},
    {"smollm2-like", 9, 3, 64, 0, 3, {600, 100, 2}},
    {"gqa 4, window 100", 8, 2, 64, 100, 2, {513, 90}},
    {"group 12", 12, 1, 64, 0, 2, {520, 7}},
    {"mha head_dim 32", 4, 4, 32, 0, 2, {300, 1}},
    {"head_dim 20", 6, 2, 20, 0, 2, {260, 30}},
    {"group 8, head_dim 256", 16, 2, 256, 0, 2, {300, 5}},
};

static int inv_keys(const struct inv_case *ic, int pos)
{
    return ic->window > 0 && pos + 1 > ic->window ? ic->window : pos + 1;
}

/* The rows of dout for the tokens idx[0..n) (device q, slot and pos built
 * from them) against alone[idx[j]], bit for bit; chunk > 0 goes through
 * kc_attention_decode_invariant with that chunking. */
static void inv_batch(struct kc_ctx *c, const struct inv_case *ic, const char *what, const int *idx,
                      int n, int max_keys, int chunk, const float *q_all, const int32_t *slot_all,
                      const int32_t *pos_all, const float *alone, const float *dkc,
                      const float *dvc, int64_t stride)
{
    int q_dim = ic->n_heads * ic->head_dim;
    float *q = malloc((size_t)n * q_dim * sizeof(float)),
          *got = malloc((size_t)n * q_dim * sizeof(float));
    int32_t *slot = malloc((size_t)n * sizeof(int32_t)), *pos = malloc((size_t)n * sizeof(int32_t));
    REQUIRE(q && got && slot && pos, "out of memory");
    for (int j = 0; j < n; j++) {
        memcpy(q + (size_t)j * q_dim, q_all + (size_t)idx[j] * q_dim,
               (size_t)q_dim * sizeof(float));
        slot[j] = slot_all[idx[j]];
        pos[j] = pos_all[idx[j]];
    }
    float *dq = dev_from(c, q, (size_t)n * q_dim * sizeof(float));
    float *dout = dev_from(c, q, (size_t)n * q_dim * sizeof(float)); /* no leftover answer */
    int32_t *dslot = dev_from(c, slot, (size_t)n * sizeof(int32_t));
    int32_t *dpos = dev_from(c, pos, (size_t)n * sizeof(int32_t));
    if (chunk > 0)
        KC_OK(kc_attention_decode_invariant(c, dout, dq, dkc, dvc, dslot, dpos, n, max_keys, stride,
                                            ic->n_heads, ic->n_kv_heads, ic->head_dim, ic->window,
                                            chunk, &cuda_err));
    else
        KC_OK(kc_attention_decode(c, dout, dq, dkc, dvc, dslot, dpos, n, max_keys, stride,
                                  ic->n_heads, ic->n_kv_heads, ic->head_dim, ic->window,
                                  &cuda_err));
    dev_to(c, got, dout, (size_t)n * q_dim * sizeof(float));
    int bad_rows = 0, first_bad = -1;
    for (int j = 0; j < n; j++) {
        if (memcmp(got + (size_t)j * q_dim, alone + (size_t)idx[j] * q_dim,
                   (size_t)q_dim * sizeof(float)) != 0) {
            bad_rows++;
            if (first_bad < 0) first_bad = j;
        }
    }
    CHECKF(bad_rows == 0,
           "invariant attention %s, %s (%d tokens, max_keys %d): %d tokens differ from alone "
           "(first: slot %d position %d)",
           ic->name, what, n, max_keys, bad_rows, first_bad >= 0 ? slot[first_bad] : -1,
           first_bad >= 0 ? pos[first_bad] : -1);
    kc_free(dq);
    kc_free(dout);
    kc_free(dslot);
    kc_free(dpos);
    free(q);
    free(got);
    free(slot);
    free(pos);
}

static void run_invariance_case(struct kc_ctx *c, const struct inv_case *ic)
{
    enum { SLOTS = 4, CAPACITY = 1024 };
    int kv_dim = ic->n_kv_heads * ic->head_dim, q_dim = ic->n_heads * ic->head_dim, total = 0;
    for (int s = 0; s < ic->n_seqs; s++)
        total += ic->len[s];
    size_t cache_len = (size_t)SLOTS * CAPACITY * kv_dim;
    float *kc = malloc(cache_len * sizeof(float)), *vc = malloc(cache_len * sizeof(float));
    float *q_all = malloc((size_t)total * q_dim * sizeof(float));
    float *alone = malloc((size_t)total * q_dim * sizeof(float));
    float *want = malloc((size_t)total * q_dim * sizeof(float));
    int32_t *slot_all = malloc((size_t)total * sizeof(int32_t));
    int32_t *pos_all = malloc((size_t)total * sizeof(int32_t));
    int *idx = malloc((size_t)total * sizeof(int)),
        *first = malloc((size_t)ic->n_seqs * sizeof(int));
    REQUIRE(kc && vc && q_all && alone && want && slot_all && pos_all && idx && first,
            "out of memory");
    cuda_test_fill(kc, cache_len, 1.0f, &seed);
    cuda_test_fill(vc, cache_len, 1.0f, &seed);
    cuda_test_fill(q_all, (size_t)total * q_dim, 3.0f, &seed);
    int64_t stride = (int64_t)CAPACITY * kv_dim;
    int max_keys = 0;
    for (int s = 0, t = 0; s < ic->n_seqs; s++) {
        first[s] = t;
        for (int p = 0; p < ic->len[s]; p++, t++) {
            slot_all[t] = s;
            pos_all[t] = p;
            max_keys = inv_keys(ic, p) > max_keys ? inv_keys(ic, p) : max_keys;
        }
        k_attention_forward(want + (size_t)first[s] * q_dim, q_all + (size_t)first[s] * q_dim,
                            kc + (size_t)s * stride, vc + (size_t)s * stride, ic->len[s], 0,
                            ic->n_heads, ic->n_kv_heads, ic->head_dim, ic->window, 1);
    }
    float *dkc = dev_from(c, kc, cache_len * sizeof(float));
    float *dvc = dev_from(c, vc, cache_len * sizeof(float));
    float *dq = dev_from(c, q_all, (size_t)total * q_dim * sizeof(float));
    float *dout = dev_from(c, q_all, (size_t)total * q_dim * sizeof(float));
    int32_t *dslot = dev_from(c, slot_all, (size_t)total * sizeof(int32_t));
    int32_t *dpos = dev_from(c, pos_all, (size_t)total * sizeof(int32_t));

    /* every token alone, with max_keys its own keys */
    for (int t = 0; t < total; t++)
        KC_OK(kc_attention_decode(c, dout + (size_t)t * q_dim, dq + (size_t)t * q_dim, dkc, dvc,
                                  dslot + t, dpos + t, 1, inv_keys(ic, pos_all[t]), stride,
                                  ic->n_heads, ic->n_kv_heads, ic->head_dim, ic->window,
                                  &cuda_err));
    dev_to(c, alone, dout, (size_t)total * q_dim * sizeof(float));
    char what[160];
    snprintf(what, sizeof(what), "invariant attention %s, tokens alone", ic->name);
    cuda_check_close(what, alone, want, (size_t)total * q_dim, 1e-5);

    /* each sequence's prefill */
    for (int s = 0; s < ic->n_seqs; s++) {
        for (int p = 0; p < ic->len[s]; p++)
            idx[p] = first[s] + p;
        snprintf(what, sizeof(what), "sequence %d's prefill", s);
        inv_batch(c, ic, what, idx, ic->len[s], inv_keys(ic, ic->len[s] - 1), 0, q_all, slot_all,
                  pos_all, alone, dkc, dvc, stride);
    }
    /* all tokens, shuffled; then with max_keys over-estimated; then in
     * chunks of 3 and 64 tokens */
    for (int t = 0; t < total; t++)
        idx[t] = t;
    uint32_t st = 99;
    for (int t = total - 1; t > 0; t--) {
        int j = (int)(cuda_test_lcg(&st) % (uint32_t)(t + 1)), tmp = idx[t];
        idx[t] = idx[j];
        idx[j] = tmp;
    }
    inv_batch(c, ic, "every token, shuffled", idx, total, max_keys, 0, q_all, slot_all, pos_all,
              alone, dkc, dvc, stride);
    inv_batch(c, ic, "every token, max_keys the capacity", idx, total, CAPACITY, 0, q_all, slot_all,
              pos_all, alone, dkc, dvc, stride);
    inv_batch(c, ic, "every token, chunks of 3", idx, total, max_keys, 3, q_all, slot_all, pos_all,
              alone, dkc, dvc, stride);
    inv_batch(c, ic, "every token, chunks of 64", idx, total, max_keys, 64, q_all, slot_all,
              pos_all, alone, dkc, dvc, stride);
    /* batches of 2 to 64 of the shuffled tokens, max_keys their own */
    static const int sizes[] = {2, 3, 8, 9, 33, 64};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        int n = sizes[k] < total ? sizes[k] : total;
        for (int off = 0; off + n <= total && off < 3 * n; off += n) {
            int mk = 0;
            for (int j = 0; j < n; j++)
                mk = inv_keys(ic, pos_all[idx[off + j]]) > mk ? inv_keys(ic, pos_all[idx[off + j]])
                                                              : mk;
            snprintf(what, sizeof(what), "a batch of %d at %d", n, off);
            inv_batch(c, ic, what, idx + off, n, mk, 0, q_all, slot_all, pos_all, alone, dkc, dvc,
                      stride);
        }
    }
    void *dev[] = {dkc, dvc, dq, dout, dslot, dpos};
    for (size_t i = 0; i < sizeof(dev) / sizeof(dev[0]); i++)
        kc_free(dev[i]);
    void *host[] = {kc, vc, q_all, alone, want, slot_all, pos_all, idx, first};
    for (size_t i = 0; i < sizeof(host) / sizeof(host[0]); i++)
        free(host[i]);
}

int main(void)
{
    struct kc_ctx *c = cuda_test_ctx("test_kernels_cuda_attention");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_case(c, &cases[i]);
    /* decode attention with each numerics' dispatcher */
    static const enum kc_numerics modes[] = {KC_NUMERICS_INVARIANT, KC_NUMERICS_FAST};
    for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
        kc_ctx_set_numerics(c, modes[m]);
        for (size_t i = 0; i < sizeof(decode_cases) / sizeof(decode_cases[0]); i++)
            run_decode_case(c, &decode_cases[i]);
    }
    kc_ctx_set_numerics(c, KC_NUMERICS_INVARIANT);
    for (size_t i = 0; i < sizeof(inv_cases) / sizeof(inv_cases[0]); i++)
        run_invariance_case(c, &inv_cases[i]);
    test_refusals(c);
    kc_ctx_free(c);
    return check_report("test_kernels_cuda_attention");
}
