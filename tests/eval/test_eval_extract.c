/* memllm eval extract:
 *   - the scoring (eval_extract.h) on document 472 of Re-DocRED dev ("Ko
 *     Joo-yeon": 14 entities, 20 distinct gold relations) against facts
 *     written out by hand: an alias spelled as the text spells it ("Ko Joo -
 *     yeon"), case ignored, an exact repeat counted once, a wrong relation
 *     and a wrong entity not counted, each gold relation recalled once;
 *   - the command end to end with SmolLM2 and the committed MW adapter
 *     (adapters/smollm2-135m-mw) on that document: every figure printed, the
 *     adapter writes facts (the base model writes none well-formed), the
 *     figures consistent with each other, and the facts in the memory;
 *   - bad input: a malformed document fails naming it, --val too large, no
 *     adapter.
 *
 * In the sanitizer build (SANITIZED, where each generated token costs ten
 * times as much), the adapter writes at most 48 tokens a sentence
 * (--max-tokens 48, the bound of tests/serve's annotate jobs), not the
 * default 256 its late stopping may run to; the same run and checks.
 *
 *   test_eval_extract MEMLLM_BIN DATA_DIR MODELS_DIR ADAPTERS_DIR */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "eval_extract.h"
#include "memory_client_docred.h"
#include "run_cmd.h"

static const char *bin;
static char tmp[] = "/tmp/memllm_eval_XXXXXX", path[4][1200];

static const char *in_tmp(int slot, const char *name)
{
    snprintf(path[slot], sizeof(path[slot]), "%s/%s", tmp, name);
    return path[slot];
}

static void scoring(json_t *doc, json_t *props)
{
    struct mm_triple_text facts[] = {
        {"Ko Joo - yeon", "country of citizenship", "South Korean"}, /* P27 0 -> 2 */
        {"ko joo-yeon", "country of citizenship", "south korean"},   /* another text, same */
        {"Epitaph", "publication date", "2007"},                     /* P577 10 -> 9 */
        {"Epitaph", "publication date", "2007"},                     /* repeat: once */
        {"Epitaph", "performer", "Asako"},                           /* no such relation */
        {"Asako", "cast member", "Ko Joo-yeon"},                     /* P161 11 -> 0 */
        {"Nobody", "cast member", "Ko Joo-yeon"},                    /* no such entity */
    };
    struct extract_counts c = {0};
    struct mm_err err = {{0}};
    REQUIRE(extract_score_document(doc, props, facts, 7, &c, &err) == 0, "%s", err.msg);
    CHECKF(c.documents == 1 && c.gold == 20 && c.facts == 6 && c.correct == 4 && c.recalled == 3,
           "documents %lld gold %lld facts %lld correct %lld recalled %lld", (long long)c.documents,
           (long long)c.gold, (long long)c.facts, (long long)c.correct, (long long)c.recalled);
    CHECK(fabs(extract_precision(&c) - 4.0 / 6) < 1e-12 &&
          fabs(extract_recall(&c) - 3.0 / 20) < 1e-12);
    double p = 4.0 / 6, r = 3.0 / 20;
    CHECK(fabs(extract_f1(&c) - 2 * p * r / (p + r)) < 1e-12);
    /* nothing written: precision 0, not a division by zero */
    struct extract_counts none = {0};
    REQUIRE(extract_score_document(doc, props, NULL, 0, &none, &err) == 0, "%s", err.msg);
    CHECK(none.gold == 20 && none.facts == 0 && extract_f1(&none) == 0.0);
    /* a document without labels is refused, whole */
    json_t *bad = json_deep_copy(doc);
    json_object_del(bad, "labels");
    struct extract_counts untouched = {0};
    CHECK(extract_score_document(bad, props, facts, 7, &untouched, &err) == -1 &&
          strstr(err.msg, "labels") && untouched.documents == 0);
    json_decref(bad);
}

static void end_to_end(const char *models, const char *adapters)
{
    char model[1200], adapter[1200];
    snprintf(model, sizeof(model), "%s/SmolLM2-135M-Instruct.Q4_1.gguf", models);
    snprintf(adapter, sizeof(adapter), "%s/smollm2-135m-mw", adapters);
    const char *args[] = {"eval",      "extract",  in_tmp(0, "one.json"),
                          "--model",   model,      "--adapter",
                          adapter,     "--memory", in_tmp(1, "mem"),
                          "--threads", "2",        SANITIZED ? "--max-tokens" : NULL,
                          "48",        NULL};
    struct cmd_result r = run_memllm(NULL, bin, 0, args, NULL);
    REQUIRE(r.status == 0, "exit %d: %s", r.status, r.err);
    const char *names[] = {"documents", "sentences", "gold",   "facts", "correct",
                           "recalled",  "precision", "recall", "f1",    "delay"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        CHECKF(out_figure(r.out, names[i]) >= 0, "no '%s' line in:\n%s", names[i], r.out);
    double facts = out_figure(r.out, "facts"), correct = out_figure(r.out, "correct");
    CHECKF(out_figure(r.out, "documents") == 1 && out_figure(r.out, "sentences") == 3 &&
               out_figure(r.out, "gold") == 20 && out_figure(r.out, "delay") == 5,
           "%s", r.out);
    CHECKF(facts >= 1 && correct <= facts && out_figure(r.out, "recalled") <= 20, "%s", r.out);
    CHECKF(fabs(out_figure(r.out, "precision") - correct / facts) < 1e-4, "%s", r.out);
    printf("document 472 by the MW adapter: %.0f facts, %.0f correct, f1 %.4f\n", facts, correct,
           out_figure(r.out, "f1"));
    cmd_result_free(&r);
    const char *dump[] = {"memory", "dump", "--memory", in_tmp(1, "mem"), NULL};
    r = run_memllm(NULL, bin, 0, dump, NULL);
    CHECKF(r.status == 0 && strstr(r.out, "\t0 #"), "the facts are not in the memory: %s%s", r.out,
           r.err);
    cmd_result_free(&r);

    /* bad input */
    const char *too_many[] = {
        "eval",  "extract",  in_tmp(0, "one.json"), "--val", "1", "--model", model, "--adapter",
        adapter, "--memory", in_tmp(2, "mem2"),     NULL};
    r = run_memllm(NULL, bin, 0, too_many, NULL);
    CHECKF(r.status != 0 && strstr(r.err, "--val 1 leaves no training document"), "%s", r.err);
    cmd_result_free(&r);
    const char *no_adapter[] = {"eval", "extract",  in_tmp(0, "one.json"), "--model",
                                model,  "--memory", in_tmp(2, "mem2"),     NULL};
    r = run_memllm(NULL, bin, 0, no_adapter, NULL);
    CHECKF(r.status != 0 && strstr(r.err, "the MW adapter"), "%s", r.err);
    cmd_result_free(&r);
    const char *bad_doc[] = {
        "eval",  "extract",  in_tmp(3, "bad.json"), "--model", model, "--adapter",
        adapter, "--memory", in_tmp(2, "mem2"),     NULL};
    r = run_memllm(NULL, bin, 0, bad_doc, NULL);
    CHECKF(r.status != 0 && strstr(r.err, "bad.json: document 0"), "%s", r.err);
    cmd_result_free(&r);
}

int main(int argc, char **argv)
{
    REQUIRE(argc == 5, "usage: test_eval_extract MEMLLM_BIN DATA_DIR MODELS_DIR ADAPTERS_DIR");
    bin = argv[1];
    REQUIRE(mkdtemp(tmp), "mkdtemp");
    char dev[1200];
    snprintf(dev, sizeof(dev), "%s/redocred/dev_revised.json", argv[2]);
    json_error_t jerr;
    json_t *all = json_load_file(dev, 0, &jerr);
    REQUIRE(json_array_size(all) == 500, "%s: %s", dev, jerr.text);
    struct mm_err err = {{0}};
    json_t *props = mm_docred_props(NULL, &err);
    REQUIRE(props, "%s", err.msg);
    json_t *doc = json_array_get(all, 472);
    scoring(doc, props);

    json_t *one = json_array(), *bad = json_array(), *broken = json_deep_copy(doc);
    json_array_append(one, doc);
    json_object_set_new(broken, "vertexSet", json_string("not a list"));
    json_array_append_new(bad, broken);
    REQUIRE(json_dump_file(one, in_tmp(0, "one.json"), 0) == 0 &&
                json_dump_file(bad, in_tmp(3, "bad.json"), 0) == 0,
            "cannot write the documents");
    json_decref(one);
    json_decref(bad);
    end_to_end(argv[3], argv[4]);

    json_decref(props);
    json_decref(all);
    char cmd[sizeof(tmp) + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    CHECK(system(cmd) == 0);
    return check_report("test_eval_extract");
}
