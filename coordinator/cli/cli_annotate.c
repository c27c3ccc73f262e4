/* memllm annotate CORPUS...: the MemLLM write loop over every sentence of a
 * corpus, into the memory (memllm_write.h).
 *
 * Documents: plain text, JSONL or DocRED JSON files (corpus.h).
 *
 * Resuming: DIR/annotate.done lists the finished documents (annotate_done.h);
 * a restarted job skips them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "annotate_done.h"
#include "cli_args.h"
#include "corpus.h"
#include "memllm_write_trace.h"
#include "progress.h"

struct annotate_opts {
    struct cli_model_opts model;
    struct cli_memory_opts mem;
    struct mw_options mw;
    const char *use_adapter, *trace;
    int batch, chunk;
    char **corpus;
    int n_corpus;
};

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: memllm annotate CORPUS... --model PATH --memory DIR [options]\n\n"
        "Runs the MemLLM write model over every sentence of the corpus and stores\n"
        "the facts it writes, each with its provenance (document id, sentence).\n"
        "CORPUS: plain text files (one document each, named after the file), .jsonl\n"
        "files (one document per line: {\"id\", \"text\"} or {\"title\", \"sents\":\n"
        "[[tokens]]}), or .json arrays of such documents (DocRED files).\n"
        "A restarted job skips the documents it finished (DIR/" ANNOTATE_DONE_FILE ").\n\n"
        "Under mpirun: mpirun -np 1+P+S memllm annotate ... --stages P --memshards "
        "S\n\n" CLI_MODEL_HELP CLI_MEMORY_REQUIRED_HELP CLI_MEMORY_HELP
        "  --use-adapter NAME   the write model's adapter (default: the only adapter\n"
        "                       when exactly one is loaded, else the base model)\n" CLI_WRITE_HELP
        "  --window N           preceding sentences in the prompt (default: context/40)\n"
        "  --batch N            sentences decoded together (default 16)\n"
        "  --chunk N            sentences queued per scheduling round (default 4096)\n"
        "  --trace FILE         JSONL: what the model generated and wrote for each\n"
        "                       sentence, with late stopping's cuts\n");
}

static int parse_args(int argc, char **argv, struct annotate_opts *o)
{
    memset(o, 0, sizeof(*o));
    cli_memory_opts_default(&o->mem);
    mw_options_default(&o->mw);
    o->batch = 16;
    o->chunk = 4096;
    o->corpus = calloc((size_t)argc, sizeof(char *));
    if (!o->corpus) return -1;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int r;
        if ((r = cli_model_opt(argc, argv, &i, &o->model)) ||
            (r = cli_memory_opt(argc, argv, &i, &o->mem)) ||
            (r = cli_write_opt(argc, argv, &i, &o->mw))) {
            if (r < 0) return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--use-adapter", &v))) {
            if (r < 0) return -1;
            o->use_adapter = v;
        } else if ((r = cli_opt(argc, argv, &i, "--trace", &v))) {
            if (r < 0) return -1;
            o->trace = v;
        } else if ((r = cli_opt(argc, argv, &i, "--window", &v))) {
            if (r < 0 || cli_int("--window", v, 0, 1 << 20, &o->mw.window)) return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--batch", &v))) {
            if (r < 0 || cli_int("--batch", v, 1, 4096, &o->batch)) return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--chunk", &v))) {
            if (r < 0 || cli_int("--chunk", v, 1, 1 << 24, &o->chunk)) return -1;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            fprintf(stderr, "memllm annotate: unknown option '%s' (see --help)\n", argv[i]);
            return -1;
        } else {
            o->corpus[o->n_corpus++] = argv[i];
        }
    }
    if (cli_model_ready("annotate", &o->model) || cli_memory_ready("annotate", &o->mem, 1))
        return -1;
    if (o->n_corpus == 0) {
        fprintf(stderr, "memllm annotate: give the corpus files (see --help)\n");
        return -1;
    }
    return 0;
}

/* --- the job ------------------------------------------------------------------------------- */

struct annotate_run {
    const struct annotate_opts *o;
    struct memllm_writer *w;
    struct annotate_done done;
    FILE *trace;
    struct progress bar;
    char label[128];
    int64_t docs_done, docs_skipped;
    double start;
};

static void update_bar(struct annotate_run *run, int final)
{
    const struct mw_stats *st = memllm_writer_stats(run->w);
    double t = progress_now() - run->start;
    snprintf(run->label, sizeof(run->label), "annotate: %lld triples, %.1f triples/s",
             (long long)st->facts, t > 0 ? (double)st->facts / t : 0.0);
    int64_t done = run->docs_done + run->docs_skipped;
    if (final)
        progress_finish(&run->bar, done, st->sentences, "sentences");
    else
        progress_update(&run->bar, done, st->sentences, "sentences");
}

/* A document's facts are acknowledged: record it as finished. */
static int document_done(void *ctx, const struct mw_document *doc, struct mm_err *err)
{
    struct annotate_run *run = ctx;
    if (annotate_done_record(&run->done, doc->id, err)) return -1;
    run->docs_done++;
    update_bar(run, 0);
    return 0;
}

static int sentence_done(void *ctx, const struct mw_sentence_result *r, struct mm_err *err)
{
    struct annotate_run *run = ctx;
    return run->trace ? mw_trace_write(run->trace, run->o->trace, r, err) : 0;
}

/* A corpus document as the writer sees it. */
struct doc {
    struct corpus_doc c;
    struct mw_document d;
};

static void doc_free(struct doc *d)
{
    corpus_doc_free(&d->c);
    free(d);
}

/* The documents of one scheduling round: the writer points into them until
 * the round has run. */
struct round {
    struct doc **docs;
    int n, cap, sentences;
};

static int round_add(struct round *r, struct doc *d, struct mm_err *err)
{
    if (r->n == r->cap) {
        int cap = r->cap ? 2 * r->cap : 64;
        struct doc **grown = realloc(r->docs, (size_t)cap * sizeof(*grown));
        if (!grown) {
            mm_err_set(err, "out of memory");
            return -1;
        }
        r->docs = grown;
        r->cap = cap;
    }
    r->docs[r->n++] = d;
    r->sentences += d->c.n_sentences;
    return 0;
}

static void round_clear(struct round *r)
{
    for (int i = 0; i < r->n; i++)
        doc_free(r->docs[i]);
    r->n = r->sentences = 0;
}

static int round_run(struct annotate_run *run, struct round *r, struct mm_err *err)
{
    int rc = memllm_writer_run(run->w, 512, err);
    memllm_writer_clear(run->w);
    round_clear(r);
    return rc;
}

static int write_adapter(struct engine *e, const struct annotate_opts *o, struct mm_err *err)
{
    if (o->use_adapter) return engine_adapter(e, o->use_adapter, err);
    return e->n_adapters == 1 && !e->merged ? 0 : -1;
}

static int annotate(struct annotate_run *run, struct engine *e, struct mm_memory *m,
                    struct mm_err *err)
{
    const struct annotate_opts *o = run->o;
    struct mw_options mw = o->mw;
    mw.adapter = write_adapter(e, o, err);
    if (o->use_adapter && mw.adapter < 0) return -1;
    struct mw_callbacks cb = {.sentence = sentence_done, .document = document_done, .ctx = run};
    if (!(run->w = memllm_writer_new(e, m, &mw, &cb, err))) return -1;
    if (annotate_done_open(&run->done, o->mem.dir, err)) return -1;
    if (run->done.ids.n)
        fprintf(stderr, "memllm annotate: %zu documents already done (%s)\n", run->done.ids.n,
                run->done.path);
    int64_t total;
    if (corpus_count(o->corpus, o->n_corpus, &total, err)) return -1;
    run->start = progress_now();
    progress_start(&run->bar, run->label, total);
    struct round r = {0};
    struct id_set seen = {0};
    struct corpus *c = corpus_open(o->corpus, o->n_corpus, err);
    int rc = c ? 0 : -1;
    while (rc == 0) {
        struct doc *d = calloc(1, sizeof(*d));
        if (!d) {
            mm_err_set(err, "out of memory");
            rc = -1;
            break;
        }
        int got = corpus_next(c, &d->c, err);
        int fresh = got > 0 ? id_set_add(&seen, d->c.id) : 0;
        if (fresh > 0 && id_set_has(&run->done.ids, d->c.id)) {
            run->docs_skipped++;
            doc_free(d);
            continue;
        }
        if (got > 0 && fresh == 0)
            mm_err_set(err, "document id '%s' appears twice in the corpus", d->c.id);
        else if (got > 0 && fresh < 0)
            mm_err_set(err, "out of memory");
        if (got <= 0 || fresh <= 0 || round_add(&r, d, err)) {
            doc_free(d);
            rc = got == 0 ? 0 : -1;
            break;
        }
        d->d = (struct mw_document){d->c.id, (const char *const *)d->c.sentences, d->c.n_sentences};
        if (memllm_writer_add(run->w, &d->d, err) ||
            (r.sentences >= o->chunk && round_run(run, &r, err))) {
            rc = -1;
            break;
        }
    }
    if (rc == 0) rc = round_run(run, &r, err);
    round_clear(&r);
    free(r.docs);
    id_set_free(&seen);
    corpus_close(c);
    if (rc == 0) update_bar(run, 1);
    return rc;
}

static int annotate_job(struct engine *e, struct mm_memory *m, const struct cluster *cl, void *arg,
                        struct mm_err *err)
{
    (void)cl;
    const struct annotate_opts *o = arg;
    struct annotate_run run = {.o = o, .done = {.fd = -1}};
    int rc = 0;
    if (o->trace && !(run.trace = fopen(o->trace, "w"))) {
        mm_err_set(err, "%s: cannot open for writing", o->trace);
        rc = -1;
    }
    if (rc == 0) rc = annotate(&run, e, m, err);
    if (rc == 0) {
        const struct mw_stats *st = memllm_writer_stats(run.w);
        double t = progress_now() - run.start;
        printf("documents: %lld\nalready_done: %lld\nsentences: %lld\nskipped_sentences: %lld\n"
               "prompt_tokens: %lld\nprompt_tokens_reused: %lld\ntokens: %lld\ntriples: %lld\n"
               "malformed: %lld\nseconds: %.2f\nsentences_per_s: %.2f\ntriples_per_s: %.2f\n",
               (long long)run.docs_done, (long long)run.docs_skipped, (long long)st->sentences,
               (long long)st->skipped, (long long)st->prompt_tokens,
               (long long)e->prefix_stats.reused_tokens, (long long)st->tokens,
               (long long)st->facts, (long long)st->malformed, t,
               t > 0 ? (double)st->sentences / t : 0.0, t > 0 ? (double)st->facts / t : 0.0);
        int64_t paged, contiguous;
        if (engine_kv_memory(e, &paged, &contiguous) == 0)
            printf("kv_mib_peak: %.1f\nkv_mib_unpaged: %.1f\n", (double)paged / (1 << 20),
                   (double)contiguous / (1 << 20));
    }
    if (run.trace && fclose(run.trace) != 0 && rc == 0) {
        mm_err_set(err, "%s: cannot write", o->trace);
        rc = -1;
    }
    annotate_done_close(&run.done);
    memllm_writer_free(run.w);
    return rc;
}

int cli_annotate(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    struct annotate_opts o;
    int rc = 2;
    if (parse_args(argc, argv, &o) == 0) {
        o.model.engine.n_slots = o.batch;
        rc = cli_run_with_engine("annotate", &o.model, &o.mem, annotate_job, &o);
    }
    free(o.corpus);
    return rc;
}
