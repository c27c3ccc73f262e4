/* Batches in flight (engine_submit / engine_collect, issue #14) give the
 * logits of whole steps run one at a time (engine_forward), bit for bit:
 * two groups of sequences, one group's steps all submitted before any
 * result is taken, the other's submitted as its results come back (the
 * flowing schedule), and a KV share sent while the batch that fills its
 * source is still in flight (in one process, group B's last step and group
 * A's first run as one forward). On the tiny Mistral fixture with its adapter,
 * stages in one process (P = 1, 2) and, run as `mpirun -np 3`, on two
 * stage ranks; every layout against the one-process, one-stage reference. */
#include <mpi.h>
#include <string.h>

#include "check.h"
#include "engine.h"
#include "pipeline_mpi.h"

enum { N_SEQ = 5, FORK = 4, DECODE = 6, FORK_LEN = 5, MAX_ROWS = 64 };
/* Sequences 0..3 start from prompts; sequence 4 (FORK) shares sequence 0's
 * first FORK_LEN positions, then decodes its own tokens. Group A holds
 * 0, 1 and the fork, group B holds 2 and 3. */
static const int prompt_len[FORK] = {9, 4, 7, 12};
static const int group_a[] = {0, 1, FORK}, group_b[] = {2, 3};

static int32_t prompt[FORK][MAX_ROWS], decoded[N_SEQ][DECODE];
static int vocab;
/* The reference: the prefill's rows (sequences 0..3 in order, every row),
 * then each decode step's rows (one per sequence, in order). */
static float *ref_prefill, *ref_step[DECODE];

struct rows {
    int n;
    int32_t tok[MAX_ROWS], pos[MAX_ROWS], slot[MAX_ROWS], adapter[MAX_ROWS];
};

static void add_row(struct rows *r, int seq, int slot_base, int32_t tok, int pos)
{
    r->tok[r->n] = tok;
    r->pos[r->n] = pos;
    r->slot[r->n] = slot_base + seq;
    r->adapter[r->n] = seq % 2 == 1 ? 0 : -1;
    r->n++;
}

static struct stage_batch as_batch(const struct rows *r)
{
    return (struct stage_batch){
        .n = r->n, .tokens = r->tok, .pos = r->pos, .slot = r->slot, .adapter = r->adapter};
}

static void prefill_rows(struct rows *r, const int *seqs, int n, int slot_base)
{
    r->n = 0;
    for (int k = 0; k < n; k++)
        for (int i = 0; i < prompt_len[seqs[k]]; i++)
            add_row(r, seqs[k], slot_base, prompt[seqs[k]][i], i);
}

static int decode_pos(int seq, int t)
{
    return (seq == FORK ? FORK_LEN : prompt_len[seq]) + t;
}

static void step_rows(struct rows *r, const int *seqs, int n, int slot_base, int t)
{
    r->n = 0;
    for (int k = 0; k < n; k++)
        add_row(r, seqs[k], slot_base, decoded[seqs[k]][t], decode_pos(seqs[k], t));
}

static void options(struct engine_options *o, const char *model, const char *adapter, int stages)
{
    *o = (struct engine_options){.model_path = model, .n_slots = 2 * N_SEQ, .n_stages = stages};
    o->adapters[0] = adapter;
    o->n_adapters = 1;
}

/* Whole steps, one at a time, on slots 0..4. */
static void reference_run(struct engine *e, float *prefill, float **step)
{
    static const int all[] = {0, 1, 2, 3};
    static const int with_fork[] = {0, 1, 2, 3, FORK};
    struct rows r;
    struct mm_err err = {{0}};
    prefill_rows(&r, all, 4, 0);
    struct stage_batch b = as_batch(&r);
    REQUIRE(engine_forward(e, &b, prefill, &err) == 0, "reference prefill: %s", err.msg);
    REQUIRE(engine_kv_share(e, FORK, 0, FORK_LEN, &err) == 0, "reference share: %s", err.msg);
    for (int t = 0; t < DECODE; t++) {
        step_rows(&r, with_fork, N_SEQ, 0, t);
        b = as_batch(&r);
        REQUIRE(engine_forward(e, &b, step[t], &err) == 0, "reference step %d: %s", t, err.msg);
    }
}

/* Rows of sequence `seq` in the reference prefill start here. */
static size_t prefill_offset(int seq)
{
    size_t rows = 0;
    for (int q = 0; q < seq; q++)
        rows += (size_t)prompt_len[q];
    return rows * (size_t)vocab;
}

/* Collects the oldest submission and compares it with the reference rows
 * of `seqs` at step t (t < 0: the prefill). */
static void collect_and_compare(struct engine *e, const char *layout, const int *seqs, int n, int t,
                                float *got)
{
    struct mm_err err = {{0}};
    int rows = engine_collect(e, got, &err);
    REQUIRE(rows >= 0, "%s: collect of step %d: %s", layout, t, err.msg);
    size_t off = 0;
    int want_rows = 0;
    for (int k = 0; k < n; k++) {
        int q = seqs[k];
        size_t len = t < 0 ? (size_t)prompt_len[q] : 1;
        const float *want =
            t < 0 ? ref_prefill + prefill_offset(q) : ref_step[t] + (size_t)q * (size_t)vocab;
        CHECKF(!memcmp(got + off, want, len * (size_t)vocab * sizeof(float)),
               "%s: sequence %d, step %d: logits differ from the synchronous run", layout, q, t);
        off += len * (size_t)vocab;
        want_rows += (int)len;
    }
    CHECKF(rows == want_rows, "%s: step %d: %d rows, want %d", layout, t, rows, want_rows);
}

static void submit(struct engine *e, const char *layout, struct rows *r)
{
    struct mm_err err = {{0}};
    struct stage_batch b = as_batch(r);
    REQUIRE(engine_submit(e, &b, &err) == 0, "%s: submit: %s", layout, err.msg);
}

/* The flowing schedule on slots 5..9 (see the top of the file). */
static void flowing_run(struct engine *e, const char *layout, float *got)
{
    const int base = N_SEQ, na = 3, nb = 2;
    struct mm_err err = {{0}};
    struct rows r;
    prefill_rows(&r, group_a, 2, base);
    submit(e, layout, &r);
    /* The share must land after the prefill in flight has filled slot 5. */
    REQUIRE(engine_kv_share(e, base + FORK, base + 0, FORK_LEN, &err) == 0, "%s: share: %s", layout,
            err.msg);
    prefill_rows(&r, group_b, nb, base);
    submit(e, layout, &r);
    for (int t = 0; t < DECODE; t++) {
        step_rows(&r, group_b, nb, base, t);
        submit(e, layout, &r);
    }
    CHECK(engine_in_flight(e) == 2 + DECODE);
    struct stage_batch none = {0};
    CHECKF(engine_forward(e, &none, got, &err) != 0, "%s: a whole step while batches are in flight",
           layout);
    /* Group A's prefill holds sequences 0 and 1 only: the fork's first
     * logits come from its first decode step. */
    collect_and_compare(e, layout, group_a, 2, -1, got);
    step_rows(&r, group_a, na, base, 0);
    submit(e, layout, &r);
    collect_and_compare(e, layout, group_b, nb, -1, got);
    for (int t = 0; t < DECODE; t++)
        collect_and_compare(e, layout, group_b, nb, t, got);
    for (int t = 0; t < DECODE; t++) {
        collect_and_compare(e, layout, group_a, na, t, got);
        if (t + 1 < DECODE) {
            step_rows(&r, group_a, na, base, t + 1);
            submit(e, layout, &r);
        }
    }
    CHECK(engine_in_flight(e) == 0);
    CHECKF(engine_collect(e, got, &err) < 0, "%s: collect with nothing in flight", layout);
}

static void make_tokens(void)
{
    uint32_t x = 2463534242u;
    for (int q = 0; q < N_SEQ; q++) {
        int n = q < FORK ? prompt_len[q] : 0;
        for (int i = 0; i < n + DECODE; i++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            int32_t tok = (int32_t)(x % (uint32_t)vocab);
            if (i < n)
                prompt[q][i] = tok;
            else
                decoded[q][i - n] = tok;
        }
    }
}

/* A layout: the reference's steps and the flowing schedule on one engine;
 * both must give the one-process, one-stage reference's logits. */
static void check_layout(struct engine *e, const char *layout, float *got)
{
    float *prefill = malloc((size_t)MAX_ROWS * (size_t)vocab * sizeof(float)), *step[DECODE];
    REQUIRE(prefill, "out of memory");
    for (int t = 0; t < DECODE; t++)
        REQUIRE((step[t] = malloc((size_t)N_SEQ * (size_t)vocab * sizeof(float))), "oom");
    reference_run(e, prefill, step);
    CHECKF(!memcmp(prefill, ref_prefill, prefill_offset(FORK) * sizeof(float)),
           "%s: whole-step prefill differs from one stage", layout);
    for (int t = 0; t < DECODE; t++)
        CHECKF(!memcmp(step[t], ref_step[t], (size_t)N_SEQ * (size_t)vocab * sizeof(float)),
               "%s: whole step %d differs from one stage", layout, t);
    flowing_run(e, layout, got);
    free(prefill);
    for (int t = 0; t < DECODE; t++)
        free(step[t]);
}

static void local_layout(const char *model, const char *adapter, int stages, const char *layout,
                         float *got)
{
    struct engine e;
    struct engine_options o;
    struct mm_err err = {{0}};
    options(&o, model, adapter, stages);
    REQUIRE(engine_open(&e, &o, &err) == 0, "%s: %s", layout, err.msg);
    check_layout(&e, layout, got);
    engine_close(&e);
}

/* Two stage ranks; the coordinator also leaves a submission uncollected,
 * which engine_close takes off the pipeline before stopping it. */
static void mpi_layout(const char *model, const char *adapter, float *got)
{
    struct engine e;
    struct engine_options o;
    struct mm_err err = {{0}};
    options(&o, model, adapter, 2);
    REQUIRE(engine_open_mpi(&e, &o, MPI_COMM_WORLD, 1, &err) == 0, "MPI: %s", err.msg);
    check_layout(&e, "2 stage ranks", got);
    struct pipeline_stage_stats st[2];
    CHECK(pipeline_mpi_stage_stats(e.mpi, st, &err) == 0 && st[0].micro_batches > 0);
    struct rows r;
    prefill_rows(&r, group_b, 2, 0);
    r.n = 1;
    submit(&e, "MPI", &r);
    CHECKF(pipeline_mpi_stage_stats(e.mpi, st, &err) != 0,
           "stage figures asked with a submission in flight");
    engine_close(&e);
}

int main(int argc, char **argv)
{
    /* Alone, MPI stays uninitialised: its start-up allocations read as
     * leaks under LeakSanitizer, which checks the in-process layouts. */
    const int mpi = getenv("OMPI_COMM_WORLD_SIZE") != NULL;
    int rank = 0, world = 1;
    if (mpi) {
        MPI_Init(&argc, &argv);
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        MPI_Comm_size(MPI_COMM_WORLD, &world);
    }
    REQUIRE(world == 1 || world == 3, "run alone or under mpirun -np 3 (got %d ranks)", world);
    char model[1200], adapter[1300];
    test_path("MEMLLM_FIXTURES", "models/tiny-mistral", model, sizeof(model));
    snprintf(adapter, sizeof(adapter), "%s/adapter", model);
    struct engine_options o;
    struct engine e;
    struct mm_err err = {{0}};
    if (rank > 0) {
        options(&o, model, adapter, 2);
        int rc = engine_serve_stage(&o, rank - 1, MPI_COMM_WORLD, 0, 1, &err);
        REQUIRE(rc == 0, "stage %d: %s", rank - 1, err.msg);
        MPI_Finalize();
        return 0;
    }
    options(&o, model, adapter, 1);
    REQUIRE(engine_open(&e, &o, &err) == 0, "%s", err.msg);
    vocab = e.vocab;
    make_tokens();
    ref_prefill = malloc((size_t)MAX_ROWS * (size_t)vocab * sizeof(float));
    REQUIRE(ref_prefill, "out of memory");
    for (int t = 0; t < DECODE; t++)
        REQUIRE((ref_step[t] = malloc((size_t)N_SEQ * (size_t)vocab * sizeof(float))), "oom");
    reference_run(&e, ref_prefill, ref_step);
    float *got = malloc((size_t)MAX_ROWS * (size_t)vocab * sizeof(float));
    REQUIRE(got, "out of memory");
    flowing_run(&e, "1 stage", got);
    engine_close(&e);
    local_layout(model, adapter, 2, "2 stages in one process", got);
    if (world == 3) mpi_layout(model, adapter, got);
    free(got);
    free(ref_prefill);
    for (int t = 0; t < DECODE; t++)
        free(ref_step[t]);
    int rc = check_report("test_pipeline_flow");
    if (mpi) MPI_Finalize();
    return rc;
}
