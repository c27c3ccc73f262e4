/* The BERT sentence embedder (all-MiniLM-L6-v2 on memllm's kernels) against
 * sentence-transformers: tests/fixtures/embedder/minilm.* from
 * tools/make_embedder_fixtures.py holds the token ids sentence-transformers
 * fed the model and the embeddings it returned for ~50 texts (entity names,
 * relation labels, unicode, empty, and texts past the 256-token limit).
 *
 *   - the embedder's token ids equal sentence-transformers' (truncation
 *     included);
 *   - every embedding has cosine >= 0.9999 with the reference;
 *   - one batch of mixed lengths, one text at a time, and a batch that
 *     needs several forward passes give the same vectors;
 *   - the model's tokenizer.json tokenizes llama.cpp's bert-bge test inputs
 *     (the same 30522-token vocabulary) exactly as llama.cpp does.
 *
 * Needs the model from deploy/fetch-models.sh; prints SKIP without it. */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "read_file.h"
#include "embedder_bert.h"
#include "tokenizer.h"

struct fixture {
    json_t *root;
    size_t n;
    const char **texts;
    int dim;
    float *emb; /* [n][dim] */
};

static void load_fixture(struct fixture *f)
{
    char path[1024], emb_path[1100];
    test_path("MEMLLM_FIXTURES", "embedder/minilm.json", path, sizeof(path));
    json_error_t jerr;
    f->root = json_load_file(path, 0, &jerr);
    REQUIRE(f->root, "%s: %s", path, jerr.text);
    json_t *texts = json_object_get(f->root, "texts");
    f->n = json_array_size(texts);
    f->dim = (int)json_integer_value(json_object_get(f->root, "dim"));
    REQUIRE(f->n > 0 && f->dim > 0, "%s: no texts or no dim", path);
    f->texts = malloc(f->n * sizeof(*f->texts));
    for (size_t i = 0; i < f->n; i++)
        f->texts[i] = json_string_value(json_object_get(json_array_get(texts, i), "text"));
    test_path("MEMLLM_FIXTURES", "embedder/minilm.f32", emb_path, sizeof(emb_path));
    FILE *fp = fopen(emb_path, "rb");
    REQUIRE(fp, "cannot open %s", emb_path);
    f->emb = malloc(f->n * (size_t)f->dim * sizeof(float));
    REQUIRE(fread(f->emb, sizeof(float), f->n * (size_t)f->dim, fp) == f->n * (size_t)f->dim,
            "%s: short file", emb_path);
    fclose(fp);
}

static double cosine(const float *a, const float *b, int dim)
{
    double ab = 0, aa = 0, bb = 0;
    for (int d = 0; d < dim; d++) {
        ab += (double)a[d] * b[d];
        aa += (double)a[d] * a[d];
        bb += (double)b[d] * b[d];
    }
    return ab / sqrt(aa * bb);
}

static void check_token_ids(struct mm_embedder *e, const struct fixture *f)
{
    json_t *texts = json_object_get(f->root, "texts");
    int max_seq = (int)json_integer_value(json_object_get(f->root, "max_seq_length"));
    size_t same = 0, longest = 0;
    for (size_t i = 0; i < f->n; i++) {
        json_t *want = json_object_get(json_array_get(texts, i), "ids");
        struct mm_err err = {{0}};
        int32_t *ids;
        size_t n;
        REQUIRE(mm_bert_embedder_tokenize(e, f->texts[i], &ids, &n, &err) == 0, "%s", err.msg);
        int ok = n == json_array_size(want);
        for (size_t j = 0; ok && j < n; j++)
            ok = ids[j] == json_integer_value(json_array_get(want, j));
        CHECKF(ok, "text %zu '%.40s': %zu ids, sentence-transformers has %zu", i, f->texts[i], n,
               json_array_size(want));
        same += ok;
        longest = n > longest ? n : longest;
        free(ids);
    }
    CHECKF(longest == (size_t)max_seq, "the longest text has %zu tokens, the limit is %d", longest,
           max_seq);
    printf("token ids: %zu/%zu texts as sentence-transformers (longest %zu)\n", same, f->n,
           longest);
}

static void check_embeddings(struct mm_embedder *e, const struct fixture *f)
{
    size_t n = f->n, dim = (size_t)f->dim;
    struct mm_err err = {{0}};
    float *batch = malloc(n * dim * sizeof(float));
    REQUIRE(mm_embed(e, f->texts, n, batch, &err) == 0, "%s", err.msg);
    double min_cos = 1;
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        double c = cosine(batch + i * dim, f->emb + i * dim, f->dim);
        CHECKF(c >= 0.9999, "text %zu '%.40s': cosine %.7f with sentence-transformers", i,
               f->texts[i], c);
        double norm2 = 0;
        for (size_t d = 0; d < dim; d++)
            norm2 += (double)batch[i * dim + d] * batch[i * dim + d];
        CHECK_NEAR(norm2, 1.0, 1e-5);
        if (c < min_cos) {
            min_cos = c;
            worst = i;
        }
    }
    printf("cosine with sentence-transformers: min %.9f (1 - min = %.2g, text %zu), %zu texts\n",
           min_cos, 1 - min_cos, worst, n);

    /* One at a time: the other sequences of a batch must not leak in. */
    float *one = malloc(dim * sizeof(float));
    double worst_diff = 0;
    for (size_t i = 0; i < n; i++) {
        REQUIRE(mm_embed(e, &f->texts[i], 1, one, &err) == 0, "%s", err.msg);
        worst_diff = fmax(worst_diff, max_abs_diff(one, batch + i * dim, dim));
    }
    CHECKF(worst_diff <= 1e-5, "one by one differs from the batch by %g", worst_diff);
    printf("batch vs one by one: max |diff| %.3g\n", worst_diff);

    /* Three copies of the set need several forward passes. */
    size_t n3 = 3 * n;
    const char **texts3 = malloc(n3 * sizeof(*texts3));
    float *out3 = malloc(n3 * dim * sizeof(float));
    for (size_t i = 0; i < n3; i++)
        texts3[i] = f->texts[(i * 7) % n]; /* shuffled: 7 does not divide n */
    REQUIRE(mm_embed(e, texts3, n3, out3, &err) == 0, "%s", err.msg);
    double diff3 = 0;
    for (size_t i = 0; i < n3; i++)
        diff3 = fmax(diff3, max_abs_diff(out3 + i * dim, batch + ((i * 7) % n) * dim, dim));
    CHECKF(diff3 <= 1e-5, "a multi-pass batch differs by %g", diff3);
    printf("multi-pass batch of %zu: max |diff| %.3g\n", n3, diff3);

    REQUIRE(mm_embed(e, NULL, 0, NULL, &err) == 0, "%s", err.msg);
    free(texts3);
    free(out3);
    free(one);
    free(batch);
}

/* llama.cpp's test vectors: inputs separated by "\n__ggml_vocab_test__\n",
 * one line of ids each, no [CLS]/[SEP]. */
static void check_llamacpp_vectors(const char *model_dir)
{
    char inp_path[1024], out_path[1024];
    test_path("MEMLLM_DATA", "vocab/ggml-vocab-bert-bge.gguf.inp", inp_path, sizeof(inp_path));
    test_path("MEMLLM_DATA", "vocab/ggml-vocab-bert-bge.gguf.out", out_path, sizeof(out_path));
    struct mm_err err = {{0}};
    struct tokenizer *t = tok_load(model_dir, &err);
    REQUIRE(t, "%s", err.msg);
    size_t inp_len, out_len;
    char *inp = must_read_file(inp_path, &inp_len), *out = must_read_file(out_path, &out_len);
    static const char sep[] = "\n__ggml_vocab_test__\n";
    size_t pos = 0, out_pos = 0, cases = 0, ok = 0;
    while (pos < inp_len) {
        char *next = strstr(inp + pos, sep);
        size_t end = next ? (size_t)(next - inp) : inp_len;
        char *nl = memchr(out + out_pos, '\n', out_len - out_pos);
        size_t line_end = nl ? (size_t)(nl - out) : out_len;
        int32_t *ids;
        size_t n;
        REQUIRE(tok_encode(t, inp + pos, end - pos, 0, 0, &ids, &n, &err) == 0, "%s", err.msg);
        const char *p = out + out_pos;
        size_t k = 0;
        int same = 1;
        while (p < out + line_end) {
            char *q;
            long id = strtol(p, &q, 10);
            if (q == p) break;
            same = same && k < n && ids[k] == id;
            k++;
            p = q;
        }
        same = same && k == n;
        CHECKF(same, "bert-bge case %zu '%.*s': differs from llama.cpp", cases,
               (int)(end - pos < 40 ? end - pos : 40), inp + pos);
        ok += same;
        cases++;
        free(ids);
        out_pos = line_end + 1;
        pos = next ? end + strlen(sep) : inp_len;
    }
    printf("tokenizer.json vs llama.cpp bert-bge vectors: %zu/%zu cases identical\n", ok, cases);
    free(inp);
    free(out);
    tok_free(t);
}

int main(void)
{
    char model_dir[1024];
    test_path("MEMLLM_MODELS_DIR", "all-MiniLM-L6-v2", model_dir, sizeof(model_dir));
    char weights[1100];
    snprintf(weights, sizeof(weights), "%s/model.safetensors", model_dir);
    if (access(weights, R_OK) != 0) {
        printf("SKIP: %s is absent (run deploy/fetch-models.sh)\n", weights);
        return 0;
    }
    struct fixture f;
    load_fixture(&f);
    struct mm_err err = {{0}};
    struct mm_embedder *e = mm_bert_embedder_new(model_dir, &err);
    REQUIRE(e, "%s", err.msg);
    printf("embedder: %s, dim %d\n", e->name, e->dim);
    CHECK(e->dim == f.dim);
    CHECK(strncmp(e->name, "all-MiniLM-L6-v2" MM_BERT_EMBEDDER_SUFFIX,
                  strlen("all-MiniLM-L6-v2" MM_BERT_EMBEDDER_SUFFIX)) == 0);

    /* A second load names the same model the same way. */
    struct mm_embedder *again = mm_bert_embedder_new(model_dir, &err);
    REQUIRE(again, "%s", err.msg);
    CHECK(strcmp(again->name, e->name) == 0);
    mm_embedder_free(again);

    check_token_ids(e, &f);
    check_embeddings(e, &f);
    check_llamacpp_vectors(model_dir);

    mm_embedder_free(e);
    free(f.emb);
    free(f.texts);
    json_decref(f.root);
    return check_report("test_embedder_bert");
}
