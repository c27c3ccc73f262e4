/* Pipeline figures (run under mpirun -np 1+P; also runs as one process for
 * P = 1): decode tokens/s for B sequences at once, each stage's busy time,
 * the measured bubble fraction against the (P-1)/(M+P-1) model, and a model
 * of efficiency at larger P from the measured per-layer compute time and
 * the measured cost of passing one micro-batch of activations.
 *
 *   mpirun -np 3 bench_pipeline MODEL --stages 2 [--batch 8] [--prompt 64]
 *                               [--decode 32] [--micro-batches M]
 * Prints 'name: value' lines (rank 0). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_args.h"
#include "pipeline_mpi.h"
#include "progress.h"

struct bench {
    int batch, prompt, decode;
    double hop_s; /* one micro-batch of activations from a rank to the next */
    int hop_bytes;
};

static void step(struct engine *e, int n_seq, int per_seq, int pos0, int32_t *tokens, float *logits)
{
    int n = n_seq * per_seq;
    int32_t *pos = malloc((size_t)n * sizeof(int32_t)), *slot = malloc((size_t)n * sizeof(int32_t));
    uint8_t *want = malloc((size_t)n);
    for (int s = 0; s < n_seq; s++)
        for (int i = 0; i < per_seq; i++) {
            int k = s * per_seq + i;
            pos[k] = pos0 + i;
            slot[k] = s;
            want[k] = i == per_seq - 1;
        }
    struct stage_batch b = {.n = n, .tokens = tokens, .pos = pos, .slot = slot, .logits = want};
    struct mm_err err = {{0}};
    if (engine_forward(e, &b, logits, &err)) {
        fprintf(stderr, "bench_pipeline: %s\n", err.msg);
        exit(1);
    }
    free(pos);
    free(slot);
    free(want);
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

static int job(struct engine *e, struct mm_memory *m, const struct cluster *c, void *arg,
               struct mm_err *err)
{
    (void)m, (void)c;
    const struct bench *bp = arg;
    const int B = bp->batch, V = e->vocab, P = e->n_stages;
    int32_t *tokens = malloc((size_t)B * bp->prompt * sizeof(int32_t));
    float *logits = malloc((size_t)B * V * sizeof(float));
    for (int i = 0; i < B * bp->prompt; i++)
        tokens[i] = (int32_t)((i * 7919 + 13) % V);
    step(e, B, bp->prompt, 0, tokens, logits);

    struct pipeline_stage_stats before[ENGINE_MAX_STAGES], after[ENGINE_MAX_STAGES];
    if (e->mpi && pipeline_mpi_stage_stats(e->mpi, before, err)) return -1;
    double t0 = progress_now();
    for (int t = 0; t < bp->decode; t++) {
        for (int s = 0; s < B; s++)
            tokens[s] = k_argmax(logits + (size_t)s * V, V);
        step(e, B, 1, bp->prompt + t, tokens, logits);
    }
    double wall = progress_now() - t0;
    printf("stages: %d\nbatch: %d\ndecode_steps: %d\n", P, B, bp->decode);
    printf("decode_tokens_per_s: %.2f\n", B * bp->decode / wall);
    printf("decode_step_ms: %.3f\n", 1e3 * wall / bp->decode);
    if (!e->mpi) {
        printf("per_layer_step_ms: %.4f\n", 1e3 * wall / bp->decode / e->cfg.n_layers);
        free(tokens);
        free(logits);
        return 0;
    }
    if (pipeline_mpi_stage_stats(e->mpi, after, err)) return -1;
    struct pipeline_mpi_stats ps;
    pipeline_mpi_get_stats(e->mpi, &ps);
    double busy = 0.0, compute = 0.0;
    long mbs = after[0].micro_batches - before[0].micro_batches;
    int M = (int)((mbs + bp->decode - 1) / bp->decode);
    for (int i = 0; i < P; i++) {
        double ci = after[i].compute_s - before[i].compute_s;
        compute += ci;
        busy += ci / wall;
        printf("stage_%d_busy_fraction: %.3f\n", i, ci / wall);
    }
    printf("micro_batches_per_step: %d\n", M);
    printf("bubble_fraction_measured: %.3f\n", 1.0 - busy / P);
    printf("bubble_fraction_model: %.3f\n", (double)(P - 1) / (M + P - 1));
    /* Model at larger P: the same total compute per step cut into P equal
     * stages, M micro-batches, and one activation hop per stage boundary per
     * micro-batch at the measured cost. */
    double hop = bp->hop_s;
    double t_comp = compute / bp->decode; /* per step, all stages */
    printf("activation_hop_ms: %.4f (%d bytes)\n", 1e3 * hop, bp->hop_bytes);
    printf("compute_per_step_ms: %.3f\n", 1e3 * t_comp);
    /* Ideal: t_comp / p per step. With M micro-batches a step takes
     * (M + p - 1) slots of (t_comp / (p M) + hop). */
    for (int p = 1; p <= 64; p *= 2) {
        double eff[2];
        int ms[2] = {M, 4 * p};
        for (int k = 0; k < 2; k++) {
            double slot = t_comp / p / ms[k] + (p > 1 ? hop : 0.0);
            eff[k] = t_comp / (p * (ms[k] + p - 1) * slot);
        }
        printf("model_efficiency_P%d: %.3f with M=%d, %.3f with M=%d\n", p, eff[0], ms[0], eff[1],
               ms[1]);
    }
    free(tokens);
    free(logits);
    return 0;
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
    mo.engine.n_slots = bp.batch;
    mo.engine.context = bp.prompt + bp.decode + 1;
    int mpi = getenv("OMPI_COMM_WORLD_SIZE") != NULL, world = 1, rank = 0;
    if (mpi) {
        MPI_Init(&argc, &argv);
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
        int stages = mo.engine.n_stages > 0 ? mo.engine.n_stages : 1;
        int M = mo.engine.micro_batches > 0 ? mo.engine.micro_batches : stages;
        if (M > bp.batch) M = bp.batch;
        bp.hop_bytes = (bp.batch + M - 1) / M * cfg.dim * (int)sizeof(float);
        bp.hop_s = hop_seconds(MPI_COMM_WORLD, rank, bp.hop_bytes);
    }
    int rc = cli_run_with_engine("bench_pipeline", &mo, NULL, job, &bp);
    if (mpi) MPI_Finalize();
    return rc;
}
