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
 *   - the repeat rule (--repeats, default 1) against the same run with
 *     --repeats 0, from both runs' traces: each write generates a prefix of
 *     what it generates without the rule, and ends ("repeat") exactly at
 *     the first ";" where an item repeats an earlier one, keeping
 *     all it wrote (other writes: late stopping's best cut); the adapter
 *     loops on this document, so the rule must end some write and save
 *     tokens;
 *   - bad input: a malformed document fails naming it, --val too large, no
 *     adapter.
 *
 * In the sanitizer build (SANITIZED, where each generated token costs ten
 * times as much), the adapter writes at most 128 tokens a sentence, not
 * the default 256 its late stopping may run to; the same runs and checks
 * (its writes loop within 100 tokens).
 *
 *   test_eval_extract MEMLLM_BIN DATA_DIR MODELS_DIR ADAPTERS_DIR */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "redocred_dev.h"
#include "eval_extract.h"
#include "memllm_write.h"
#include "memory_client_docred.h"
#include "jsonl.h"
#include "run_cmd.h"

static const char *bin;
static char tmp[] = "/tmp/memllm_eval_XXXXXX", path[6][1200];

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

/* --- the repeat rule ------------------------------------------------------------------------ */

/* The position of the ";" at which n items in a row (trimmed, non-empty)
 * first repeat earlier items of text, or -1: the rule, written again. */
static long rule_end(const char *text, int n)
{
    char *items[512];
    int n_items = 0, run = 0;
    long end = -1;
    const char *start = text;
    for (const char *semi; end < 0 && n_items < 512 && (semi = strchr(start, ';'));
         start = semi + 1) {
        const char *a = start, *b = semi;
        while (a < b && strchr(" \t\r\n", *a))
            a++;
        while (b > a && strchr(" \t\r\n", b[-1]))
            b--;
        char *item = strndup(a, (size_t)(b - a));
        REQUIRE(item, "out of memory");
        int again = 0;
        for (int k = 0; k < n_items && *item && !again; k++)
            again = !strcmp(items[k], item);
        run = again ? run + 1 : 0;
        items[n_items++] = item;
        if (run >= n) end = semi - text;
    }
    for (int k = 0; k < n_items; k++)
        free(items[k]);
    return end;
}

/* What the writer keeps of a trace line's generated text: a write the
 * rule ended, all of it; another, the best cut (the first of equal
 * scores), else all of it; up to a "})". */
static char *kept(json_t *line)
{
    const char *gen = json_string_value(json_object_get(line, "generated"));
    const char *finish = json_string_value(json_object_get(line, "finish"));
    json_t *at = json_object_get(line, "cut_at"), *score = json_object_get(line, "cut_score");
    size_t keep = strlen(gen);
    for (size_t i = 0, best = 0; strcmp(finish, "repeat") && i < json_array_size(at); i++)
        if (i == 0 || json_real_value(json_array_get(score, i)) >
                          json_real_value(json_array_get(score, best))) {
            best = i;
            keep = (size_t)json_integer_value(json_array_get(at, i));
        }
    char *text = strndup(gen, keep), *close = text ? strstr(text, "})") : NULL;
    if (close) *close = 0;
    return text;
}

/* Whether array a's items are the first items of b. */
static int json_prefix(json_t *a, json_t *b)
{
    if (json_array_size(a) > json_array_size(b)) return 0;
    for (size_t i = 0; i < json_array_size(a); i++)
        if (!json_equal(json_array_get(a, i), json_array_get(b, i))) return 0;
    return 1;
}

/* `ruled`: the trace of a run with the default --repeats (MW_DEFAULT_REPEATS),
 * `free_run`: with 0. */
static void repeat_rule(const char *ruled, const char *free_run)
{
    json_t *a = must_read_jsonl(ruled), *b = must_read_jsonl(free_run), *x;
    CHECKF(json_array_size(a) == 3 && json_array_size(b) == 3, "%zu and %zu trace lines",
           json_array_size(a), json_array_size(b));
    int ended = 0;
    size_t i;
    json_array_foreach(a, i, x)
    {
        json_t *y = json_array_get(b, i);
        if (!y) break;
        const char *gen = json_string_value(json_object_get(x, "generated"));
        const char *full = json_string_value(json_object_get(y, "generated"));
        const char *finish = json_string_value(json_object_get(x, "finish"));
        REQUIRE(gen && full && finish, "trace line %zu lacks its texts", i);
        CHECKF(!strncmp(gen, full, strlen(gen)), "sentence %zu: '%s' is not a prefix of '%s'", i,
               gen, full);
        CHECKF(json_prefix(json_object_get(x, "cut_at"), json_object_get(y, "cut_at")) &&
                   json_prefix(json_object_get(x, "cut_score"), json_object_get(y, "cut_score")),
               "sentence %zu: other cuts than without the rule", i);
        long end = rule_end(full, MW_DEFAULT_REPEATS);
        if (!strcmp(finish, "repeat")) {
            ended++;
            /* the ";" at the rule's end came with the last token */
            CHECKF(end >= 0 && (size_t)end < strlen(gen) && !strchr(gen + end + 1, ';'),
                   "sentence %zu ended at %zu, the rule says %ld: '%s'", i, strlen(gen), end, gen);
        } else {
            CHECKF(!strcmp(gen, full) && (end < 0 || !strcmp(finish, "stop")),
                   "sentence %zu (%s) went on past the rule's end %ld", i, finish, end);
        }
        char *want = kept(x);
        const char *written = json_string_value(json_object_get(x, "written"));
        CHECKF(want && written && !strcmp(want, written), "sentence %zu (%s) kept '%s', not '%s'",
               i, finish, written, want);
        free(want);
    }
    CHECKF(ended > 0, "no write ended by the repeat rule");
    printf("the repeat rule ended %d of 3 writes\n", ended);
    json_decref(a);
    json_decref(b);
}

static void end_to_end(const char *models, const char *adapters)
{
    char model[1200], adapter[1200];
    snprintf(model, sizeof(model), "%s/SmolLM2-135M-Instruct.Q4_1.gguf", models);
    snprintf(adapter, sizeof(adapter), "%s/smollm2-135m-mw", adapters);
    const char *max_tokens = SANITIZED ? "128" : "256";
    const char *args[] = {
        "eval",     "extract",  in_tmp(0, "one.json"),    "--model",   model, "--adapter",
        adapter,    "--memory", in_tmp(1, "mem"),         "--threads", "2",   "--max-tokens",
        max_tokens, "--trace",  in_tmp(2, "ruled.jsonl"), NULL};
    struct cmd_result r = run_memllm(NULL, bin, 0, args, NULL);
    REQUIRE(r.status == 0, "exit %d: %s", r.status, r.err);
    const char *names[] = {"documents", "sentences", "gold", "facts", "correct", "recalled",
                           "precision", "recall",    "f1",   "delay", "repeats", "tokens"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        CHECKF(out_figure(r.out, names[i]) >= 0, "no '%s' line in:\n%s", names[i], r.out);
    double facts = out_figure(r.out, "facts"), correct = out_figure(r.out, "correct");
    CHECKF(out_figure(r.out, "documents") == 1 && out_figure(r.out, "sentences") == 3 &&
               out_figure(r.out, "gold") == 20 && out_figure(r.out, "delay") == 5 &&
               out_figure(r.out, "repeats") == MW_DEFAULT_REPEATS,
           "%s", r.out);
    CHECKF(facts >= 1 && correct <= facts && out_figure(r.out, "recalled") <= 20, "%s", r.out);
    CHECKF(fabs(out_figure(r.out, "precision") - correct / facts) < 1e-4, "%s", r.out);
    printf("document 472 by the MW adapter: %.0f facts, %.0f correct, f1 %.4f\n", facts, correct,
           out_figure(r.out, "f1"));
    double tokens = out_figure(r.out, "tokens");
    cmd_result_free(&r);
    const char *dump[] = {"memory", "dump", "--memory", in_tmp(1, "mem"), NULL};
    r = run_memllm(NULL, bin, 0, dump, NULL);
    CHECKF(r.status == 0 && strstr(r.out, "\t0 #"), "the facts are not in the memory: %s%s", r.out,
           r.err);
    cmd_result_free(&r);

    const char *no_rule[] = {
        "eval",     "extract",  in_tmp(0, "one.json"),    "--model",   model, "--adapter",
        adapter,    "--memory", in_tmp(4, "mem-no-rule"), "--threads", "2",   "--max-tokens",
        max_tokens, "--trace",  in_tmp(5, "free.jsonl"),  "--repeats", "0",   NULL};
    r = run_memllm(NULL, bin, 0, no_rule, NULL);
    REQUIRE(r.status == 0, "--repeats 0: exit %d: %s", r.status, r.err);
    CHECKF(out_figure(r.out, "repeats") == 0 && out_figure(r.out, "tokens") > tokens,
           "--repeats 0 generated %.0f tokens, the rule %.0f: %s", out_figure(r.out, "tokens"),
           tokens, r.out);
    printf("tokens generated: %.0f with the repeat rule, %.0f without\n", tokens,
           out_figure(r.out, "tokens"));
    cmd_result_free(&r);
    repeat_rule(in_tmp(2, "ruled.jsonl"), in_tmp(5, "free.jsonl"));

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
    json_t *all = must_load_dev(argv[2]);
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
