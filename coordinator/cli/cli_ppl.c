/* memllm ppl: perplexity of a text file under the model, over consecutive
 * windows of --window tokens (each window starts a fresh context; every
 * token after a window's first is scored). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_args.h"
#include "read_all.h"
#include "sampling.h"

#define PPL_CHUNK 128

static void usage(FILE *out)
{
    fprintf(out,
            "usage: memllm ppl --model PATH [options] FILE\n\n"
            "Prints the perplexity of the text in FILE, the number of scored tokens\n"
            "and the mean negative log-likelihood, one 'name: value' per line.\n\n" CLI_MODEL_HELP
            "  --window N           tokens per window (default 512)\n");
}

/* Scores ids[1..n) given their prefixes inside one window. */
static int score_window(struct engine *e, const int32_t *ids, int n, float *logits, double *nll,
                        struct mm_err *err)
{
    int32_t pos[PPL_CHUNK], slot[PPL_CHUNK];
    for (int start = 0; start < n - 1; start += PPL_CHUNK) {
        int m = n - 1 - start < PPL_CHUNK ? n - 1 - start : PPL_CHUNK;
        for (int i = 0; i < m; i++) {
            pos[i] = start + i;
            slot[i] = 0;
        }
        struct stage_batch b = {.n = m, .tokens = ids + start, .pos = pos, .slot = slot};
        if (engine_forward(e, &b, logits, err)) return -1;
        for (int i = 0; i < m; i++)
            *nll -= logits_logprob(logits + (size_t)i * e->vocab, e->vocab, ids[start + i + 1]);
    }
    return 0;
}

struct ppl_opts {
    struct cli_model_opts model;
    const char *file;
    int window;
};

static int ppl_job(struct engine *e, struct mm_memory *m, const struct cluster *c, void *arg,
                   struct mm_err *err)
{
    (void)c, (void)m;
    const struct ppl_opts *o = arg;
    int rc = -1, window = o->window;
    size_t len, n_ids = 0;
    int32_t *ids = NULL;
    float *logits = NULL;
    char *text = read_all_file(o->file, &len, err);
    if (!text) goto out;
    if (tok_encode(e->tok, text, len, tok_add_bos_default(e->tok), 0, &ids, &n_ids, err)) goto out;
    if (window > e->context) window = e->context;
    if (n_ids < 2) {
        mm_err_set(err, "%s: needs at least 2 tokens, has %zu", o->file, n_ids);
        goto out;
    }
    logits = malloc((size_t)PPL_CHUNK * (size_t)e->vocab * sizeof(float));
    if (!logits) {
        mm_err_set(err, "out of memory");
        goto out;
    }
    double nll = 0.0;
    long scored = 0;
    for (size_t start = 0; start + 1 < n_ids; start += (size_t)window) {
        int n = n_ids - start < (size_t)window ? (int)(n_ids - start) : window;
        if (n < 2) break;
        if (score_window(e, ids + start, n, logits, &nll, err)) goto out;
        scored += n - 1;
    }
    printf("ppl: %.4f\ntokens: %ld\nnll: %.6f\n", exp(nll / (double)scored), scored,
           nll / (double)scored);
    rc = 0;
out:
    free(text);
    free(ids);
    free(logits);
    return rc;
}

int cli_ppl(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    struct ppl_opts o = {.window = 512};
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int r;
        if ((r = cli_model_opt(argc, argv, &i, &o.model))) {
            if (r < 0) return 2;
        } else if ((r = cli_opt(argc, argv, &i, "--window", &v))) {
            if (r < 0 || cli_int("--window", v, 2, 1 << 20, &o.window)) return 2;
        } else if (argv[i][0] == '-' || o.file) {
            fprintf(stderr, "memllm ppl: unexpected argument '%s' (see --help)\n", argv[i]);
            return 2;
        } else {
            o.file = argv[i];
        }
    }
    if (cli_model_ready("ppl", &o.model)) return 2;
    if (!o.file) {
        fprintf(stderr, "memllm ppl: FILE is required (see --help)\n");
        return 2;
    }
    o.model.engine.n_slots = 1;
    return cli_run_with_engine("ppl", &o.model, NULL, ppl_job, &o);
}
