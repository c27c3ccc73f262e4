/* memllm eval edit's cases and scoring: counterfactual knowledge edits on
 * the facts of the evaluation documents (MemLLM §5.3; WISE's protocol of
 * T sequential edits).
 *
 * A case is a gold fact (s, r, o) of a chosen document, one per distinct
 * (s, r), with o' an object of the same relation r in another document
 * whose name is none of (s, r)'s objects' names. The edit replaces every
 * (s, r, *) in the memory with (s, r, o'). Each case is asked with
 *   reliability: "The r of s is "      (the edited prompt; "The r s is " for
 *                                      an r ending in " of"),
 *   generality:  "The r of A is " with A another mention name of s in its
 *                document, else the fact in words ("s was born in " for
 *                place of birth; 40 relations), else "s's r is ",
 * ending in a space, as the MR examples end the text before a read. An
 * answer is the generated text without its API spans and leading spaces;
 * it says a name when it starts with it (case and white space ignored,
 * the name followed by a non-alphanumeric character or the end). Cases are
 * shuffled by the seed: the first T are the edits. Locality is probed with
 * facts the edits do not touch (edit_case_touches), from the documents not
 * evaluated (else the later cases of those evaluated), asked with the
 * reliability template. */
#ifndef MEMLLM_COORDINATOR_EVAL_EDIT_H
#define MEMLLM_COORDINATOR_EVAL_EDIT_H

#include <jansson.h>
#include <stdint.h>

#include "err.h"

struct edit_case {
    char *s, *r, *o; /* the gold fact, canonical names as memory import-docred writes them */
    char *o_new;     /* o' */
    char **o_names;  /* every mention name of every object of (s, r) in the document */
    int n_o_names;
    char **new_names; /* o''s mention names */
    int n_new_names;
    char *alias; /* another mention name of s; NULL: none */
    int doc;     /* its document's index in the file */
};

struct edit_cases {
    struct edit_case *c;
    int n;
};

/* The cases of the chosen documents of `all` (a DocRED array; chosen[i]:
 * document i is evaluated; o' comes from any other document), props:
 * relation id -> label. Names or labels the API cannot carry are skipped.
 * Deterministic in (all, chosen, seed). */
int edit_cases_build(json_t *all, const char *chosen, json_t *props, uint64_t seed,
                     struct edit_cases *out, struct mm_err *err);
void edit_cases_free(struct edit_cases *x);

/* Whether an entity of the probe (s, or a name of one of its objects) is
 * named s, o or o' by one of the n edits. */
int edit_case_touches(const struct edit_case *probe, const struct edit_case *edits, int n);

/* The case's prompt (malloc'd; NULL: out of memory): reliability's, or
 * with `general` generality's. */
char *edit_case_prompt(const struct edit_case *c, int general);

/* Whether `answer` (as edit_answer gives it) says one of the n names. */
int edit_answer_says(const char *answer, char *const *names, int n);

/* The answer of generated `text` (malloc'd; NULL: out of memory): without
 * API spans and leading white space. */
char *edit_answer(const char *text);

#endif
