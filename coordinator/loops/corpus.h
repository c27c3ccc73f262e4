/* The documents of a corpus for `memllm annotate`, one at a time.
 *
 * A plain text file is one document, named after the file (without its
 * folders) and cut into sentences by the splitter (sentences.h); a .jsonl
 * file holds one document per line, {"id": ..., "text": ...} (id a string
 * or an integer) or DocRED-style {"title": ..., "sents": [[tokens]]} whose
 * sentences are their tokens joined by spaces; a .json file is an array of
 * such documents (the DocRED files themselves). Document ids must be
 * storable texts (they become provenance sources). */
#ifndef MEMLLM_COORDINATOR_CORPUS_H
#define MEMLLM_COORDINATOR_CORPUS_H

#include <jansson.h>
#include <stdint.h>

#include "err.h"

struct corpus_doc {
    char *id;
    char **sentences; /* one line each */
    int n_sentences;
};

void corpus_doc_free(struct corpus_doc *d);

/* One document object, {"id", "text"} or {"title", "sents": [[tokens]]}, as
 * the files hold them (memllm serve's annotate takes them posted); errors
 * begin with `where`. */
int corpus_doc_from_json(struct corpus_doc *d, const json_t *obj, const char *where,
                         struct mm_err *err);

struct corpus;

/* The files are read in order; paths are borrowed. */
struct corpus *corpus_open(char **paths, int n, struct mm_err *err);
/* The next document: 1, 0 at the end, -1 on error (naming file and line or
 * element). *d is always safe to free with corpus_doc_free. */
int corpus_next(struct corpus *c, struct corpus_doc *d, struct mm_err *err);
void corpus_close(struct corpus *c);

/* How many documents the files hold (for a progress bar). */
int corpus_count(char **paths, int n, int64_t *total, struct mm_err *err);

#endif
