/* The text form of memory items in the MemLLM API (DESIGN.md §2):
 *   write item   subject>>relation>>object       all three parts non-empty
 *   query item   subject>>relation>>             object wanted
 *                >>relation>>object              subject wanted
 * Parts are trimmed of surrounding whitespace and must pass mm_text_check. */
#ifndef MEMLLM_MEMSHARD_TRIPLE_TEXT_H
#define MEMLLM_MEMSHARD_TRIPLE_TEXT_H

#include "err.h"

struct mm_triple_text {
    char *s, *r, *o; /* malloc'ed; in a query the wanted side is "" */
};

int mm_triple_parse(const char *item, struct mm_triple_text *t, struct mm_err *err);
/* *want_subject: 1 for ">>r>>o", 0 for "s>>r>>". */
int mm_query_parse(const char *item, struct mm_triple_text *t, int *want_subject,
                   struct mm_err *err);
void mm_triple_text_free(struct mm_triple_text *t);

#endif
