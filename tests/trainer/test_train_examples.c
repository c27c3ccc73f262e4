/* memllm data mw, mr and text on real Re-DocRED documents:
 *   - document 472 of dev ("Ko Joo-yeon", 3 sentences) worked by hand: its
 *     three MW examples, nine MR examples and one plain-text example are
 *     written out below, derived
 *     from the document's labels, not by the code under test (the MR
 *     answers from a memory holding the document's gold facts, made by
 *     `memllm memory import-docred`);
 *   - --val splits by document, the same way on every run, train and
 *     validation disjoint and together every document;
 *   - with --model, the tokens are counted as `memllm train` counts them
 *     (its loader, train_set_load, reads the same totals back, SmolLM2's
 *     tokenizer, which lacks MemLLM's tokens, on documents whose answers
 *     start with "." after "-->": tokenized together, they would merge) and
 *     --max-tokens keeps exactly what the loader accepts under that limit:
 *     MR drops the longer examples, MW first drops preceding sentences;
 *   - bad input (not an array, a label naming a missing entity) fails with
 *     the file and document named and writes no output.
 *
 *   test_train_examples MEMLLM_BIN DATA_DIR MODELS_DIR */
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "jsonl.h"
#include "run_cmd.h"
#include "train_data.h"

static const char *bin;
static char dev[1024], tmp[] = "/tmp/memllm_data_XXXXXX";

static char *path_in(const char *name)
{
    return path_under(tmp, name);
}

/* The sentences of document 472, as `annotate` joins DocRED tokens. */
#define S0                                                                                         \
    "Ko Joo - yeon ( born February 22 , 1994 ) is a South Korean actress who has gained "          \
    "attention in the Korean film industry for her roles in Blue Swallow ( 2005 ) and The Fox "    \
    "Family ( 2006 ) ."
#define S1                                                                                         \
    "In 2007 she appeared in the horror film Epitaph as Asako , a young girl suffering from "      \
    "overbearing nightmares and aphasia , becoming so immersed in the role that she had to deal "  \
    "with sudden nosebleeds while on set ."
#define S2                                                                                         \
    "Kyu Hyun Kim of Koreanfilm.org highlighted her performance in the film , saying , \\\" [ "    \
    "The "                                                                                         \
    "cast 's ] acting thunder is stolen by the ridiculously pretty Ko Joo - yeon , another "       \
    "Korean child actress who we dearly hope continues her film career . \\\""

#define HEAD "{\"kind\":\"mw\",\"doc\":0,\"title\":\"Ko Joo-yeon\",\"segments\":[{\"text\":\""
#define MID "({USER_END})({MEM_WRITE-->\",\"loss\":false},{\"text\":\""
#define TAIL "\",\"loss\":true}]}\n"

/* Sentence 0 holds 10 relations whose evidence is sentence 0 (the P37 label
 * has no evidence; Epitaph is first mentioned in sentence 1), ordered by the
 * first position in the sentence of either entity: Ko Joo-yeon (token 0)
 * for date of birth, place of birth, country of citizenship and the two
 * cast members (label order); South Korean (13) for the two countries of
 * origin; Korean (22); Blue Swallow (29) with 2005; Fox Family (36) with
 * 2006. Entities are named by their first mention ("Fox Family" is its own
 * entity, apart from "The Fox Family"). Sentence 1: the labels with
 * evidence 1: 2007 (token 1) first, then Epitaph (8) in label order, then
 * Asako (10). Sentence 2: no label has evidence 2: the empty answer. */
#define ANSWER0                                                                                    \
    "Ko Joo-yeon>>date of birth>>February 22, 1994;Ko Joo-yeon>>place of birth>>South "            \
    "Korean;Ko Joo-yeon>>country of citizenship>>South Korean;Fox Family>>cast member>>Ko "        \
    "Joo-yeon;Blue Swallow>>cast member>>Ko Joo-yeon;Fox Family>>country of origin>>South "        \
    "Korean;Blue Swallow>>country of origin>>South Korean;Fox Family>>original language of "       \
    "work>>Korean;Blue Swallow>>publication date>>2005;Fox Family>>publication date>>2006})"
#define ANSWER1                                                                                    \
    "Epitaph>>publication date>>2007;Epitaph>>country of origin>>South Korean;Epitaph>>original "  \
    "language of work>>Korean;Epitaph>>cast member>>Ko Joo-yeon;Asako>>cast member>>Ko "           \
    "Joo-yeon})"
static const char expected[] =
    HEAD "({USER_ST})" S0 MID ANSWER0 TAIL HEAD S0 "({USER_ST})" S1 MID ANSWER1 TAIL HEAD S0 " " S1
         "({USER_ST})" S2 MID "})" TAIL;
/* --window 0: no preceding sentence in any prompt */
static const char expected_window0[] =
    HEAD "({USER_ST})" S0 MID ANSWER0 TAIL HEAD "({USER_ST})" S1 MID ANSWER1 TAIL HEAD
         "({USER_ST})" S2 MID "})" TAIL;

/* The plain-text baseline's one example of the document: all its text. */
static const char expected_text[] = "{\"kind\":\"text\",\"doc\":0,\"title\":\"Ko "
                                    "Joo-yeon\",\"segments\":[{\"text\":\"" S0 " " S1 " " S2 TAIL;

/* The raw text of the three sentences (S2 above is JSON-escaped). */
#define S2_RAW                                                                                     \
    "Kyu Hyun Kim of Koreanfilm.org highlighted her performance in the film , saying , \" [ The "  \
    "cast 's ] acting thunder is stolen by the ridiculously pretty Ko Joo - yeon , another "       \
    "Korean child actress who we dearly hope continues her film career . \""
#define CAST_READ "({MEM_READ(>>cast member>>Ko Joo-yeon)-->"
/* All five subjects of (?, cast member, Ko Joo-yeon) in the labels (4, 6,
 * 7, 10, 11; the one of entity 6 has no evidence but is a fact), as the
 * memory orders equal scores: by text. */
#define CAST_ANSWER "Asako;Blue Swallow;Epitaph;Fox Family;The Fox Family"

/* Each read point: the call, the answers, the text on to the next read.
 * Why there: a mention whose text is new, of an entity with a label to an
 * entity mentioned before it; "Korean" (token 22) and every mention in
 * sentence 2 repeat earlier text; "2007" (s1) has a label only with
 * Epitaph, not yet mentioned. Dropped as too broad (7): the reverse queries
 * on country of origin (Blue Swallow, The Fox Family, Fox Family, Epitaph),
 * original language of work (Fox Family, Epitaph) and publication date
 * (Epitaph's 2007). */
static const struct {
    const char *call, *answers, *cont;
} mr_expected[] = {
    /* February 22, 1994 (token 6): Ko Joo-yeon's date of birth */
    {"({MEM_READ(Ko Joo-yeon>>date of birth>>)-->", "February 22, 1994",
     " February 22 , 1994 ) is a"},
    /* South Korean (13): place of birth (1 answer) before country of
     * citizenship (2: South Korean, and Korean from the label without
     * evidence), fewest first; their distinct answers */
    {"({MEM_READ(Ko Joo-yeon>>place of birth>>;Ko Joo-yeon>>country of citizenship>>)-->",
     "South Korean;Korean",
     " South Korean actress who has gained attention in the Korean film industry for her roles "
     "in"},
    /* Blue Swallow (29): subject of cast member Ko Joo-yeon */
    {CAST_READ, CAST_ANSWER, " Blue Swallow ("},
    /* 2005 (32): Blue Swallow's publication date */
    {"({MEM_READ(Blue Swallow>>publication date>>)-->", "2005", " 2005 ) and"},
    /* The Fox Family (35) and Fox Family (36), two entities */
    {CAST_READ, CAST_ANSWER, " The"},
    {CAST_READ, CAST_ANSWER, " Fox Family ("},
    /* 2006 (39): the publication date of both */
    {"({MEM_READ(Fox Family>>publication date>>;The Fox Family>>publication date>>)-->", "2006",
     " 2006 ) . In 2007 she appeared in the horror film"},
    /* Epitaph (s1, 8) and Asako (s1, 10), cast members */
    {CAST_READ, CAST_ANSWER, " Epitaph as"},
    {CAST_READ, CAST_ANSWER,
     " Asako , a young girl suffering from overbearing nightmares and aphasia , becoming so "
     "immersed in the role that she had to deal with sudden nosebleeds while on set . " S2_RAW},
};

static void write_docs(const char *path, json_t *docs)
{
    REQUIRE(json_dump_file(docs, path, 0) == 0, "cannot write %s", path);
}

static void hand_worked(json_t *all)
{
    json_t *one = json_array();
    json_array_append(one, json_array_get(all, 472));
    write_docs(path_in("one.json"), one);
    json_decref(one);
    const char *args[] = {"data", "mw", path_in("one.json"), "--out", path_in("one.jsonl"), NULL};
    struct cmd_result r = run_memllm(NULL, bin, 0, args, NULL);
    CHECKF(r.status == 0, "exit %d: %s", r.status, r.err);
    CHECKF(strstr(r.err, "1 documents, 3 examples (1 with no relation)"), "counts: %s", r.err);
    cmd_result_free(&r);
    char *got = read_file(path_in("one.jsonl"), NULL);
    CHECKF(got && !strcmp(got, expected), "document 472's examples:\n%s\nexpected:\n%s",
           got ? got : "(none)", expected);
    free(got);

    const char *window0[] = {"data", "mw",    path_in("one.json"),     "--window",
                             "0",    "--out", path_in("one_w0.jsonl"), NULL};
    r = run_memllm(NULL, bin, 0, window0, NULL);
    CHECKF(r.status == 0, "--window 0: exit %d: %s", r.status, r.err);
    cmd_result_free(&r);
    got = read_file(path_in("one_w0.jsonl"), NULL);
    CHECKF(got && !strcmp(got, expected_window0), "--window 0:\n%s\nexpected:\n%s",
           got ? got : "(none)", expected_window0);
    free(got);

    const char *text[] = {"data", "text", path_in("one.json"), "--out", path_in("one_text.jsonl"),
                          NULL};
    r = run_memllm(NULL, bin, 0, text, NULL);
    CHECKF(r.status == 0 && strstr(r.err, "1 documents, 1 examples"), "text: exit %d: %s", r.status,
           r.err);
    cmd_result_free(&r);
    got = read_file(path_in("one_text.jsonl"), NULL);
    CHECKF(got && !strcmp(got, expected_text), "text:\n%s\nexpected:\n%s", got ? got : "(none)",
           expected_text);
    free(got);
}

static void hand_worked_mr(void)
{
    const char *import[] = {"memory",   "import-docred", path_in("one.json"),
                            "--memory", path_in("gold"), NULL};
    struct cmd_result r = run_memllm(NULL, bin, 0, import, NULL);
    REQUIRE(r.status == 0, "import-docred exited %d: %s", r.status, r.err);
    cmd_result_free(&r);
    const char *args[] = {"data",          "mr",    path_in("one.json"),     "--memory",
                          path_in("gold"), "--out", path_in("one_mr.jsonl"), NULL};
    r = run_memllm(NULL, bin, 0, args, NULL);
    CHECKF(r.status == 0 && strstr(r.err, "1 documents, 9 examples") &&
               strstr(r.err, "7 queries too broad"),
           "exit %d: %s", r.status, r.err);
    cmd_result_free(&r);
    const char *text = S0 " " S1 " " S2_RAW;
    json_t *examples = must_read_jsonl(path_in("one_mr.jsonl")), *j;
    size_t n;
    json_array_foreach(examples, n, j)
    {
        json_t *segs = json_object_get(j, "segments");
        REQUIRE(json_array_size(segs) == 5, "line %zu: not 5 segments", n + 1);
        const char *seg[5];
        int loss[5];
        for (int i = 0; i < 5; i++) {
            seg[i] = json_string_value(json_object_get(json_array_get(segs, (size_t)i), "text"));
            loss[i] = json_is_true(json_object_get(json_array_get(segs, (size_t)i), "loss"));
        }
        CHECKF(!loss[0] && loss[1] && !loss[2] && !loss[3] && loss[4], "line %zu: loss flags",
               n + 1);
        if (n < sizeof(mr_expected) / sizeof(mr_expected[0])) {
            CHECKF(!strcmp(seg[1], mr_expected[n].call), "read %zu: call %s", n + 1, seg[1]);
            CHECKF(!strcmp(seg[2], mr_expected[n].answers), "read %zu: answers %s", n + 1, seg[2]);
            CHECKF(!strcmp(seg[3], "})"), "read %zu: %s after the answers", n + 1, seg[3]);
            CHECKF(!strcmp(seg[4], mr_expected[n].cont), "read %zu: continuation '%s'", n + 1,
                   seg[4]);
        }
        /* the text before the read, then the continuation, is the document
         * from its start */
        size_t before = strlen(seg[0]);
        CHECKF(!strncmp(text, seg[0], before) &&
                   !strncmp(text + before, seg[4] + 1, strlen(seg[4]) - 1),
               "read %zu: the text around it is not the document's", n + 1);
    }
    CHECKF(json_array_size(examples) == sizeof(mr_expected) / sizeof(mr_expected[0]),
           "%zu MR examples", json_array_size(examples));
    json_decref(examples);
}

/* The set of documents a JSONL file's examples come from. */
static void docs_of(const char *path, char *seen, size_t n)
{
    json_t *examples = must_read_jsonl(path), *j;
    size_t i;
    json_array_foreach(examples, i, j)
    {
        json_int_t d = json_integer_value(json_object_get(j, "doc"));
        CHECK(d >= 0 && (size_t)d < n);
        if (d >= 0 && (size_t)d < n) seen[d] = 1;
    }
    json_decref(examples);
}

static void split(size_t n_docs)
{
    char *first = NULL;
    for (int run = 0; run < 2; run++) {
        const char *args[] = {"data",
                              "mw",
                              dev,
                              "--out",
                              path_in("train.jsonl"),
                              "--val",
                              "50",
                              "--val-out",
                              path_in("val.jsonl"),
                              NULL};
        struct cmd_result r = run_memllm(NULL, bin, 0, args, NULL);
        CHECKF(r.status == 0 && strstr(r.err, "validation: 50 documents") &&
                   strstr(r.err, "training: 450 documents"),
               "exit %d: %s", r.status, r.err);
        cmd_result_free(&r);
        char *now = read_file(path_in("val.jsonl"), NULL);
        if (run == 0)
            first = now;
        else {
            CHECKF(now && first && !strcmp(now, first), "two runs split differently");
            free(now);
        }
    }
    free(first);
    char *train = calloc(n_docs, 1), *val = calloc(n_docs, 1);
    docs_of(path_in("train.jsonl"), train, n_docs);
    docs_of(path_in("val.jsonl"), val, n_docs);
    int n_val = 0, n_both = 0, n_none = 0;
    for (size_t d = 0; d < n_docs; d++) {
        n_val += val[d];
        n_both += train[d] && val[d];
        n_none += !train[d] && !val[d];
    }
    CHECKF(n_val == 50 && n_both == 0, "%d validation documents, %d in both", n_val, n_both);
    /* every document has a sentence, so every one has examples */
    CHECKF(n_none == 0, "%d documents in neither file", n_none);
    free(train);
    free(val);
}

/* The examples of `path` as the trainer loads them (no length limit). */
static void load_examples(struct train_set *set, const struct tokenizer *tok, const char *path)
{
    struct mm_err err = {{0}};
    REQUIRE(train_set_load(set, path, tok, 1 << 30, &err) == 0, "%s", err.msg);
}

static int by_value(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

/* `memllm data KIND few.json [--memory] --model MODEL --out OUT
 * [--max-tokens N]`; returns its stderr (the counts). */
static char *data_with_model(const char *kind, const char *model, const char *out, int max_tokens)
{
    char limit[32];
    snprintf(limit, sizeof(limit), "%d", max_tokens);
    const char *args[16] = {"data",  kind, path_in("few.json"), "--model", model,
                            "--out", out,  "--max-tokens",      limit};
    int n = 9;
    if (!strcmp(kind, "mr")) {
        args[n++] = "--memory";
        args[n++] = path_in("few_gold");
    }
    args[n] = NULL;
    struct cmd_result r = run_memllm(NULL, bin, 0, args, NULL);
    CHECKF(r.status == 0, "data %s --max-tokens %d: exit %d: %s", kind, max_tokens, r.status,
           r.err);
    char *counts = strdup(r.err ? r.err : "");
    cmd_result_free(&r);
    return counts;
}

static void token_limit(json_t *all, const char *models)
{
    /* 332 ("Mono (software)") has reads answered ".NET Framework;..." */
    const size_t docs[] = {0, 1, 2, 332};
    json_t *few = json_array();
    for (size_t d = 0; d < sizeof(docs) / sizeof(docs[0]); d++)
        json_array_append(few, json_array_get(all, docs[d]));
    write_docs(path_in("few.json"), few);
    json_decref(few);
    const char *import[] = {"memory",   "import-docred",     path_in("few.json"),
                            "--memory", path_in("few_gold"), NULL};
    struct cmd_result r = run_memllm(NULL, bin, 0, import, NULL);
    REQUIRE(r.status == 0, "import-docred exited %d: %s", r.status, r.err);
    cmd_result_free(&r);
    char model[1200];
    snprintf(model, sizeof(model), "%s/SmolLM2-135M-Instruct.Q4_1.gguf", models);
    struct mm_err err = {{0}};
    struct tokenizer *tok = tok_load(model, &err);
    REQUIRE(tok, "%s", err.msg);

    const char *kinds[] = {"mw", "mr"};
    for (int k = 0; k < 2; k++) {
        const char *kind = kinds[k];
        /* no limit: the totals printed are the loader's */
        char *counts = data_with_model(kind, model, path_in("all.jsonl"), 1 << 24);
        struct train_set all_set, kept;
        load_examples(&all_set, tok, path_in("all.jsonl"));
        char want[64];
        snprintf(want, sizeof(want), "%d examples", all_set.n);
        CHECKF(strstr(counts, want), "%s: the loader reads %d examples; counts: %s", kind,
               all_set.n, counts);
        snprintf(want, sizeof(want), "%lld tokens", (long long)all_set.tokens);
        CHECKF(strstr(counts, want), "%s: the loader counts %lld tokens; counts: %s", kind,
               (long long)all_set.tokens, counts);
        free(counts);

        /* the median length as the limit: about half the examples over it */
        REQUIRE(all_set.n >= 4, "%s: only %d examples", kind, all_set.n);
        int *len = malloc((size_t)all_set.n * sizeof(int)), over = 0;
        REQUIRE(len, "out of memory");
        for (int i = 0; i < all_set.n; i++)
            len[i] = all_set.ex[i].n;
        qsort(len, (size_t)all_set.n, sizeof(int), by_value);
        int limit = len[all_set.n / 2];
        for (int i = 0; i < all_set.n; i++)
            over += len[i] > limit;
        free(len);
        REQUIRE(over > 0, "%s: no example longer than the median %d", kind, limit);

        counts = data_with_model(kind, model, path_in("kept.jsonl"), limit);
        struct mm_err lerr = {{0}};
        CHECKF(train_set_load(&kept, path_in("kept.jsonl"), tok, limit, &lerr) == 0,
               "%s --max-tokens %d: the trainer refuses what data kept: %s", kind, limit, lerr.msg);
        if (!strcmp(kind, "mr")) {
            /* MR has nothing to shorten: exactly the longer examples go */
            snprintf(want, sizeof(want), "%d examples longer than --max-tokens", over);
            CHECKF(kept.n == all_set.n - over && strstr(counts, want),
                   "mr --max-tokens %d: %d of %d kept, %d are longer; counts: %s", limit, kept.n,
                   all_set.n, over, counts);
        } else {
            /* MW keeps an example by cutting its oldest preceding sentences
             * where it can: at least those within the limit, at most all;
             * whatever was not kept is counted as dropped */
            snprintf(want, sizeof(want), "%d longer than --max-tokens", all_set.n - kept.n);
            CHECKF(kept.n >= all_set.n - over && kept.n <= all_set.n && strstr(counts, want),
                   "mw --max-tokens %d: %d of %d kept, %d are longer; counts: %s", limit, kept.n,
                   all_set.n, over, counts);
            CHECKF(kept.n == all_set.n - over || !strstr(counts, "; 0 shortened"),
                   "mw: longer examples kept without shortening: %s", counts);
        }
        free(counts);
        train_set_free(&kept);
        train_set_free(&all_set);
    }
    tok_free(tok);
}

static void expect_error(const char *file, const char *want)
{
    const char *args[] = {"data", "mw", file, "--out", path_in("bad.jsonl"), NULL};
    struct cmd_result r = run_memllm(NULL, bin, 0, args, NULL);
    CHECKF(r.status != 0 && strstr(r.err, want) && access(path_in("bad.jsonl"), F_OK) != 0,
           "expected an error naming '%s' and no output, got exit %d: %s", want, r.status, r.err);
    cmd_result_free(&r);
}

static void bad_input(json_t *all)
{
    FILE *f = fopen(path_in("object.json"), "w");
    REQUIRE(f, "write");
    fputs("{\"title\": \"not an array\"}", f);
    fclose(f);
    expect_error(path_in("object.json"), "not a JSON array");

    json_t *docs = json_array();
    json_array_append_new(docs, json_deep_copy(json_array_get(all, 0)));
    json_array_append_new(docs, json_deep_copy(json_array_get(all, 1)));
    json_t *lab = json_array_get(json_object_get(json_array_get(docs, 1), "labels"), 0);
    json_object_set_new(lab, "t", json_integer(999));
    write_docs(path_in("badlabel.json"), docs);
    json_decref(docs);
    expect_error(path_in("badlabel.json"), "document 1: labels[0]");
}

int main(int argc, char **argv)
{
    REQUIRE(argc == 4, "usage: test_train_examples MEMLLM_BIN DATA_DIR MODELS_DIR");
    bin = argv[1];
    snprintf(dev, sizeof(dev), "%s/redocred/dev_revised.json", argv[2]);
    REQUIRE(mkdtemp(tmp), "mkdtemp");
    json_error_t jerr;
    json_t *all = json_load_file(dev, 0, &jerr);
    REQUIRE(json_array_size(all) == 500, "%s: %s", dev, jerr.text);
    hand_worked(all);
    hand_worked_mr();
    split(json_array_size(all));
    token_limit(all, argv[3]);
    bad_input(all);
    json_decref(all);
    char cmd[sizeof(tmp) + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    CHECK(system(cmd) == 0);
    return check_report("test_train_examples");
}
