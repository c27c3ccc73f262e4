/* Bad model inputs: a config that contradicts the weights, a missing
 * tensor, a bad config.json, an adapter for another model. Each must fail
 * with a message naming the file and the problem, without crashing. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "lora.h"
#include "model.h"

static char tmpdir[] = "/tmp/memllm-model-errors-XXXXXX";

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    REQUIRE(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

/* A copy of the tiny-llama fixture whose config.json has `from` replaced by
 * `to`. */
static void make_variant(const char *src, const char *from, const char *to)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "cp %s/model.safetensors %s/ && sed 's/%s/%s/' %s/config.json > %s/config.json", src,
             tmpdir, from, to, src, tmpdir);
    REQUIRE(system(cmd) == 0, "%s", cmd);
}

static void expect_load_error(const char *what, const char *substr1, const char *substr2)
{
    struct mm_err err = {{0}};
    struct model *m = model_load(tmpdir, 0, -1, &err);
    CHECKF(m == NULL, "%s: loaded", what);
    CHECKF(strstr(err.msg, substr1) && strstr(err.msg, substr2), "%s: message '%s'", what, err.msg);
    model_free(m);
}

int main(void)
{
    char llama[1024], mistral_adapter[1024], cfg[1200];
    test_path("MEMLLM_FIXTURES", "models/tiny-llama", llama, sizeof(llama));
    test_path("MEMLLM_FIXTURES", "models/tiny-mistral/adapter", mistral_adapter,
              sizeof(mistral_adapter));
    REQUIRE(mkdtemp(tmpdir), "mkdtemp");
    snprintf(cfg, sizeof(cfg), "%s/config.json", tmpdir);

    make_variant(llama, "\"intermediate_size\": [0-9]*", "\"intermediate_size\": 100");
    expect_load_error("ffn size", "mlp.gate_proj.weight", "config.json implies");

    make_variant(llama, "\"num_hidden_layers\": [0-9]*", "\"num_hidden_layers\": 3");
    expect_load_error("extra layer", "missing tensor", "model.layers.2.");

    make_variant(llama, "\"num_key_value_heads\": [0-9]*", "\"num_key_value_heads\": 3");
    expect_load_error("heads", "not a multiple", "key/value heads");

    make_variant(llama, "\"model_type\": \"llama\"", "\"model_type\": \"gpt2\"");
    expect_load_error("arch", "config.json", "not supported");

    write_file(cfg, "{\"model_type\": \"llama\", \"hidden_size\": ");
    expect_load_error("truncated json", "config.json", "line");

    write_file(cfg, "{\"model_type\": \"llama\", \"num_hidden_layers\": \"2\"}");
    expect_load_error("wrong type", "num_hidden_layers", "integer");

    /* The Mistral adapter does not fit the Llama base. */
    struct mm_err err = {{0}};
    struct model *m = model_load(llama, 0, -1, &err);
    REQUIRE(m, "%s", err.msg);
    struct lora_adapter a;
    CHECK(lora_load(&a, m, mistral_adapter, "wrong", &err) != 0);
    CHECKF(strstr(err.msg, "adapter") && strstr(err.msg, "shape"), "message '%s'", err.msg);
    CHECK(lora_load(&a, m, tmpdir, "none", &err) != 0 && strstr(err.msg, "adapter_config.json"));

    /* A layer range outside the model. */
    model_free(m);
    m = model_load(llama, 1, 5, &err);
    CHECK(m == NULL && strstr(err.msg, "layer range"));

    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    REQUIRE(system(cmd) == 0, "cleanup");
    return check_report("test_model_errors");
}
