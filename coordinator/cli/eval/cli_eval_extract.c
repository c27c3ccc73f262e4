/* memllm eval extract FILE.json: the MW model writes every sentence of the
 * chosen documents into the memory (the write loop, as memllm annotate), and
 * the facts it wrote for each document are scored against the document's
 * gold relations (eval_extract.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_args.h"
#include "cli_eval.h"
#include "eval_extract.h"
#include "memllm_write_trace.h"
#include "progress.h"
#include "train_examples_doc.h"

struct extract_opts {
    struct cli_model_opts model;
    struct cli_memory_opts mem;
    struct mw_options mw;
    struct cli_eval_docs docs;
    int batch;
    const char *trace;
};

/* A chosen document, its facts gathered as its sentences finish. */
struct eval_doc {
    struct mw_document d; /* first: the writer's pointer is the document's */
    struct doc doc;
    json_t *json;
    char id[32];
    struct mm_triple_text *facts;
    int n_facts, cap;
};

struct extract_run {
    const struct extract_opts *o;
    struct cli_eval_docs in; /* the file and the chosen documents */
    struct eval_doc *docs;
    int n_docs;
    struct extract_counts counts;
    struct progress bar;
    int64_t sentences, total;
    FILE *trace;
};

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: memllm eval extract FILE.json --model PATH --adapter DIR --memory DIR\n"
        "                           [--val N [--seed S]] [options]\n\n"
        "The MW model writes every sentence of the documents (a DocRED / Re-DocRED\n"
        "JSON array) into --memory, as memllm annotate does, and its facts are scored\n"
        "against each document's gold relations: a fact s>>r>>o is correct when a\n"
        "gold relation has the same relation label and s and o are mention names\n"
        "(any alias; case and spaces ignored) of its two entities. Prints documents,\n"
        "gold, facts, correct, recalled, precision, recall, f1, delay, repeats and\n"
        "tokens (generated), one 'name: value' a line. --val N --seed S picks the\n"
        "validation documents memllm data held out with the same options; without\n"
        "--val, every document.\n\n"
        "Under mpirun: mpirun -np 1+P+S memllm eval extract ... --stages P --memshards "
        "S\n\n" CLI_MODEL_HELP CLI_MEMORY_REQUIRED_HELP CLI_MEMORY_HELP
        "  --use-adapter NAME   the write model's adapter (default: the only one)\n" CLI_WRITE_HELP
        "  --window N           preceding sentences in the prompt (default: all)\n"
        "  --batch N            sentences decoded together (default 16)\n"
        "  --trace FILE         JSONL: what the model generated and wrote for each\n"
        "                       sentence, with late stopping's cuts\n"
        "  --val N              only the N validation documents of memllm data's split\n"
        "  --seed N             that split's seed (default 0)\n"
        "  --props FILE         relation labels, a JSON object id -> label (default:\n"
        "                       the built-in Wikidata table)\n");
}

static int parse_args(int argc, char **argv, struct extract_opts *o)
{
    memset(o, 0, sizeof(*o));
    cli_memory_opts_default(&o->mem);
    mw_options_default(&o->mw);
    o->mw.window = 1 << 20; /* all preceding sentences, as the MW examples */
    o->batch = 16;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if ((r = cli_model_opt(argc, argv, &i, &o->model)) ||
            (r = cli_memory_opt(argc, argv, &i, &o->mem)) ||
            (r = cli_write_opt(argc, argv, &i, &o->mw)) ||
            (r = cli_eval_docs_opt(argc, argv, &i, &o->docs, "extract"))) {
            if (r < 0) return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--window", &v))) {
            if (r < 0 || cli_int("--window", v, 0, 1 << 20, &o->mw.window)) return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--batch", &v))) {
            if (r < 0 || cli_int("--batch", v, 1, 4096, &o->batch)) return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--trace", &v))) {
            if (r < 0) return -1;
            o->trace = v;
        } else {
            fprintf(stderr, "memllm eval extract: unexpected argument '%s' (see --help)\n",
                    argv[i]);
            return -1;
        }
    }
    if (!o->docs.file) {
        fprintf(stderr, "memllm eval extract: FILE.json is required (see --help)\n");
        return -1;
    }
    return cli_model_ready("eval extract", &o->model) ||
                   cli_memory_ready("eval extract", &o->mem, 1)
               ? -1
               : 0;
}

static int add_facts(struct eval_doc *d, const struct mw_sentence_result *r, struct mm_err *err)
{
    for (int i = 0; i < r->n_facts; i++) {
        if (d->n_facts == d->cap) {
            int cap = d->cap ? 2 * d->cap : 16;
            struct mm_triple_text *f = realloc(d->facts, (size_t)cap * sizeof(*f));
            if (!f) goto oom;
            d->facts = f;
            d->cap = cap;
        }
        struct mm_triple_text *t = &d->facts[d->n_facts];
        t->s = strdup(r->facts[i].s);
        t->r = strdup(r->facts[i].r);
        t->o = strdup(r->facts[i].o);
        d->n_facts++;
        if (!t->s || !t->r || !t->o) goto oom;
    }
    return 0;
oom:
    mm_err_set(err, "out of memory");
    return -1;
}

static int sentence_done(void *ctx, const struct mw_sentence_result *r, struct mm_err *err)
{
    struct extract_run *run = ctx;
    struct eval_doc *d = (struct eval_doc *)r->doc;
    run->sentences++;
    progress_update(&run->bar, run->sentences, run->sentences, "sentences");
    if (run->trace && mw_trace_write(run->trace, run->o->trace, r, err)) return -1;
    return add_facts(d, r, err);
}

static int document_done(void *ctx, const struct mw_document *doc, struct mm_err *err)
{
    struct extract_run *run = ctx;
    struct eval_doc *d = (struct eval_doc *)doc;
    if (extract_score_document(d->json, run->in.labels, d->facts, d->n_facts, &run->counts, err)) {
        mm_err_prefix(err, "%s: document %s", run->in.file, d->id);
        return -1;
    }
    return 0;
}

static void free_docs(struct extract_run *run)
{
    for (int i = 0; i < run->n_docs; i++) {
        struct eval_doc *d = &run->docs[i];
        for (int j = 0; j < d->n_facts; j++) {
            free(d->facts[j].s);
            free(d->facts[j].r);
            free(d->facts[j].o);
        }
        free(d->facts);
        doc_free(&d->doc);
    }
    free(run->docs);
}

/* The chosen documents of the file, read and checked before any writing. */
static int load_docs(struct extract_run *run, struct mm_err *err)
{
    size_t n = json_array_size(run->in.all);
    run->docs = calloc(n ? n : 1, sizeof(*run->docs));
    if (!run->docs) {
        mm_err_set(err, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!run->in.chosen[i]) continue;
        struct eval_doc *d = &run->docs[run->n_docs];
        d->json = json_array_get(run->in.all, i);
        if (doc_read(&d->doc, d->json, err)) {
            mm_err_prefix(err, "%s: document %zu", run->in.file, i);
            return -1;
        }
        run->n_docs++;
        snprintf(d->id, sizeof(d->id), "%zu", i);
        d->d = (struct mw_document){d->id, (const char *const *)d->doc.sents, d->doc.n_sents};
        run->total += d->doc.n_sents;
    }
    return 0;
}

static int write_adapter(struct engine *e, const struct extract_opts *o, struct mm_err *err)
{
    if (o->docs.use_adapter) return engine_adapter(e, o->docs.use_adapter, err);
    if (e->n_adapters == 1 && !e->merged) return 0;
    mm_err_set(err, "the MW adapter: load exactly one with --adapter, or name it with "
                    "--use-adapter");
    return -1;
}

static int extract_job(struct engine *e, struct mm_memory *m, const struct cluster *cl, void *arg,
                       struct mm_err *err)
{
    (void)cl;
    struct extract_run run = {.o = arg};
    const struct extract_opts *o = run.o;
    struct memllm_writer *w = NULL;
    int rc = -1;
    run.in = o->docs;
    if (cli_eval_docs_open(&run.in, err) || load_docs(&run, err)) goto done;
    if (o->trace && !(run.trace = fopen(o->trace, "w"))) {
        mm_err_set(err, "%s: %s", o->trace, strerror(errno));
        goto done;
    }
    struct mw_options mw = o->mw;
    if ((mw.adapter = write_adapter(e, o, err)) < 0) goto done;
    struct mw_callbacks cb = {.sentence = sentence_done, .document = document_done, .ctx = &run};
    if (!(w = memllm_writer_new(e, m, &mw, &cb, err))) goto done;
    for (int i = 0; i < run.n_docs; i++)
        if (memllm_writer_add(w, &run.docs[i].d, err)) goto done;
    progress_start(&run.bar, "eval extract", run.total);
    if (memllm_writer_run(w, 512, err)) goto done;
    progress_finish(&run.bar, run.sentences, run.sentences, "sentences");
    const struct extract_counts *c = &run.counts;
    printf("documents: %lld\nsentences: %lld\ngold: %lld\nfacts: %lld\ncorrect: %lld\n"
           "recalled: %lld\nprecision: %.4f\nrecall: %.4f\nf1: %.4f\ndelay: %d\nrepeats: %d\n"
           "tokens: %lld\n",
           (long long)c->documents, (long long)run.sentences, (long long)c->gold,
           (long long)c->facts, (long long)c->correct, (long long)c->recalled, extract_precision(c),
           extract_recall(c), extract_f1(c), o->mw.delay, o->mw.repeats,
           (long long)memllm_writer_stats(w)->tokens);
    rc = 0;
done:
    if (run.trace && fclose(run.trace) && rc == 0) {
        mm_err_set(err, "%s: %s", o->trace, strerror(errno));
        rc = -1;
    }
    memllm_writer_free(w);
    free_docs(&run);
    cli_eval_docs_close(&run.in);
    return rc;
}

int cli_eval_extract(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    struct extract_opts o;
    if (parse_args(argc, argv, &o)) return 2;
    o.model.engine.n_slots = o.batch;
    return cli_run_with_engine("eval extract", &o.model, &o.mem, extract_job, &o);
}
