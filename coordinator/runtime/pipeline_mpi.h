/* Pipeline stages on MPI ranks (DESIGN.md §4).
 *
 * The coordinator cuts each step's batch into micro-batches along sequence
 * boundaries and sends them all to the first stage without waiting; every
 * stage rank receives a micro-batch, runs its layers, passes the
 * activations on with a non-blocking send and takes the next, so that with
 * M micro-batches all P stages work at once except during the (P-1)-step
 * fill and drain. The last stage sends each micro-batch's logits back, also
 * without waiting. Through pipeline_mpi_submit/collect the coordinator
 * instead sends micro-batches of its own making and takes their results
 * one at a time, first in, first out, so that a micro-batch's next step
 * can start while the others are still in flight: no fill and drain per
 * step.
 *
 * Messages (tags below), all raw buffers:
 *   batch:  int32 header + tokens, positions, slots, adapters, logit flags
 *   hidden: n x dim floats (not to the first stage)
 *   result: int32 header to the coordinator, then n_logits x vocab floats
 *           or, on failure, the error text
 *   kv share: int32 header (destination, source and length in place of n,
 *           n_logits, has_adapter): shares KV pages between slots
 * A stop message travels the pipeline when the coordinator closes it. */
#ifndef MEMLLM_COORDINATOR_PIPELINE_MPI_H
#define MEMLLM_COORDINATOR_PIPELINE_MPI_H

#include <mpi.h>

#include "engine.h"
#include "err.h"
#include "forward.h"

struct pipeline_mpi;

/* Returns once every stage rank has loaded its layers and said so. */
struct pipeline_mpi *pipeline_mpi_open(MPI_Comm comm, int first_rank, int n_stages, int dim,
                                       int vocab, int micro_batches, struct mm_err *err);
/* Takes any uncollected results, sends the stop message down the
 * pipeline and frees. */
void pipeline_mpi_close(struct pipeline_mpi *p);

/* One step: the batch cut into micro-batches, all sent, all results
 * awaited. Refused while submissions are in flight. */
int pipeline_mpi_forward(struct pipeline_mpi *p, const struct stage_batch *b, float *logits,
                         struct mm_err *err);

/* The batch as one micro-batch to the first stage, sent without waiting
 * (the message is kept until the send completes). */
int pipeline_mpi_submit(struct pipeline_mpi *p, const struct stage_batch *b, struct mm_err *err);
/* The logits of the oldest submission not yet collected, into logits;
 * returns their row count, or -1 with err set (a stage failed: the
 * pipeline is then broken and pipeline_mpi_close stops the job). */
int pipeline_mpi_collect(struct pipeline_mpi *p, float *logits, struct mm_err *err);
/* Submissions whose results have not been collected. */
int pipeline_mpi_in_flight(const struct pipeline_mpi *p);

/* engine_kv_share on the stage ranks: a message that travels the pipeline
 * in order with the batches, so every stage applies it between the same
 * two batches. */
int pipeline_mpi_kv_share(struct pipeline_mpi *p, int dst, int src, int len, struct mm_err *err);

/* A stage rank's loop: says it is ready, then serves until the stop
 * message. */
int pipeline_mpi_serve(struct engine_stage *s, MPI_Comm comm, int coordinator, int first_rank,
                       int index, int n_stages, struct mm_err *err);

/* Figures for the benchmark: the coordinator's time in forward calls, and
 * each stage's time computing and waiting, since the pipeline opened.
 * micro_batches counts submissions too. */
struct pipeline_mpi_stats {
    long steps, micro_batches;
    double seconds; /* in pipeline_mpi_forward */
};
struct pipeline_stage_stats {
    long micro_batches;
    double compute_s;  /* in stage_forward */
    double wait_s;     /* waiting for the previous rank */
    double sent_bytes; /* activations to the next rank, or logits back */
};
void pipeline_mpi_get_stats(const struct pipeline_mpi *p, struct pipeline_mpi_stats *st);
/* Asks every stage for its figures (a message that travels the pipeline
 * like a batch); out has n_stages entries. Refused while submissions are
 * in flight. */
int pipeline_mpi_stage_stats(struct pipeline_mpi *p, struct pipeline_stage_stats *out,
                             struct mm_err *err);

#endif
