/* The HF reference of a model fixture (tools/make_model_fixtures.py):
 * reference.json's token ids and greedy continuations, and the f32 logits
 * files it names, with and without the PEFT adapter. Shared by the tests
 * that hold the CPU and GPU stages to it. */
#ifndef MEMLLM_TESTS_MODEL_REFERENCE_H
#define MEMLLM_TESTS_MODEL_REFERENCE_H

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"

#define MODEL_REFERENCE_MAX_PROMPT 256
#define MODEL_REFERENCE_MAX_GREEDY 64

struct model_reference {
    int32_t prompt[MODEL_REFERENCE_MAX_PROMPT];
    int32_t greedy_prompt[MODEL_REFERENCE_MAX_GREEDY], greedy[MODEL_REFERENCE_MAX_GREEDY];
    int32_t greedy_lora[MODEL_REFERENCE_MAX_GREEDY];
    int n_prompt, n_greedy_prompt, n_greedy;
    int vocab;
    int has_adapter;             /* GGUF fixtures have none: llama.cpp takes no PEFT adapters */
    float *logits, *logits_lora; /* [n_prompt, vocab]; logits_lora NULL without adapter */
};

static inline int model_reference_ids(json_t *arr, int32_t *out, int cap)
{
    size_t i;
    json_t *v;
    REQUIRE(json_is_array(arr) && (int)json_array_size(arr) <= cap, "bad id array");
    json_array_foreach(arr, i, v) out[i] = (int32_t)json_integer_value(v);
    return (int)json_array_size(arr);
}

static inline float *model_reference_f32(const char *dir, const char *name, size_t count)
{
    char path[1200];
    REQUIRE(name, "%s/reference.json names no logits file", dir);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    REQUIRE(f, "cannot open %s", path);
    float *buf = malloc(count * sizeof(float));
    REQUIRE(buf && fread(buf, sizeof(float), count, f) == count, "%s is short", path);
    fclose(f);
    return buf;
}

static inline void model_reference_load(const char *dir, struct model_reference *r)
{
    char path[1200];
    snprintf(path, sizeof(path), "%s/reference.json", dir);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    REQUIRE(root, "%s: %s", path, jerr.text);
    r->n_prompt = model_reference_ids(json_object_get(root, "prompt_ids"), r->prompt,
                                      MODEL_REFERENCE_MAX_PROMPT);
    r->n_greedy_prompt = model_reference_ids(json_object_get(root, "greedy_prompt_ids"),
                                             r->greedy_prompt, MODEL_REFERENCE_MAX_GREEDY);
    r->n_greedy = model_reference_ids(json_object_get(root, "greedy_ids"), r->greedy,
                                      MODEL_REFERENCE_MAX_GREEDY);
    r->vocab = (int)json_integer_value(json_object_get(root, "vocab_size"));
    REQUIRE(r->n_prompt > 0 && r->vocab > 0, "%s: empty reference", path);
    size_t count = (size_t)r->n_prompt * (size_t)r->vocab;
    r->logits = model_reference_f32(dir, json_string_value(json_object_get(root, "logits")), count);
    json_t *adapter = json_object_get(root, "adapter");
    r->has_adapter = adapter != NULL;
    r->logits_lora = NULL;
    if (adapter) {
        model_reference_ids(json_object_get(adapter, "greedy_ids"), r->greedy_lora,
                            MODEL_REFERENCE_MAX_GREEDY);
        r->logits_lora =
            model_reference_f32(dir, json_string_value(json_object_get(adapter, "logits")), count);
    }
    json_decref(root);
}

#endif
