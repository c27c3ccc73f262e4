/* memllm eval extract's scoring: the facts the MW model wrote for a
 * document against the document's gold relations (DocRED labels).
 *
 * A written fact s>>r>>o is correct when some gold relation (h, r', t) has
 * r' == r (the relation's Wikidata label, as the MW examples name it) and s
 * is one of h's mention names and o one of t's (DocRED's mention clusters:
 * any alias counts, compared ignoring case and white space, since the text
 * the model reads spells "Ko Joo - yeon" where the name is "Ko Joo-yeon").
 * Facts are deduplicated per
 * document by their texts, gold relations by (h, r, t).
 *   precision = correct facts / facts, recall = gold relations some fact
 *   matches / gold relations, summed over documents (micro averages). */
#ifndef MEMLLM_COORDINATOR_EVAL_EXTRACT_H
#define MEMLLM_COORDINATOR_EVAL_EXTRACT_H

#include <jansson.h>
#include <stdint.h>

#include "err.h"
#include "triple_text.h"

struct extract_counts {
    int64_t documents;
    int64_t gold;     /* distinct gold relations */
    int64_t facts;    /* distinct facts written */
    int64_t correct;  /* facts that match a gold relation */
    int64_t recalled; /* gold relations some fact matches */
};

/* Adds one document's figures: doc a DocRED object, props relation id ->
 * label, facts the facts written for it. A malformed document fails,
 * naming the field. */
int extract_score_document(json_t *doc, json_t *props, const struct mm_triple_text *facts,
                           int n_facts, struct extract_counts *c, struct mm_err *err);

double extract_precision(const struct extract_counts *c);
double extract_recall(const struct extract_counts *c);
double extract_f1(const struct extract_counts *c);

#endif
