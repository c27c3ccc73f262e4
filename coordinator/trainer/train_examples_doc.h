/* Shared by train_examples_mw.c and train_examples_mr.c: a DocRED
 * document checked and flattened, and how an example line is written. */
#ifndef MEMLLM_COORDINATOR_TRAIN_EXAMPLES_DOC_H
#define MEMLLM_COORDINATOR_TRAIN_EXAMPLES_DOC_H

#include "train_examples.h"

/* A DocRED document, checked and flattened. */
struct doc {
    char **sents; /* tokens joined by spaces, as `memllm annotate` reads them */
    int n_sents;
    char **names;    /* [entities] canonical names; NULL: none */
    int *first_sent; /* [entities] */
    int n_entities;
    json_t *tokens, *vertex, *labels; /* the document's "sents", "vertexSet", "labels" */
};

/* Reads and checks every field the examples use, so that a bad document
 * fails whole and names what is wrong. */
int doc_read(struct doc *d, json_t *j, struct mm_err *err);
void doc_free(struct doc *d);

/* Label l's entities and relation label (props: id -> label; an id not
 * in it stands for itself). */
void doc_label(const struct doc *d, size_t l, json_t *props, int *h, int *t, const char **r);

/* Whether a name or label can be carried by the API (no separators in it). */
int api_safe(const char *s);

/* Writes one JSONL line {"kind", "doc", "title", "segments"} (takes
 * segments). With o->tok the line's tokens are counted as `memllm train`
 * counts them (train_example_parse) into *tokens, and a line of more than
 * o->max_tokens is not written. 1: written, 0: too long, -1: error. */
int put_example(FILE *out, const char *kind, size_t index, const char *title, json_t *segments,
                const struct examples_options *o, int64_t *tokens, struct mm_err *err);

/* The paper's Algorithm 1 over a document (train_examples.h, MR): its
 * text, its mentions in text order, and its read points, each with the
 * queries and the memory's answers (or the gold target) that `memllm data
 * mr` writes and that `memllm eval ppl` inserts. */
struct mr_mention {
    int entity;
    int start, end; /* byte offsets in the document text */
};
struct mr_read {
    int at;      /* text offset the read stands before: a mention's start */
    int mention; /* that mention's index */
    char *queries, *answers;
};
struct mr_plan {
    char *text; /* the sentences joined by spaces */
    struct mr_mention *m;
    int n_m;
    struct mr_read *rp;
    int n_rp;
};
int mr_plan_document(struct mr_plan *p, const struct doc *d, json_t *props, struct mm_memory *mem,
                     struct examples_counts *c, struct mm_err *err);
void mr_plan_free(struct mr_plan *p);

#endif
