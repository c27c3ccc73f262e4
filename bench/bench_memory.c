/* Memory benchmark: prints figures, asserts nothing.
 *
 *   bench_memory [--docred FILE] [--props FILE] [--entities N] [--writes N]
 *
 * 1. import of a DocRED file (default: all of Re-DocRED dev), facts/s with
 *    and without the embedder's time, for 1 and 3 shards in one process;
 * 2. single-fact and 100-fact writes/s against raw RocksDB puts/s (one
 *    put per write, WAL on, no fsync) measured in the same run;
 * 3. query latency p50/p99 (entity search over every shard + triple lookup)
 *    on a memory of N entities in one shard, exact search;
 * 4. scatter-gather: the same queries on 1 and 3 shards in one process.
 * Every memory uses the fallback embedder. */
#include "memory_client.h"
#include "memory_client_docred.h"

#include <ftw.h>
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static char *scratch(const char *tag)
{
    char tmpl[128];
    snprintf(tmpl, sizeof(tmpl), "/tmp/memllm-bench-%s-XXXXXX", tag);
    char *d = mkdtemp(tmpl);
    if (!d) {
        perror("mkdtemp");
        exit(1);
    }
    return strdup(d);
}

static void rmtree(char *dir)
{
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

static void die(const char *what, const struct mm_err *err)
{
    fprintf(stderr, "bench_memory: %s: %s\n", what, err->msg);
    exit(1);
}

/* The fallback embedder, timed. */
struct timed_embedder {
    struct mm_embedder base;
    struct mm_embedder *inner;
    double seconds;
};

static int timed_embed(struct mm_embedder *self, const char *const *texts, size_t n, float *out,
                       struct mm_err *err)
{
    struct timed_embedder *t = (struct timed_embedder *)self;
    double t0 = now();
    int rc = mm_embed(t->inner, texts, n, out, err);
    t->seconds += now() - t0;
    return rc;
}

static void timed_destroy(struct mm_embedder *self)
{
    (void)self;
}

struct import_ctx {
    struct mm_memory *m;
    uint64_t facts;
};

static int import_doc(void *ctx, const struct mm_docred_doc *doc)
{
    struct import_ctx *im = ctx;
    struct mm_err err;
    if (doc->nfacts &&
        mm_memory_write(im->m, doc->facts, doc->nfacts, doc->aliases, doc->naliases, NULL, &err))
        die("import", &err);
    im->facts += doc->nfacts;
    return 0;
}

static void bench_import(const char *docred, const char *props, struct timed_embedder *emb)
{
    for (uint32_t S = 1; S <= 3; S += 2) {
        char *dir = scratch("import");
        struct mm_err err;
        struct mm_memory *m = mm_memory_open_local(dir, S, &emb->base, 0, &err);
        if (!m) die("open", &err);
        struct import_ctx im = {.m = m};
        size_t ndocs;
        emb->seconds = 0;
        double t0 = now();
        if (mm_docred_each(docred, props, import_doc, &im, &ndocs, &err) != 0) die(docred, &err);
        double total = now() - t0;
        printf("import, %u shard(s): %zu documents, %llu facts in %.2f s: %.0f facts/s; "
               "embedding %.2f s, without it %.0f facts/s (JSON parsing included)\n",
               S, ndocs, (unsigned long long)im.facts, total, (double)im.facts / total,
               emb->seconds, (double)im.facts / (total - emb->seconds));
        if (mm_memory_close(m, &err) != 0) die("close", &err);
        rmtree(dir);
    }
}

/* Raw RocksDB: one put of a triple-sized key/value per write, WAL on. */
static double raw_puts_per_s(int n)
{
    char *dir = scratch("raw");
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(o, 1);
    char *rerr = NULL;
    rocksdb_t *db = rocksdb_open(o, dir, &rerr);
    if (rerr) {
        fprintf(stderr, "bench_memory: rocksdb: %s\n", rerr);
        exit(1);
    }
    rocksdb_writeoptions_t *w = rocksdb_writeoptions_create();
    char key[25], val[48];
    memset(val, 'v', sizeof(val));
    double t0 = now();
    for (int i = 0; i < n && !rerr; i++) {
        memset(key, 0, sizeof(key));
        memcpy(key, &i, sizeof(i));
        rocksdb_put(db, w, key, sizeof(key), val, sizeof(val), &rerr);
    }
    double rate = n / (now() - t0);
    if (rerr) {
        fprintf(stderr, "bench_memory: rocksdb put: %s\n", rerr);
        exit(1);
    }
    rocksdb_writeoptions_destroy(w);
    rocksdb_close(db);
    rocksdb_options_destroy(o);
    rmtree(dir);
    return rate;
}

/* n distinct made-up names: the prefix's initial, four random syllables and
 * a number. With the trigram embedder, "Subject 17" and "Subject 18" would
 * all be candidates of each other (300 per query), which measures the
 * candidate cap rather than search and lookup. */
static char (*numbered(const char *prefix, int n))[40]
{
    static const char *const syl[] = {"ka",  "lo",  "mi",  "ru",  "ze",  "ta", "vo",  "ni", "pe",
                                      "qua", "sha", "dor", "bel", "fin", "gu", "hax", "jo", "wen"};
    const int nsyl = (int)(sizeof(syl) / sizeof(syl[0]));
    char(*t)[40] = malloc((size_t)n * sizeof(*t));
    for (int i = 0; i < n; i++) {
        int o = snprintf(t[i], sizeof(t[i]), "%c", prefix[0]);
        for (int k = 0; k < 4; k++)
            o += snprintf(t[i] + o, sizeof(t[i]) - (size_t)o, "%s", syl[rand() % nsyl]);
        snprintf(t[i] + o, sizeof(t[i]) - (size_t)o, " %d", i);
    }
    return t;
}

static double memory_writes_per_s(struct mm_embedder *emb, int n, int batch)
{
    char *dir = scratch("writes");
    struct mm_err err;
    struct mm_memory *m = mm_memory_open_local(dir, 1, emb, 0, &err);
    if (!m) die("open", &err);
    char(*subj)[40] = numbered("Bench Subject", n), (*obj)[40] = numbered("Bench Object", n);
    struct mm_fact *f = malloc((size_t)batch * sizeof(*f));
    double t0 = now();
    for (int i = 0; i < n; i += batch) {
        int k = n - i < batch ? n - i : batch;
        for (int j = 0; j < k; j++)
            f[j] = (struct mm_fact){subj[i + j], "bench relation", obj[i + j], {"bench", -1}};
        if (mm_memory_write(m, f, (size_t)k, NULL, 0, NULL, &err) != 0) die("write", &err);
    }
    double rate = n / (now() - t0);
    free(f);
    free(subj);
    free(obj);
    if (mm_memory_close(m, &err) != 0) die("close", &err);
    rmtree(dir);
    return rate;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Latency of n single queries (one per call), as p50 / p99 in ms. */
static void latency(struct mm_memory *m, const struct mm_query *q, int n, double *p50, double *p99)
{
    struct mm_query_options o;
    mm_query_options_default(&o);
    double *t = malloc((size_t)n * sizeof(*t));
    struct mm_err err;
    for (int i = 0; i < n; i++) {
        struct mm_answers a;
        double t0 = now();
        if (mm_memory_query(m, &q[i], 1, &o, &a, &err) != 0) die("query", &err);
        t[i] = (now() - t0) * 1e3;
        mm_answers_free(&a, 1);
    }
    qsort(t, (size_t)n, sizeof(*t), cmp_double);
    *p50 = t[n / 2];
    *p99 = t[(n * 99) / 100];
    free(t);
}

static void bench_latency(struct mm_embedder *emb, int entities)
{
    char *dir = scratch("latency");
    struct mm_err err;
    struct mm_memory *m = mm_memory_open_local(dir, 1, emb, 0, &err);
    if (!m) die("open", &err);
    int facts = entities / 2; /* each fact brings a new subject and object */
    char(*subj)[40] = numbered("Latency Subject", facts),
    (*obj)[40] = numbered("Latency Object", facts);
    const int batch = 1000;
    struct mm_fact *f = malloc(batch * sizeof(*f));
    double t0 = now();
    for (int i = 0; i < facts; i += batch) {
        int k = facts - i < batch ? facts - i : batch;
        for (int j = 0; j < k; j++)
            f[j] = (struct mm_fact){subj[i + j], "latency relation", obj[i + j], {"bench", -1}};
        if (mm_memory_write(m, f, (size_t)k, NULL, 0, NULL, &err) != 0) die("write", &err);
    }
    printf("latency memory: %d entities in one shard, built in %.1f s\n", 2 * facts, now() - t0);
    const int n = 500;
    struct mm_query *q = malloc(n * sizeof(*q));
    srand(1);
    for (int i = 0; i < n; i++)
        q[i] = (struct mm_query){subj[rand() % facts], "latency relation", 0};
    double p50, p99;
    latency(m, q, n, &p50, &p99);
    printf("query latency (exact search, %d entities/shard): p50 %.2f ms, p99 %.2f ms\n", 2 * facts,
           p50, p99);
    free(q);
    free(f);
    free(subj);
    free(obj);
    if (mm_memory_close(m, &err) != 0) die("close", &err);
    rmtree(dir);
}

struct collect {
    struct mm_query *q;
    int n, cap;
};

static int collect_queries(void *ctx, const struct mm_docred_doc *doc)
{
    struct collect *c = ctx;
    for (size_t i = 0; i < doc->nfacts && c->n < c->cap; i += 7) {
        c->q[c->n].entity = strdup(doc->facts[i].s);
        c->q[c->n].relation = strdup(doc->facts[i].r);
        c->q[c->n].want_subject = 0;
        c->n++;
    }
    return 0;
}

static void bench_scatter(const char *docred, const char *props, struct mm_embedder *emb)
{
    struct collect c = {.cap = 500};
    c.q = calloc((size_t)c.cap, sizeof(*c.q));
    size_t ndocs;
    struct mm_err err;
    if (mm_docred_each(docred, props, collect_queries, &c, &ndocs, &err) != 0) die(docred, &err);
    double p50[2], p99[2];
    for (int l = 0; l < 2; l++) {
        uint32_t S = l ? 3 : 1;
        char *dir = scratch("scatter");
        struct mm_memory *m = mm_memory_open_local(dir, S, emb, 0, &err);
        if (!m) die("open", &err);
        struct import_ctx im = {.m = m};
        if (mm_docred_each(docred, props, import_doc, &im, &ndocs, &err) != 0) die(docred, &err);
        latency(m, c.q, c.n, &p50[l], &p99[l]);
        if (mm_memory_close(m, &err) != 0) die("close", &err);
        rmtree(dir);
    }
    printf("scatter-gather, %d DocRED queries, in one process: 1 shard p50 %.3f / p99 %.3f ms, "
           "3 shards p50 %.3f / p99 %.3f ms (x%.2f at p50)\n",
           c.n, p50[0], p99[0], p50[1], p99[1], p50[1] / p50[0]);
    for (int i = 0; i < c.n; i++) {
        free((char *)c.q[i].entity);
        free((char *)c.q[i].relation);
    }
    free(c.q);
}

int main(int argc, char **argv)
{
    char docred[4096], props[4096];
    const char *shared = getenv("MEMLLM_SHARED_DATA");
    if (!shared) shared = "../shared/data";
    snprintf(docred, sizeof(docred), "%s/redocred/dev_revised.json", shared);
    snprintf(props, sizeof(props), "%s/wikidata_props_en.json", shared);
    int entities = 100000, writes = 20000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--docred") && i + 1 < argc)
            snprintf(docred, sizeof(docred), "%s", argv[++i]);
        else if (!strcmp(argv[i], "--props") && i + 1 < argc)
            snprintf(props, sizeof(props), "%s", argv[++i]);
        else if (!strcmp(argv[i], "--entities") && i + 1 < argc)
            entities = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--writes") && i + 1 < argc)
            writes = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_memory [--docred FILE] [--props FILE] [--entities N] "
                            "[--writes N]\n");
            return 2;
        }
    }
    if (entities < 2 || writes < 1) {
        fprintf(stderr, "bench_memory: --entities must be >= 2 and --writes >= 1\n");
        return 2;
    }
    struct mm_err err;
    struct timed_embedder emb = {.inner = mm_fallback_embedder_new(&err)};
    if (!emb.inner) die("embedder", &err);
    emb.base = *emb.inner;
    emb.base.embed = timed_embed;
    emb.base.destroy = timed_destroy;

    bench_import(docred, props, &emb);
    double raw = raw_puts_per_s(writes);
    double one = memory_writes_per_s(&emb.base, writes, 1);
    double hundred = memory_writes_per_s(&emb.base, writes, 100);
    printf("raw RocksDB puts: %.0f/s (one put per write, WAL on, no fsync)\n", raw);
    printf("memory writes, 1 fact per write: %.0f facts/s = %.0f%% of raw puts\n", one,
           100 * one / raw);
    printf("memory writes, 100 facts per write: %.0f facts/s = %.0f%% of raw puts\n", hundred,
           100 * hundred / raw);
    bench_latency(&emb.base, entities);
    bench_scatter(docred, props, &emb.base);
    mm_embedder_free(emb.inner);
    return 0;
}
