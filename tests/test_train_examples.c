/* memllm data mw on real Re-DocRED documents:
 *   - document 472 of dev ("Ko Joo-yeon", 3 sentences) worked by hand: its
 *     three examples are written out below, derived from the document's
 *     labels, not by the code under test;
 *   - --val splits by document, the same way on every run, train and
 *     validation disjoint and together every document;
 *   - bad input (not an array, a label naming a missing entity) fails with
 *     the file and document named and writes no output.
 *
 *   test_train_examples MEMLLM_BIN DATA_DIR */
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "run_cmd.h"

static const char *bin;
static char dev[1024], tmp[] = "/tmp/memllm_data_XXXXXX";

static char *path_in(const char *name)
{
    static char buf[8][2048];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 2048, "%s/%s", tmp, name);
    return p;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *s = slurp_fd_file(f);
    fclose(f);
    return s;
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
static const char expected[] = HEAD
    "({USER_ST})" S0 MID
    "Ko Joo-yeon>>date of birth>>February 22, 1994;Ko Joo-yeon>>place of birth>>South "
    "Korean;Ko Joo-yeon>>country of citizenship>>South Korean;Fox Family>>cast member>>Ko "
    "Joo-yeon;Blue Swallow>>cast member>>Ko Joo-yeon;Fox Family>>country of origin>>South "
    "Korean;Blue Swallow>>country of origin>>South Korean;Fox Family>>original language of "
    "work>>Korean;Blue Swallow>>publication date>>2005;Fox Family>>publication date>>2006})" TAIL
        HEAD S0 "({USER_ST})" S1 MID
    "Epitaph>>publication date>>2007;Epitaph>>country of origin>>South Korean;Epitaph>>original "
    "language of work>>Korean;Epitaph>>cast member>>Ko Joo-yeon;Asako>>cast member>>Ko "
    "Joo-yeon})" TAIL HEAD S0 " " S1 "({USER_ST})" S2 MID "})" TAIL;

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
    char *got = slurp(path_in("one.jsonl"));
    CHECKF(got && !strcmp(got, expected), "document 472's examples:\n%s\nexpected:\n%s",
           got ? got : "(none)", expected);
    free(got);
}

/* The set of documents a JSONL file's examples come from. */
static void docs_of(const char *path, char *seen, size_t n)
{
    FILE *f = fopen(path, "r");
    REQUIRE(f, "no %s", path);
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *j = json_loads(line, 0, NULL);
        json_int_t d = json_integer_value(json_object_get(j, "doc"));
        CHECK(j && d >= 0 && (size_t)d < n);
        if (j && d >= 0 && (size_t)d < n) seen[d] = 1;
        json_decref(j);
    }
    free(line);
    fclose(f);
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
        char *now = slurp(path_in("val.jsonl"));
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
    REQUIRE(argc == 3, "usage: test_train_examples MEMLLM_BIN DATA_DIR");
    bin = argv[1];
    snprintf(dev, sizeof(dev), "%s/redocred/dev_revised.json", argv[2]);
    REQUIRE(mkdtemp(tmp), "mkdtemp");
    json_error_t jerr;
    json_t *all = json_load_file(dev, 0, &jerr);
    REQUIRE(json_array_size(all) == 500, "%s: %s", dev, jerr.text);
    hand_worked(all);
    split(json_array_size(all));
    bad_input(all);
    json_decref(all);
    return check_report("test_train_examples");
}
