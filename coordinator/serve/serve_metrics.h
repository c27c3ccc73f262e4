/* memllm serve's counters for GET /metrics (Prometheus text format 0.0.4):
 * requests by route and status, tokens in and out, time to first token
 * and time per output token, running and queued sequences, KV cache use,
 * MemLLM memory reads with their latency, memory operations of the API
 * (reads: queries; writes: writes, deletes, replaces, edits, undos), and
 * the requests each shard was sent (memllm_shard_requests_total{shard,
 * kind}: everything's, annotate jobs' and health probes' included). An
 * annotate job's tokens count in the token counters as a request's do.
 * HTTP threads and the engine thread update them; one mutex guards them (a
 * few updates per token: no contention worth avoiding). */
#ifndef MEMLLM_COORDINATOR_SERVE_METRICS_H
#define MEMLLM_COORDINATOR_SERVE_METRICS_H

#include <pthread.h>
#include <stddef.h>

#include "memory_client.h"

/* Bucket upper bounds (seconds) of every latency histogram. */
#define SERVE_METRICS_BUCKETS 14
#define SERVE_METRICS_STATUSES 600

/* The routes requests are counted by (and "other" for unknown URLs). */
enum serve_metric_route {
    SM_HEALTH,
    SM_METRICS,
    SM_MODELS,
    SM_COMPLETIONS,
    SM_CHAT,
    SM_MEMORY_QUERY,
    SM_MEMORY_FACTS,
    SM_MEMORY_ENTITIES,
    SM_MEMORY_STATS,
    SM_MEMORY_EDITS,
    SM_MEMORY_UNDO,
    SM_MEMORY_ANNOTATE,
    SM_MEMORY_ANNOTATE_JOB,
    SM_OTHER,
    SM_N_ROUTES
};

struct serve_histogram {
    unsigned long long buckets[SERVE_METRICS_BUCKETS]; /* not cumulative */
    unsigned long long count;
    double sum;
};

struct serve_metrics {
    pthread_mutex_t mu;
    unsigned long long requests[SM_N_ROUTES][SERVE_METRICS_STATUSES];
    unsigned long long prompt_tokens, completion_tokens;
    struct serve_histogram ttft, per_token, memory_read;
    unsigned long long memory_reads; /* MemLLM reads answered or dropped */
    unsigned long long shard_reads, shard_writes;
    long *kv_tokens; /* [n_slots]: context tokens of each running sequence */
    int n_slots;
    long kv_capacity; /* n_slots * context */
    /* The memory whose per-shard request counts are shown (NULL: none);
     * they are the memory client's own atomic counters. */
    const struct mm_memory *memory;
};

int serve_metrics_init(struct serve_metrics *m, int n_slots, int context);
void serve_metrics_destroy(struct serve_metrics *m);

/* The route of a URL, for the counts. */
enum serve_metric_route serve_metrics_route(const char *url);

void serve_metrics_request(struct serve_metrics *m, enum serve_metric_route r, unsigned status);
void serve_metrics_tokens(struct serve_metrics *m, long prompt, long completion);
void serve_metrics_observe(struct serve_metrics *m, struct serve_histogram *h, double seconds);
/* Memory operations of the memory API. */
void serve_metrics_memory(struct serve_metrics *m, int reads, int writes);
/* n MemLLM reads that spent `seconds` in the memory together. */
void serve_metrics_reads(struct serve_metrics *m, long n, double seconds);
void serve_metrics_kv(struct serve_metrics *m, int slot, long tokens);

/* The whole exposition (malloc'd); running and queued: the queue's
 * counts now. */
char *serve_metrics_text(struct serve_metrics *m, int running, int queued);

#endif
