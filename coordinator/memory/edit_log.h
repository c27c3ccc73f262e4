/* Undo records of knowledge-edit batches (memllm edit).
 *
 * Before a batch changes anything, the state of every fact it can touch is
 * recorded: for an add or delete of (s, r, o) that fact, for a replace every
 * (s, r, *) and the new (s, r, o); each as absent, or present with all its
 * provenance records. The record is saved durably in
 * DIR/edits/<batch>.json before the first edit is applied, so a batch that
 * was interrupted can be undone too. Undoing deletes every recorded fact and
 * writes back those that were present, with their provenance.
 *
 * What undo cannot restore with the memory client's API:
 *   - provenance times: a write stamps its records with the current time
 *     (struct mm_source has no time), so restored records are new; their
 *     order is kept by writing the k-th record of every fact in round k,
 *     each round in a later millisecond than the one before;
 *   - entities and relation types the batch created: the client cannot
 *     delete them (they hold no facts after the undo, so no dump shows them,
 *     but `memory stats` counts them);
 *   - the reverse copy of a fact keeps the subject's stored name, which may
 *     differ in case or spacing from the text first written with it.
 * Undo restores the facts to their state before the batch, so batches that
 * touch the same facts are undone last first. */
#ifndef MEMLLM_COORDINATOR_EDIT_LOG_H
#define MEMLLM_COORDINATOR_EDIT_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "memory_client.h"

#define EDIT_BATCH_ID_MAX 64

struct edit_fact {
    char *s, *r, *o;
    uint64_t key[3];            /* ids of the three texts: the fact's identity */
    int existed;                /* before the batch */
    struct mm_provenance *prov; /* then, oldest first */
    size_t nprov;
};

struct edit_batch {
    char id[EDIT_BATCH_ID_MAX];
    char *file;  /* the edit file it came from */
    char *state; /* "applying", "applied", "undone" */
    struct edit_fact *facts;
    size_t n, cap;
};

/* Records the current state of (s, r, o), or with o == NULL of every
 * (s, r, *) and nothing else; facts recorded already are kept as they were. */
int edit_snapshot(struct mm_memory *m, struct edit_batch *b, const char *s, const char *r,
                  const char *o, struct mm_err *err);

/* Gives the batch a new id (a time stamp, unique in dir) and saves it. */
int edit_log_create(const char *dir, struct edit_batch *b, struct mm_err *err);
/* Saves the batch (atomically: written aside, then renamed). */
int edit_log_save(const char *dir, const struct edit_batch *b, struct mm_err *err);
int edit_log_load(const char *dir, const char *id, struct edit_batch *b, struct mm_err *err);

/* Restores the recorded facts to their state before the batch. */
int edit_undo(struct mm_memory *m, const struct edit_batch *b, struct mm_err *err);

void edit_batch_free(struct edit_batch *b);

#endif
