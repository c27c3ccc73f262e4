/* memllm generate: one prompt (text on stdout, streamed) or a JSONL file of
 * requests (JSONL results in input order), through the continuous-batching
 * scheduler. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_args.h"
#include "memllm_read.h"
#include "progress.h"
#include "scheduler.h"

#define MAX_STOPS 16

struct gen_opts {
    struct cli_model_opts model;
    struct cli_memory_opts mem;
    const char *prompt, *input, *output, *use_adapter;
    int max_tokens;
    int batch;
    int logprobs;
    int add_bos; /* -1: tokenizer default */
    struct sampler_params sampling;
    const char *stops[MAX_STOPS];
    int n_stops;
    int32_t stop_tokens[MAX_STOPS];
    int n_stop_tokens;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: memllm generate --model PATH (--prompt TEXT | --input FILE.jsonl) [options]\n\n"
            "Generates text. With --prompt, prints only the generated text on stdout.\n"
            "With --input, reads one JSON object per line: \"prompt\" and optionally\n"
            "\"id\", \"max_tokens\", \"temperature\", \"top_k\", \"top_p\", \"seed\",\n"
            "\"greedy\", \"stop\" (array) and \"adapter\" (a name, or null for the base\n"
            "model); writes one result per line, in input order, to --output (default\n"
            "stdout), with a progress bar on stderr.\n\n"
            "With --memory, the MemLLM read loop runs inside decoding: a\n"
            "({MEM_READ(s>>r>>;...)--> call is answered from the memory (DESIGN.md §2). The\n"
            "text keeps the API spans; JSONL results add \"text_without_api\" and \"reads\"\n"
            "(position, queries, answers with score and provenance).\n\n" CLI_MODEL_HELP
                CLI_MEMORY_OPTIONAL_HELP CLI_MEMORY_HELP CLI_QUERY_HELP
            "  --prompt TEXT        the prompt\n"
            "  --input FILE         JSONL requests\n"
            "  --output FILE        JSONL results (default: stdout)\n"
            "  --max-tokens N       tokens to generate (default 128)\n"
            "  --greedy             always take the most likely token\n"
            "  --temperature T      sampling temperature (default 0.8)\n"
            "  --top-k K            keep the K most likely tokens (default 40, 0: off)\n"
            "  --top-p P            nucleus sampling mass (default 0.95, 1: off)\n"
            "  --seed N             random seed (default 42)\n"
            "  --stop TEXT          stop when TEXT is generated (repeatable)\n"
            "  --stop-token ID      stop when token ID is generated (repeatable; EOS always\n"
            "                       stops)\n"
            "  --use-adapter NAME   run with this loaded adapter (default: base model,\n"
            "                       or the only adapter when exactly one is loaded)\n"
            "  --batch N            sequences decoded together (default 8)\n"
            "  --logprobs           include each token's log-probability (JSONL)\n"
            "  --bos / --no-bos     force adding BOS or not (default: the tokenizer's)\n");
}

static int parse_args(int argc, char **argv, struct gen_opts *o)
{
    memset(o, 0, sizeof(*o));
    cli_memory_opts_default(&o->mem);
    o->max_tokens = 128;
    o->batch = 8;
    o->add_bos = -1;
    sampler_params_default(&o->sampling);
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int r;
        if ((r = cli_model_opt(argc, argv, &i, &o->model)) ||
            (r = cli_memory_opt(argc, argv, &i, &o->mem)) ||
            (r = cli_query_opt(argc, argv, &i, &o->mem.q))) {
            if (r < 0) return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--prompt", &v))) {
            if (r < 0) return -1;
            o->prompt = v;
        } else if ((r = cli_opt(argc, argv, &i, "--input", &v))) {
            if (r < 0) return -1;
            o->input = v;
        } else if ((r = cli_opt(argc, argv, &i, "--output", &v))) {
            if (r < 0) return -1;
            o->output = v;
        } else if ((r = cli_opt(argc, argv, &i, "--use-adapter", &v))) {
            if (r < 0) return -1;
            o->use_adapter = v;
        } else if ((r = cli_opt(argc, argv, &i, "--max-tokens", &v))) {
            if (r < 0 || cli_int("--max-tokens", v, 0, 1 << 24, &o->max_tokens)) return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--batch", &v))) {
            if (r < 0 || cli_int("--batch", v, 1, 4096, &o->batch)) return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--temperature", &v))) {
            if (r < 0 || cli_float("--temperature", v, 0.0, 100.0, &o->sampling.temperature))
                return -1;
            if (o->sampling.temperature == 0.0f) o->sampling.greedy = 1;
        } else if ((r = cli_opt(argc, argv, &i, "--top-k", &v))) {
            if (r < 0 || cli_int("--top-k", v, 0, 1 << 30, &o->sampling.top_k)) return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--top-p", &v))) {
            if (r < 0 || cli_float("--top-p", v, 1e-6, 1.0, &o->sampling.top_p)) return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--seed", &v))) {
            int seed;
            if (r < 0 || cli_int("--seed", v, 0, 2147483647, &seed)) return -1;
            o->sampling.seed = (uint64_t)seed;
        } else if ((r = cli_opt(argc, argv, &i, "--stop", &v))) {
            if (r < 0) return -1;
            if (o->n_stops == MAX_STOPS) {
                fprintf(stderr, "memllm generate: at most %d --stop strings\n", MAX_STOPS);
                return -1;
            }
            o->stops[o->n_stops++] = v;
        } else if ((r = cli_opt(argc, argv, &i, "--stop-token", &v))) {
            if (r < 0) return -1;
            if (o->n_stop_tokens == MAX_STOPS) {
                fprintf(stderr, "memllm generate: at most %d --stop-token ids\n", MAX_STOPS);
                return -1;
            }
            int id;
            if (cli_int("--stop-token", v, 0, 1 << 30, &id)) return -1;
            o->stop_tokens[o->n_stop_tokens++] = id;
        } else if (!strcmp(argv[i], "--greedy")) {
            o->sampling.greedy = 1;
        } else if (!strcmp(argv[i], "--logprobs")) {
            o->logprobs = 1;
        } else if (!strcmp(argv[i], "--bos")) {
            o->add_bos = 1;
        } else if (!strcmp(argv[i], "--no-bos")) {
            o->add_bos = 0;
        } else {
            fprintf(stderr, "memllm generate: unknown option '%s' (see --help)\n", argv[i]);
            return -1;
        }
    }
    if (cli_model_ready("generate", &o->model) || cli_memory_ready("generate", &o->mem, 0))
        return -1;
    if (!o->prompt == !o->input) {
        fprintf(stderr, "memllm generate: give exactly one of --prompt and --input\n");
        return -1;
    }
    return 0;
}

/* One request with the storage its fields point to. */
struct job {
    struct gen_request req;
    int32_t *ids;
    json_t *line; /* the input object (JSONL mode) */
    char **stops;
    int n_stops;
    json_t *result;
};

static int encode_prompt(struct engine *e, const struct gen_opts *o, const char *text,
                         struct job *j, struct mm_err *err)
{
    size_t n;
    int bos = o->add_bos >= 0 ? o->add_bos : tok_add_bos_default(e->tok);
    if (tok_encode(e->tok, text, strlen(text), bos, 1, &j->ids, &n, err)) return -1;
    j->req.prompt = j->ids;
    j->req.n_prompt = (int)n;
    return 0;
}

static int default_adapter(struct engine *e, const struct gen_opts *o, struct mm_err *err)
{
    if (o->use_adapter) return engine_adapter(e, o->use_adapter, err);
    return e->n_adapters == 1 && !e->merged ? 0 : -1;
}

/* --- single prompt: stream the text as it comes ------------------------------------------ */

/* What the hooks of one run share. */
struct gen_ctx {
    struct memllm_reader *reader; /* NULL: no memory */
    size_t printed;               /* single prompt: bytes of text on stdout */
    struct jsonl_run *run;        /* JSONL */
};

static int hook_before_sample(void *ctx, struct gen_sequence *s, const float *logits,
                              struct mm_err *err)
{
    struct gen_ctx *g = ctx;
    return g->reader ? memllm_read_before_sample(g->reader, s, logits, err) : 0;
}

/* Streams the text as it comes. With memory reads the text can still be
 * rolled back, so it is printed when the sequence ends. */
static int stream_text(void *ctx, struct gen_sequence *s, int32_t token, const char *piece,
                       size_t len, struct mm_err *err)
{
    struct gen_ctx *g = ctx;
    if (g->reader) return memllm_read_on_token(g->reader, s, token, piece, len, err);
    size_t upto = s->text_len - gen_sequence_stop_prefix(s);
    if (upto > g->printed) {
        fwrite(s->text + g->printed, 1, upto - g->printed, stdout);
        fflush(stdout);
        g->printed = upto;
    }
    return 0;
}

static int stream_end(void *ctx, struct gen_sequence *s, struct mm_err *err)
{
    (void)err;
    struct gen_ctx *g = ctx;
    if (s->text_len > g->printed) fwrite(s->text + g->printed, 1, s->text_len - g->printed, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    return 0;
}

static int run_prompt(struct engine *e, const struct gen_opts *o, struct mm_memory *m,
                      struct mm_err *err)
{
    struct job j = {0};
    struct memllm_reader *reader = NULL;
    if (encode_prompt(e, o, o->prompt, &j, err)) return -1;
    j.req.max_tokens = o->max_tokens;
    j.req.sampling = o->sampling;
    j.req.stop = o->stops;
    j.req.n_stop = o->n_stops;
    j.req.stop_tokens = o->stop_tokens;
    j.req.n_stop_tokens = o->n_stop_tokens;
    j.req.adapter = default_adapter(e, o, err);
    int rc = -1;
    if (o->use_adapter && j.req.adapter < 0) goto out;
    if (m && !(reader = memllm_reader_new(e, m, &o->mem.q, 1, err))) goto out;
    struct gen_ctx g = {.reader = reader};
    struct scheduler_hooks h = {.before_sample = hook_before_sample,
                                .on_token = stream_text,
                                .on_finish = stream_end,
                                .ctx = &g};
    rc = scheduler_run(e, &j.req, 1, 512, &h, err);
out:
    memllm_reader_free(reader);
    free(j.ids);
    return rc;
}

/* --- JSONL: requests in, results out in input order ----------------------------------------- */

struct jsonl_run {
    struct job *jobs;
    int n_jobs, next_out, done;
    int64_t tokens;
    FILE *out;
    int logprobs;
    struct progress bar;
};

static int request_field_int(json_t *obj, const char *key, int lo, int hi, int *out,
                             const char *where, struct mm_err *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        mm_err_set(err, "%s: \"%s\" must be an integer in [%d, %d]", where, key, lo, hi);
        return -1;
    }
    *out = (int)json_integer_value(v);
    return 0;
}

static int request_field_float(json_t *obj, const char *key, double lo, double hi, float *out,
                               const char *where, struct mm_err *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return 0;
    if (!json_is_number(v) || json_number_value(v) < lo || json_number_value(v) > hi) {
        mm_err_set(err, "%s: \"%s\" must be a number in [%g, %g]", where, key, lo, hi);
        return -1;
    }
    *out = (float)json_number_value(v);
    return 0;
}

static int parse_request(struct engine *e, const struct gen_opts *o, struct job *j,
                         const char *where, struct mm_err *err)
{
    json_t *obj = j->line;
    const char *prompt = json_string_value(json_object_get(obj, "prompt"));
    if (!json_is_object(obj) || !prompt) {
        mm_err_set(err, "%s: expected an object with a string \"prompt\"", where);
        return -1;
    }
    if (encode_prompt(e, o, prompt, j, err)) {
        mm_err_prefix(err, "%s", where);
        return -1;
    }
    struct gen_request *r = &j->req;
    r->max_tokens = o->max_tokens;
    r->sampling = o->sampling;
    r->stop_tokens = o->stop_tokens;
    r->n_stop_tokens = o->n_stop_tokens;
    int seed = (int)(o->sampling.seed & 0x7fffffff);
    if (request_field_int(obj, "max_tokens", 0, 1 << 24, &r->max_tokens, where, err) ||
        request_field_int(obj, "top_k", 0, 1 << 30, &r->sampling.top_k, where, err) ||
        request_field_int(obj, "seed", 0, 2147483647, &seed, where, err) ||
        request_field_float(obj, "temperature", 0.0, 100.0, &r->sampling.temperature, where, err) ||
        request_field_float(obj, "top_p", 1e-6, 1.0, &r->sampling.top_p, where, err))
        return -1;
    r->sampling.seed = (uint64_t)seed;
    json_t *greedy = json_object_get(obj, "greedy");
    if (json_is_boolean(greedy)) r->sampling.greedy = json_is_true(greedy);
    if (r->sampling.temperature == 0.0f) r->sampling.greedy = 1;

    /* "adapter": "NAME" picks one, null the base model; absent: the default. */
    json_t *adapter = json_object_get(obj, "adapter");
    if (adapter && !json_is_string(adapter) && !json_is_null(adapter)) {
        mm_err_set(err, "%s: \"adapter\" must be a name or null", where);
        return -1;
    }
    if (json_is_null(adapter))
        r->adapter = -1;
    else if (adapter)
        r->adapter = engine_adapter(e, json_string_value(adapter), err);
    else
        r->adapter = default_adapter(e, o, err);
    if ((json_is_string(adapter) || (!adapter && o->use_adapter)) && r->adapter < 0) {
        mm_err_prefix(err, "%s", where);
        return -1;
    }
    json_t *stop = json_object_get(obj, "stop");
    if (stop) {
        if (!json_is_array(stop) || json_array_size(stop) > MAX_STOPS) {
            mm_err_set(err, "%s: \"stop\" must be an array of at most %d strings", where,
                       MAX_STOPS);
            return -1;
        }
        j->stops = calloc(json_array_size(stop) + 1, sizeof(char *));
        size_t k;
        json_t *s;
        json_array_foreach(stop, k, s)
        {
            if (!json_is_string(s)) {
                mm_err_set(err, "%s: \"stop\" must hold strings", where);
                return -1;
            }
            j->stops[j->n_stops++] = (char *)json_string_value(s);
        }
        r->stop = (const char *const *)j->stops;
        r->n_stop = j->n_stops;
    } else {
        r->stop = o->stops;
        r->n_stop = o->n_stops;
    }
    return 0;
}

static int write_ready(struct jsonl_run *run, struct mm_err *err)
{
    while (run->next_out < run->n_jobs && run->jobs[run->next_out].result) {
        struct job *j = &run->jobs[run->next_out];
        if (json_dumpf(j->result, run->out, JSON_COMPACT | JSON_ENSURE_ASCII) ||
            fputc('\n', run->out) == EOF) {
            mm_err_set(err, "cannot write results");
            return -1;
        }
        json_decref(j->result);
        j->result = json_null(); /* written */
        run->next_out++;
    }
    fflush(run->out);
    return 0;
}

static int read_hook(void *ctx, struct gen_sequence *s, int32_t token, const char *piece,
                     size_t len, struct mm_err *err)
{
    struct gen_ctx *g = ctx;
    return memllm_read_on_token(g->reader, s, token, piece, len, err);
}

static int collect(void *ctx, struct gen_sequence *s, struct mm_err *err)
{
    struct gen_ctx *g = ctx;
    struct jsonl_run *run = g->run;
    struct job *j = &run->jobs[s->index];
    json_t *res = json_object();
    json_t *id = json_object_get(j->line, "id");
    json_object_set_new(res, "index", json_integer(s->index));
    if (id) json_object_set(res, "id", id);
    json_object_set_new(res, "text", json_stringn(s->text, s->text_len));
    json_object_set_new(res, "prompt_tokens", json_integer(s->req->n_prompt));
    json_object_set_new(res, "generated_tokens", json_integer(s->n_generated));
    json_object_set_new(res, "finish_reason", json_string(s->finish));
    if (g->reader) {
        char *plain = memllm_strip_api(s->text);
        if (!plain) {
            json_decref(res);
            mm_err_set(err, "out of memory");
            return -1;
        }
        json_object_set_new(res, "text_without_api", json_string(plain));
        free(plain);
        json_object_set(res, "reads", memllm_reader_trace(g->reader, s->index));
    }
    if (run->logprobs) {
        json_t *lp = json_array();
        for (int i = 0; i < s->n_generated; i++)
            json_array_append_new(lp, json_real(s->logprobs[i]));
        json_object_set_new(res, "logprobs", lp);
    }
    j->result = res;
    run->done++;
    run->tokens += s->n_generated;
    progress_update(&run->bar, run->done, run->tokens, "tok");
    return write_ready(run, err);
}

static int read_jobs(struct engine *e, const struct gen_opts *o, struct jsonl_run *run,
                     struct mm_err *err)
{
    FILE *f = fopen(o->input, "r");
    if (!f) {
        mm_err_set(err, "%s: cannot open", o->input);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int line_no = 0, rc = 0, cap_jobs = 0;
    while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
        line_no++;
        if (strspn(line, " \t\r\n") == (size_t)len) continue;
        char where[512];
        snprintf(where, sizeof(where), "%s:%d", o->input, line_no);
        if (run->n_jobs == cap_jobs) {
            cap_jobs = cap_jobs ? 2 * cap_jobs : 64;
            struct job *g = realloc(run->jobs, (size_t)cap_jobs * sizeof(*g));
            if (!g) {
                mm_err_set(err, "%s: out of memory", where);
                rc = -1;
                break;
            }
            run->jobs = g;
        }
        struct job *j = &run->jobs[run->n_jobs];
        memset(j, 0, sizeof(*j));
        json_error_t jerr;
        j->line = json_loadb(line, (size_t)len, 0, &jerr);
        if (!j->line) {
            mm_err_set(err, "%s: column %d: %s", where, jerr.column, jerr.text);
            rc = -1;
            break;
        }
        run->n_jobs++;
        rc = parse_request(e, o, j, where, err);
    }
    free(line);
    fclose(f);
    return rc;
}

static int run_jsonl(struct engine *e, const struct gen_opts *o, struct mm_memory *m,
                     struct mm_err *err)
{
    struct jsonl_run run = {.logprobs = o->logprobs, .out = stdout};
    struct memllm_reader *reader = NULL;
    int rc = -1;
    if (read_jobs(e, o, &run, err)) goto out;
    if (m && !(reader = memllm_reader_new(e, m, &o->mem.q, run.n_jobs, err))) goto out;
    if (o->output && !(run.out = fopen(o->output, "w"))) {
        mm_err_set(err, "%s: cannot open for writing", o->output);
        goto out;
    }
    struct gen_request *reqs = malloc((size_t)(run.n_jobs ? run.n_jobs : 1) * sizeof(*reqs));
    if (!reqs) {
        mm_err_set(err, "out of memory");
        goto out;
    }
    for (int i = 0; i < run.n_jobs; i++)
        reqs[i] = run.jobs[i].req;
    progress_start(&run.bar, "generate", run.n_jobs);
    struct gen_ctx g = {.reader = reader, .run = &run};
    struct scheduler_hooks h = {.before_sample = hook_before_sample,
                                .on_token = reader ? read_hook : NULL,
                                .on_finish = collect,
                                .ctx = &g};
    rc = scheduler_run(e, reqs, run.n_jobs, 512, &h, err);
    free(reqs);
    if (rc == 0) progress_finish(&run.bar, run.done, run.tokens, "tok");
    if (rc == 0 && e->cache_slots) {
        const struct prefix_stats *ps = &e->prefix_stats;
        fprintf(stderr,
                "prefix cache: %lld of %lld prompt tokens reused, %lld prefixes kept, %lld "
                "evicted\n",
                (long long)ps->reused_tokens, (long long)ps->prompt_tokens, (long long)ps->parked,
                (long long)ps->evicted);
    }
    if (rc == 0 && reader) {
        long reads;
        double mem_s, total = progress_now() - run.bar.start;
        memllm_reader_stats(reader, &reads, &mem_s);
        fprintf(stderr, "reads: %ld, %.2f ms each in the memory, %.1f%% of the run\n", reads,
                reads ? 1e3 * mem_s / (double)reads : 0.0, total > 0 ? 100.0 * mem_s / total : 0.0);
    }
out:
    memllm_reader_free(reader);
    if (run.out && run.out != stdout) fclose(run.out);
    for (int i = 0; i < run.n_jobs; i++) {
        free(run.jobs[i].ids);
        free(run.jobs[i].stops);
        json_decref(run.jobs[i].line);
        json_decref(run.jobs[i].result);
    }
    free(run.jobs);
    return rc;
}

static int generate_job(struct engine *e, struct mm_memory *m, const struct cluster *c, void *arg,
                        struct mm_err *err)
{
    (void)c;
    const struct gen_opts *o = arg;
    return o->prompt ? run_prompt(e, o, m, err) : run_jsonl(e, o, m, err);
}

int cli_generate(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    struct gen_opts o;
    if (parse_args(argc, argv, &o)) return 2;
    o.model.engine.n_slots = o.prompt ? 1 : o.batch;
    return cli_run_with_engine("generate", &o.model, o.mem.dir ? &o.mem : NULL, generate_job, &o);
}
