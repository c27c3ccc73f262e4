/* The committed MR adapter (adapters/smollm2-135m-mr) does its job through
 * the real runtime: on validation document 33 of Re-DocRED dev ("Kyoto
 * Imperial Palace", held out of its training), given the text before the
 * document's first read point (memllm data mr's first example) and a memory
 * of the document's gold facts (memory import-docred), greedy generation
 * issues a well-formed read ("s>>r>>" or ">>r>>o" queries), the runtime
 * answers it from the memory with the facts'
 * provenance, and the trace says so. The base model issues no read there.
 * The plain-text baseline (adapters/smollm2-135m-text) is the same LoRA
 * (rank, alpha, dropout, modules, trainable token rows).
 *
 *   test_adapter_mr MEMLLM_BIN DATA_DIR MODELS_DIR ADAPTERS_DIR */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "check.h"
#include "run_cmd.h"

static const char *bin;
static char tmp[] = "/tmp/memllm_mr_XXXXXX", path[6][1200];

static const char *in_tmp(int slot, const char *name)
{
    snprintf(path[slot], sizeof(path[slot]), "%s/%s", tmp, name);
    return path[slot];
}

static void run_ok(const char *const *args)
{
    struct cmd_result r = run_memllm(NULL, bin, 0, args, NULL);
    REQUIRE(r.status == 0, "memllm %s %s: exit %d: %s", args[0], args[1], r.status, r.err);
    cmd_result_free(&r);
}

/* The reads of the one result in FILE. */
static json_t *reads_of(const char *file)
{
    json_error_t jerr;
    json_t *res = json_load_file(file, JSON_DISABLE_EOF_CHECK, &jerr);
    REQUIRE(res, "%s: %s", file, jerr.text);
    json_t *reads = json_incref(json_object_get(res, "reads"));
    json_decref(res);
    return reads ? reads : json_array();
}

static json_t *adapter_config(const char *dir, const char *name)
{
    char file[1300];
    snprintf(file, sizeof(file), "%s/%s/adapter_config.json", dir, name);
    json_error_t jerr;
    json_t *c = json_load_file(file, 0, &jerr);
    REQUIRE(c, "%s: %s", file, jerr.text);
    return c;
}

static void same_lora(const char *adapters)
{
    json_t *mr = adapter_config(adapters, "smollm2-135m-mr"),
           *text = adapter_config(adapters, "smollm2-135m-text");
    const char *keys[] = {"r", "lora_alpha", "lora_dropout", "target_modules",
                          "trainable_token_indices"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        CHECKF(json_object_get(mr, keys[i]) &&
                   json_equal(json_object_get(mr, keys[i]), json_object_get(text, keys[i])),
               "the text baseline's %s differs from the MR adapter's", keys[i]);
    json_decref(mr);
    json_decref(text);
}

int main(int argc, char **argv)
{
    REQUIRE(argc == 5, "usage: test_adapter_mr MEMLLM_BIN DATA_DIR MODELS_DIR ADAPTERS_DIR");
    bin = argv[1];
    REQUIRE(mkdtemp(tmp), "mkdtemp");
    same_lora(argv[4]);
    char dev[1200], model[1200], adapter[1200];
    snprintf(dev, sizeof(dev), "%s/redocred/dev_revised.json", argv[2]);
    snprintf(model, sizeof(model), "%s/SmolLM2-135M-Instruct.Q4_1.gguf", argv[3]);
    snprintf(adapter, sizeof(adapter), "%s/smollm2-135m-mr", argv[4]);
    json_error_t jerr;
    json_t *all = json_load_file(dev, 0, &jerr), *one = json_array();
    REQUIRE(json_array_size(all) == 500, "%s: %s", dev, jerr.text);
    json_array_append(one, json_array_get(all, 33));
    REQUIRE(json_dump_file(one, in_tmp(0, "doc33.json"), 0) == 0, "cannot write doc33.json");
    json_decref(one);
    json_decref(all);

    const char *import[] = {"memory",   "import-docred",   in_tmp(0, "doc33.json"),
                            "--memory", in_tmp(1, "gold"), NULL};
    run_ok(import);
    const char *data[] = {"data",
                          "mr",
                          in_tmp(0, "doc33.json"),
                          "--memory",
                          in_tmp(1, "gold"),
                          "--out",
                          in_tmp(2, "mr.jsonl"),
                          NULL};
    run_ok(data);
    /* the first example's text before its read is the prompt */
    json_t *ex = json_load_file(in_tmp(2, "mr.jsonl"), JSON_DISABLE_EOF_CHECK, &jerr);
    REQUIRE(ex, "%s: %s", path[2], jerr.text);
    const char *prompt = json_string_value(
        json_object_get(json_array_get(json_object_get(ex, "segments"), 0), "text"));
    REQUIRE(prompt && strlen(prompt) > 100, "no text before the first read");
    json_t *req = json_pack("{s:s, s:i}", "prompt", prompt, "max_tokens", 40);
    REQUIRE(req && json_dump_file(req, in_tmp(3, "req.jsonl"), JSON_COMPACT) == 0, "request");
    json_decref(req);
    json_decref(ex);

    const char *with[] = {"generate",
                          "--model",
                          model,
                          "--adapter",
                          adapter,
                          "--memory",
                          in_tmp(1, "gold"),
                          "--input",
                          in_tmp(3, "req.jsonl"),
                          "--output",
                          in_tmp(4, "with.jsonl"),
                          "--greedy",
                          "--threads",
                          "2",
                          NULL};
    run_ok(with);
    json_t *reads = reads_of(path[4]);
    CHECKF(json_array_size(reads) >= 1, "the MR adapter issued no read");
    json_t *first = json_array_get(reads, 0), *q;
    size_t i;
    int answered = 0;
    const char *call = json_string_value(json_object_get(first, "call"));
    CHECKF(call && strstr(call, ">>"), "a malformed read: %s", call ? call : "(none)");
    json_array_foreach(json_object_get(first, "queries"), i, q)
    {
        json_t *a = json_array_get(json_object_get(q, "answers"), 0);
        answered |= a && json_array_size(json_object_get(a, "provenance")) > 0;
    }
    CHECKF(answered, "the read got no answer with provenance from the gold memory");
    printf("the MR adapter's first read: %s\n", call ? call : "(none)");
    json_decref(reads);

    const char *base[] = {"generate",
                          "--model",
                          model,
                          "--memory",
                          in_tmp(1, "gold"),
                          "--input",
                          in_tmp(3, "req.jsonl"),
                          "--output",
                          in_tmp(5, "base.jsonl"),
                          "--greedy",
                          "--threads",
                          "2",
                          NULL};
    run_ok(base);
    reads = reads_of(path[5]);
    CHECKF(json_array_size(reads) == 0, "the base model read %zu times", json_array_size(reads));
    json_decref(reads);

    char cmd[sizeof(tmp) + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    CHECK(system(cmd) == 0);
    return check_report("test_adapter_mr");
}
