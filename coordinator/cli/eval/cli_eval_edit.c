/* memllm eval edit FILE.json: knowledge editing through the memory
 * (eval_edit.h says how cases, prompts and answers are made).
 *
 * The prompts are answered greedily through the runtime with the MemLLM
 * read loop (as memllm generate --memory answers them) before any edit;
 * then the edits are applied one at a time, each its own `memllm edit`
 * batch (edit_apply), and after T = 1, 10, 100, ... edits every edit so
 * far is asked again (reliability, generality) along with the locality
 * probes (is the answer the one given before any edit?); at the end every
 * batch is undone, last first, and every prompt asked again (is the answer
 * the one given before?). Without --memory the model cannot be edited: the
 * figures are those of the unedited model (the plain-text baseline). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_args.h"
#include "cli_eval.h"
#include "edit_apply.h"
#include "eval_edit.h"
#include "memllm_read.h"
#include "progress.h"
#include "scheduler.h"

struct edit_eval_opts {
    struct cli_model_opts model;
    struct cli_memory_opts mem;
    struct cli_eval_docs docs;
    const char *trace;
    int edits, locality, max_tokens, batch;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: memllm eval edit FILE.json --model PATH [--memory DIR] [--val N [--seed S]]\n"
            "                        [options]\n\n"
            "Counterfactual knowledge edits on the documents' facts (a DocRED / Re-DocRED\n"
            "JSON array; --memory: a memory holding them, from memllm memory import-docred).\n"
            "Each distinct (s, r) of a document gives a case: o' is an object of r in\n"
            "another document; the edit replaces every (s, r, *) with (s, r, o'), each\n"
            "edit its own memllm edit batch. Prompts: \"The r of s is \" (reliability) and\n"
            "\"The r of ALIAS is \", or where s has no other name the fact in words (\"s was\n"
            "born in \"; generality), answered greedily with memory reads (as memllm generate\n"
            "--memory answers). After T = 1, 10, 100, ... --edits edits:\n"
            "reliability and generality (the answer starts with a name of o') over the T\n"
            "edits, locality (the answers about --locality facts that no edit touches,\n"
            "from the documents not evaluated, unchanged). Then\n"
            "every batch is undone and undo_restored is the share of answers as before.\n"
            "The memory is edited in place and restored by those undos (use a copy: memllm\n"
            "memory backup). Without --memory: the unedited model's figures (the plain-\n"
            "text baseline). Prints one 'name: value' a line.\n\n" CLI_MODEL_HELP
                CLI_MEMORY_OPTIONAL_HELP CLI_MEMORY_HELP CLI_QUERY_HELP
            "  --edits N            sequential edits (default 1000; fewer when the\n"
            "                       documents have fewer cases)\n"
            "  --locality N         facts no edit touches (from the documents not evaluated,\n"
            "                       else the cases not edited), asked at every T (default\n"
            "                       100)\n"
            "  --max-tokens N       tokens generated per prompt (default 40)\n"
            "  --batch N            prompts decoded together (default 16; the answers do\n"
            "                       not depend on it)\n"
            "  --use-adapter NAME   the adapter that answers (default: the only one)\n"
            "  --val N              only the N validation documents of memllm data's split\n"
            "  --seed N             that split's seed, and the cases' order (default 0)\n"
            "  --trace FILE         JSONL: every prompt's answer at every T\n"
            "  --props FILE         relation labels, a JSON object id -> label (default:\n"
            "                       the built-in Wikidata table)\n");
}

static int parse_args(int argc, char **argv, struct edit_eval_opts *o)
{
    memset(o, 0, sizeof(*o));
    cli_memory_opts_default(&o->mem);
    o->edits = 1000;
    o->locality = 100;
    o->max_tokens = 40;
    o->batch = 16;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if ((r = cli_eval_reader_opt(argc, argv, &i, &o->model, &o->mem, &o->docs, "edit"))) {
            if (r < 0) return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--trace", &v))) {
            if (r < 0) return -1;
            o->trace = v;
        } else if ((r = cli_opt(argc, argv, &i, "--edits", &v))) {
            if (r < 0 || cli_int("--edits", v, 1, 1000000, &o->edits)) return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--locality", &v))) {
            if (r < 0 || cli_int("--locality", v, 1, 1000000, &o->locality)) return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--max-tokens", &v))) {
            if (r < 0 || cli_int("--max-tokens", v, 1, 4096, &o->max_tokens)) return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--batch", &v))) {
            if (r < 0 || cli_int("--batch", v, 1, 1024, &o->batch)) return -1;
        } else {
            fprintf(stderr, "memllm eval edit: unexpected argument '%s' (see --help)\n", argv[i]);
            return -1;
        }
    }
    if (!o->docs.file) {
        fprintf(stderr, "memllm eval edit: FILE.json is required (see --help)\n");
        return -1;
    }
    return cli_model_ready("eval edit", &o->model) || cli_memory_ready("eval edit", &o->mem, 0) ? -1
                                                                                                : 0;
}

/* ---- answering prompts ---- */

struct asking {
    struct memllm_reader *reader; /* NULL: no memory */
    char **texts;                 /* [n] the generated texts */
    struct progress bar;
    int64_t done, tokens;
};

static int ask_before_sample(void *ctx, struct gen_sequence *s, const float *logits,
                             struct mm_err *err)
{
    struct asking *a = ctx;
    return a->reader ? memllm_read_before_sample(a->reader, s, logits, err) : 0;
}

static int ask_on_token(void *ctx, struct gen_sequence *s, int32_t token, const char *piece,
                        size_t len, struct mm_err *err)
{
    struct asking *a = ctx;
    return a->reader ? memllm_read_on_token(a->reader, s, token, piece, len, err) : 0;
}

static int ask_on_finish(void *ctx, struct gen_sequence *s, struct mm_err *err)
{
    struct asking *a = ctx;
    if (!(a->texts[s->index] = strndup(s->text, s->text_len))) {
        mm_err_set(err, "out of memory");
        return -1;
    }
    a->tokens += s->n_generated;
    progress_update(&a->bar, ++a->done, a->tokens, "tok");
    return 0;
}

/* Generates greedily for prompts [0, n): texts[i] (malloc'd). */
static int ask(struct engine *e, struct mm_memory *m, const struct edit_eval_opts *o, int adapter,
               char *const *prompts, int n, const char *label, char **texts, struct mm_err *err)
{
    struct gen_request *reqs = calloc((size_t)n + 1, sizeof(*reqs));
    int32_t **ids = calloc((size_t)n + 1, sizeof(*ids));
    static const char *const stop[] = {"\n"};
    struct asking a = {.texts = texts};
    int rc = -1;
    if (!reqs || !ids) {
        mm_err_set(err, "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        size_t len;
        if (tok_encode(e->tok, prompts[i], strlen(prompts[i]), tok_add_bos_default(e->tok), 0,
                       &ids[i], &len, err)) {
            mm_err_prefix(err, "prompt '%s'", prompts[i]);
            goto out;
        }
        reqs[i] = (struct gen_request){.prompt = ids[i],
                                       .n_prompt = (int)len,
                                       .max_tokens = o->max_tokens,
                                       .sampling = {.greedy = 1},
                                       .adapter = adapter,
                                       .stop = stop,
                                       .n_stop = 1};
    }
    if (m && !(a.reader = memllm_reader_new(e, m, &o->mem.q, n, err))) goto out;
    struct scheduler_hooks h = {.before_sample = ask_before_sample,
                                .on_token = ask_on_token,
                                .on_finish = ask_on_finish,
                                .ctx = &a};
    progress_start(&a.bar, label, n);
    rc = scheduler_run(e, reqs, n, 512, &h, err);
    if (rc == 0) progress_finish(&a.bar, a.done, a.tokens, "tok");
out:
    memllm_reader_free(a.reader);
    for (int i = 0; ids && i < n; i++)
        free(ids[i]);
    free(ids);
    free(reqs);
    return rc;
}

/* ---- the measure ---- */

/* Prompts: [0, E) reliability, [E, 2E) generality, [2E, 2E + L) locality. */
struct edit_run {
    struct cli_eval_docs in;
    struct edit_cases cases;        /* of the documents evaluated: [0, n_edits) are edited */
    struct edit_cases others;       /* of the other documents: locality's candidates */
    const struct edit_case **probe; /* [n_loc] locality's facts */
    int n_edits, n_loc, n_prompts;
    char **prompts;
    char **before; /* the answers before any edit */
    char **now;    /* the answers of the latest round */
    char (*ids)[EDIT_BATCH_ID_MAX];
    FILE *trace;
};

static void free_texts(char **t, int n)
{
    for (int i = 0; t && i < n; i++) {
        free(t[i]);
        t[i] = NULL;
    }
}

static const char *prompt_kind(const struct edit_run *run, int i)
{
    return i < run->n_edits ? "reliability" : i < 2 * run->n_edits ? "generality" : "locality";
}

static const struct edit_case *prompt_case(const struct edit_run *run, int i)
{
    return i < 2 * run->n_edits ? &run->cases.c[i % run->n_edits]
                                : run->probe[i - 2 * run->n_edits];
}

static int trace_round(struct edit_run *run, const char *round, char **texts, int n,
                       struct mm_err *err)
{
    for (int i = 0; run->trace && i < run->n_prompts; i++) {
        int edit_prompt = i < 2 * run->n_edits;
        if (edit_prompt && i % run->n_edits >= n) continue;
        char *answer = edit_answer(texts[i]);
        json_t *line =
            json_pack("{s:s, s:s, s:i, s:s, s:s, s:s}", "round", round, "kind", prompt_kind(run, i),
                      "case", edit_prompt ? i % run->n_edits : i - 2 * run->n_edits, "prompt",
                      run->prompts[i], "text", texts[i], "answer", answer ? answer : "");
        free(answer);
        if (!line || json_dumpf(line, run->trace, JSON_COMPACT) || fputc('\n', run->trace) < 0) {
            json_decref(line);
            mm_err_set(err, "--trace: cannot write");
            return -1;
        }
        json_decref(line);
    }
    return 0;
}

static int says(const char *text, char *const *names, int n, struct mm_err *err)
{
    char *a = edit_answer(text);
    if (!a) {
        mm_err_set(err, "out of memory");
        return -1;
    }
    int r = edit_answer_says(a, names, n);
    free(a);
    return r;
}

/* Share of prompts [from, from + n) whose answer says o' (or o with `old`). */
static int share_saying(const struct edit_run *run, char **texts, int from, int n, int old,
                        double *share, struct mm_err *err)
{
    int hits = 0;
    for (int i = from; i < from + n; i++) {
        const struct edit_case *c = prompt_case(run, i);
        int r = old ? says(texts[i], c->o_names, c->n_o_names, err)
                    : says(texts[i], c->new_names, c->n_new_names, err);
        if (r < 0) return -1;
        hits += r;
    }
    *share = n ? (double)hits / n : 0.0;
    return 0;
}

static double share_unchanged(const struct edit_run *run, char **texts, int from, int n)
{
    int same = 0;
    for (int i = from; i < from + n; i++)
        same += !strcmp(texts[i], run->before[i]);
    return n ? (double)same / n : 0.0;
}

/* The edits are the first cases; locality's probes are facts no edit
 * touches, from the documents not evaluated, else from the cases after
 * the edits. */
static int make_prompts(struct edit_run *run, const struct edit_eval_opts *o, struct mm_err *err)
{
    int n = run->cases.n, own = run->others.n == 0;
    run->n_edits = o->edits < n - own ? o->edits : n - own;
    if (run->n_edits < 1) {
        mm_err_set(err, "%s: the documents give %d edit cases; at least %d are needed",
                   o->docs.file, n, 1 + own);
        return -1;
    }
    const struct edit_cases *pool = own ? &run->cases : &run->others;
    if (!(run->probe = calloc((size_t)o->locality, sizeof(*run->probe)))) goto oom;
    for (int k = own ? run->n_edits : 0; k < pool->n && run->n_loc < o->locality; k++)
        if (!edit_case_touches(&pool->c[k], run->cases.c, run->n_edits))
            run->probe[run->n_loc++] = &pool->c[k];
    if (run->n_loc == 0) {
        mm_err_set(err, "%s: no fact is left that the %d edits do not touch, to probe locality",
                   o->docs.file, run->n_edits);
        return -1;
    }
    run->n_prompts = 2 * run->n_edits + run->n_loc;
    run->prompts = calloc((size_t)run->n_prompts, sizeof(char *));
    run->before = calloc((size_t)run->n_prompts, sizeof(char *));
    run->now = calloc((size_t)run->n_prompts, sizeof(char *));
    run->ids = calloc((size_t)run->n_edits, sizeof(*run->ids));
    if (!run->prompts || !run->before || !run->now || !run->ids) goto oom;
    for (int i = 0; i < run->n_prompts; i++)
        if (!(run->prompts[i] =
                  edit_case_prompt(prompt_case(run, i), i >= run->n_edits && i < 2 * run->n_edits)))
            goto oom;
    return 0;
oom:
    mm_err_set(err, "out of memory");
    return -1;
}

/* The cases of the documents not evaluated (none when all are). */
static int other_cases(struct edit_run *run, const struct edit_eval_opts *o, struct mm_err *err)
{
    size_t n = json_array_size(run->in.all);
    if (run->in.n_chosen == (int)n) return 0;
    char *rest = malloc(n + 1);
    if (!rest) {
        mm_err_set(err, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        rest[i] = !run->in.chosen[i];
    int rc = edit_cases_build(run->in.all, rest, run->in.labels, (uint64_t)o->docs.seed,
                              &run->others, err);
    free(rest);
    return rc;
}

/* Asks every prompt of the T first edits and the locality probes again. */
static int ask_round(struct engine *e, struct mm_memory *m, const struct edit_eval_opts *o,
                     int adapter, struct edit_run *run, int t, const char *label,
                     struct mm_err *err)
{
    int n = 2 * t + run->n_loc;
    char **p = malloc((size_t)n * sizeof(char *)), **out = calloc((size_t)n, sizeof(char *));
    int rc = -1;
    if (!p || !out) {
        mm_err_set(err, "out of memory");
        goto done;
    }
    for (int i = 0; i < t; i++) {
        p[i] = run->prompts[i];
        p[t + i] = run->prompts[run->n_edits + i];
    }
    for (int i = 0; i < run->n_loc; i++)
        p[2 * t + i] = run->prompts[2 * run->n_edits + i];
    if (ask(e, m, o, adapter, p, n, label, out, err)) goto done;
    free_texts(run->now, run->n_prompts);
    for (int i = 0; i < t; i++) {
        run->now[i] = out[i];
        run->now[run->n_edits + i] = out[t + i];
    }
    for (int i = 0; i < run->n_loc; i++)
        run->now[2 * run->n_edits + i] = out[2 * t + i];
    free(out);
    out = NULL;
    rc = trace_round(run, label, run->now, t, err);
done:
    if (out) free_texts(out, n);
    free(out);
    free(p);
    return rc;
}

static int apply_edits(struct mm_memory *m, const struct edit_eval_opts *o, struct edit_run *run,
                       int from, int to, struct mm_err *err)
{
    for (int k = from; k < to; k++) {
        const struct edit_case *c = &run->cases.c[k];
        struct edit ed = {.op = EDIT_REPLACE, .t = {c->s, c->r, c->o_new}, .line = k + 1};
        struct edit_counts counts = {0};
        if (edit_apply(m, o->mem.dir, "memllm eval edit", &ed, 1, run->ids[k], &counts, err)) {
            mm_err_prefix(err, "edit %d (%s>>%s>>%s)", k + 1, c->s, c->r, c->o_new);
            return -1;
        }
    }
    return 0;
}

static int undo_edits(struct mm_memory *m, const struct edit_eval_opts *o, struct edit_run *run,
                      int n, struct mm_err *err)
{
    for (int k = n - 1; k >= 0; k--) {
        size_t restored, removed;
        if (run->ids[k][0] &&
            edit_apply_undo(m, o->mem.dir, run->ids[k], &restored, &removed, err)) {
            mm_err_prefix(err, "undo of edit %d (batch %s)", k + 1, run->ids[k]);
            return -1;
        }
        run->ids[k][0] = '\0';
    }
    return 0;
}

static int edit_rounds(struct engine *e, struct mm_memory *m, const struct edit_eval_opts *o,
                       int adapter, struct edit_run *run, struct mm_err *err)
{
    int done = 0;
    for (int t = 1;; t = t * 10 < run->n_edits ? t * 10 : run->n_edits) {
        char label[32];
        double rel, gen;
        snprintf(label, sizeof(label), "T%d", t);
        if (apply_edits(m, o, run, done, t, err)) return -1;
        done = t;
        if (ask_round(e, m, o, adapter, run, t, label, err) ||
            share_saying(run, run->now, 0, t, 0, &rel, err) ||
            share_saying(run, run->now, run->n_edits, t, 0, &gen, err))
            return -1;
        printf("%s_reliability: %.4f\n%s_generality: %.4f\n%s_locality: %.4f\n", label, rel, label,
               gen, label, share_unchanged(run, run->now, 2 * run->n_edits, run->n_loc));
        fflush(stdout);
        if (t == run->n_edits) break;
    }
    if (undo_edits(m, o, run, done, err) ||
        ask_round(e, m, o, adapter, run, run->n_edits, "undone", err))
        return -1;
    printf("undo_restored: %.4f\n", share_unchanged(run, run->now, 0, run->n_prompts));
    return 0;
}

static int edit_job(struct engine *e, struct mm_memory *m, const struct cluster *cl, void *arg,
                    struct mm_err *err)
{
    (void)cl;
    const struct edit_eval_opts *o = arg;
    struct edit_run run = {.in = o->docs};
    int rc = -1, adapter;
    if (cli_eval_docs_open(&run.in, err) ||
        edit_cases_build(run.in.all, run.in.chosen, run.in.labels, (uint64_t)o->docs.seed,
                         &run.cases, err) ||
        other_cases(&run, o, err) || make_prompts(&run, o, err) ||
        (adapter = cli_eval_docs_adapter(e, &o->docs, err)) < -1)
        goto done;
    if (o->trace && !(run.trace = fopen(o->trace, "w"))) {
        mm_err_set(err, "%s: cannot open for writing", o->trace);
        goto done;
    }
    double old, new_before, gen_old;
    if (ask_round(e, m, o, adapter, &run, run.n_edits, "before", err) ||
        share_saying(&run, run.now, 0, run.n_edits, 1, &old, err) ||
        share_saying(&run, run.now, run.n_edits, run.n_edits, 1, &gen_old, err) ||
        share_saying(&run, run.now, 0, run.n_edits, 0, &new_before, err))
        goto done;
    for (int i = 0; i < run.n_prompts; i++) {
        run.before[i] = run.now[i];
        run.now[i] = NULL;
    }
    int aliases = 0;
    for (int i = 0; i < run.n_edits; i++)
        aliases += run.cases.c[i].alias != NULL;
    printf("documents: %d\ncases: %d\nedits: %d\nlocality_probes: %d\n"
           "generality_alias_prompts: %d\nbefore_accuracy: %.4f\nbefore_generality_accuracy: "
           "%.4f\nbefore_says_new: %.4f\n",
           run.in.n_chosen, run.cases.n, run.n_edits, run.n_loc, aliases, old, gen_old, new_before);
    fflush(stdout);
    if (m) {
        rc = edit_rounds(e, m, o, adapter, &run, err);
        if (rc) undo_edits(m, o, &run, run.n_edits, &(struct mm_err){{0}});
    } else {
        double gen;
        rc = share_saying(&run, run.before, run.n_edits, run.n_edits, 0, &gen, err);
        if (rc == 0)
            printf("edits_applied: 0\nreliability: %.4f\ngenerality: %.4f\nlocality: 1.0000\n",
                   new_before, gen);
    }
done:
    if (run.trace && fclose(run.trace) != 0 && rc == 0) {
        mm_err_set(err, "%s: cannot write", o->trace);
        rc = -1;
    }
    free_texts(run.prompts, run.n_prompts);
    free_texts(run.before, run.n_prompts);
    free_texts(run.now, run.n_prompts);
    free(run.prompts);
    free(run.before);
    free(run.now);
    free(run.ids);
    free(run.probe);
    edit_cases_free(&run.others);
    edit_cases_free(&run.cases);
    cli_eval_docs_close(&run.in);
    return rc;
}

int cli_eval_edit(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    struct edit_eval_opts o;
    if (parse_args(argc, argv, &o)) return 2;
    o.model.engine.n_slots = o.batch;
    return cli_run_with_engine("eval edit", &o.model, o.mem.dir ? &o.mem : NULL, edit_job, &o);
}
