/* The MemLLM memory-write loop (DESIGN.md §2, §7).
 *
 * Every sentence of a document becomes one generation request, prompted as
 * the write model was trained:
 *
 *     <pretext>({USER_ST})<sentence>({USER_END})({MEM_WRITE-->
 *
 * where the pretext is the preceding sentences of the document (at most
 * `window` of them) joined by spaces. The model answers with
 * "s>>r>>o;s>>r>>o;...})"; decoding is greedy with late stopping
 * (late_stop.h), the answer is split at ";", malformed items are counted and
 * dropped, and the facts are written to the memory with their provenance
 * (document id, sentence index). A document's facts are written in one call
 * once all its sentences are done; only then is it reported finished, so a
 * caller that records finished documents never records one whose facts were
 * not acknowledged.
 *
 * The sentences of all queued documents run together in the scheduler
 * (continuous batching), so many documents are in flight at once.
 *
 * "})" is found in the decoded text, so a model whose tokenizer has the
 * MemLLM tokens and one that spells them with ordinary tokens both work;
 * late stopping needs "})" (or " })") to be one token and is off otherwise.
 *
 * A write that repeats itself ends: once `repeats` items in a row (each
 * closed by ";") repeat earlier items of the same write, decoding on to the
 * token limit mostly writes the same items again (a looping write is how
 * the committed MW adapter fails to close the call: most of its writes ran
 * to the limit). It ends there (finish "repeat") and keeps everything it
 * wrote, without late stopping's cut: those cuts are where the model would
 * have closed, and a looping write went on to write more items after them.
 * On the 50 validation documents (README, "The write loop") the rule at
 * its default of 1 cut the tokens generated 102,125 -> 18,664 and raised
 * extraction F1 0.136 -> 0.164; F1 hardly moves with the setting (0.163 to
 * 0.169 for 1 to 8), the tokens do. */
#ifndef MEMLLM_COORDINATOR_MEMLLM_WRITE_H
#define MEMLLM_COORDINATOR_MEMLLM_WRITE_H

#include <stdint.h>

#include "engine.h"
#include "memory_client.h"
#include "scheduler.h"
#include "triple_text.h"

#define MW_DEFAULT_REPEATS 1

struct mw_options {
    int delay;      /* late stopping: cut points to compare (0: stop at the first "})") */
    int max_tokens; /* generated tokens per sentence */
    int window;     /* preceding sentences in the pretext; -1: context / 40 as the original */
    int adapter;    /* engine adapter index of the write model, -1: base model */
    int repeats;    /* items in a row that repeat earlier ones before the write ends (0: never) */
};

/* delay 5, 256 tokens, window -1, base model, repeats MW_DEFAULT_REPEATS. */
void mw_options_default(struct mw_options *o);

/* A document as the caller holds it; the writer borrows it until the run
 * that processes it ends. */
struct mw_document {
    const char *id; /* the provenance source of its facts */
    const char *const *sentences;
    int n_sentences;
};

/* The prompt of sentence i with the preceding sentences from `first` on
 * (malloc'd): what the loop sends, and what `memllm data mw` trains on. */
char *memllm_write_prompt(const struct mw_document *d, int first, int i, struct mm_err *err);

/* One sentence's outcome (valid during the callback). */
struct mw_sentence_result {
    const struct mw_document *doc;
    int sentence;
    const char *written;   /* what the model wrote, cut where late stopping chose */
    const char *generated; /* all it generated, before that cut */
    const struct mm_triple_text *facts;
    int n_facts;
    int malformed; /* items that are not s>>r>>o with storable texts */
    int cuts;      /* late-stopping cut points recorded */
    /* Each cut: its position in `generated` and its score (late_stop.h). */
    const size_t *cut_at;
    const double *cut_score;
    int tokens; /* generated */
    const char *finish;
};

struct mw_callbacks {
    /* After each sentence (may be NULL). */
    int (*sentence)(void *ctx, const struct mw_sentence_result *r, struct mm_err *err);
    /* After a document's facts were acknowledged by the memory (may be NULL). */
    int (*document)(void *ctx, const struct mw_document *doc, struct mm_err *err);
    void *ctx;
};

struct mw_stats {
    int64_t documents, sentences;
    int64_t prompt_tokens, tokens; /* read (the prompts) and generated */
    int64_t skipped;               /* sentences whose prompt alone exceeds half the context */
    int64_t facts; /* well-formed items written (with repeats within a sentence dropped) */
    int64_t malformed;
};

struct memllm_writer;

struct memllm_writer *memllm_writer_new(struct engine *e, struct mm_memory *m,
                                        const struct mw_options *o, const struct mw_callbacks *cb,
                                        struct mm_err *err);
void memllm_writer_free(struct memllm_writer *w);

/* Queues a document: one request per sentence. Documents are reported (the
 * sentence callbacks in sentence order, the facts written, the document
 * callback) in the order queued, whatever order their sentences finish in;
 * a document without sentences to run is reported as soon as those before
 * it are (at once, if they are). Not during a run. */
int memllm_writer_add(struct memllm_writer *w, const struct mw_document *doc, struct mm_err *err);

/* The queued requests (for a caller that runs the scheduler itself with
 * hooks that wrap the writer's). */
const struct gen_request *memllm_writer_requests(const struct memllm_writer *w, int *n);

/* Scheduler hooks (ctx: the writer). */
int memllm_write_before_sample(void *ctx, struct gen_sequence *s, const float *logits,
                               struct mm_err *err);
int memllm_write_on_token(void *ctx, struct gen_sequence *s, int32_t token, const char *piece,
                          size_t len, struct mm_err *err);
int memllm_write_on_finish(void *ctx, struct gen_sequence *s, struct mm_err *err);

/* Runs the queued requests with the writer's hooks. */
int memllm_writer_run(struct memllm_writer *w, int max_batch_tokens, struct mm_err *err);

/* Forgets the queued documents (after a run, before the caller frees them). */
void memllm_writer_clear(struct memllm_writer *w);

const struct mw_stats *memllm_writer_stats(const struct memllm_writer *w);

#endif
