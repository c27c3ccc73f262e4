/* Names as the evaluations compare them: case and white space ignored, as
 * the document text spells "Ko Joo - yeon" where the mention's name is
 * "Ko Joo-yeon". */
#ifndef MEMLLM_COORDINATOR_EVAL_NAMES_H
#define MEMLLM_COORDINATOR_EVAL_NAMES_H

#include <stddef.h>

/* Whether a and b are the same name. */
int eval_same_name(const char *a, const char *b);

/* Where `name` begins `text`: the length of text it covers, 0 when it
 * does not (or a letter or digit follows it there). */
size_t eval_name_prefix(const char *text, const char *name);

#endif
