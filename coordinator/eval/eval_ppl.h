/* memllm eval ppl's measure: perplexity over a document's text with and
 * without memory reads (DESIGN.md §7; MemLLM's Table 2).
 *
 * A document's text (its sentences joined by spaces) is tokenized in
 * pieces cut at its mentions, the space before a mention going with it (as
 * BPE's pre-tokenizer cuts there anyway), so every token is known to be in
 * an entity mention or not. Three classes of tokens are scored:
 *   OVERALL: every text token but the first;
 *   ENTITY:  the tokens of every entity mention;
 *   TARGET:  the tokens of the mentions before which Algorithm 1 places a
 *            read (the first unseen mention of an entity related to earlier
 *            ones: mr_plan_document), the same tokens whatever the reads.
 * Memory API tokens are never scored; perplexity is exp(mean NLL).
 *
 * Reads:
 *   none:  the text alone;
 *   gold:  at each of Algorithm 1's read points the call " ({MEM_READ(q)-->a})"
 *          with the queries and answers `memllm data mr` writes (answers
 *          from the memory given to mr_plan_document), tokenized as the
 *          training examples are; only the latest read stays in the context;
 *   model: wherever the model's most likely next token opens a read ("({",
 *          or a lone space followed by "({"), it writes the call greedily,
 *          the read loop's memllm_read_answer answers it from the memory and
 *          "answers})" follow; no answer (or a malformed call) drops the
 *          read and the text goes on as if none had been tried; only the
 *          latest read stays in the context. */
#ifndef MEMLLM_COORDINATOR_EVAL_PPL_H
#define MEMLLM_COORDINATOR_EVAL_PPL_H

#include <jansson.h>
#include <stdint.h>

#include "engine.h"
#include "err.h"
#include "memory_client.h"
#include "tokenizer.h"
#include "train_examples_doc.h"

enum { PPL_OVERALL, PPL_ENTITY, PPL_TARGET, PPL_CLASSES };
#define PPL_IS_ENTITY 1
#define PPL_IS_TARGET 2

struct ppl_doc {
    int32_t *tok; /* the text, BOS first where the tokenizer adds one */
    uint8_t *cls; /* per token: PPL_IS_ENTITY | PPL_IS_TARGET */
    int n;
    int first;      /* the first scored token (1) */
    int *read_at;   /* [n_reads] the token each gold read stands before */
    int32_t **call; /* [n_reads] the gold call's tokens */
    int *n_call;
    int n_reads;
};

/* Tokenizes plan p's text and gold calls. */
int ppl_doc_build(struct ppl_doc *pd, const struct mr_plan *p, const struct tokenizer *tok,
                  struct mm_err *err);
void ppl_doc_free(struct ppl_doc *pd);

enum ppl_reads { PPL_READS_NONE, PPL_READS_GOLD, PPL_READS_MODEL };

struct ppl_options {
    enum ppl_reads reads;
    int adapter;                   /* engine adapter index, -1: the base model */
    struct mm_memory *mem;         /* model reads: the memory answering them */
    struct mm_query_options query; /* and its thresholds */
    int max_call_tokens;           /* model reads: a call longer than this is dropped */
};

struct ppl_counts {
    double nll[PPL_CLASSES];
    int64_t n[PPL_CLASSES];
    int64_t documents, reads, dropped; /* reads answered, and tried but dropped */
};

/* Scores one document into c; with trace (a JSON array) each read is
 * appended as {"at": token, "call": ..., "answers": ...}. */
int ppl_score_document(struct engine *e, const struct ppl_doc *pd, const struct ppl_options *o,
                       struct ppl_counts *c, json_t *trace, struct mm_err *err);

/* exp(mean NLL) of class k, 0 when it has no token. */
double ppl_of(const struct ppl_counts *c, int k);

#endif
