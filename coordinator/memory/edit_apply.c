#include "edit_apply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Applies edits [i, j), all of one kind, in one call where the client
 * allows. */
static int apply_run(struct mm_memory *m, const struct edit *edits, int i, int j,
                     const char *source, struct edit_counts *c, struct mm_err *err)
{
    struct mm_fact *f = calloc((size_t)(j - i), sizeof(*f));
    if (!f) {
        mm_err_set(err, "out of memory");
        return -1;
    }
    for (int k = i; k < j; k++) {
        const struct edit *e = &edits[k];
        f[k - i] = (struct mm_fact){e->t.s, e->t.r, e->t.o, {source, e->line, 0}};
    }
    int rc = 0;
    enum edit_op op = edits[i].op;
    if (op == EDIT_ADD) {
        struct mm_write_report rep = {0};
        rc = mm_memory_write(m, f, (size_t)(j - i), NULL, 0, &rep, err);
        c->added += rep.facts_added;
        c->existing += rep.facts_existing;
    } else if (op == EDIT_DELETE) {
        uint64_t deleted = 0;
        rc = mm_memory_delete(m, f, (size_t)(j - i), &deleted, err);
        c->deleted += deleted;
        c->not_found += (uint64_t)(j - i) - deleted;
    } else {
        for (int k = 0; rc == 0 && k < j - i; k++) {
            uint64_t removed = 0;
            rc = mm_memory_replace(m, &f[k], &removed, err);
            c->replaced++;
            c->removed += removed;
        }
    }
    free(f);
    return rc;
}

int edit_apply(struct mm_memory *m, const char *dir, const char *file, const struct edit *edits,
               int n, char id[EDIT_BATCH_ID_MAX], struct edit_counts *c, struct mm_err *err)
{
    struct edit_batch b = {.file = strdup(file), .state = strdup("applying")};
    int rc = b.file && b.state ? 0 : -1;
    id[0] = '\0';
    if (rc) mm_err_set(err, "out of memory");
    /* The state of everything the batch can touch, before it starts. */
    for (int i = 0; rc == 0 && i < n; i++) {
        const struct edit *e = &edits[i];
        if (e->op == EDIT_REPLACE) rc = edit_snapshot(m, &b, e->t.s, e->t.r, NULL, err);
        if (rc == 0) rc = edit_snapshot(m, &b, e->t.s, e->t.r, e->t.o, err);
    }
    if (rc == 0 && (rc = edit_log_create(dir, &b, err)) == 0) memcpy(id, b.id, sizeof(b.id));
    char source[EDIT_BATCH_ID_MAX + 8];
    snprintf(source, sizeof(source), "edit:%s", b.id);
    for (int i = 0, j; rc == 0 && i < n; i = j) {
        for (j = i + 1; j < n && edits[j].op == edits[i].op; j++)
            ;
        if ((rc = apply_run(m, edits, i, j, source, c, err)))
            mm_err_prefix(err, "%s:%d", file, edits[i].line);
    }
    if (rc == 0) {
        free(b.state);
        b.state = strdup("applied");
        rc = b.state ? edit_log_save(dir, &b, err) : (mm_err_set(err, "out of memory"), -1);
    }
    edit_batch_free(&b);
    return rc;
}

int edit_apply_undo(struct mm_memory *m, const char *dir, const char *id, size_t *restored,
                    size_t *removed, struct mm_err *err)
{
    struct edit_batch b;
    if (edit_log_load(dir, id, &b, err)) return -1;
    int rc = 0;
    if (!strcmp(b.state, "undone")) {
        mm_err_set(err, "batch %s is undone already", b.id);
        rc = -1;
    }
    if (rc == 0) rc = edit_undo(m, &b, err);
    if (rc == 0) {
        free(b.state);
        b.state = strdup("undone");
        rc = b.state ? edit_log_save(dir, &b, err) : (mm_err_set(err, "out of memory"), -1);
    }
    *restored = 0;
    for (size_t i = 0; i < b.n; i++)
        *restored += b.facts[i].existed;
    *removed = b.n - *restored;
    edit_batch_free(&b);
    return rc;
}

int edit_from_json(const json_t *j, int line, struct edit *e, struct mm_err *err)
{
    const char *op = json_string_value(json_object_get(j, "op"));
    const char *fact = json_string_value(json_object_get(j, "fact"));
    *e = (struct edit){.line = line};
    if (!json_is_object(j)) {
        mm_err_set(err, "not a JSON object");
        return -1;
    }
    if (!op || !fact) {
        mm_err_set(err, "needs \"op\" and \"fact\" strings");
        return -1;
    }
    if (strcmp(op, "add") && strcmp(op, "replace") && strcmp(op, "delete")) {
        mm_err_set(err, "op '%s': expected add, replace or delete", op);
        return -1;
    }
    if (mm_triple_parse(fact, &e->t, err)) return -1;
    e->op = !strcmp(op, "add") ? EDIT_ADD : !strcmp(op, "replace") ? EDIT_REPLACE : EDIT_DELETE;
    return 0;
}
