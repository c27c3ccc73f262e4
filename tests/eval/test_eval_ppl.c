/* memllm eval ppl:
 *   - a document's tokens (ppl_doc_build) on document 472 of Re-DocRED dev:
 *     decoded, they give back the document's text exactly; the ENTITY
 *     tokens decode to the characters under its mentions (each with the
 *     space before it; "The Fox Family" holds "Fox Family") and the TARGET
 *     tokens to those under the mentions of Algorithm 1's read points, which
 *     memllm data mr places (the same plan), each gold read before its
 *     target's first token;
 *   - the command on validation document 33 with SmolLM2 and the committed
 *     MR adapter: every figure printed; every condition scores the same
 *     text tokens; the gold reads make the TARGET tokens at least twice as
 *     likely (the answers hold them); the model places reads of its own
 *     (the base model none); under mpirun (a coordinator and a stage rank)
 *     the figures are the same bits;
 *   - bad input: an unknown --reads, a --gold that holds no memory.
 *
 * In the sanitizer build (SANITIZED, where each generated token costs ten
 * times as much), the mpirun run reads the gold memory (--reads gold) and
 * is compared with the one-process gold run, not the model's own reads:
 * those are the slowest condition (they decode the read calls), and they
 * still run, in one process, under the sanitizers.
 *
 *   test_eval_ppl MEMLLM_BIN DATA_DIR MODELS_DIR ADAPTERS_DIR [MPIEXEC] */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "check.h"
#include "redocred_dev.h"
#include "cli_memory_internal.h"
#include "eval_ppl.h"
#include "memory_client_docred.h"
#include "memory_service.h"
#include "run_cmd.h"

static const char *bin, *mpirun;
static char tmp[] = "/tmp/memllm_ppl_XXXXXX", path[8][1200], model[1200], adapter[1200];

static const char *in_tmp(int slot, const char *name)
{
    snprintf(path[slot], sizeof(path[slot]), "%s/%s", tmp, name);
    return path[slot];
}

static void write_doc(json_t *all, size_t index, const char *file)
{
    json_t *one = json_array();
    json_array_append(one, json_array_get(all, index));
    REQUIRE(json_dump_file(one, file, 0) == 0, "cannot write %s", file);
    json_decref(one);
}

static void run_ok(const char *const *args)
{
    struct cmd_result r = run_memllm(NULL, bin, 0, args, NULL);
    REQUIRE(r.status == 0, "memllm %s %s: exit %d: %s", args[0], args[1], r.status, r.err);
    cmd_result_free(&r);
}

/* The text of tokens [a, b) with class bit `cls` (0: all), in order. */
static char *decode_class(const struct tokenizer *tok, const struct ppl_doc *pd, uint8_t cls)
{
    int32_t *ids = malloc((size_t)pd->n * sizeof(int32_t));
    REQUIRE(ids, "out of memory");
    size_t n = 0;
    for (int t = pd->first > 0 && pd->tok[0] == tok_bos(tok) ? 1 : 0; t < pd->n; t++)
        if (!cls || (pd->cls[t] & cls)) ids[n++] = pd->tok[t];
    struct mm_err err = {{0}};
    char *text = tok_decode(tok, ids, n, 0, &err);
    REQUIRE(text, "%s", err.msg);
    free(ids);
    return text;
}

static void tokens_of_472(json_t *all, json_t *props, const char *models)
{
    write_doc(all, 472, in_tmp(0, "doc472.json"));
    const char *import[] = {"memory",   "import-docred",      path[0],
                            "--memory", in_tmp(1, "gold472"), NULL};
    run_ok(import);
    struct mm_err err = {{0}};
    char m[1200];
    snprintf(m, sizeof(m), "%s/SmolLM2-135M-Instruct.Q4_1.gguf", models);
    struct tokenizer *tok = tok_load(m, &err);
    REQUIRE(tok, "%s", err.msg);
    struct mm_embedder *emb = cli_memory_embedder(NULL, path[1], 1, &err);
    REQUIRE(emb, "%s", err.msg);
    struct mm_memory *gold = mm_memory_open_local(path[1], 1, emb, 0, &err);
    REQUIRE(gold, "%s", err.msg);
    struct doc d;
    REQUIRE(doc_read(&d, json_array_get(all, 472), &err) == 0, "%s", err.msg);
    struct mr_plan p;
    struct examples_counts c = {0};
    REQUIRE(mr_plan_document(&p, &d, props, gold, &c, &err) == 0, "%s", err.msg);
    struct ppl_doc pd;
    REQUIRE(ppl_doc_build(&pd, &p, tok, &err) == 0, "%s", err.msg);

    char *all_text = decode_class(tok, &pd, 0);
    CHECKF(!strcmp(all_text, p.text), "the tokens decode to\n%s\nnot\n%s", all_text, p.text);
    /* the characters under some mention (with the space before it), and
     * under some read point's mention, in text order: "The Fox Family"
     * holds the mention "Fox Family", whose characters count once */
    size_t len = strlen(p.text);
    char *want_entity = calloc(len + 1, 1), *want_target = calloc(len + 1, 1);
    REQUIRE(want_entity && want_target, "out of memory");
    size_t ne = 0, nt = 0;
    for (size_t ch = 0; ch < len; ch++) {
        int in_entity = 0, in_target = 0;
        for (int i = 0; i < p.n_m; i++) {
            int s = p.m[i].start > 0 && p.text[p.m[i].start - 1] == ' ' ? p.m[i].start - 1
                                                                        : p.m[i].start;
            if ((int)ch < s || (int)ch >= p.m[i].end) continue;
            in_entity = 1;
            for (int j = 0; j < p.n_rp; j++)
                in_target |= p.rp[j].mention == i;
        }
        if (in_entity) want_entity[ne++] = p.text[ch];
        if (in_target) want_target[nt++] = p.text[ch];
    }
    char *entity = decode_class(tok, &pd, PPL_IS_ENTITY),
         *target = decode_class(tok, &pd, PPL_IS_TARGET);
    CHECKF(!strcmp(entity, want_entity), "ENTITY tokens:\n'%s'\nmentions:\n'%s'", entity,
           want_entity);
    CHECKF(!strcmp(target, want_target), "TARGET tokens:\n'%s'\nread points' mentions:\n'%s'",
           target, want_target);
    /* memllm data mr wrote 9 examples for this document: 9 read points */
    CHECKF(p.n_rp == 9 && pd.n_reads == 9, "%d read points, %d gold reads", p.n_rp, pd.n_reads);
    for (int j = 0; j < pd.n_reads; j++) {
        CHECKF(pd.cls[pd.read_at[j]] & PPL_IS_TARGET, "gold read %d is not before a target", j);
        CHECKF(pd.read_at[j] == 0 || !(pd.cls[pd.read_at[j] - 1] & PPL_IS_TARGET) ||
                   pd.tok[pd.read_at[j]] != pd.tok[pd.read_at[j] - 1],
               "gold read %d inside a target", j);
        char *call = tok_decode(tok, pd.call[j], (size_t)pd.n_call[j], 0, &err);
        REQUIRE(call, "%s", err.msg);
        CHECKF(!strncmp(call, " ({MEM_READ(", 12) && strstr(call, p.rp[j].queries) &&
                   strstr(call, p.rp[j].answers) && strstr(call, "})"),
               "gold call %d: %s", j, call);
        free(call);
    }
    printf("document 472: %d tokens, %d read points\n", pd.n, pd.n_reads);
    free(all_text), free(entity), free(target), free(want_entity), free(want_target);
    ppl_doc_free(&pd);
    mr_plan_free(&p);
    doc_free(&d);
    REQUIRE(mm_memory_close(gold, &err) == 0, "%s", err.msg);
    mm_embedder_free(emb);
    tok_free(tok);
}

/* memllm eval ppl on document 33; the output (malloc'd). */
static char *eval_ppl(const char *reads, int with_adapter, int ranks)
{
    const char *args[] = {"eval",  "ppl",       path[2], "--model",
                          model,   "--gold",    path[3], "--reads",
                          reads,   "--threads", "2",     with_adapter ? "--adapter" : NULL,
                          adapter, NULL};
    struct cmd_result r = run_memllm(ranks ? mpirun : NULL, bin, ranks, args, NULL);
    REQUIRE(r.status == 0, "eval ppl --reads %s: exit %d: %s", reads, r.status, r.err);
    char *out = strdup(r.out);
    REQUIRE(out, "out of memory");
    cmd_result_free(&r);
    return out;
}

static void command(json_t *all)
{
    write_doc(all, 33, in_tmp(2, "doc33.json"));
    const char *import[] = {"memory",   "import-docred",     path[2],
                            "--memory", in_tmp(3, "gold33"), NULL};
    run_ok(import);
    char *none = eval_ppl("none", 1, 0), *gold = eval_ppl("gold", 1, 0);
    char *own = eval_ppl("model", 1, 0), *base = eval_ppl("model", 0, 0);
    const char *names[] = {"documents",     "reads",          "reads_dropped",
                           "overall_ppl",   "overall_tokens", "entity_ppl",
                           "entity_tokens", "target_ppl",     "target_tokens"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        CHECKF(out_figure(none, names[i]) >= 0, "no '%s' in:%s", names[i], none);
    const char *counts[] = {"overall_tokens", "entity_tokens", "target_tokens"};
    for (int k = 0; k < 3; k++)
        CHECKF(out_figure(none, counts[k]) > 0 &&
                   out_figure(gold, counts[k]) == out_figure(none, counts[k]) &&
                   out_figure(own, counts[k]) == out_figure(none, counts[k]) &&
                   out_figure(base, counts[k]) == out_figure(none, counts[k]),
               "%s differ between conditions:%s%s%s", counts[k], none, gold, own);
    CHECKF(out_figure(none, "reads") == 0 && out_figure(gold, "reads") >= 1, "reads:%s%s", none,
           gold);
    CHECKF(out_figure(gold, "target_ppl") < 0.5 * out_figure(none, "target_ppl"),
           "gold reads: TARGET ppl %.3f, without %.3f", out_figure(gold, "target_ppl"),
           out_figure(none, "target_ppl"));
    CHECKF(out_figure(own, "reads") >= 1, "the MR adapter placed no read:%s", own);
    CHECKF(out_figure(base, "reads") == 0, "the base model read:%s", base);
    printf("document 33, TARGET ppl: no reads %.3f, gold reads %.3f, the model's reads %.3f "
           "(%.0f); base model %.3f\n",
           out_figure(none, "target_ppl"), out_figure(gold, "target_ppl"),
           out_figure(own, "target_ppl"), out_figure(own, "reads"), out_figure(base, "target_ppl"));
    if (mpirun) {
        const char *reads = SANITIZED ? "gold" : "model";
        char *mpi = eval_ppl(reads, 1, 2);
        CHECKF(!strcmp(mpi, SANITIZED ? gold : own), "--reads %s under mpirun:%s\none process:%s",
               reads, mpi, SANITIZED ? gold : own);
        free(mpi);
    }
    free(none), free(gold), free(own), free(base);

    /* bad input */
    const char *bogus[] = {"eval",   "ppl",   path[2],   "--model", model,
                           "--gold", path[3], "--reads", "maybe",   NULL};
    struct cmd_result r = run_memllm(NULL, bin, 0, bogus, NULL);
    CHECKF(r.status == 2 && strstr(r.err, "'maybe' is not none, gold or model"), "%s", r.err);
    cmd_result_free(&r);
    const char *empty[] = {"eval", "ppl", path[2], "--model", model, "--gold", in_tmp(4, "nothing"),
                           NULL};
    r = run_memllm(NULL, bin, 0, empty, NULL);
    CHECKF(r.status != 0 && strstr(r.err, "holds no memory"), "%s", r.err);
    cmd_result_free(&r);
}

int main(int argc, char **argv)
{
    REQUIRE(argc == 5 || argc == 6,
            "usage: test_eval_ppl MEMLLM_BIN DATA_DIR MODELS_DIR ADAPTERS_DIR [MPIEXEC]");
    bin = argv[1];
    mpirun = argc > 5 && argv[5][0] ? argv[5] : NULL;
    snprintf(model, sizeof(model), "%s/SmolLM2-135M-Instruct.Q4_1.gguf", argv[3]);
    snprintf(adapter, sizeof(adapter), "%s/smollm2-135m-mr", argv[4]);
    REQUIRE(mkdtemp(tmp), "mkdtemp");
    json_t *all = must_load_dev(argv[2]);
    struct mm_err err = {{0}};
    json_t *props = mm_docred_props(NULL, &err);
    REQUIRE(props, "%s", err.msg);
    tokens_of_472(all, props, argv[3]);
    command(all);
    json_decref(props);
    json_decref(all);
    char cmd[sizeof(tmp) + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    CHECK(system(cmd) == 0);
    return check_report("test_eval_ppl");
}
