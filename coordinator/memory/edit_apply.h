/* Knowledge edits applied as one batch with its undo record (edit_log.h):
 * what `memllm edit` does with an edit file, and what `memllm eval edit`
 * does with each counterfactual edit. */
#ifndef MEMLLM_COORDINATOR_EDIT_APPLY_H
#define MEMLLM_COORDINATOR_EDIT_APPLY_H

#include <jansson.h>
#include <stdint.h>

#include "edit_log.h"
#include "memory_client.h"
#include "triple_text.h"

enum edit_op { EDIT_ADD, EDIT_REPLACE, EDIT_DELETE };

struct edit {
    enum edit_op op;
    struct mm_triple_text t;
    int line; /* its line in the edit file: the provenance's sentence */
};

/* One edit as `memllm edit` files and POST /v1/memory/edits give it:
 * {"op": "add"|"replace"|"delete", "fact": "s>>r>>o"}. The message does
 * not name where it came from (the caller prefixes that). */
int edit_from_json(const json_t *j, int line, struct edit *e, struct mm_err *err);

struct edit_counts {
    uint64_t added, existing, replaced, removed, deleted, not_found;
};

/* Records the state of every fact the edits can touch in dir/edits, then
 * applies them in order, runs of one kind in one call where the client
 * allows; the facts added carry the provenance "edit:<batch id>" and their
 * line. The batch id goes to id (empty until the record exists: after a
 * failure with an id, edit_apply_undo(id) restores the memory). file: the
 * name the record gives the edits' origin. */
int edit_apply(struct mm_memory *m, const char *dir, const char *file, const struct edit *edits,
               int n, char id[EDIT_BATCH_ID_MAX], struct edit_counts *c, struct mm_err *err);

/* Undoes batch id of dir/edits (refused when it is undone already);
 * *restored: facts written back, *removed: facts the batch had added. */
int edit_apply_undo(struct mm_memory *m, const char *dir, const char *id, size_t *restored,
                    size_t *removed, struct mm_err *err);

#endif
