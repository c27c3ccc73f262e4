/* A rule-based sentence splitter for the MemLLM write loop, which reads a
 * document one sentence at a time (DESIGN.md §2).
 *
 * A sentence ends at ".", "!" or "?" (runs such as "?!" or "..." count as
 * one), together with the closing quotes and brackets right after it, when
 * whitespace and then the start of a new sentence follow: a capital letter
 * (or a letter of a script without case), a digit, an opening quote or an
 * opening bracket. It does not end
 *   - after a title (Mr., Dr., St., Prof., Mt., ...), which a name follows,
 *     also when tokenised text spaces its period off ("Dr . Kebwe");
 *   - after another common abbreviation: single letters (initials, "c."
 *     for circa), dotted forms (U.S., e.g., i.e.), month and reference
 *     abbreviations (Jan., No., Vol., ...), unless the next word is one that
 *     often begins a sentence ("... in the U.S. It was ...");
 *   - inside parentheses or brackets (a bracket left open for long is taken
 *     to be unbalanced and forgotten);
 *   - before a straight double quote that closes an open quotation (an odd
 *     number of them so far): `said . " Next` in tokenised text keeps the
 *     quote with its sentence.
 * A blank line always ends a sentence; single line breaks are spaces.
 *
 * Pre-tokenised text (tokens joined by spaces, as in DocRED) works too: a
 * period standing alone is never an abbreviation. */
#ifndef MEMLLM_COORDINATOR_SENTENCES_H
#define MEMLLM_COORDINATOR_SENTENCES_H

#include <stddef.h>

#include "err.h"

struct sentence_span {
    size_t begin, end; /* text[begin, end), without surrounding whitespace */
};

/* The sentences of text[0, len) in order (*spans malloc'd; *n may be 0). */
int sentences_split(const char *text, size_t len, struct sentence_span **spans, size_t *n,
                    struct mm_err *err);

/* The sentence as one line: each whitespace run made one space (malloc'd). */
char *sentence_text(const char *text, const struct sentence_span *span, struct mm_err *err);

#endif
