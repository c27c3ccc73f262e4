/* Batch-invariant numerics (issue #10): a token's logits are bit for bit
 * the same whatever else shares its step. The reference for every token is
 * the token decoded alone: each sequence fed one token per step, alone in
 * the batch, one stage. Against it, on the real engine (engine_forward over
 * stage_batch, real model files):
 *   - prefill of a whole prefix in one step, and cut into chunks of 1, 3, 7,
 *     31, 32, 33, 64 tokens (every row asks for logits);
 *   - one token decoded after its prefix was prefilled in one step;
 *   - a sequence fed whole with junk after it, then rolled back (a step
 *     that starts below its slot's length) and fed its own tokens again;
 *   - steps shared by several sequences: other slots with other prompts,
 *     decode and prefill rows mixed, rows at every place in the batch, some
 *     rows asking for logits and some not, rows with and without a LoRA
 *     adapter, and rollbacks (a batch that starts below its slot's length
 *     after junk tokens were fed, as the MemLLM read loop does);
 *   - all of it again with P = 2 (and 3) pipeline stages in one process.
 * Models: the tiny Mistral fixture (sliding window 16, adapter), the tiny
 * Llama fixtures (f32, bf16, f16 with the adapter; f32 GGUF), and
 * SmolLM2-135M Q4_1 when fetched (P up to 3, split points even and uneven,
 * fewer cases: it takes ~10 s on 2 cores, the tiny models ~1 s).
 *
 * `test_batch_invariance cli MPIRUN` checks the same through the memllm
 * binary: a JSONL batch with --logprobs gives byte-identical output alone
 * (--batch 1, one process, one stage) and with every request in one batch,
 * stages in one process, and stages on MPI ranks (mpirun -np 1+P, P = 1, 2,
 * 3) cut into different numbers of micro-batches, and with 2 threads
 * instead of 1. */
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "engine.h"
#include "run_cmd.h"

#define MAX_SEQS 8
#define MAX_ROWS 160  /* rows of one step */
#define SHOW_DIFFS 2  /* differing rows printed in full per check */
#define SHOW_TOTAL 24 /* ... and in all */

struct seq {
    int32_t *tok;
    int len;
    int adapter; /* -1: base model */
    float *ref;  /* [len][vocab]: token i's logits, decoded alone */
};

struct suite {
    const char *model; /* display name */
    struct seq seqs[MAX_SEQS];
    int n_seqs;
    int vocab;
    int light; /* a large model: fewer cases */
};

/* What the rows of one step are, for the comparison. */
struct step {
    int n;
    int32_t tok[MAX_ROWS], pos[MAX_ROWS], slot[MAX_ROWS], adapter[MAX_ROWS];
    uint8_t want[MAX_ROWS];
    int seq[MAX_ROWS]; /* -1: junk row, nothing to compare */
};

/* A comparison: how many rows were checked, how many differed; for the
 * shared steps, how many junk detours and rollbacks they made. */
struct tally {
    const char *what;
    int rows, bad;
    int detours, rollbacks;
};

static float *out; /* [MAX_ROWS][vocab] */
static int shown;  /* differing rows printed so far */

static uint64_t rng_state;
static uint32_t rnd(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}
static int rnd_below(int n)
{
    return (int)(rnd() % (uint32_t)n);
}

static void step_add(struct step *st, int32_t tok, int pos, int slot, int adapter, int want,
                     int seq)
{
    REQUIRE(st->n < MAX_ROWS, "step too large");
    int i = st->n++;
    st->tok[i] = tok;
    st->pos[i] = pos;
    st->slot[i] = slot;
    st->adapter[i] = adapter;
    st->want[i] = (uint8_t)want;
    st->seq[i] = seq;
}

static void forward(struct engine *e, const struct step *st, float *logits)
{
    struct stage_batch b = {.n = st->n,
                            .tokens = st->tok,
                            .pos = st->pos,
                            .slot = st->slot,
                            .adapter = e->n_adapters ? st->adapter : NULL,
                            .logits = st->want};
    struct mm_err err = {{0}};
    REQUIRE(engine_forward(e, &b, logits, &err) == 0, "forward of %d rows: %s", st->n, err.msg);
}

/* Compares each row of the step that asked for logits with its token's
 * logits decoded alone; prints the first differing logit of the first
 * SHOW_DIFFS differing rows. */
static void compare_step(const struct suite *su, const struct step *st, const float *logits,
                         struct tally *t)
{
    int r = 0;
    for (int i = 0; i < st->n; i++) {
        if (!st->want[i]) continue;
        const float *got = logits + (size_t)r++ * su->vocab;
        if (st->seq[i] < 0) continue;
        const struct seq *s = &su->seqs[st->seq[i]];
        const float *want = s->ref + (size_t)st->pos[i] * su->vocab;
        t->rows++;
        if (!memcmp(got, want, (size_t)su->vocab * sizeof(float))) continue;
        if (t->bad++ >= SHOW_DIFFS || shown++ >= SHOW_TOTAL) continue;
        int k = 0;
        while (!memcmp(got + k, want + k, sizeof(float)))
            k++;
        uint32_t a, b;
        memcpy(&a, got + k, 4);
        memcpy(&b, want + k, 4);
        fprintf(stderr,
                "%s: %s: row %d of a %d-row step (sequence %d, position %d, slot %d, adapter "
                "%d): logit %d is %.9g (0x%08x), decoded alone %.9g (0x%08x)\n",
                su->model, t->what, i, st->n, st->seq[i], st->pos[i], st->slot[i], st->adapter[i],
                k, got[k], a, want[k], b);
    }
}

static void tally_report(const struct suite *su, const struct tally *t)
{
    CHECKF(t->bad == 0, "%s: %s: %d of %d rows differ from the tokens decoded alone", su->model,
           t->what, t->bad, t->rows);
    REQUIRE(t->rows > 0, "%s: %s compared nothing", su->model, t->what);
}

/* Reference: each sequence in its own slot, one token per step, alone. */
static void decode_alone(struct suite *su, struct engine *e)
{
    for (int q = 0; q < su->n_seqs; q++) {
        struct seq *s = &su->seqs[q];
        s->ref = malloc((size_t)s->len * su->vocab * sizeof(float));
        REQUIRE(s->ref, "out of memory");
        for (int i = 0; i < s->len; i++) {
            struct step st = {0};
            step_add(&st, s->tok[i], i, q, s->adapter, 1, q);
            forward(e, &st, s->ref + (size_t)i * su->vocab);
        }
    }
}

/* Sequence q from position 0 in chunks of `chunk` tokens, every row asking
 * for logits (the first chunk rolls its slot back to empty). */
static void chunked_prefill(const struct suite *su, struct engine *e, int q, int chunk,
                            struct tally *t)
{
    const struct seq *s = &su->seqs[q];
    for (int p = 0; p < s->len; p += chunk) {
        struct step st = {0};
        for (int i = p; i < s->len && i < p + chunk; i++)
            step_add(&st, s->tok[i], i, q, s->adapter, 1, q);
        forward(e, &st, out);
        compare_step(su, &st, out, t);
    }
}

/* Prefix [0, i) in one step without logits, then token i alone. */
static void decode_after_prefill(const struct suite *su, struct engine *e, int q, int i,
                                 struct tally *t)
{
    const struct seq *s = &su->seqs[q];
    struct step pre = {0}, one = {0};
    for (int j = 0; j < i; j++)
        step_add(&pre, s->tok[j], j, q, s->adapter, 0, q);
    forward(e, &pre, out);
    step_add(&one, s->tok[i], i, q, s->adapter, 1, q);
    forward(e, &one, out);
    compare_step(su, &one, out, t);
}

/* Sequence q fed whole with `junk` more tokens in one step, then rolled
 * back to position p by a step that starts there and feeds the sequence's
 * own tokens from p on, every row asking for logits. */
static void rollback_then_refill(const struct suite *su, struct engine *e, int q, int p, int junk,
                                 struct tally *t)
{
    const struct seq *s = &su->seqs[q];
    struct step all = {0}, again = {0};
    for (int i = 0; i < s->len; i++)
        step_add(&all, s->tok[i], i, q, s->adapter, 0, q);
    for (int i = 0; i < junk; i++)
        step_add(&all, (int32_t)((s->tok[i % s->len] + 1 + i) % su->vocab), s->len + i, q,
                 s->adapter, 0, -1);
    forward(e, &all, out);
    for (int i = p; i < s->len; i++)
        step_add(&again, s->tok[i], i, q, s->adapter, 1, q);
    forward(e, &again, out);
    compare_step(su, &again, out, t);
}

/* Every sequence in its slot, steps of random mixes: some sequences take
 * one token (decode), others a chunk (prefill), in random order; random
 * rows ask for logits; now and then a sequence feeds junk tokens and then
 * rolls back below them (or below some of its own tokens) and goes on. */
static void mixed_steps(const struct suite *su, struct engine *e, uint64_t seed, int max_rows,
                        struct tally *t)
{
    rng_state = seed;
    int fed[MAX_SEQS], len[MAX_SEQS]; /* true tokens in the cache; its length */
    for (int q = 0; q < su->n_seqs; q++)
        fed[q] = len[q] = 0;
    /* The first step of each sequence starts at 0: its slot is emptied. */
    int started[MAX_SEQS] = {0};
    for (;;) {
        int order[MAX_SEQS], n_open = 0;
        for (int q = 0; q < su->n_seqs; q++)
            if (fed[q] < su->seqs[q].len) order[n_open++] = q;
        if (n_open == 0) break;
        for (int i = n_open - 1; i > 0; i--) {
            int j = rnd_below(i + 1), x = order[i];
            order[i] = order[j];
            order[j] = x;
        }
        struct step st = {0};
        int n_in = 0;
        for (int k = 0; k < n_open; k++) {
            int q = order[k];
            const struct seq *s = &su->seqs[q];
            if (n_in > 0 && rnd_below(4) == 0) continue; /* sits this step out */
            int room = max_rows - st.n;
            if (room <= 0) break;
            int start = started[q] ? len[q] : 0;
            if (len[q] > fed[q]) {
                start = fed[q]; /* junk in the cache: roll back over it */
            } else if (fed[q] > 0 && rnd_below(8) == 0) {
                start = fed[q] - 1 - rnd_below(fed[q] < 6 ? fed[q] : 6);
                t->rollbacks++;
            }
            started[q] = 1;
            if (start == fed[q] && fed[q] > 0 && len[q] == fed[q] && rnd_below(8) == 0 &&
                fed[q] + 8 < e->context) {
                /* A detour: junk tokens the next step of this slot undoes. */
                int j = 1 + rnd_below(room < 6 ? room : 6);
                for (int i = 0; i < j; i++)
                    step_add(&st, (int32_t)rnd_below(su->vocab), fed[q] + i, q, s->adapter,
                             rnd_below(2), -1);
                len[q] = fed[q] + j;
                t->detours++;
                n_in++;
                continue;
            }
            /* half of them decode, the others take a short or long chunk */
            int left = s->len - start, kind = rnd_below(4);
            int take = kind < 2 ? 1 : kind == 2 ? 2 + rnd_below(8) : 2 + rnd_below(48);
            if (take > left) take = left;
            if (take > room) take = room;
            for (int i = start; i < start + take; i++)
                step_add(&st, s->tok[i], i, q, s->adapter, i == start + take - 1 || rnd_below(3),
                         q);
            fed[q] = len[q] = start + take;
            n_in++;
        }
        forward(e, &st, out);
        compare_step(su, &st, out, t);
    }
}

/* Everything on one engine layout; `brief`: only a one-step prefill and
 * the shared steps (a large model's extra layouts). */
static void run_cases(struct suite *su, struct engine *e, const char *layout, int brief)
{
    char what[160];
    static const int chunks[] = {0 /* whole */, 1, 3, 7, 31, 32, 33, 64};
    for (int q = 0; q < su->n_seqs; q++) {
        if (su->light && q > 0) break;
        for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
            int chunk = chunks[c] ? chunks[c] : su->seqs[q].len;
            if (su->light && chunks[c] != 0 && chunks[c] != 7) continue;
            if (brief && chunks[c] != 0) continue;
            snprintf(what, sizeof(what), "%s, sequence %d (%d tokens) prefilled in chunks of %d",
                     layout, q, su->seqs[q].len, chunk);
            struct tally t = {what, 0, 0, 0, 0};
            chunked_prefill(su, e, q, chunk, &t);
            tally_report(su, &t);
        }
    }
    static const int at[] = {1, 2, 15, 16, 17, 31, 32, 33, 34, 63, 64, 65};
    for (int q = 0; q < su->n_seqs && q < 2 && !brief; q++) {
        snprintf(what, sizeof(what), "%s, sequence %d decoded after a one-step prefill", layout, q);
        struct tally t = {what, 0, 0, 0, 0};
        for (size_t k = 0; k < sizeof(at) / sizeof(at[0]); k++) {
            if (at[k] >= su->seqs[q].len) continue;
            if (su->light && at[k] != 17 && at[k] != 33 && at[k] != 64) continue;
            decode_after_prefill(su, e, q, at[k], &t);
        }
        tally_report(su, &t);
    }
    for (int q = 0; q < su->n_seqs && q < 2 && !brief; q++) {
        const int len = su->seqs[q].len;
        const int to[] = {len - 1, len / 2, 17, 16, 1, 0};
        snprintf(what, sizeof(what), "%s, sequence %d rolled back and fed again", layout, q);
        struct tally t = {what, 0, 0, 0, 0};
        for (size_t k = 0; k < sizeof(to) / sizeof(to[0]); k++) {
            if (to[k] >= len || (su->light && k != 1)) continue;
            rollback_then_refill(su, e, q, to[k], 1 + (int)k * 3, &t);
        }
        tally_report(su, &t);
    }
    static const int max_rows[] = {96, 24, 150, 40, 64, 96};
    const int schedules = su->light ? 1 : (int)(sizeof(max_rows) / sizeof(max_rows[0]));
    int detours = 0, rollbacks = 0;
    for (int k = 0; k < schedules; k++) {
        snprintf(what, sizeof(what), "%s, shared steps of up to %d rows (schedule %d)", layout,
                 max_rows[k], k + 1);
        struct tally t = {what, 0, 0, 0, 0};
        mixed_steps(su, e, (uint64_t)(k + 1) * 0x9e3779b97f4a7c15ull, max_rows[k], &t);
        tally_report(su, &t);
        detours += t.detours;
        rollbacks += t.rollbacks;
    }
    /* The schedules are fixed: they must keep exercising the rollbacks. */
    REQUIRE(su->light || (detours > 0 && rollbacks > 0),
            "%s: %s: the shared steps made %d detours and %d rollbacks", su->model, layout, detours,
            rollbacks);
}

static void open_engine(struct engine *e, const char *path, const char *adapter, int n_slots,
                        int stages, const int *split)
{
    struct engine_options o = {.model_path = path, .n_slots = n_slots, .n_stages = stages};
    if (adapter) {
        o.adapters[0] = adapter;
        o.n_adapters = 1;
    }
    if (split) {
        for (int i = 0; i < stages - 1; i++)
            o.split[i] = split[i];
        o.n_split = stages - 1;
    }
    struct mm_err err = {{0}};
    REQUIRE(engine_open(e, &o, &err) == 0, "%s: %s", path, err.msg);
}

/* Sequences of the given lengths; with an adapter, every other one uses it. */
static void make_seqs(struct suite *su, const int *lens, int n, int with_adapter)
{
    rng_state = 12345;
    su->n_seqs = n;
    for (int q = 0; q < n; q++) {
        struct seq *s = &su->seqs[q];
        s->len = lens[q];
        s->adapter = with_adapter && q % 2 == 1 ? 0 : -1;
        s->tok = malloc((size_t)s->len * sizeof(int32_t));
        for (int i = 0; i < s->len; i++)
            s->tok[i] = (int32_t)rnd_below(su->vocab);
    }
}

static void suite_free(struct suite *su)
{
    for (int q = 0; q < su->n_seqs; q++) {
        free(su->seqs[q].tok);
        free(su->seqs[q].ref);
    }
}

struct layout {
    int stages;
    const int *split; /* NULL: even */
    const char *name;
};

static void model_suite(const char *name, const char *path, const char *adapter, int light,
                        const int *lens, int n_seqs, const struct layout *layouts, int n_layouts)
{
    struct suite su = {.model = name, .light = light};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    clock_t c0 = clock();
    struct engine ref;
    open_engine(&ref, path, adapter, n_seqs, 1, NULL);
    su.vocab = ref.vocab;
    out = malloc((size_t)MAX_ROWS * su.vocab * sizeof(float));
    REQUIRE(out, "out of memory");
    make_seqs(&su, lens, n_seqs, adapter != NULL);
    decode_alone(&su, &ref);
    engine_close(&ref);
    for (int l = 0; l < n_layouts; l++) {
        struct engine e;
        open_engine(&e, path, adapter, n_seqs, layouts[l].stages, layouts[l].split);
        run_cases(&su, &e, layouts[l].name, light && l > 0);
        engine_close(&e);
    }
    free(out);
    suite_free(&su);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%s: %d layout%s checked in %.1f s (%.1f s of CPU)\n", name, n_layouts,
           n_layouts > 1 ? "s" : "",
           (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec),
           (double)(clock() - c0) / CLOCKS_PER_SEC);
}

static void engine_part(void)
{
    static const int tiny_lens[] = {70, 41, 33, 20, 9, 3};
    static const struct layout tiny_layouts[] = {{1, NULL, "P=1"}, {2, NULL, "P=2"}};
    /* f32 (Mistral with its sliding window, Llama with tied embeddings),
     * bf16 and f16 safetensors with their adapters; f32 GGUF without. */
    static const struct {
        const char *name;
        int adapter;
    } tiny[] = {{"tiny-mistral", 1},
                {"tiny-llama", 1},
                {"tiny-llama-bf16", 1},
                {"tiny-llama-f16", 1},
                {"tiny-llama-gguf-f32/model.gguf", 0}};
    for (size_t i = 0; i < sizeof(tiny) / sizeof(tiny[0]); i++) {
        char rel[128], path[1200], adapter[1300];
        snprintf(rel, sizeof(rel), "models/%s", tiny[i].name);
        test_path("MEMLLM_FIXTURES", rel, path, sizeof(path));
        snprintf(adapter, sizeof(adapter), "%s/adapter", path);
        model_suite(tiny[i].name, path, tiny[i].adapter ? adapter : NULL, 0, tiny_lens, 6,
                    tiny_layouts, 2);
    }

    char smol[1200];
    test_path("MEMLLM_MODELS_DIR", "SmolLM2-135M-Instruct.Q4_1.gguf", smol, sizeof(smol));
    if (access(smol, R_OK) != 0) {
        printf("SKIP: SmolLM2 part: %s is absent (run deploy/fetch-models.sh)\n", smol);
        return;
    }
    static const int smol_lens[] = {66, 21, 12, 5};
    static const int uneven[] = {7, 20};
    static const struct layout smol_layouts[] = {
        {1, NULL, "P=1"}, {2, NULL, "P=2"}, {3, uneven, "P=3 (layers 7,20)"}};
    /* sanitizer builds run ~5x slower: SmolLM2 there with one stage only */
    model_suite("SmolLM2", smol, NULL, 1, smol_lens, 4, smol_layouts, SANITIZED ? 1 : 3);
}

/* ---- the memllm binary: JSONL batches, stages on MPI ranks ---- */

static char bin[1024], mpirun[1024];

static char *write_temp(const char *text)
{
    char *path = strdup("/tmp/memllm-inv-XXXXXX");
    int fd = mkstemp(path);
    REQUIRE(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text), "temp file");
    close(fd);
    return path;
}

/* memllm generate <base...> <extra...>, under mpirun -np `ranks` when > 0. */
static struct cmd_result generate(int ranks, const char *const *base, const char *const *extra)
{
    const char *head[64] = {"generate"};
    for (int i = 0; base[i] && i < 62; i++)
        head[i + 1] = base[i];
    return run_memllm(mpirun, bin, ranks, head, extra);
}

struct cli_run {
    int ranks; /* 0: one process */
    const char *args[12];
};

static void cli_model(const char *name, const char *const *base, const struct cli_run *runs,
                      int n_runs)
{
    /* The reference: one request at a time, one process, one stage. */
    const char *alone[] = {"--batch", "1", NULL};
    struct cmd_result ref = generate(0, base, alone);
    REQUIRE(ref.status == 0, "%s: --batch 1: exit %d: %s", name, ref.status, ref.err);
    REQUIRE(strstr(ref.out, "\"logprobs\""), "%s: no logprobs in '%s'", name, ref.out);
    for (int i = 0; i < n_runs; i++) {
        char desc[256] = "";
        size_t dl = 0;
        if (runs[i].ranks)
            dl += (size_t)snprintf(desc, sizeof(desc), "mpirun -np %d", runs[i].ranks);
        else
            dl += (size_t)snprintf(desc, sizeof(desc), "one process");
        for (int a = 0; runs[i].args[a] && dl < sizeof(desc) - 32; a++)
            dl += (size_t)snprintf(desc + dl, sizeof(desc) - dl, " %s", runs[i].args[a]);
        struct cmd_result r = generate(runs[i].ranks, base, runs[i].args);
        CHECKF(r.status == 0, "%s: %s: exit %d: %s", name, desc, r.status, r.err);
        if (r.status == 0 && strcmp(r.out, ref.out)) {
            size_t k = 0;
            while (r.out[k] == ref.out[k])
                k++;
            size_t from = k > 120 ? k - 120 : 0;
            CHECKF(
                0,
                "%s: %s: output differs from --batch 1 at byte %zu:\n  ...%.200s\nvs\n  ...%.200s",
                name, desc, k, r.out + from, ref.out + from);
        }
        cmd_result_free(&r);
    }
    cmd_result_free(&ref);
}

static void cli_part(void)
{
    char fixtures[1024], models[1024];
    test_path("MEMLLM_FIXTURES", ".", fixtures, sizeof(fixtures));
    test_path("MEMLLM_MODELS_DIR", ".", models, sizeof(models));

    /* tiny-mistral (2 layers: P up to 2), requests with and without its
     * adapter, prompts of 5 to 79 tokens. */
    char model[1200], adapter[1300];
    snprintf(model, sizeof(model), "%s/models/tiny-mistral", fixtures);
    snprintf(adapter, sizeof(adapter), "%s/adapter", model);
    char *in = write_temp(
        "{\"id\": \"a\", \"prompt\": \"Wilfried \\\" Willi \\\" Schneider ( born 21 July 1963 in "
        "Wuppertal ) is a German former skeleton racer who competed from the late 1980s to the "
        "early 2000s\", \"max_tokens\": 12}\n"
        "{\"id\": \"b\", \"prompt\": \"The Moon\", \"max_tokens\": 20, \"adapter\": \"adapter\"}\n"
        "{\"id\": \"c\", \"prompt\": \"Dancing on Coral is a novel by Glenda Adams, first "
        "published in 1987\", \"max_tokens\": 16}\n"
        "{\"id\": \"d\", \"prompt\": \"She was born in\", \"max_tokens\": 9, \"adapter\": "
        "\"adapter\"}\n"
        "{\"id\": \"e\", \"prompt\": \"The Rhine flows through Switzerland, Liechtenstein, "
        "Austria, Germany, France and the Netherlands into the North Sea\", \"max_tokens\": 14, "
        "\"adapter\": null}\n");
    const char *tiny_base[] = {"--model",  model,        "--adapter", adapter, "--input", in,
                               "--greedy", "--logprobs", "--threads", "1",     NULL};
    const struct cli_run tiny_runs[] = {
        {0, {"--batch", "5", NULL}},
        {0, {"--batch", "2", NULL}},
        {0, {"--batch", "5", "--stages", "2", NULL}},
        {0, {"--batch", "4", "--threads", "2", NULL}},
        {2, {"--batch", "5", "--stages", "1", NULL}},
        {3, {"--batch", "5", "--stages", "2", NULL}},
        {3, {"--batch", "3", "--stages", "2", "--micro-batches", "3", NULL}},
        {3, {"--batch", "5", "--stages", "2", "--micro-batches", "1", NULL}},
    };
    cli_model("tiny-mistral", tiny_base, tiny_runs, sizeof(tiny_runs) / sizeof(tiny_runs[0]));
    unlink(in);
    free(in);

    snprintf(model, sizeof(model), "%s/SmolLM2-135M-Instruct.Q4_1.gguf", models);
    if (access(model, R_OK) != 0) {
        printf("SKIP: SmolLM2 part: %s is absent (run deploy/fetch-models.sh)\n", model);
        return;
    }
    in = write_temp("{\"prompt\": \"Paris is the capital of\", \"max_tokens\": 6}\n"
                    "{\"prompt\": \"Wilfried Schneider (born 21 July 1963 in Wuppertal) is a "
                    "German former skeleton racer who competed from the late 1980s to the early "
                    "2000s. He won\", \"max_tokens\": 5}\n"
                    "{\"prompt\": \"The Rhine flows through\", \"max_tokens\": 7}\n"
                    "{\"prompt\": \"Dancing on Coral is a novel by\", \"max_tokens\": 4}\n");
    const char *smol_base[] = {"--model",    model,       "--input", in,  "--greedy",
                               "--logprobs", "--threads", "1",       NULL};
    const struct cli_run smol_runs[] = {
        {0, {"--batch", "4", NULL}},
        {2, {"--batch", "4", "--stages", "1", NULL}},
        {3, {"--batch", "3", "--stages", "2", "--micro-batches", "3", NULL}},
        {4, {"--batch", "4", "--stages", "3", "--layers", "7,20", NULL}},
    };
    cli_model("SmolLM2", smol_base, smol_runs, sizeof(smol_runs) / sizeof(smol_runs[0]));
    unlink(in);
    free(in);
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "cli")) {
        snprintf(mpirun, sizeof(mpirun), "%s", argv[2]);
        const char *b = getenv("MEMLLM_BIN");
        REQUIRE(b, "MEMLLM_BIN is not set (run under ctest)");
        snprintf(bin, sizeof(bin), "%s", b);
        cli_part();
    } else {
        REQUIRE(argc == 1, "usage: test_batch_invariance [cli MPIRUN]");
        engine_part();
    }
    return check_report(argc == 3 ? "test_batch_invariance (cli)" : "test_batch_invariance");
}
