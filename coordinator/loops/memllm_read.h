/* The MemLLM memory-read loop inside decoding (DESIGN.md §2).
 *
 * When a sequence's context ends with "-->" closing a "({MEM_READ(q1;q2)"
 * call (generated, or at the end of the prompt), the queries are parsed
 * (at most 3; malformed ones skipped), run against the memory, and the
 * distinct answers (at most Qthr) are inserted, joined by ";", followed by
 * "})"; decoding continues after them. No answer, or the same queries as
 * the previous read: the call is dropped, the sequence rolls back to just
 * before its "({", and the token that began the call is banned for the
 * next sample. Only the latest answered read stays in the context: the
 * previous one's span is cut out before a new one is answered.
 *
 * Calls are found in the decoded text, so a model whose tokenizer has the
 * "({", "})" and "-->" tokens and one that spells them with ordinary tokens
 * both work. Every read is traced (position, queries, answers with score
 * and provenance, and its latency: the only part of a trace that differs
 * between runs or layouts). */
#ifndef MEMLLM_COORDINATOR_MEMLLM_READ_H
#define MEMLLM_COORDINATOR_MEMLLM_READ_H

#include <jansson.h>

#include "engine.h"
#include "memory_client.h"
#include "scheduler.h"

struct memllm_reader;

struct memllm_reader *memllm_reader_new(struct engine *e, struct mm_memory *m,
                                        const struct mm_query_options *q, int n_requests,
                                        struct mm_err *err);
void memllm_reader_free(struct memllm_reader *r);

/* Scheduler hooks (ctx: the reader). */
int memllm_read_before_sample(void *ctx, struct gen_sequence *s, const float *logits,
                              struct mm_err *err);
int memllm_read_on_token(void *ctx, struct gen_sequence *s, int32_t token, const char *piece,
                         size_t len, struct mm_err *err);

/* Request i's state starts afresh (its index now belongs to another
 * request: a service reuses indices as sequences come and go). */
int memllm_reader_reset(struct memllm_reader *r, int request, struct mm_err *err);

/* The reads of request i so far: a JSON array (borrowed). */
json_t *memllm_reader_trace(const struct memllm_reader *r, int request);

/* Reads answered or dropped so far, and the seconds spent in the memory. */
void memllm_reader_stats(const struct memllm_reader *r, long *reads, double *seconds);

/* Answers a call's query text "q1;q2;..." from the memory as the loop
 * does: at most 3 queries (malformed ones skipped), the distinct answers
 * joined by ";" (at most qo->qthr) into *joined (malloc'd; NULL when none
 * came back); the queries and their answers go into the JSON object entry
 * (the trace's "queries") with the query's latency ("latency": "ms" in
 * all, "shard_ms" at each shard, mm_memory_query_timed), the seconds spent
 * in the memory are added to *seconds. */
int memllm_read_answer(struct mm_memory *m, const struct mm_query_options *qo, const char *queries,
                       json_t *entry, char **joined, double *seconds, struct mm_err *err);

/* One answer as the trace shows it: text, score, exact, entity, relation
 * and provenance (source, sentence, time_ms); the memory API's queries
 * answer the same way. */
json_t *memllm_answer_json(const struct mm_answer *a);

/* text without its "({" ... "})" API spans (malloc'd). */
char *memllm_strip_api(const char *text);

#endif
