/* memllm memory import-docred FILE.json: the gold triples of DocRED /
 * Re-DocRED documents (memory_client_docred.h gives the naming rules), one
 * write per document, with a progress bar. */
#include "cli_memory_internal.h"
#include "memory_client_docred.h"
#include "progress.h"

#include <stdio.h>
#include <stdlib.h>

#define MAX_WARNINGS 5

struct import {
    struct cli_memory *c;
    struct progress bar;
    int bar_started;
    uint64_t docs, facts, added, existing, aliases, skipped;
};

static int import_doc(void *ctx, const struct mm_docred_doc *doc)
{
    struct import *im = ctx;
    if (!im->bar_started) {
        progress_start(&im->bar, "import", (int64_t)doc->total);
        im->bar_started = 1;
    }
    if (doc->skipped && im->skipped < MAX_WARNINGS)
        fprintf(stderr, "memllm memory import-docred: %s: document %zu: %zu item(s) skipped (%s)\n",
                im->c->args[0], doc->index, doc->skipped, doc->first_problem);
    im->skipped += doc->skipped;
    struct mm_write_report rep = {0};
    struct mm_err err;
    if (doc->nfacts && mm_memory_write(im->c->m, doc->facts, doc->nfacts, doc->aliases,
                                       doc->naliases, &rep, &err) != 0) {
        fprintf(stderr, "memllm memory import-docred: %s: document %zu (%s): %s\n", im->c->args[0],
                doc->index, doc->title, err.msg);
        return 1;
    }
    im->docs++;
    im->facts += doc->nfacts;
    im->added += rep.facts_added;
    im->existing += rep.facts_existing;
    im->aliases += rep.aliases_added;
    progress_update(&im->bar, (int64_t)im->docs, (int64_t)im->facts, "facts");
    return 0;
}

int cli_memory_import_docred(struct cli_memory *c)
{
    if (c->nargs != 1) return cli_memory_fail("import-docred", "give one DocRED JSON file");
    /* Without --props, the property labels built into the binary
     * (memory_client_docred.c): no data folder to find, whatever the
     * current directory or where the binary lives. */
    const char *props = c->props;
    struct import im = {.c = c};
    size_t ndocs = 0;
    struct mm_err err;
    int rc = mm_docred_each(c->args[0], props, import_doc, &im, &ndocs, &err);
    if (im.bar_started) progress_finish(&im.bar, (int64_t)im.docs, (int64_t)im.facts, "facts");
    if (rc < 0) return cli_memory_fail("import-docred", err.msg);
    if (rc > 0) return 1;
    printf("documents: %llu\nfacts: %llu\nadded: %llu\nexisting: %llu\naliases: %llu\n"
           "skipped: %llu\n",
           (unsigned long long)im.docs, (unsigned long long)im.facts, (unsigned long long)im.added,
           (unsigned long long)im.existing, (unsigned long long)im.aliases,
           (unsigned long long)im.skipped);
    return 0;
}
