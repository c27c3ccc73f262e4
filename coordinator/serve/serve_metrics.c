#include "serve_metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double bucket_le[SERVE_METRICS_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

static const char *const route_name[SM_N_ROUTES] = {
    [SM_HEALTH] = "/health",
    [SM_METRICS] = "/metrics",
    [SM_MODELS] = "/v1/models",
    [SM_COMPLETIONS] = "/v1/completions",
    [SM_CHAT] = "/v1/chat/completions",
    [SM_MEMORY_QUERY] = "/v1/memory/query",
    [SM_MEMORY_FACTS] = "/v1/memory/facts",
    [SM_MEMORY_ENTITIES] = "/v1/memory/entities/{name}",
    [SM_MEMORY_STATS] = "/v1/memory/stats",
    [SM_MEMORY_EDITS] = "/v1/memory/edits",
    [SM_MEMORY_UNDO] = "/v1/memory/edits/{id}/undo",
    [SM_MEMORY_ANNOTATE] = "/v1/memory/annotate",
    [SM_MEMORY_ANNOTATE_JOB] = "/v1/memory/annotate/{id}",
    [SM_OTHER] = "other",
};

int serve_metrics_init(struct serve_metrics *m, int n_slots, int context)
{
    memset(m, 0, sizeof(*m));
    if (!(m->kv_tokens = calloc((size_t)n_slots, sizeof(*m->kv_tokens)))) return -1;
    m->n_slots = n_slots;
    m->kv_capacity = (long)n_slots * context;
    pthread_mutex_init(&m->mu, NULL);
    return 0;
}

void serve_metrics_destroy(struct serve_metrics *m)
{
    pthread_mutex_destroy(&m->mu);
    free(m->kv_tokens);
}

enum serve_metric_route serve_metrics_route(const char *url)
{
    static const char entities[] = "/v1/memory/entities/", edits[] = "/v1/memory/edits/",
                      jobs[] = "/v1/memory/annotate/";
    if (!strncmp(url, entities, sizeof(entities) - 1)) return SM_MEMORY_ENTITIES;
    if (!strncmp(url, jobs, sizeof(jobs) - 1)) return SM_MEMORY_ANNOTATE_JOB;
    if (!strncmp(url, edits, sizeof(edits) - 1)) return SM_MEMORY_UNDO;
    for (int r = 0; r < SM_OTHER; r++)
        if (!strcmp(url, route_name[r])) return (enum serve_metric_route)r;
    return SM_OTHER;
}

void serve_metrics_request(struct serve_metrics *m, enum serve_metric_route r, unsigned status)
{
    if (status >= SERVE_METRICS_STATUSES) status = 0;
    pthread_mutex_lock(&m->mu);
    m->requests[r][status]++;
    pthread_mutex_unlock(&m->mu);
}

void serve_metrics_tokens(struct serve_metrics *m, long prompt, long completion)
{
    pthread_mutex_lock(&m->mu);
    m->prompt_tokens += (unsigned long long)prompt;
    m->completion_tokens += (unsigned long long)completion;
    pthread_mutex_unlock(&m->mu);
}

void serve_metrics_observe(struct serve_metrics *m, struct serve_histogram *h, double seconds)
{
    int b = 0;
    while (b < SERVE_METRICS_BUCKETS && seconds > bucket_le[b])
        b++;
    pthread_mutex_lock(&m->mu);
    if (b < SERVE_METRICS_BUCKETS) h->buckets[b]++;
    h->count++;
    h->sum += seconds;
    pthread_mutex_unlock(&m->mu);
}

void serve_metrics_memory(struct serve_metrics *m, int reads, int writes)
{
    pthread_mutex_lock(&m->mu);
    m->shard_reads += (unsigned long long)reads;
    m->shard_writes += (unsigned long long)writes;
    pthread_mutex_unlock(&m->mu);
}

void serve_metrics_reads(struct serve_metrics *m, long n, double seconds)
{
    for (long i = 0; i < n; i++)
        serve_metrics_observe(m, &m->memory_read, seconds / (double)n);
    pthread_mutex_lock(&m->mu);
    m->memory_reads += (unsigned long long)n;
    m->shard_reads += (unsigned long long)n;
    pthread_mutex_unlock(&m->mu);
}

void serve_metrics_kv(struct serve_metrics *m, int slot, long tokens)
{
    pthread_mutex_lock(&m->mu);
    m->kv_tokens[slot] = tokens;
    pthread_mutex_unlock(&m->mu);
}

/* A growing text; a failed allocation sticks (out->oom) and is reported
 * once at the end. */
struct text {
    char *s;
    size_t len, cap;
    int oom;
};

__attribute__((format(printf, 2, 3))) static void put(struct text *t, const char *fmt, ...)
{
    for (;;) {
        if (t->oom) return;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->oom = 1;
            return;
        }
        if (t->s && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? 2 * t->cap : 8192;
        while (cap < t->len + (size_t)n + 1)
            cap *= 2;
        char *g = realloc(t->s, cap);
        if (!g) {
            t->oom = 1;
            return;
        }
        t->s = g;
        t->cap = cap;
    }
}

static void put_histogram(struct text *t, const char *name, const char *help,
                          const struct serve_histogram *h)
{
    put(t, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    unsigned long long cum = 0;
    for (int b = 0; b < SERVE_METRICS_BUCKETS; b++) {
        cum += h->buckets[b];
        put(t, "%s_bucket{le=\"%g\"} %llu\n", name, bucket_le[b], cum);
    }
    put(t, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name, h->count, name,
        h->sum, name, h->count);
}

static void put_counter(struct text *t, const char *name, const char *help, const char *type,
                        double v)
{
    put(t, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

/* Each shard's requests by kind, as the memory client counted them. */
static void put_shards(struct text *t, const struct mm_memory *memory)
{
    if (!memory) return;
    uint32_t n = mm_memory_shards(memory);
    uint64_t *reads = calloc(n, sizeof(*reads)), *writes = calloc(n, sizeof(*writes));
    if (!reads || !writes) {
        t->oom = 1;
    } else {
        mm_memory_shard_requests(memory, reads, writes);
        put(t, "# HELP memllm_shard_requests_total Requests each memory shard was sent, by kind.\n"
               "# TYPE memllm_shard_requests_total counter\n");
        for (uint32_t j = 0; j < n; j++)
            put(t,
                "memllm_shard_requests_total{shard=\"%u\",kind=\"read\"} %llu\n"
                "memllm_shard_requests_total{shard=\"%u\",kind=\"write\"} %llu\n",
                j, (unsigned long long)reads[j], j, (unsigned long long)writes[j]);
    }
    free(reads);
    free(writes);
}

char *serve_metrics_text(struct serve_metrics *m, int running, int queued)
{
    struct text t = {0};
    pthread_mutex_lock(&m->mu);
    put(&t, "# HELP memllm_requests_total HTTP requests answered, by route and status.\n"
            "# TYPE memllm_requests_total counter\n");
    for (int r = 0; r < SM_N_ROUTES; r++)
        for (int s = 0; s < SERVE_METRICS_STATUSES; s++)
            if (m->requests[r][s])
                put(&t, "memllm_requests_total{route=\"%s\",status=\"%d\"} %llu\n", route_name[r],
                    s, m->requests[r][s]);
    put_counter(&t, "memllm_prompt_tokens_total", "Prompt tokens of the requests submitted.",
                "counter", (double)m->prompt_tokens);
    put_counter(&t, "memllm_completion_tokens_total", "Tokens generated.", "counter",
                (double)m->completion_tokens);
    put_histogram(&t, "memllm_time_to_first_token_seconds",
                  "From a request's submission to its first generated token.", &m->ttft);
    put_histogram(&t, "memllm_time_per_output_token_seconds",
                  "Between consecutive generated tokens of a request.", &m->per_token);
    put_counter(&t, "memllm_running_sequences", "Sequences in the continuous batch.", "gauge",
                running);
    put_counter(&t, "memllm_queued_requests", "Requests waiting for a sequence slot.", "gauge",
                queued);
    long kv = 0;
    for (int i = 0; i < m->n_slots; i++)
        kv += m->kv_tokens[i];
    put_counter(&t, "memllm_kv_cache_tokens", "Context tokens held in the KV cache.", "gauge",
                (double)kv);
    put_counter(&t, "memllm_kv_cache_usage_ratio",
                "KV cache tokens over its capacity (slots times context).", "gauge",
                m->kv_capacity ? (double)kv / (double)m->kv_capacity : 0.0);
    put_counter(&t, "memllm_memory_reads_total", "MemLLM read calls answered or dropped.",
                "counter", (double)m->memory_reads);
    put_histogram(&t, "memllm_memory_read_seconds", "Time in the memory per MemLLM read.",
                  &m->memory_read);
    put(&t,
        "# HELP memllm_memory_operations_total Operations sent to the memory shards.\n"
        "# TYPE memllm_memory_operations_total counter\n"
        "memllm_memory_operations_total{kind=\"read\"} %llu\n"
        "memllm_memory_operations_total{kind=\"write\"} %llu\n",
        m->shard_reads, m->shard_writes);
    pthread_mutex_unlock(&m->mu);
    put_shards(&t, m->memory);
    if (t.oom) {
        free(t.s);
        return NULL;
    }
    return t.s;
}
