/* A real pretrained model against llama.cpp: SmolLM2-135M-Instruct (GGUF
 * Q4_1, from PyPI via deploy/fetch-models.sh) teacher-forced on 512 tokens of
 * Re-DocRED text. llama.cpp's top-1 tokens and perplexity on the same file
 * were recorded by tools/make_llamacpp_reference.py. memllm must agree on
 * >= 95% of the top-1 tokens and on the perplexity within 1%. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "forward.h"
#include "model.h"

#define CHUNK 128

static int ids_from(json_t *arr, int32_t **out)
{
    size_t n = json_array_size(arr), i;
    json_t *v;
    *out = malloc(n * sizeof(int32_t));
    json_array_foreach(arr, i, v)(*out)[i] = (int32_t)json_integer_value(v);
    return (int)n;
}

int main(void)
{
    char model_path[1024], ref_path[1024];
    test_path("MEMLLM_MODELS_DIR", "SmolLM2-135M-Instruct.Q4_1.gguf", model_path,
              sizeof(model_path));
    test_path("MEMLLM_FIXTURES", "llamacpp/smollm2_q4_1.json", ref_path, sizeof(ref_path));
    if (access(model_path, R_OK) != 0) {
        printf("SKIP: %s is absent (run deploy/fetch-models.sh)\n", model_path);
        return 0;
    }
    json_error_t jerr;
    json_t *ref = json_load_file(ref_path, 0, &jerr);
    REQUIRE(ref, "%s: %s", ref_path, jerr.text);
    int32_t *ids, *top1;
    int n_ids = ids_from(json_object_get(ref, "input_ids"), &ids);
    int n_pred = ids_from(json_object_get(ref, "top1"), &top1);
    double ref_ppl = json_number_value(json_object_get(ref, "ppl"));
    REQUIRE(n_pred == n_ids - 1 && n_pred > 0, "reference is inconsistent");

    struct mm_err err = {{0}};
    struct model *m = model_load(model_path, 0, -1, &err);
    REQUIRE(m, "%s", err.msg);
    struct stage s;
    REQUIRE(stage_init(&s, m, 1, n_ids + 1, &err) == 0, "%s", err.msg);
    const int V = m->cfg.vocab_size;
    float *logits = malloc((size_t)CHUNK * V * sizeof(float));
    int32_t pos[CHUNK], slot[CHUNK] = {0};
    int agree = 0;
    double nll = 0.0;
    for (int start = 0; start < n_pred; start += CHUNK) {
        int n = n_pred - start < CHUNK ? n_pred - start : CHUNK;
        for (int i = 0; i < n; i++)
            pos[i] = start + i;
        struct stage_batch b = {.n = n, .tokens = ids + start, .pos = pos, .slot = slot};
        REQUIRE(stage_forward(&s, &b, NULL, logits, &err) == 0, "%s", err.msg);
        for (int i = 0; i < n; i++) {
            const float *row = logits + (size_t)i * V;
            agree += k_argmax(row, V) == top1[start + i];
            float max = row[0];
            for (int j = 1; j < V; j++)
                max = row[j] > max ? row[j] : max;
            double sum = 0.0;
            for (int j = 0; j < V; j++)
                sum += exp((double)(row[j] - max));
            nll -= (double)(row[ids[start + i + 1]] - max) - log(sum);
        }
    }
    double ppl = exp(nll / n_pred), agreement = (double)agree / n_pred;
    printf("top-1 agreement with llama.cpp: %.4f (%d/%d)\n", agreement, agree, n_pred);
    printf("perplexity: memllm %.4f, llama.cpp %.4f (ratio %.5f)\n", ppl, ref_ppl, ppl / ref_ppl);
    CHECKF(agreement >= 0.95, "top-1 agreement %.4f < 0.95", agreement);
    CHECKF(fabs(ppl / ref_ppl - 1.0) <= 0.01, "perplexity %.4f vs llama.cpp %.4f", ppl, ref_ppl);

    free(logits);
    free(ids);
    free(top1);
    json_decref(ref);
    stage_free(&s);
    model_free(m);
    return check_report("test_smollm2_llamacpp");
}
