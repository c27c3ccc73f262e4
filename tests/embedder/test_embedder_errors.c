/* Bad model directories for the BERT embedder: each is a copy of
 * all-MiniLM-L6-v2 (symlinks) with one file missing or rewritten, and must
 * fail with one line naming the file and the field or tensor at fault.
 * Also bert_forward's checks of its input. Needs the model from
 * deploy/fetch-models.sh; prints SKIP without it. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bert_model.h"
#include "check.h"
#include "embedder_bert.h"

static const char *const model_files[] = {
    "config.json",           "model.safetensors",         "tokenizer.json",
    "modules.json",          "sentence_bert_config.json", "config_sentence_transformers.json",
    "1_Pooling/config.json",
};
#define N_MODEL_FILES (sizeof(model_files) / sizeof(model_files[0]))

static char model_dir[1024];
static char work[1024];

static void remove_copy(const char *dir)
{
    char p[4200];
    for (size_t i = 0; i < N_MODEL_FILES; i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, model_files[i]);
        unlink(p);
    }
    snprintf(p, sizeof(p), "%s/1_Pooling", dir);
    rmdir(p);
    rmdir(dir);
}

/* A fresh copy of the model as symlinks, in work/NAME. */
static const char *copy_model(const char *name)
{
    static char dir[1100];
    snprintf(dir, sizeof(dir), "%s/%s", work, name);
    remove_copy(dir);
    REQUIRE(mkdir(dir, 0755) == 0, "mkdir %s", dir);
    char p[2048], target[2048];
    snprintf(p, sizeof(p), "%s/1_Pooling", dir);
    REQUIRE(mkdir(p, 0755) == 0, "mkdir %s", p);
    for (size_t i = 0; i < N_MODEL_FILES; i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, model_files[i]);
        snprintf(target, sizeof(target), "%s/%s", model_dir, model_files[i]);
        REQUIRE(symlink(target, p) == 0, "symlink %s", p);
    }
    return dir;
}

static void write_text(const char *dir, const char *rel, const char *text)
{
    char p[2048];
    snprintf(p, sizeof(p), "%s/%s", dir, rel);
    unlink(p);
    FILE *f = fopen(p, "w");
    REQUIRE(f && fputs(text, f) >= 0 && fclose(f) == 0, "cannot write %s", p);
}

/* The model's config.json with one field replaced (NULL: removed). */
static void edit_config(const char *dir, const char *key, json_t *value)
{
    char src[2048], p[2048];
    snprintf(src, sizeof(src), "%s/config.json", model_dir);
    snprintf(p, sizeof(p), "%s/config.json", dir);
    json_error_t jerr;
    json_t *c = json_load_file(src, 0, &jerr);
    REQUIRE(c, "%s: %s", src, jerr.text);
    if (value)
        json_object_set_new(c, key, value);
    else
        json_object_del(c, key);
    unlink(p);
    REQUIRE(json_dump_file(c, p, 0) == 0, "cannot write %s", p);
    json_decref(c);
}

/* Loading dir must fail with a message holding every one of the words. */
static void expect_failure(const char *what, const char *dir, const char *w1, const char *w2)
{
    struct mm_err err = {{0}};
    struct mm_embedder *e = mm_bert_embedder_new(dir, &err);
    CHECKF(!e, "%s: loaded", what);
    mm_embedder_free(e);
    CHECKF(strstr(err.msg, w1) && (!w2 || strstr(err.msg, w2)), "%s: message '%s' lacks '%s'/'%s'",
           what, err.msg, w1, w2 ? w2 : "");
    printf("%-28s %s\n", what, err.msg);
}

static void bad_directories(void)
{
    expect_failure("no such directory", "/nonexistent/minilm", "/nonexistent/minilm/config.json",
                   NULL);

    const char *d = copy_model("no-tokenizer");
    char p[2048];
    snprintf(p, sizeof(p), "%s/tokenizer.json", d);
    unlink(p);
    expect_failure("tokenizer.json missing", d, "tokenizer.json", NULL);

    d = copy_model("no-weights");
    snprintf(p, sizeof(p), "%s/model.safetensors", d);
    unlink(p);
    expect_failure("model.safetensors missing", d, "model.safetensors", NULL);

    d = copy_model("ffn-size");
    edit_config(d, "intermediate_size", json_integer(1024));
    expect_failure("intermediate_size wrong", d, "model.safetensors",
                   "'encoder.layer.0.intermediate.dense.weight'");

    d = copy_model("vocab-size");
    edit_config(d, "vocab_size", json_integer(30000));
    expect_failure("vocab_size wrong", d, "'embeddings.word_embeddings.weight'", "[30000, 384]");

    d = copy_model("layers");
    edit_config(d, "num_hidden_layers", json_integer(7));
    expect_failure("num_hidden_layers too many", d, "missing tensor",
                   "'encoder.layer.6.attention.self.query.weight'");

    d = copy_model("heads");
    edit_config(d, "num_attention_heads", json_integer(5));
    expect_failure("heads do not divide", d, "config.json", "num_attention_heads");

    d = copy_model("act");
    edit_config(d, "hidden_act", json_string("gelu_new"));
    expect_failure("tanh GELU", d, "config.json", "hidden_act");

    d = copy_model("no-hidden");
    edit_config(d, "hidden_size", NULL);
    expect_failure("hidden_size missing", d, "config.json", "'hidden_size'");

    d = copy_model("model-type");
    edit_config(d, "model_type", json_string("roberta"));
    expect_failure("not BERT", d, "config.json", "model_type");

    d = copy_model("bad-json");
    write_text(d, "config.json", "{\"model_type\": \"bert\",");
    expect_failure("config.json truncated", d, "config.json", "line");

    d = copy_model("dense");
    write_text(d, "modules.json",
               "[{\"name\": \"0\", \"path\": \"\", \"type\": "
               "\"sentence_transformers.models.Transformer\"}, {\"name\": \"1\", \"path\": "
               "\"1_Pooling\", \"type\": \"sentence_transformers.models.Pooling\"}, {\"name\": "
               "\"2\", \"path\": \"2_Dense\", \"type\": \"sentence_transformers.models.Dense\"}]");
    expect_failure("Dense module", d, "modules.json", "Dense");

    d = copy_model("cls");
    write_text(d, "1_Pooling/config.json",
               "{\"word_embedding_dimension\": 384, \"pooling_mode_cls_token\": true, "
               "\"pooling_mode_mean_tokens\": false}");
    expect_failure("CLS pooling", d, "1_Pooling/config.json", "mean pooling");

    d = copy_model("max-seq");
    write_text(d, "sentence_bert_config.json", "{\"max_seq_length\": 1000}");
    expect_failure("max_seq_length > positions", d, "sentence_bert_config.json", "max_seq_length");

    d = copy_model("prompt");
    write_text(d, "config_sentence_transformers.json", "{\"default_prompt_name\": \"query\"}");
    expect_failure("default prompt", d, "config_sentence_transformers.json", "prompt");

    const char *names[] = {"no-tokenizer", "no-weights", "ffn-size",  "vocab-size", "layers",
                           "heads",        "act",        "no-hidden", "model-type", "bad-json",
                           "dense",        "cls",        "max-seq",   "prompt"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", work, names[i]);
        remove_copy(p);
    }
}

static void bad_forward_input(void)
{
    struct mm_err err = {{0}};
    struct bert_model *m = bert_model_load(model_dir, &err);
    REQUIRE(m, "%s", err.msg);
    float *out = malloc(600 * (size_t)m->cfg.dim * sizeof(float));
    int32_t ids[600] = {101, 7592, 102};
    int lens[2] = {3, 0};
    CHECK(bert_forward(m, ids, lens, 2, out, &err) == -1 && strstr(err.msg, "0 tokens"));
    lens[1] = 1;
    ids[3] = m->cfg.vocab_size;
    CHECK(bert_forward(m, ids, lens, 2, out, &err) == -1 && strstr(err.msg, "token id"));
    ids[3] = -1;
    CHECK(bert_forward(m, ids, lens, 2, out, &err) == -1 && strstr(err.msg, "token id"));
    int too_long = m->cfg.max_positions + 1;
    CHECK(bert_forward(m, ids, &too_long, 1, out, &err) == -1 && strstr(err.msg, "513 tokens"));
    CHECK(bert_forward(m, ids, lens, 1, out, &err) == 0);
    free(out);
    bert_model_free(m);
}

int main(void)
{
    test_path("MEMLLM_MODELS_DIR", "all-MiniLM-L6-v2", model_dir, sizeof(model_dir));
    char weights[1100];
    snprintf(weights, sizeof(weights), "%s/model.safetensors", model_dir);
    if (access(weights, R_OK) != 0) {
        printf("SKIP: %s is absent (run deploy/fetch-models.sh)\n", weights);
        return 0;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(work, sizeof(work), "%s/memllm-embedder-XXXXXX", tmp ? tmp : "/tmp");
    REQUIRE(mkdtemp(work), "mkdtemp %s", work);
    bad_directories();
    bad_forward_input();
    rmdir(work);
    return check_report("test_embedder_errors");
}
