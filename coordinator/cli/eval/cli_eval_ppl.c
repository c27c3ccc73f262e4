/* memllm eval ppl FILE.json: perplexity by token class (OVERALL, ENTITY,
 * TARGET) with no reads, reads at Algorithm 1's gold points, or reads the
 * model places itself (eval_ppl.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_args.h"
#include "cli_eval.h"
#include "cli_memory_internal.h"
#include "eval_ppl.h"
#include "memory_service.h"
#include "progress.h"
#include "train_examples.h"

struct ppl_eval_opts {
    struct cli_model_opts model;
    struct cli_memory_opts mem;
    struct cli_eval_docs docs;
    const char *gold, *trace;
    enum ppl_reads reads;
    int max_call_tokens;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: memllm eval ppl FILE.json --model PATH --gold DIR [--reads none|gold|model]\n"
            "                       [--memory DIR] [--val N [--seed S]] [options]\n\n"
            "Perplexity over the documents' text (a DocRED / Re-DocRED JSON array) by\n"
            "token class: OVERALL (every text token), ENTITY (entity mentions) and TARGET\n"
            "(the mentions before which the paper's Algorithm 1 places a read, as memllm\n"
            "data mr does with the gold memory --gold). Memory API tokens never count.\n"
            "Reads: none, the text alone; gold, Algorithm 1's reads with their answers\n"
            "from --gold; model, wherever the model's most likely next token opens a\n"
            "read, it writes the call and --memory answers it (no answer: the read is\n"
            "dropped). Only the latest read stays in the context. Prints documents,\n"
            "reads, reads_dropped, and per class its ppl and tokens, one 'name: value'\n"
            "a line.\n\n" CLI_MODEL_HELP CLI_MEMORY_OPTIONAL_HELP CLI_MEMORY_HELP CLI_QUERY_HELP
            "  --gold DIR           the documents' gold facts (memllm memory import-docred\n"
            "                       FILE.json --memory DIR; required)\n"
            "  --reads R            none (default), gold or model (with --memory, else\n"
            "                       --gold answers)\n"
            "  --use-adapter NAME   the adapter that reads (default: the only one; none\n"
            "                       loaded: the base model)\n"
            "  --max-call-tokens N  model reads: a longer call is dropped (default 128)\n"
            "  --val N              only the N validation documents of memllm data's split\n"
            "  --seed N             that split's seed (default 0)\n"
            "  --trace FILE         JSONL: each document's reads\n"
            "  --props FILE         relation labels, a JSON object id -> label (default:\n"
            "                       the built-in Wikidata table)\n");
}

static int parse_reads(const char *v, enum ppl_reads *r)
{
    if (!strcmp(v, "none"))
        *r = PPL_READS_NONE;
    else if (!strcmp(v, "gold"))
        *r = PPL_READS_GOLD;
    else if (!strcmp(v, "model"))
        *r = PPL_READS_MODEL;
    else {
        fprintf(stderr, "memllm eval ppl: --reads: '%s' is not none, gold or model\n", v);
        return -1;
    }
    return 0;
}

static int parse_args(int argc, char **argv, struct ppl_eval_opts *o)
{
    memset(o, 0, sizeof(*o));
    cli_memory_opts_default(&o->mem);
    o->max_call_tokens = 128;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if ((r = cli_eval_reader_opt(argc, argv, &i, &o->model, &o->mem, &o->docs, "ppl"))) {
            if (r < 0) return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--gold", &v))) {
            if (r < 0) return -1;
            o->gold = v;
        } else if ((r = cli_opt(argc, argv, &i, "--trace", &v))) {
            if (r < 0) return -1;
            o->trace = v;
        } else if ((r = cli_opt(argc, argv, &i, "--reads", &v))) {
            if (r < 0 || parse_reads(v, &o->reads)) return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--max-call-tokens", &v))) {
            if (r < 0 || cli_int("--max-call-tokens", v, 4, 4096, &o->max_call_tokens)) return -1;
        } else {
            fprintf(stderr, "memllm eval ppl: unexpected argument '%s' (see --help)\n", argv[i]);
            return -1;
        }
    }
    if (!o->docs.file || !o->gold) {
        fprintf(stderr, "memllm eval ppl: FILE.json and --gold DIR are required (see --help)\n");
        return -1;
    }
    if (o->mem.dir && !strcmp(o->mem.dir, o->gold)) {
        fprintf(stderr,
                "memllm eval ppl: --memory and --gold name the same memory (%s): leave "
                "--memory out and the model's reads go to --gold\n",
                o->gold);
        return -1;
    }
    return cli_model_ready("eval ppl", &o->model) || cli_memory_ready("eval ppl", &o->mem, 0) ? -1
                                                                                              : 0;
}

struct ppl_eval_run {
    struct cli_eval_docs in; /* the file and the chosen documents */
    struct mm_embedder *emb;
    struct mm_memory *gold;
    FILE *trace;
};

static int open_inputs(struct ppl_eval_run *run, const struct ppl_eval_opts *o, struct mm_err *err)
{
    run->in = o->docs;
    if (cli_eval_docs_open(&run->in, err)) return -1;
    uint32_t shards = mm_memory_shards_on_disk(o->gold);
    if (shards == 0) {
        mm_err_set(err,
                   "--gold %s holds no memory (build it with memllm memory import-docred %s "
                   "--memory %s)",
                   o->gold, o->docs.file, o->gold);
        return -1;
    }
    if (!(run->emb = cli_memory_embedder(NULL, o->gold, 1, err)) ||
        !(run->gold = mm_memory_open_local(o->gold, shards, run->emb, 0, err))) {
        mm_err_prefix(err, "--gold %s", o->gold);
        return -1;
    }
    if (o->trace && !(run->trace = fopen(o->trace, "w"))) {
        mm_err_set(err, "%s: cannot open for writing", o->trace);
        return -1;
    }
    return 0;
}

static int score_docs(struct engine *e, struct ppl_eval_run *run, const struct ppl_eval_opts *o,
                      const struct ppl_options *po, struct ppl_counts *c, struct mm_err *err)
{
    size_t n = json_array_size(run->in.all);
    struct progress bar;
    progress_start(&bar, "eval ppl", run->in.n_chosen);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (!run->in.chosen[i]) continue;
        struct doc d;
        struct mr_plan plan;
        struct ppl_doc pd;
        struct examples_counts ec = {0};
        json_t *reads = json_array();
        if (doc_read(&d, json_array_get(run->in.all, i), err)) {
            mm_err_prefix(err, "%s: document %zu", run->in.file, i);
            json_decref(reads);
            rc = -1;
            break;
        }
        rc = mr_plan_document(&plan, &d, run->in.labels, run->gold, &ec, err);
        if (rc == 0) {
            rc = ppl_doc_build(&pd, &plan, e->tok, err);
            if (rc == 0) {
                rc = ppl_score_document(e, &pd, po, c, reads, err);
                ppl_doc_free(&pd);
            }
            mr_plan_free(&plan);
        }
        doc_free(&d);
        if (rc) mm_err_prefix(err, "%s: document %zu", run->in.file, i);
        if (rc == 0 && run->trace) {
            json_t *line = json_pack("{s:I, s:o}", "doc", (json_int_t)i, "reads", reads);
            reads = NULL;
            if (!line || json_dumpf(line, run->trace, JSON_COMPACT) ||
                fputc('\n', run->trace) < 0) {
                mm_err_set(err, "%s: cannot write", o->trace);
                rc = -1;
            }
            json_decref(line);
        }
        json_decref(reads);
        progress_update(&bar, c->documents, c->n[PPL_OVERALL], "tokens");
    }
    if (rc == 0) progress_finish(&bar, c->documents, c->n[PPL_OVERALL], "tokens");
    return rc;
}

static int ppl_job(struct engine *e, struct mm_memory *m, const struct cluster *cl, void *arg,
                   struct mm_err *err)
{
    (void)cl;
    const struct ppl_eval_opts *o = arg;
    struct ppl_eval_run run = {0};
    struct ppl_counts c = {0};
    struct ppl_options po = {.reads = o->reads, .max_call_tokens = o->max_call_tokens};
    int rc = -1;
    if (open_inputs(&run, o, err)) goto done;
    if ((po.adapter = cli_eval_docs_adapter(e, &o->docs, err)) < -1) goto done;
    po.mem = m ? m : run.gold;
    po.query = o->mem.q;
    if (score_docs(e, &run, o, &po, &c, err)) goto done;
    static const char *const names[PPL_CLASSES] = {"overall", "entity", "target"};
    printf("documents: %lld\nreads: %lld\nreads_dropped: %lld\n", (long long)c.documents,
           (long long)c.reads, (long long)c.dropped);
    for (int k = 0; k < PPL_CLASSES; k++)
        printf("%s_ppl: %.4f\n%s_tokens: %lld\n", names[k], ppl_of(&c, k), names[k],
               (long long)c.n[k]);
    rc = 0;
done:
    if (run.trace && fclose(run.trace) != 0 && rc == 0) {
        mm_err_set(err, "%s: cannot write", o->trace);
        rc = -1;
    }
    if (run.gold) {
        struct mm_err cerr = {{0}};
        if (mm_memory_close(run.gold, &cerr) && rc == 0) {
            *err = cerr;
            rc = -1;
        }
    }
    if (run.emb) mm_embedder_free(run.emb);
    cli_eval_docs_close(&run.in);
    return rc;
}

int cli_eval_ppl(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    struct ppl_eval_opts o;
    if (parse_args(argc, argv, &o)) return 2;
    o.model.engine.n_slots = 1;
    return cli_run_with_engine("eval ppl", &o.model, o.mem.dir ? &o.mem : NULL, ppl_job, &o);
}
