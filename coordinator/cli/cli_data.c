/* memllm data mw|mr|text FILE.json: MemLLM's training examples from DocRED /
 * Re-DocRED documents (train_examples.h), split by document. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_args.h"
#include "cli_memory_internal.h"
#include "memory_client_docred.h"
#include "memory_service.h"
#include "tokenizer.h"
#include "train_examples.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: memllm data mw FILE.json --out TRAIN.jsonl [--val N --val-out VAL.jsonl]\n"
            "                      [options]\n"
            "       memllm data mr FILE.json --memory DIR --out TRAIN.jsonl [...]\n"
            "       memllm data text FILE.json --out TRAIN.jsonl [...]\n\n"
            "Writes MemLLM's training examples, one JSON object a line, from DocRED /\n"
            "Re-DocRED documents (a JSON array), for memllm train.\n\n"
            "mw (memory write): for every sentence, the write loop's prompt (the\n"
            "preceding sentences, the sentence, no loss) and the answer\n"
            "\"s>>r>>o;...})\" (loss): the relations whose evidence holds the sentence,\n"
            "both entities mentioned by then and one in it, in order of mention;\n"
            "sentences with none train the empty answer \"})\"; examples of %d or more\n"
            "relations are dropped.\n\n"
            "mr (memory read, the paper's Algorithm 1): a read before each first-seen\n"
            "mention of an entity related to entities already mentioned; its queries\n"
            "(the other entity and the relation; too-broad reverse ones and those with\n"
            "more than 30 answers dropped; at most 3, fewest answers first) run against\n"
            "--memory, a memory of the documents' gold facts (memllm memory\n"
            "import-docred FILE.json --memory DIR); the answers (or the gold target when\n"
            "all are empty) follow the call. Loss on the call and on the text to the\n"
            "next read, not on the text before nor the answers.\n\n"
            "text (the plain-text baseline): each document's text, every token a\n"
            "target, no API call.\n\n"
            "Counts go to stderr.\n\n"
            "  --out FILE           training examples (required)\n"
            "  --memory DIR         mr: the memory holding the documents' gold facts\n"
            "  --val N              the first N documents of a seeded shuffle go to\n"
            "                       validation (--val-out), by document\n"
            "  --val-out FILE       validation examples\n"
            "  --seed N             the shuffle's seed (0)\n"
            "  --window N           mw: preceding sentences in a prompt (default: all)\n"
            "  --model PATH         count tokens with this model's tokenizer, drop the\n"
            "                       oldest preceding sentences of an example longer than\n"
            "                       --max-tokens, and drop an example still longer\n"
            "  --max-tokens N       with --model (1024)\n"
            "  --props FILE         relation labels, a JSON object id -> label (default:\n"
            "                       the built-in Wikidata table)\n",
            MW_MAX_RELATIONS);
}

struct data_args {
    const char *kind, *file, *out, *val_out, *model, *props, *memory;
    int val, seed, window, max_tokens;
};

static int parse(int argc, char **argv, struct data_args *a)
{
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
#define STR(name, field)                                                                           \
    if ((r = cli_opt(argc, argv, &i, name, &v))) {                                                 \
        if (r < 0) return -1;                                                                      \
        a->field = v;                                                                              \
        continue;                                                                                  \
    }
#define INT(name, field, lo, hi)                                                                   \
    if ((r = cli_opt(argc, argv, &i, name, &v))) {                                                 \
        if (r < 0 || cli_int(name, v, lo, hi, &a->field)) return -1;                               \
        continue;                                                                                  \
    }
        STR("--out", out);
        STR("--val-out", val_out);
        STR("--model", model);
        STR("--props", props);
        STR("--memory", memory);
        INT("--val", val, 0, 1 << 30);
        INT("--seed", seed, 0, 0x7fffffff);
        INT("--window", window, 0, 1 << 20);
        INT("--max-tokens", max_tokens, 2, 1 << 24);
#undef STR
#undef INT
        if (argv[i][0] == '-' || a->file) {
            fprintf(stderr, "memllm data: unexpected argument '%s' (see --help)\n", argv[i]);
            return -1;
        }
        if (!a->kind)
            a->kind = argv[i];
        else
            a->file = argv[i];
    }
    if (!a->kind || (strcmp(a->kind, "mw") != 0 && strcmp(a->kind, "mr") != 0 &&
                     strcmp(a->kind, "text") != 0)) {
        fprintf(stderr,
                "memllm data: the kind of examples comes first: mw, mr or text, not '%s' (see "
                "--help)\n",
                a->kind ? a->kind : "");
        return -1;
    }
    if (!strcmp(a->kind, "mr") != (a->memory != NULL)) {
        fprintf(stderr, "memllm data: --memory DIR goes with mr, and only with it\n");
        return -1;
    }
    if (!a->file || !a->out) {
        fprintf(stderr, "memllm data: FILE.json and --out are required (see --help)\n");
        return -1;
    }
    if ((a->val > 0) != (a->val_out != NULL)) {
        fprintf(stderr, "memllm data: --val N and --val-out FILE go together\n");
        return -1;
    }
    return 0;
}

static void print_counts(const char *kind, const char *what, const struct examples_counts *c,
                         int tokens)
{
    fprintf(stderr, "memllm data %s: %s: %lld documents, %lld examples", kind, what,
            (long long)c->documents, (long long)c->examples);
    if (!strcmp(kind, "mw")) fprintf(stderr, " (%lld with no relation)", (long long)c->empty);
    if (tokens) fprintf(stderr, ", %lld tokens", (long long)c->tokens);
    if (!strcmp(kind, "mw"))
        fprintf(stderr,
                "; dropped: %lld with %d or more relations, %lld longer than "
                "--max-tokens; %lld shortened to fit\n",
                (long long)c->many_relations, MW_MAX_RELATIONS, (long long)c->too_long,
                (long long)c->shortened);
    else if (!strcmp(kind, "text"))
        fprintf(stderr, "; dropped: %lld longer than --max-tokens\n", (long long)c->too_long);
    else
        fprintf(stderr,
                "; %lld reads answered with the gold target; dropped: %lld queries too "
                "broad, %lld with more than 30 answers, %lld examples longer than "
                "--max-tokens\n",
                (long long)c->gold, (long long)c->broad, (long long)c->crowded,
                (long long)c->too_long);
}

static int run(const struct data_args *a)
{
    struct mm_err err = {{0}};
    json_error_t jerr;
    int rc = 1;
    json_t *docs = json_load_file(a->file, 0, &jerr), *props = NULL;
    struct tokenizer *tok = NULL;
    char *is_val = NULL, tmp_out[4200], tmp_val[4200];
    FILE *out = NULL, *val = NULL;
    struct mm_embedder *emb = NULL;
    struct mm_memory *mem = NULL;
    snprintf(tmp_out, sizeof(tmp_out), "%s.tmp", a->out);
    snprintf(tmp_val, sizeof(tmp_val), "%s.tmp", a->val_out ? a->val_out : "");
    if (!json_is_array(docs)) {
        fprintf(stderr, "memllm data %s: %s:%d: %s\n", a->kind, a->file, jerr.line,
                docs ? "not a JSON array of documents" : jerr.text);
        goto done;
    }
    if (!(props = mm_docred_props(a->props, &err)) ||
        (a->model && !(tok = tok_load(a->model, &err)))) {
        fprintf(stderr, "memllm data %s: %s\n", a->kind, err.msg);
        goto done;
    }
    if (a->memory) {
        uint32_t shards = mm_memory_shards_on_disk(a->memory);
        if (shards == 0) {
            fprintf(stderr,
                    "memllm data mr: %s holds no memory (build it with memllm memory "
                    "import-docred %s --memory %s)\n",
                    a->memory, a->file, a->memory);
            goto done;
        }
        if (!(emb = cli_memory_embedder(NULL, a->memory, 1, &err)) ||
            !(mem = mm_memory_open_local(a->memory, shards, emb, 0, &err))) {
            fprintf(stderr, "memllm data mr: %s: %s\n", a->memory, err.msg);
            goto done;
        }
    }
    size_t n = json_array_size(docs);
    if (a->val > 0 && (size_t)a->val >= n) {
        fprintf(stderr, "memllm data mw: --val %d leaves no training document of %zu\n", a->val, n);
        goto done;
    }
    is_val = examples_validation_set(n, a->val, a->seed);
    out = fopen(tmp_out, "w");
    val = a->val_out ? fopen(tmp_val, "w") : NULL;
    if (!is_val || !out || (a->val_out && !val)) {
        fprintf(stderr, "memllm data: %s: %s\n", !out ? tmp_out : tmp_val, strerror(errno));
        goto done;
    }
    struct examples_options o = {a->window, tok, a->max_tokens};
    struct examples_counts train = {0}, valid = {0};
    for (size_t d = 0; d < n; d++) {
        FILE *f = is_val[d] ? val : out;
        struct examples_counts *c = is_val[d] ? &valid : &train;
        json_t *doc = json_array_get(docs, d);
        int bad = mem                        ? examples_mr(f, doc, d, props, mem, &o, c, &err)
                  : !strcmp(a->kind, "text") ? examples_text(f, doc, d, &o, c, &err)
                                             : examples_mw(f, doc, d, props, &o, c, &err);
        if (bad) {
            fprintf(stderr, "memllm data %s: %s: document %zu: %s\n", a->kind, a->file, d, err.msg);
            goto done;
        }
    }
    int bad = fclose(out) != 0;
    out = NULL;
    if (val) {
        bad |= fclose(val) != 0;
        val = NULL;
    }
    if (bad || rename(tmp_out, a->out) != 0 || (a->val_out && rename(tmp_val, a->val_out) != 0)) {
        fprintf(stderr, "memllm data: writing the examples failed: %s\n", strerror(errno));
        goto done;
    }
    print_counts(a->kind, "training", &train, tok != NULL);
    if (a->val_out) print_counts(a->kind, "validation", &valid, tok != NULL);
    rc = 0;
done:
    if (out) fclose(out);
    if (val) fclose(val);
    if (rc) {
        unlink(tmp_out);
        if (a->val_out) unlink(tmp_val);
    }
    free(is_val);
    if (mem && mm_memory_close(mem, &err)) {
        fprintf(stderr, "memllm data: %s: %s\n", a->memory, err.msg);
        rc = 1;
    }
    if (emb) mm_embedder_free(emb);
    if (tok) tok_free(tok);
    json_decref(props);
    json_decref(docs);
    return rc;
}

int cli_data(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    struct data_args a = {.window = -1, .max_tokens = 1024};
    if (parse(argc, argv, &a)) return 2;
    return run(&a);
}
