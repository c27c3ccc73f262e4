/* The record of the documents an annotate job finished, DIR/annotate.done:
 * what makes `memllm annotate` and memllm serve's annotate jobs resumable.
 *
 * A document's id is appended (and fsynced) only after the memory
 * acknowledged all its facts. A restarted job skips the documents listed
 * and redoes any other, which is harmless: a fact written again only gains
 * provenance, and provenance is kept once per (source, sentence). A last
 * line without its newline was cut short by a crash: not finished. */
#ifndef MEMLLM_COORDINATOR_ANNOTATE_DONE_H
#define MEMLLM_COORDINATOR_ANNOTATE_DONE_H

#include <stddef.h>

#include "err.h"
#include "id_set.h"

#define ANNOTATE_DONE_FILE "annotate.done"

struct annotate_done {
    struct id_set ids;
    int fd;
    char path[4096];
};

/* Reads dir/annotate.done (dir is created if missing) and opens it for
 * appending. */
int annotate_done_open(struct annotate_done *d, const char *dir, struct mm_err *err);
/* Records a finished document. */
int annotate_done_record(struct annotate_done *d, const char *id, struct mm_err *err);
void annotate_done_close(struct annotate_done *d);

#endif
