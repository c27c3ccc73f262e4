/* The model as the coordinator sees it: tokenizer, adapters, and a forward
 * call over a batch that returns logits.
 *
 * The layers are cut into P pipeline stages (DESIGN.md §4). The stages run
 * either in this process, one after another (the embedded default, and any P
 * without MPI), or on MPI ranks, where each step's batch is cut into
 * micro-batches so that all stages work at once. Either way the same batches
 * reach the same stage code, so the output does not depend on P or on where
 * the stages run. */
#ifndef MEMLLM_COORDINATOR_ENGINE_H
#define MEMLLM_COORDINATOR_ENGINE_H

#include <mpi.h>

#include "err.h"
#include "forward.h"
#include "prefix_cache.h"
#include "tokenizer.h"

#define ENGINE_MAX_ADAPTERS 8
#define ENGINE_MAX_STAGES 64
#define ENGINE_ADAPTER_NAME 64

enum engine_device {
    ENGINE_DEVICE_CPU,
    ENGINE_DEVICE_CUDA, /* each stage on the GPU of its node-local rank */
};

struct engine_options {
    const char *model_path;
    enum engine_device device; /* where the stages compute */
    /* --cuda-fast: GPU stages pick their kernels by batch shape (faster
     * prefill) instead of the default batch-invariant ones, so a token's
     * logits may change with what shares its step (kernels_cuda.h) */
    int cuda_fast;
    /* "DIR" or "NAME=DIR"; a bare DIR is named after its last path part. */
    const char *adapters[ENGINE_MAX_ADAPTERS];
    int n_adapters;
    int merge; /* fold the single adapter into the weights */
    int n_slots;
    int context;  /* 0: the model's maximum */
    int n_stages; /* P; 0 counts as 1 */
    /* First layer of stages 1..P-1 (n_stages - 1 values); none given: even. */
    int split[ENGINE_MAX_STAGES];
    int n_split;
    int micro_batches; /* per step on MPI stages; 0: P */
    /* Prefix sharing (prefix_cache.h): finished sequences' contexts kept
     * for reuse within this many MiB of keys and values (0: 256); off with
     * no_prefix_cache (--no-prefix-cache), for comparison. */
    float kv_cache_mb;
    int no_prefix_cache;
};

struct stage_cuda;

/* A stage run by this process: its layers, adapters and KV cache, on the
 * CPU (stage) or on a GPU (gpu; stage then holds nothing). */
struct engine_stage {
    struct model *model;
    struct lora_adapter adapters[ENGINE_MAX_ADAPTERS];
    int n_adapters;
    struct stage stage;
    struct stage_cuda *gpu;
};

/* Loads layers [begin, end) of the options' model, the adapters' parts for
 * them, and a KV cache, on the options' device (engine_stage.c). */
int engine_stage_open(struct engine_stage *st, const struct engine_options *o, int begin, int end,
                      int n_slots, int context, struct mm_err *err);
void engine_stage_close(struct engine_stage *st);
/* stage_kv_share on whichever device the stage computes (src < 0: empty dst). */
int engine_stage_kv_share(struct engine_stage *st, int dst, int src, int len, struct mm_err *err);
/* stage_forward on whichever device the stage computes. */
int engine_stage_forward(struct engine_stage *st, const struct stage_batch *b, float *hidden,
                         float *logits, struct mm_err *err);
/* An --adapter spec, "DIR" or "NAME=DIR": its name (a bare DIR is named
 * after its last path part) and directory. */
void engine_adapter_name_dir(const char *spec, char *name, size_t name_len, const char **dir);

struct pipeline_mpi;
struct engine_op;
struct engine_fused;

struct engine {
    struct tokenizer *tok;
    struct model_config cfg;
    int vocab;
    int context;
    int n_slots;     /* running sequences */
    int cache_slots; /* after them: parked prefixes (prefix_cache.h) */
    struct prefix_cache prefix;
    struct prefix_stats prefix_stats;
    char adapter_names[ENGINE_MAX_ADAPTERS][ENGINE_ADAPTER_NAME];
    int n_adapters;
    int merged; /* the single adapter is folded into the weights: always on */
    int n_stages;
    int layer_begin[ENGINE_MAX_STAGES + 1]; /* stage i: [layer_begin[i], layer_begin[i+1]) */
    struct engine_stage *local;             /* [n_stages] when the stages run here */
    float *hidden;                          /* between local stages */
    int hidden_cap;
    struct pipeline_mpi *mpi; /* when the stages are ranks */
    /* Local stages: submitted batches not yet run, each followed by the KV
     * shares asked after it; a ring, oldest at ops_head. */
    struct engine_op *ops;
    int ops_cap, ops_head, ops_count, ops_batches;
    struct engine_fused *fused; /* batches at the head run as one, ahead */
    /* How many groups of sequences the scheduler keeps in flight, each its
     * own batch (scheduler.h): 1 for stages in this process, where a whole
     * step is one forward; on MPI ranks the micro-batch count, so that every
     * stage has work while a group's logits are sampled. */
    int flow_groups;
};

/* All stages in this process. */
int engine_open(struct engine *e, const struct engine_options *o, struct mm_err *err);
/* Stages on ranks first_rank .. first_rank + P - 1 of comm, each running
 * engine_serve_stage with the same options; returns once all have loaded
 * their layers. */
int engine_open_mpi(struct engine *e, const struct engine_options *o, MPI_Comm comm, int first_rank,
                    struct mm_err *err);
/* Stops the stages (MPI: tells the stage ranks to finish) and frees. */
void engine_close(struct engine *e);

/* A stage rank's life: loads stage `index` of the options' layout and
 * serves batches from the previous rank until the coordinator closes the
 * engine. Returns 0, or -1 with err set. */
int engine_serve_stage(const struct engine_options *o, int index, MPI_Comm comm, int coordinator,
                       int first_rank, struct mm_err *err);

/* Index of the adapter called `name`, -1 with err set if none. */
int engine_adapter(const struct engine *e, const char *name, struct mm_err *err);

/* Slot dst's keys and values become slot src's first len positions on
 * every stage (shared pages on a CPU stage, a copy on a GPU); src < 0
 * empties dst. The caller knows src holds len positions. It takes effect
 * after the batches submitted before it and before those submitted after
 * (engine_submit); a failure then shows at the collect of the batch
 * before it. */
int engine_kv_share(struct engine *e, int dst, int src, int len, struct mm_err *err);

/* The KV cache's memory, over the stages in this process on the CPU
 * (kv_cache_memory: the pages' peak, and what one matrix per running slot
 * would have held); -1 where the stages are elsewhere (ranks, a GPU). */
int engine_kv_memory(const struct engine *e, int64_t *paged, int64_t *contiguous);

/* Runs the batch through every stage; logits of the rows that want them
 * (b->logits, NULL: all), in batch order. On MPI ranks the batch is cut
 * into micro-batches (engine_options.micro_batches) submitted and
 * collected together. Refused while submissions are in flight. */
int engine_forward(struct engine *e, const struct stage_batch *b, float *logits,
                   struct mm_err *err);

/* The asynchronous form: engine_submit hands the batch to the stages and
 * returns without its logits (MPI: sent to the first stage as one
 * micro-batch; local stages: copied, to run at its collect, together with
 * the batches submitted after it up to a KV share or a slot in two of
 * them, as one forward: every row's logits are those of its batch alone,
 * bit for bit, as the kernels are batch-invariant), so that a caller keeps
 * several batches in flight and the stages never wait for a whole step. engine_collect writes the
 * logits of the oldest submission not yet collected (first in, first out), as engine_forward would
 * have for that batch, bit for bit, and returns their row count; -1 with err set when it failed (on
 * ranks the job then stops at engine_close, as after a failed forward). */
int engine_submit(struct engine *e, const struct stage_batch *b, struct mm_err *err);
int engine_collect(struct engine *e, float *logits, struct mm_err *err);
/* Submissions not yet collected. */
int engine_in_flight(const struct engine *e);

#endif
