/* MemLLM's training examples from DocRED / Re-DocRED documents (DESIGN.md
 * §7), as `memllm data` writes them for `memllm train` (train_data.h reads
 * them back): one JSON object a line,
 *   {"kind": "mw"|"mr", "doc": index, "title": ..., "segments": [{"text", "loss"}, ...]}.
 *
 * MW, one example per sentence i: the write loop's prompt (the preceding
 * sentences, "({USER_ST})", sentence i, "({USER_END})({MEM_WRITE-->"; no
 * loss) and the answer "s>>r>>o;...})" (loss): the relations whose evidence
 * holds sentence i, both of whose entities have been mentioned by the end of
 * sentence i and one of them in it, named by their canonical names (the
 * first mention, as `memory import-docred` names them) and the relation's
 * Wikidata label, in order of their first mention in the sentence.
 * Sentences with no such relation train the empty answer "})": that is how
 * the model learns to write nothing.
 *
 * MR, the paper's Algorithm 1: walk the entity mentions in text order; a
 * mention whose text has not appeared before, of an entity e related by a
 * label to entities already mentioned, is a read point. Its queries name
 * the other entity and the relation ("h>>r>>" when e is the object,
 * ">>r>>t" when it is the subject, too-broad reverse ones dropped); each
 * runs against a memory holding the documents' gold facts (`memory
 * import-docred`), those answered by more than 30 entities are dropped, the
 * rest ranked by fewest answers, at most 3 kept. Their distinct answers (at
 * most 30) are the read's result, or e's name when all came back empty.
 * One example per read point: the text before it (no loss), the call
 * "({MEM_READ(q1;q2)-->" (loss), the answers and "})" (no loss: the runtime
 * writes them), and the text on to the next read point (loss).
 *
 * Text, the plain-text baseline: one example per document, its text, all
 * loss. */
#ifndef MEMLLM_COORDINATOR_TRAIN_EXAMPLES_H
#define MEMLLM_COORDINATOR_TRAIN_EXAMPLES_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"
#include "memory_client.h"
#include "tokenizer.h"

/* MW examples with this many relations or more are dropped (the paper's). */
#define MW_MAX_RELATIONS 32

struct examples_options {
    int window;                  /* preceding sentences in MW prompts; -1: all */
    const struct tokenizer *tok; /* NULL: no token counts, no length limit */
    int max_tokens;              /* with tok: an example's limit */
};

struct examples_counts {
    int64_t documents, examples, tokens;
    int64_t empty;          /* MW examples with no relation (kept) */
    int64_t many_relations; /* dropped: MW_MAX_RELATIONS or more */
    int64_t too_long;       /* dropped: over max_tokens even with no pretext */
    int64_t shortened;      /* kept with fewer preceding sentences */
    int64_t broad;          /* MR queries dropped as too broad */
    int64_t crowded;        /* MR queries dropped: more than 30 answers */
    int64_t gold;           /* MR reads answered with the gold target (all empty) */
};

/* Which of n documents go to validation (is_val[i] = 1, malloc'd; NULL
 * when out of memory): the first `val` of a shuffle drawn from the seed
 * (Fisher-Yates), so every kind of example, and memllm eval, split alike. */
char *examples_validation_set(size_t n, int val, int seed);

/* Writes document `doc` (a DocRED object, the index-th of its file) as MW
 * examples to out. props: relation id -> label. A malformed document fails,
 * naming the field. */
int examples_mw(FILE *out, json_t *doc, size_t index, json_t *props,
                const struct examples_options *o, struct examples_counts *c, struct mm_err *err);

/* Writes document `doc` as one plain-text example (the baseline without
 * memory): its sentences joined by spaces, every token a target. A
 * document longer than o->max_tokens is counted as too long and skipped. */
int examples_text(FILE *out, json_t *doc, size_t index, const struct examples_options *o,
                  struct examples_counts *c, struct mm_err *err);

/* Writes document `doc` as MR examples, reading the answers from mem. */
int examples_mr(FILE *out, json_t *doc, size_t index, json_t *props, struct mm_memory *mem,
                const struct examples_options *o, struct examples_counts *c, struct mm_err *err);

#endif
