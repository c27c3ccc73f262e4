/* Continuous batching: many generation requests share the engine. Each step
 * builds one batch from every active sequence (one token for those that are
 * decoding, a chunk of prompt for those still reading it), runs the forward
 * pass once, samples for the sequences that reached their end, and lets
 * finished sequences leave and queued ones join between steps.
 *
 * On pipeline stages that are MPI ranks the slots are cut into groups
 * (engine.flow_groups, one per micro-batch) and each group steps on its
 * own: its batch is submitted, and when its logits come back its sequences
 * sample, leave and join, and its next batch goes at once, while the other
 * groups' batches are still in the stages (engine_submit). No step waits
 * for a whole batch to drain the pipeline, and a hook that takes its time
 * (a memory read) holds up only its own group. The kernels are
 * batch-invariant, so each sequence's tokens are those of one whole step.
 *
 * A sequence is its whole context `tokens` plus `n_past`, how many of them
 * the KV cache holds. Whatever lies beyond n_past is fed next step. This is
 * what lets the MemLLM loops edit a running sequence from the on_token hook:
 * appending tokens inserts text, and shortening `tokens` (with n_past
 * lowered to match) rolls the sequence and its caches back. */
#ifndef MEMLLM_COORDINATOR_SCHEDULER_H
#define MEMLLM_COORDINATOR_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "sampling.h"
#include "tokenizer.h"

struct gen_request {
    const int32_t *prompt;
    int n_prompt;
    int max_tokens;
    struct sampler_params sampling;
    int adapter;             /* engine adapter index, -1: base model */
    const char *const *stop; /* stop strings */
    int n_stop;
    const int32_t *stop_tokens; /* ending tokens besides EOS (not part of the text) */
    int n_stop_tokens;
    void *user;
};

struct gen_sequence {
    const struct gen_request *req;
    int index; /* in the request array */
    int slot;
    int32_t *tokens;
    /* text_len after each token of the context (0 for the prompt's), so
     * that cutting the context back also cuts the text it produced. */
    size_t *text_at;
    int n_tokens, cap_tokens;
    int n_past;
    int n_generated;
    float *logprobs; /* [n_generated]: each generated token's log-probability */
    struct sampler sampler;
    struct tok_decoder dec;
    char *text; /* generated text so far, NUL-terminated */
    size_t text_len, text_cap;
    int32_t banned[4]; /* tokens forbidden for the next sample only */
    int n_banned;
    const char *finish; /* NULL while running: "stop", "length", "eos", or a hook's own */
};

struct scheduler_hooks {
    /* When a sequence's next-token logits are ready, before sampling. May
     * ban tokens for this sample (s->banned) or edit the sequence. Returns 0
     * to sample, 1 to skip sampling this step (the sequence edited itself and
     * feeds its new tokens next step), -1 to abort. */
    int (*before_sample)(void *ctx, struct gen_sequence *s, const float *logits,
                         struct mm_err *err);
    /* After each sampled token is appended (and its text decoded). `piece` is
     * the text it added. May edit the sequence, or end it by setting
     * s->finish (it leaves, through on_finish, as soon as the hook returns);
     * returns -1 to abort. */
    int (*on_token)(void *ctx, struct gen_sequence *s, int32_t token, const char *piece,
                    size_t piece_len, struct mm_err *err);
    /* When a sequence finishes, before its slot is reused. */
    int (*on_finish)(void *ctx, struct gen_sequence *s, struct mm_err *err);
    void *ctx;
};

/* Appends a token to a sequence's context (growing it). */
int gen_sequence_push(struct gen_sequence *s, int32_t token, struct mm_err *err);

/* Appends tokens that were not sampled (the MemLLM read loop's answers)
 * and the text they stand for. */
int gen_sequence_insert(struct gen_sequence *s, const int32_t *tokens, int n, const char *text,
                        size_t len, struct mm_err *err);

/* Rolls the sequence back to its first n tokens (n > 0): later tokens and
 * the text they added go, and the caches follow on the next step, which
 * re-feeds the last kept token to get its logits again. */
void gen_sequence_truncate(struct gen_sequence *s, int n);

/* Removes context tokens [from, to) (the text stays: it is history, the
 * context is what the model sees). Everything after `from` is fed again. */
void gen_sequence_cut(struct gen_sequence *s, int from, int to);

/* How many bytes at the end of the sequence's text could still become the
 * start of one of its stop strings: a stream holds them back, so that what
 * it has sent never has to be taken back. */
size_t gen_sequence_stop_prefix(const struct gen_sequence *s);

/* Runs every request to completion. max_batch_tokens bounds one step's
 * batch (and so the scratch memory). */
int scheduler_run(struct engine *e, const struct gen_request *reqs, int n_reqs,
                  int max_batch_tokens, const struct scheduler_hooks *hooks, struct mm_err *err);

/* Where scheduler_serve takes its requests from, between steps: a service's
 * queue that clients fill while the batch runs. */
struct gen_source {
    /* The next request to start, with the index its sequence carries
     * (gen_sequence.index, what the hooks see), or NULL when none is ready.
     * With `wait` (no sequence is running) it blocks until one is; NULL
     * then means none will come again and the run ends. The request must
     * stay valid until its sequence has finished (on_finish). */
    const struct gen_request *(*next)(void *ctx, int wait, int *index);
    void *ctx;
};

/* Runs the requests `src` hands out as they come, each joining the batch
 * at the first free slot, until it has no more. scheduler_run is this with
 * an array for source. A request must be valid (a prompt shorter than the
 * context, sampling parameters sampler_init takes): one that is not ends
 * the run with an error. */
int scheduler_serve(struct engine *e, const struct gen_source *src, int max_batch_tokens,
                    const struct scheduler_hooks *hooks, struct mm_err *err);

#endif
