/* memllm eval edit:
 *   - the cases (edit_cases_build) of three hand-made documents: one per
 *     distinct (s, r) of the chosen documents, o' an object of the same
 *     relation in another document and none of (s, r)'s objects' names,
 *     its mention names kept; the alias; the prompts of both kinds (the
 *     generic template, an alias, the fact in words, "s's r is "); the
 *     same cases for the same seed; which facts an edit touches;
 *   - answers: API spans and leading spaces dropped; a name said when the
 *     answer starts with it (case and white space ignored) and a word
 *     ends there;
 *   - the command on three Re-DocRED dev documents with SmolLM2 and the
 *     committed MR adapter, 3 edits and 2 locality probes: every figure
 *     printed and in [0, 1]; an edit read back (reliability after the
 *     last edit above 0); the edits undone leave the memory's facts as
 *     they were (memory dump) and every answer as before (undo_restored
 *     1); the same figures with --batch 1 under mpirun (a stage rank and
 *     a shard rank; without mpirun, --batch 1 in one process); without
 *     --memory, the unedited model's figures;
 *   - bad input: --edits 0, documents that give no case.
 *
 * In the sanitizer build (SANITIZED, where each generated token costs ten
 * times as much), 2 edits and 1 locality probe, the same rounds (T = 1
 * and the last) and code paths.
 *
 *   test_eval_edit MEMLLM_BIN DATA_DIR MODELS_DIR ADAPTERS_DIR [MPIEXEC] */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "check.h"
#include "redocred_dev.h"
#include "eval_edit.h"
#include "memory_client_docred.h"
#include "run_cmd.h"

static const char *bin, *mpirun;
static const int n_edits = SANITIZED ? 2 : 3, n_locality = SANITIZED ? 1 : 2;
static char tmp[] = "/tmp/memllm_edit_XXXXXX", path[8][1200], model[1200], adapter[1200];

static const char *in_tmp(int slot, const char *name)
{
    snprintf(path[slot], sizeof(path[slot]), "%s/%s", tmp, name);
    return path[slot];
}

/* A one-sentence document: entities (name lists) and labels "h r t". */
static json_t *make_doc(const char *title, const char *const *const *names, int n_ent,
                        const int (*labels)[2], const char *const *rels, int n_labels)
{
    json_t *vertex = json_array(), *sent = json_array(), *lab = json_array();
    int pos = 0;
    for (int e = 0; e < n_ent; e++) {
        json_t *mentions = json_array();
        for (int k = 0; names[e][k]; k++) {
            json_array_append_new(sent, json_string(names[e][k]));
            json_array_append_new(mentions, json_pack("{s:s, s:i, s:[i, i]}", "name", names[e][k],
                                                      "sent_id", 0, "pos", pos, pos + 1));
            pos++;
        }
        json_array_append_new(vertex, mentions);
    }
    for (int l = 0; l < n_labels; l++)
        json_array_append_new(lab, json_pack("{s:i, s:s, s:i, s:[]}", "h", labels[l][0], "r",
                                             rels[l], "t", labels[l][1], "evidence"));
    return json_pack("{s:s, s:[o], s:o, s:o}", "title", title, "sents", sent, "vertexSet", vertex,
                     "labels", lab);
}

static const struct edit_case *find_case(const struct edit_cases *x, const char *s, const char *r)
{
    for (int i = 0; i < x->n; i++)
        if (!strcmp(x->c[i].s, s) && !strcmp(x->c[i].r, r)) return &x->c[i];
    return NULL;
}

static int has_name(char *const *names, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], name)) return 1;
    return 0;
}

static void check_prompt(const struct edit_case *c, int general, const char *want)
{
    char *p = edit_case_prompt(c, general);
    CHECKF(p && !strcmp(p, want), "prompt '%s', want '%s'", p ? p : "(null)", want);
    free(p);
}

static void cases(void)
{
    static const char *const alpha[] = {"Alpha Town", "Alpha", NULL}, *beta[] = {"Beta Land", NULL},
                             *bravo[] = {"Bravo", NULL}, *gamma[] = {"Gamma City", NULL},
                             *delta[] = {"Delta Republic", "Delta", NULL},
                             *eps[] = {"Epsilon", NULL}, *zeta[] = {"Beta  land", NULL};
    static const char *const *const e0[] = {alpha, beta, bravo};
    static const char *const *const e1[] = {gamma, delta};
    static const char *const *const e2[] = {eps, zeta};
    static const int l0[][2] = {{0, 1}, {0, 2}, {0, 1}}, l1[][2] = {{0, 1}, {0, 1}},
                     l2[][2] = {{0, 1}};
    static const char *const r0[] = {"P17", "P17", "P131"}, *r1[] = {"P17", "P1", "P17"},
                             *r2[] = {"P17"};
    json_t *all = json_array();
    json_array_append_new(all, make_doc("zero", e0, 3, l0, r0, 3));
    json_array_append_new(all, make_doc("one", e1, 2, l1, r1, 2));
    json_array_append_new(all, make_doc("two", e2, 2, l2, r2, 1));
    struct mm_err err = {{0}};
    json_t *props = mm_docred_props(NULL, &err);
    REQUIRE(props, "%s", err.msg);
    const char chosen[3] = {1, 1, 0};
    struct edit_cases x, y;
    REQUIRE(edit_cases_build(all, chosen, props, 7, &x, &err) == 0, "%s", err.msg);
    /* (Alpha Town, country) and (Gamma City, country); located in (P131)
     * and P1 (no Wikidata label: it stands for itself) have no object in
     * another document: no case */
    CHECKF(x.n == 2, "%d cases", x.n);
    const struct edit_case *a = find_case(&x, "Alpha Town", "country"),
                           *l = find_case(&x, "Alpha Town",
                                          "located in the administrative territorial entity"),
                           *g = find_case(&x, "Gamma City", "country");
    REQUIRE(a && g, "cases missing");
    CHECK(!l);
    CHECK(a->doc == 0 && g->doc == 1);
    /* o': Delta Republic (doc 1); doc 2's "Beta  land" is Beta Land's name */
    CHECKF(a->n_o_names == 2 && has_name(a->o_names, 2, "Beta Land") &&
               has_name(a->o_names, 2, "Bravo"),
           "Alpha Town's objects: %d", a->n_o_names);
    CHECKF(!strcmp(a->o_new, "Delta Republic") && a->n_new_names == 2 &&
               has_name(a->new_names, 2, "Delta"),
           "Alpha Town's o' %s (%d names)", a->o_new, a->n_new_names);
    /* Gamma City's o' comes from document 0 or 2, never its own */
    CHECKF(g->o_new && strcmp(g->o_new, "Delta Republic"), "Gamma City's o' %s", g->o_new);
    CHECKF(!strcmp(a->alias, "Alpha") && !g->alias, "aliases %s, %s", a->alias, g->alias);
    check_prompt(a, 0, "The country of Alpha Town is ");
    check_prompt(a, 1, "The country of Alpha is ");
    check_prompt(g, 1, "Gamma City is in the country ");
    /* Gamma City's fact touches Alpha Town's edit when o' is its object */
    struct edit_case probe = *g;
    char *delta_names[] = {"delta  Republic"};
    probe.o_names = delta_names;
    probe.n_o_names = 1;
    CHECK(edit_case_touches(&probe, a, 1));
    probe.o_names = (char *[]){"Zeta"};
    CHECK(!edit_case_touches(&probe, a, 1));
    probe.s = "alpha  town";
    CHECK(edit_case_touches(&probe, a, 1));
    struct edit_case odd = *g;
    odd.r = "sport";
    check_prompt(&odd, 1, "Gamma City's sport is ");
    odd.r = "member of";
    check_prompt(&odd, 0, "The member of Gamma City is ");
    REQUIRE(edit_cases_build(all, chosen, props, 7, &y, &err) == 0, "%s", err.msg);
    CHECK(y.n == x.n);
    for (int i = 0; i < x.n && i < y.n; i++)
        CHECKF(!strcmp(x.c[i].s, y.c[i].s) && !strcmp(x.c[i].r, y.c[i].r) &&
                   !strcmp(x.c[i].o_new, y.c[i].o_new),
               "case %d differs between two builds", i);
    edit_cases_free(&y);
    edit_cases_free(&x);
    json_decref(props);
    json_decref(all);
}

static void answers(void)
{
    char *a = edit_answer("({MEM_READ(Alpha>>country>>)-->Beta Land})  beta   LAND , a place");
    REQUIRE(a, "out of memory");
    CHECKF(!strcmp(a, "beta   LAND , a place"), "answer '%s'", a);
    char *names[] = {"Delta", "Beta Land"};
    CHECK(edit_answer_says(a, names, 2));
    CHECK(!edit_answer_says(a, names, 1));
    CHECK(!edit_answer_says("Beta Landing strip", names + 1, 1));
    CHECK(edit_answer_says("BetaLand.", names + 1, 1)); /* white space ignored */
    CHECK(!edit_answer_says("Beta Lan", names + 1, 1));
    CHECK(edit_answer_says("Beta Land", names + 1, 1));
    CHECK(!edit_answer_says("", names, 2));
    free(a);
}

static char *run_out(const char *const *args, int ranks)
{
    struct cmd_result r = run_memllm(ranks ? mpirun : NULL, bin, ranks, args, NULL);
    REQUIRE(r.status == 0, "memllm %s %s: exit %d: %s", args[0], args[1], r.status, r.err);
    char *out = strdup(r.out);
    REQUIRE(out, "out of memory");
    cmd_result_free(&r);
    return out;
}

static char *eval_edit(const char *memory, const char *batch, int ranks)
{
    char edits[16], locality[16];
    snprintf(edits, sizeof(edits), "%d", n_edits);
    snprintf(locality, sizeof(locality), "%d", n_locality);
    const char *args[] = {"eval",   "edit",
                          path[0],  "--model",
                          model,    "--adapter",
                          adapter,  "--edits",
                          edits,    "--locality",
                          locality, "--batch",
                          batch,    "--threads",
                          "2",      "--max-tokens",
                          "32",     memory ? "--memory" : NULL,
                          memory,   ranks ? "--memshards" : NULL,
                          "1",      NULL};
    return run_out(args, ranks);
}

static void command(json_t *all)
{
    json_t *three = json_array();
    for (size_t i = 33; i < 36; i++)
        json_array_append(three, json_array_get(all, i));
    REQUIRE(json_dump_file(three, in_tmp(0, "docs.json"), 0) == 0, "cannot write docs.json");
    json_decref(three);
    const char *import[] = {"memory", "import-docred", path[0], "--memory", in_tmp(1, "mem"), NULL};
    free(run_out(import, 0));
    const char *dump[] = {"memory", "dump", "--memory", path[1], "--copies", NULL};
    char *facts = run_out(dump, 0);

    char *out = eval_edit(path[1], "4", 0);
    /* The last round is T = the number of edits. */
    char last[3][32];
    snprintf(last[0], sizeof(last[0]), "T%d_reliability", n_edits);
    snprintf(last[1], sizeof(last[1]), "T%d_generality", n_edits);
    snprintf(last[2], sizeof(last[2]), "T%d_locality", n_edits);
    const char *names[] = {"documents",       "cases",           "edits",
                           "locality_probes", "before_accuracy", "before_generality_accuracy",
                           "before_says_new", "T1_reliability",  "T1_generality",
                           "T1_locality",     last[0],           last[1],
                           last[2],           "undo_restored"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        double v = out_figure(out, names[i]);
        CHECKF(v >= 0 && (i < 4 || v <= 1), "%s: %g in:\n%s", names[i], v, out);
    }
    CHECKF(out_figure(out, "documents") == 3 && out_figure(out, "edits") == n_edits &&
               out_figure(out, "locality_probes") == n_locality && out_figure(out, "cases") >= 5,
           "counts:\n%s", out);
    /* The edits reach the answers: after the last one, some edited fact is
     * answered with its new object (the model reads it from the memory). */
    CHECKF(out_figure(out, last[0]) > 0, "no edit read back:\n%s", out);
    CHECKF(out_figure(out, "undo_restored") == 1, "undo did not restore the answers:\n%s", out);
    char *after = run_out(dump, 0);
    CHECKF(!strcmp(after, facts), "the memory after the undos:\n%s\nbefore:\n%s", after, facts);
    free(after);
    printf("%s", out);

    /* One run checks both: the figures depend neither on the batch nor
     * on where the stage and the shard run (each run costs as much as the
     * first). */
    char *one = eval_edit(path[1], "1", mpirun ? 3 : 0);
    CHECKF(!strcmp(one, out), "--batch 1%s:\n%s\n--batch 4, one process:\n%s",
           mpirun ? " under mpirun" : "", one, out);
    free(one);
    char *plain = eval_edit(NULL, "4", 0);
    CHECKF(out_figure(plain, "edits_applied") == 0 &&
               out_figure(plain, "reliability") == out_figure(plain, "before_says_new") &&
               out_figure(plain, "locality") == 1 && out_figure(plain, "T1_reliability") < 0,
           "without a memory:\n%s", plain);
    free(plain);
    free(out);
    free(facts);

    const char *zero[] = {"eval", "edit", path[0], "--model", model, "--edits", "0", NULL};
    struct cmd_result r = run_memllm(NULL, bin, 0, zero, NULL);
    CHECKF(r.status == 2 && strstr(r.err, "--edits"), "%s", r.err);
    cmd_result_free(&r);
    json_t *bare =
        json_pack("[{s:s, s:[[s]], s:[[{s:s, s:i, s:[i, i]}]], s:[]}]", "title", "bare", "sents",
                  "Nothing", "vertexSet", "name", "Nothing", "sent_id", 0, "pos", 0, 1, "labels");
    REQUIRE(bare && json_dump_file(bare, in_tmp(2, "bare.json"), 0) == 0, "bare.json");
    json_decref(bare);
    const char *none[] = {"eval", "edit", path[2], "--model", model, NULL};
    r = run_memllm(NULL, bin, 0, none, NULL);
    CHECKF(r.status != 0 && strstr(r.err, "bare.json") && strstr(r.err, "0 edit cases"), "%s",
           r.err);
    cmd_result_free(&r);
}

int main(int argc, char **argv)
{
    REQUIRE(argc == 5 || argc == 6,
            "usage: test_eval_edit MEMLLM_BIN DATA_DIR MODELS_DIR ADAPTERS_DIR [MPIEXEC]");
    bin = argv[1];
    mpirun = argc > 5 && argv[5][0] ? argv[5] : NULL;
    snprintf(model, sizeof(model), "%s/SmolLM2-135M-Instruct.Q4_1.gguf", argv[3]);
    snprintf(adapter, sizeof(adapter), "%s/smollm2-135m-mr", argv[4]);
    REQUIRE(mkdtemp(tmp), "mkdtemp");
    cases();
    answers();
    json_t *all = must_load_dev(argv[2]);
    command(all);
    json_decref(all);
    char cmd[sizeof(tmp) + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    CHECK(system(cmd) == 0);
    return check_report("test_eval_edit");
}
