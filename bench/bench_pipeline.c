/* Pipeline figures (run under mpirun -np 1+P; also runs as one process for
 * P = 1): decode tokens/s for B sequences at once, each stage's busy time,
 * the measured bubble fraction against the (P-1)/(M+P-1) model, and a model
 * of efficiency at larger P from the measured per-layer compute time and
 * the measured cost of passing one micro-batch of activations.
 *
 * Two schedules in the same run, from the same prompts: "before", whole
 * steps (each step cut into M micro-batches, the step over when all are
 * back), and "after", flowing: the B sequences in G = M groups, a group's
 * next step submitted as soon as its own logits are back (engine_submit,
 * engine_collect), so that no step waits for the others. Both must choose
 * the same tokens.
 *
 *   mpirun -np 3 bench_pipeline MODEL --stages 2 [--batch 8] [--prompt 64]
 *                               [--decode 32] [--micro-batches M]
 * Prints 'name: value' lines (rank 0); the flowing schedule's start with
 * flowing_. Under MPI also the one-way hop between ranks 0 and 1 for
 * messages of 1 KiB to 1 MiB (hop_BYTES_bytes: ms, MB/s). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_args.h"
#include "pipeline_mpi.h"
#include "progress.h"

struct bench {
    int batch, prompt, decode;
    int groups;   /* M: micro-batches of a whole step; groups when flowing */
    double hop_s; /* one micro-batch of activations from a rank to the next */
    int hop_bytes;
};

/* One batch's rows: per_seq tokens of each of n_seq sequences in slots
 * first.., from position pos0; logits for each sequence's last token. */
struct rows {
    int32_t *tok, *pos, *slot;
    uint8_t *want;
};

static int rows_alloc(struct rows *r, int n)
{
    r->tok = malloc((size_t)n * sizeof(int32_t));
    r->pos = malloc((size_t)n * sizeof(int32_t));
    r->slot = malloc((size_t)n * sizeof(int32_t));
    r->want = malloc((size_t)n);
    return r->tok && r->pos && r->slot && r->want ? 0 : -1;
}

static void rows_free(struct rows *r)
{
    free(r->tok);
    free(r->pos);
    free(r->slot);
    free(r->want);
}

static struct stage_batch rows_batch(struct rows *r, int n_seq, int first, int per_seq, int pos0)
{
    for (int s = 0; s < n_seq; s++)
        for (int i = 0; i < per_seq; i++) {
            int k = s * per_seq + i;
            r->pos[k] = pos0 + i;
            r->slot[k] = first + s;
            r->want[k] = i == per_seq - 1;
        }
    return (struct stage_batch){
        .n = n_seq * per_seq, .tokens = r->tok, .pos = r->pos, .slot = r->slot, .logits = r->want};
}

/* Seconds to pass `bytes` between ranks 0 and 1, one way (ping-pong,
 * halved), measured before the ranks take their roles. */
static double hop_seconds(MPI_Comm comm, int rank, int bytes)
{
    char *buf = calloc((size_t)bytes, 1);
    const int reps = 50;
    MPI_Barrier(comm);
    double t0 = progress_now();
    for (int i = 0; i < reps; i++) {
        if (rank == 0) {
            MPI_Send(buf, bytes, MPI_BYTE, 1, 998, comm);
            MPI_Recv(buf, bytes, MPI_BYTE, 1, 998, comm, MPI_STATUS_IGNORE);
        } else if (rank == 1) {
            MPI_Recv(buf, bytes, MPI_BYTE, 0, 998, comm, MPI_STATUS_IGNORE);
            MPI_Send(buf, bytes, MPI_BYTE, 0, 998, comm);
        }
    }
    double t = (progress_now() - t0) / (2.0 * reps);
    free(buf);
    return t;
}

/* Whole steps on slots 0..B-1 from the prefill's logits (rows 0..B-1 of
 * logits, overwritten step by step). fed[t B + s]: the token sequence s
 * was fed at step t (t = decode: the one it would be fed next). */
static int synchronous(struct engine *e, const struct bench *bp, struct rows *r, float *logits,
                       int32_t *fed, struct mm_err *err)
{
    const int B = bp->batch, V = e->vocab;
    for (int t = 0;; t++) {
        for (int s = 0; s < B; s++)
            fed[(size_t)t * B + s] = r->tok[s] = k_argmax(logits + (size_t)s * V, V);
        if (t == bp->decode) return 0;
        struct stage_batch b = rows_batch(r, B, 0, 1, bp->prompt + t);
        if (engine_forward(e, &b, logits, err)) return -1;
    }
}

/* Sequences first..first+n-1 (slots B + first..) take their tokens from
 * their logits rows, fed at step t, and are submitted for step t unless
 * t is past the last. */
static int flow_next(struct engine *e, const struct bench *bp, struct rows *r, const float *logits,
                     int first, int n, int t, int32_t *fed, struct mm_err *err)
{
    const int B = bp->batch, V = e->vocab;
    for (int s = 0; s < n; s++)
        fed[(size_t)t * B + first + s] = r->tok[s] = k_argmax(logits + (size_t)s * V, V);
    if (t == bp->decode) return 0;
    struct stage_batch b = rows_batch(r, n, B + first, 1, bp->prompt + t);
    return engine_submit(e, &b, err);
}

/* The flowing schedule on slots B..2B-1 from the prefill's rows B..2B-1
 * (first): G groups, each group's next step submitted as soon as its own
 * logits are back. sample_s: the coordinator's time between a group's
 * logits and its next submission. */
static int flowing(struct engine *e, const struct bench *bp, struct rows *r, const float *first,
                   float *logits, int32_t *fed, double *sample_s, struct mm_err *err)
{
    const int G = bp->groups, V = e->vocab;
    int start[G + 1], step[G];
    for (int g = 0; g <= G; g++)
        start[g] = g * bp->batch / G;
    for (int g = 0; g < G; g++) {
        step[g] = 0;
        if (flow_next(e, bp, r, first + (size_t)start[g] * V, start[g], start[g + 1] - start[g], 0,
                      fed, err))
            return -1;
    }
    /* Results come back first in, first out, and every group resubmits at
     * once: the groups take turns. */
    for (long k = 0; k < (long)G * bp->decode; k++) {
        int g = (int)(k % G);
        if (engine_collect(e, logits, err) < 0) return -1;
        double t0 = progress_now();
        if (flow_next(e, bp, r, logits, start[g], start[g + 1] - start[g], ++step[g], fed, err))
            return -1;
        *sample_s += progress_now() - t0;
    }
    return 0;
}

/* One schedule's decode: its wall time and, under MPI, what each stage
 * computed meanwhile. */
struct run {
    double wall;
    double compute[ENGINE_MAX_STAGES];
    long micro_batches; /* through stage 0 */
};

static int stage_figures(struct engine *e, struct pipeline_stage_stats *st, struct mm_err *err)
{
    return e->mpi ? pipeline_mpi_stage_stats(e->mpi, st, err) : 0;
}

static void run_figures(const struct engine *e, struct run *run,
                        const struct pipeline_stage_stats *a, const struct pipeline_stage_stats *b)
{
    if (!e->mpi) return;
    for (int i = 0; i < e->n_stages; i++)
        run->compute[i] = b[i].compute_s - a[i].compute_s;
    run->micro_batches = b[0].micro_batches - a[0].micro_batches;
}

/* tokens/s, and under MPI the stages' busy fractions and the bubble;
 * returns the stages' compute time per step. */
static double print_run(const char *prefix, const struct engine *e, const struct bench *bp,
                        const struct run *run)
{
    const int P = e->n_stages;
    printf("%sdecode_tokens_per_s: %.2f\n", prefix, bp->batch * bp->decode / run->wall);
    printf("%sdecode_step_ms: %.3f\n", prefix, 1e3 * run->wall / bp->decode);
    if (!e->mpi) return 0.0;
    double busy = 0.0, busiest = 0.0, compute = 0.0;
    for (int i = 0; i < P; i++) {
        double f = run->compute[i] / run->wall;
        compute += run->compute[i];
        busy += f;
        busiest = f > busiest ? f : busiest;
        printf("%sstage_%d_busy_fraction: %.3f\n", prefix, i, f);
    }
    printf("%smicro_batches_per_step: %ld\n", prefix,
           (run->micro_batches + bp->decode - 1) / bp->decode);
    printf("%sbubble_fraction_measured: %.3f\n", prefix, 1.0 - busy / P);
    /* Stages of unequal work (the last one also computes the logits) leave
     * the others waiting whatever the schedule: the schedule's own bubble
     * is the busiest stage's idle time. */
    printf("%sbusiest_stage_idle_fraction: %.3f\n", prefix, 1.0 - busiest);
    return compute / bp->decode;
}

/* Model at larger P: the same total compute per step (t_comp) cut into p
 * equal stages, and one activation hop per stage boundary per micro-batch
 * at the measured cost. Whole steps of m micro-batches take (m + p - 1)
 * slots of (t_comp / (p m) + hop); ideal is t_comp / p. */
static double synchronous_efficiency(double t_comp, double hop, int p, int m)
{
    double slot = t_comp / p / m + (p > 1 ? hop : 0.0);
    return t_comp / (p * (m + p - 1) * slot);
}

/* Flowing, g groups: a stage is busy g slots per step, unless a group's
 * round trip (p slots, then the coordinator's turn r: its logits' way back
 * and its sampling) takes longer. */
static double flowing_efficiency(double t_comp, double hop, double r, int p, int g)
{
    double slot = t_comp / p / g + (p > 1 ? hop : 0.0);
    double step = g * slot, trip = p * slot + r;
    return t_comp / p / (step > trip ? step : trip);
}

/* Both models, with this run's M and with the M (whole steps: 4p) or G
 * (flowing: the best up to 8p) a larger pipeline would use. */
static void print_models(const struct bench *bp, double t_comp, double sample_s)
{
    const double hop = bp->hop_s, r = sample_s + hop;
    const int M = bp->groups;
    printf("activation_hop_ms: %.4f (%d bytes)\n", 1e3 * hop, bp->hop_bytes);
    printf("compute_per_step_ms: %.3f\n", 1e3 * t_comp);
    printf("flowing_sample_ms: %.4f\n", 1e3 * sample_s);
    for (int p = 1; p <= 64; p *= 2) {
        printf("model_efficiency_P%d: %.3f with M=%d, %.3f with M=%d\n", p,
               synchronous_efficiency(t_comp, hop, p, M), M,
               synchronous_efficiency(t_comp, hop, p, 4 * p), 4 * p);
        int best = 1;
        for (int g = 2; g <= 8 * p; g++)
            if (flowing_efficiency(t_comp, hop, r, p, g) >
                flowing_efficiency(t_comp, hop, r, p, best))
                best = g;
        printf("flowing_model_efficiency_P%d: %.3f with G=%d, %.3f with G=%d\n", p,
               flowing_efficiency(t_comp, hop, r, p, M), M,
               flowing_efficiency(t_comp, hop, r, p, best), best);
    }
}

/* Both schedules timed, each between two readings of the stages' figures. */
static int timed_runs(struct engine *e, const struct bench *bp, struct rows *r, float *logits,
                      int32_t *fed, struct run *runs, double *sample_s, struct mm_err *err)
{
    const size_t fed_len = (size_t)(bp->decode + 1) * bp->batch;
    struct pipeline_stage_stats st[3][ENGINE_MAX_STAGES];
    if (stage_figures(e, st[0], err)) return -1;
    double t0 = progress_now();
    if (synchronous(e, bp, r, logits, fed, err)) return -1;
    runs[0].wall = progress_now() - t0;
    if (stage_figures(e, st[1], err)) return -1;
    t0 = progress_now();
    if (flowing(e, bp, r, logits + (size_t)bp->batch * e->vocab, logits, fed + fed_len, sample_s,
                err))
        return -1;
    runs[1].wall = progress_now() - t0;
    if (stage_figures(e, st[2], err)) return -1;
    run_figures(e, &runs[0], st[0], st[1]);
    run_figures(e, &runs[1], st[1], st[2]);
    return 0;
}

static int job(struct engine *e, struct mm_memory *m, const struct cluster *c, void *arg,
               struct mm_err *err)
{
    (void)m, (void)c;
    const struct bench *bp = arg;
    const int B = bp->batch, V = e->vocab, P = e->n_stages;
    const size_t fed_len = (size_t)(bp->decode + 1) * B;
    struct rows r = {0};
    float *logits = malloc(2 * (size_t)B * V * sizeof(float));
    int32_t *fed = malloc(2 * fed_len * sizeof(int32_t));
    int rc = -1;
    if (rows_alloc(&r, 2 * B * bp->prompt) || !logits || !fed) {
        mm_err_set(err, "out of memory");
        goto out;
    }
    /* The same prompts in slots 0..B-1 (whole steps) and B..2B-1 (flowing). */
    for (int i = 0; i < 2 * B * bp->prompt; i++)
        r.tok[i] = (int32_t)((i % (B * bp->prompt) * 7919 + 13) % V);
    struct stage_batch prefill = rows_batch(&r, 2 * B, 0, bp->prompt, 0);
    if (engine_forward(e, &prefill, logits, err)) goto out;
    struct run runs[2] = {{0}};
    double sample_s = 0.0;
    if (timed_runs(e, bp, &r, logits, fed, runs, &sample_s, err)) goto out;

    printf("stages: %d\nbatch: %d\ndecode_steps: %d\nflowing_groups: %d\n", P, B, bp->decode,
           bp->groups);
    double t_comp = print_run("", e, bp, &runs[0]);
    print_run("flowing_", e, bp, &runs[1]);
    int same = !memcmp(fed, fed + fed_len, fed_len * sizeof(int32_t));
    printf("flowing_tokens_match: %s\n", same ? "yes" : "no");
    if (e->mpi) {
        printf("bubble_fraction_model: %.3f\n", (double)(P - 1) / (bp->groups + P - 1));
        print_models(bp, t_comp, sample_s / ((double)bp->groups * bp->decode));
    } else {
        printf("per_layer_step_ms: %.4f\n", 1e3 * runs[0].wall / bp->decode / e->cfg.n_layers);
    }
    if (!same) {
        mm_err_set(err, "the flowing schedule chose other tokens than whole steps");
        goto out;
    }
    rc = 0;
out:
    rows_free(&r);
    free(logits);
    free(fed);
    return rc;
}

int main(int argc, char **argv)
{
    struct cli_model_opts mo = {0};
    struct bench bp = {.batch = 8, .prompt = 64, .decode = 32};
    const char *model = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int r;
        if ((r = cli_model_opt(argc, argv, &i, &mo))) {
            if (r < 0) return 2;
        } else if ((r = cli_opt(argc, argv, &i, "--batch", &v))) {
            if (r < 0 || cli_int("--batch", v, 1, 4096, &bp.batch)) return 2;
        } else if ((r = cli_opt(argc, argv, &i, "--prompt", &v))) {
            if (r < 0 || cli_int("--prompt", v, 1, 1 << 16, &bp.prompt)) return 2;
        } else if ((r = cli_opt(argc, argv, &i, "--decode", &v))) {
            if (r < 0 || cli_int("--decode", v, 1, 1 << 16, &bp.decode)) return 2;
        } else if (argv[i][0] != '-' && !model) {
            model = argv[i];
        } else {
            fprintf(stderr, "bench_pipeline: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (model) mo.engine.model_path = model;
    if (cli_model_ready("bench_pipeline", &mo)) return 2;
    /* Slots 0..B-1 for whole steps, B..2B-1 for the flowing schedule. */
    mo.engine.n_slots = 2 * bp.batch;
    mo.engine.context = bp.prompt + bp.decode + 1;
    int stages = mo.engine.n_stages > 0 ? mo.engine.n_stages : 1;
    bp.groups = mo.engine.micro_batches > 0 ? mo.engine.micro_batches : stages;
    if (bp.groups > bp.batch) bp.groups = bp.batch;
    int mpi = getenv("OMPI_COMM_WORLD_SIZE") != NULL, world = 1, rank = 0;
    if (mpi) {
        /* With threads, as memllm's own ranks start (cluster.c): the stage
         * ranks beat to the coordinator's watch meanwhile, as in a job. */
        int provided;
        MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
        MPI_Comm_size(MPI_COMM_WORLD, &world);
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    }
    if (world > 1) {
        /* A decode micro-batch: ceil(B / M) tokens of hidden state; the
         * model's width is read from its config. */
        struct model_config cfg;
        struct mm_err err = {{0}};
        if (model_read_config(mo.engine.model_path, &cfg, &err)) {
            fprintf(stderr, "bench_pipeline: %s\n", err.msg);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        int M = bp.groups;
        bp.hop_bytes = (bp.batch + M - 1) / M * cfg.dim * (int)sizeof(float);
        bp.hop_s = hop_seconds(MPI_COMM_WORLD, rank, bp.hop_bytes);
        /* The hop by message size, from a few tokens' activations to a
         * prefill chunk's: its latency, and the bandwidth it reaches. */
        for (int bytes = 1 << 10; bytes <= 1 << 20; bytes <<= 2) {
            double t = hop_seconds(MPI_COMM_WORLD, rank, bytes);
            if (rank == 0)
                printf("hop_%d_bytes: %.4f ms, %.1f MB/s\n", bytes, 1e3 * t, bytes / t / 1e6);
        }
    }
    int rc = cli_run_with_engine("bench_pipeline", &mo, NULL, job, &bp);
    if (mpi) MPI_Finalize();
    return rc;
}
