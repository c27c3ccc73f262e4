/* Memory benchmark: prints figures, asserts nothing.
 *
 *   bench_memory [--docred FILE] [--props FILE] [--entities N] [--writes N]
 *                [--recall-rows N[,N...]] [--embedder DIR] [--only SECTION]
 *
 * Sections (all by default, in this order):
 *   import   all of Re-DocRED dev, facts/s with and without the embedder's
 *            time, 1 and 3 shards in one process;
 *   writes   memory writes of 1, 100 and 1000 facts per write (new
 *            entities each, then facts between those stored entities)
 *            against raw RocksDB measured in the same run: one put per
 *            write (WAL on, no fsync), and the same key/values a fact
 *            writes, batched like the memory batches them;
 *   latency  a memory of N entities (default 1M) in one shard: search +
 *            lookup latency at the shard with exact search and with the
 *            approximate index (and whether their answers agree), the
 *            graph's build time, size and load time, and the client's
 *            latency (embedding included) on the approximate index;
 *   recall   recall@10 of the approximate index against a brute-force scan
 *            on synthetic 384-d sentence-embedding-like vectors (default
 *            100k and 1M rows), per ef_search, with build time, memory and
 *            query latency;
 *   scatter  the same DocRED queries on 1 and 3 shards in one process,
 *            the two memories taking turns over several passes.
 * Memories use the fallback embedder, or with --embedder the
 * sentence-transformers model in DIR (e.g. models/all-MiniLM-L6-v2; meant
 * for the import and scatter sections: the others would time the model). */
#include "../tests/memory/shard_rounds.h"
#include "../tests/memory/synthetic_vectors.h"
#include "embedder_bert.h"
#include "memory.pb-c.h"
#include "memory_client.h"
#include "memory_client_docred.h"
#include "shard.h"
#include "vector_index.h"

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

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "bench_memory: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* p50 and p99 of n times (sorted in place). */
static void percentiles(double *t, int n, double *p50, double *p99)
{
    qsort(t, (size_t)n, sizeof(*t), cmp_double);
    *p50 = t[n / 2];
    *p99 = t[(n * 99) / 100];
}

/* The memory's embedder, timed. */
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

static rocksdb_t *raw_open(const char *dir, rocksdb_options_t **o)
{
    *o = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(*o, 1);
    char *rerr = NULL;
    rocksdb_t *db = rocksdb_open(*o, dir, &rerr);
    if (rerr) {
        fprintf(stderr, "bench_memory: rocksdb: %s\n", rerr);
        exit(1);
    }
    return db;
}

static void raw_check(char *rerr)
{
    if (rerr) {
        fprintf(stderr, "bench_memory: rocksdb write: %s\n", rerr);
        exit(1);
    }
}

/* Raw RocksDB: one put of a triple-sized key/value per write, WAL on. */
static double raw_puts_per_s(int n)
{
    char *dir = scratch("raw");
    rocksdb_options_t *o;
    rocksdb_t *db = raw_open(dir, &o);
    rocksdb_writeoptions_t *w = rocksdb_writeoptions_create();
    char key[25], val[48], *rerr = NULL;
    memset(val, 'v', sizeof(val));
    double t0 = now();
    for (int i = 0; i < n && !rerr; i++) {
        memset(key, 0, sizeof(key));
        memcpy(key, &i, sizeof(i));
        rocksdb_put(db, w, key, sizeof(key), val, sizeof(val), &rerr);
    }
    double rate = n / (now() - t0);
    raw_check(rerr);
    rocksdb_writeoptions_destroy(w);
    rocksdb_close(db);
    rocksdb_options_destroy(o);
    rmtree(dir);
    return rate;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Raw RocksDB writing what one fact makes a shard write: two triple
 * copies (the other end's text and a provenance record), and when
 * new_entities also two name rows carrying a dim-float vector; batch facts
 * per write, in key order as the shard writes them, with RocksDB's default
 * options. The floor under the memory's writes. */
static double raw_fact_kvs_per_s(int n, int batch, int dim, int new_entities)
{
    char *dir = scratch("rawkv");
    rocksdb_options_t *o;
    rocksdb_t *db = raw_open(dir, &o);
    rocksdb_writeoptions_t *w = rocksdb_writeoptions_create();
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    const size_t sizes[2][2] = {{25, 46}, {24, 16 + 4 * (size_t)dim}};
    uint64_t *ids = xmalloc(2 * (size_t)batch * sizeof(*ids));
    unsigned char key[64];
    char *val = xmalloc(sizes[1][1]), *rerr = NULL;
    memset(val, 'v', sizes[1][1]);
    memset(key, 0, sizeof(key));
    double t0 = now();
    for (int i = 0; i < n && !rerr; i += batch) {
        int k = n - i < batch ? n - i : batch;
        for (int j = 0; j < 2 * k; j++)
            ids[j] = ((uint64_t)i * 2 + (uint64_t)j + 1) * 0x9e3779b97f4a7c15ULL;
        qsort(ids, 2 * (size_t)k, sizeof(*ids), cmp_u64);
        /* a first byte per kind keeps the kinds apart, as column families do */
        for (int kind = 0; kind < (new_entities ? 2 : 1); kind++)
            for (int j = 0; j < 2 * k; j++) {
                key[0] = (unsigned char)kind;
                for (int byte = 0; byte < 8; byte++)
                    key[1 + byte] = (unsigned char)(ids[j] >> (56 - 8 * byte));
                rocksdb_writebatch_put(b, (const char *)key, sizes[kind][0], val, sizes[kind][1]);
            }
        rocksdb_write(db, w, b, &rerr);
        rocksdb_writebatch_clear(b);
    }
    double rate = n / (now() - t0);
    raw_check(rerr);
    free(val);
    free(ids);
    rocksdb_writebatch_destroy(b);
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
    char(*t)[40] = xmalloc((size_t)n * sizeof(*t));
    for (int i = 0; i < n; i++) {
        int o = snprintf(t[i], sizeof(t[i]), "%c", prefix[0]);
        for (int k = 0; k < 4; k++)
            o += snprintf(t[i] + o, sizeof(t[i]) - (size_t)o, "%s", syl[rand() % nsyl]);
        snprintf(t[i] + o, sizeof(t[i]) - (size_t)o, " %d", i);
    }
    return t;
}

/* Writes facts subj[i] -r-> obj[i], batch per write; returns facts/s. */
static double write_facts(struct mm_memory *m, char (*subj)[40], char (*obj)[40], int n, int batch,
                          const char *relation)
{
    struct mm_fact *f = xmalloc((size_t)batch * sizeof(*f));
    struct mm_err err;
    double t0 = now();
    for (int i = 0; i < n; i += batch) {
        int k = n - i < batch ? n - i : batch;
        for (int j = 0; j < k; j++)
            f[j] = (struct mm_fact){subj[i + j], relation, obj[i + j], {"bench", -1, 0}};
        if (mm_memory_write(m, f, (size_t)k, NULL, 0, NULL, &err) != 0) die("write", &err);
    }
    free(f);
    return n / (now() - t0);
}

/* Facts/s of n facts with two new entities each, then (*known) of n facts
 * of another relation between those same, now stored, entities. */
static double memory_writes_per_s(struct mm_embedder *emb, int n, int batch, double *known)
{
    char *dir = scratch("writes");
    struct mm_err err;
    struct mm_memory *m = mm_memory_open_local(dir, 1, emb, 0, &err);
    if (!m) die("open", &err);
    char(*subj)[40] = numbered("Bench Subject", n), (*obj)[40] = numbered("Bench Object", n);
    double rate = write_facts(m, subj, obj, n, batch, "bench relation");
    *known = write_facts(m, subj, obj, n, batch, "second bench relation");
    free(subj);
    free(obj);
    if (mm_memory_close(m, &err) != 0) die("close", &err);
    rmtree(dir);
    return rate;
}

static void bench_writes(struct mm_embedder *emb, int writes)
{
    double raw = raw_puts_per_s(writes);
    printf("raw RocksDB puts: %.0f/s (one put per write, WAL on, no fsync)\n", raw);
    const int batches[] = {1, 100, 1000};
    for (int i = 0; i < 3; i++) {
        double known, rate = memory_writes_per_s(emb, writes, batches[i], &known);
        printf("memory writes, %d fact(s) per write: %.0f facts/s = %.0f%% of raw puts/s; "
               "between stored entities %.0f facts/s = %.0f%%\n",
               batches[i], rate, 100 * rate / raw, known, 100 * known / raw);
    }
    double floor = raw_fact_kvs_per_s(writes, 1000, emb->dim, 1);
    double known = raw_fact_kvs_per_s(writes, 1000, emb->dim, 0);
    printf("raw RocksDB, the 4 key/values of a fact with two new entities, 1000 facts per "
           "batch: %.0f facts/s = %.0f%% of raw puts/s; the 2 of a fact between stored "
           "entities: %.0f facts/s = %.0f%%\n",
           floor, 100 * floor / raw, known, 100 * known / raw);
}

/* Shard-level latency of the n queries (vecs: their embeddings); the
 * responses stay in out for comparison. */
static void shard_latency(struct mm_shard *sh, const struct mm_query *q, const float *vecs, int n,
                          int dim, struct shard_rounds *out, double *p50, double *p99)
{
    double *t = xmalloc((size_t)n * sizeof(*t));
    for (int i = 0; i < n; i++) {
        double t0 = now();
        const float *v = vecs + (size_t)i * 2 * (size_t)dim;
        shard_rounds_run(sh, &q[i], v, v + dim, dim, &out[i]);
        t[i] = (now() - t0) * 1e3;
    }
    percentiles(t, n, p50, p99);
    free(t);
}

/* Times n single queries (one per call) into t, in ms. */
static void time_queries(struct mm_memory *m, const struct mm_query *q, int n, double *t)
{
    struct mm_query_options o;
    mm_query_options_default(&o);
    struct mm_err err;
    for (int i = 0; i < n; i++) {
        struct mm_answers a;
        double t0 = now();
        if (mm_memory_query(m, &q[i], 1, &o, &a, &err) != 0) die("query", &err);
        t[i] = (now() - t0) * 1e3;
        mm_answers_free(&a, 1);
    }
}

/* Client latency of n single queries, p50 / p99 in ms. */
static void latency(struct mm_memory *m, const struct mm_query *q, int n, double *p50, double *p99)
{
    double *t = xmalloc((size_t)n * sizeof(*t));
    time_queries(m, q, n, t);
    percentiles(t, n, p50, p99);
    free(t);
}

static struct mm_shard *open_shard(const char *dir, uint32_t min_rows, double *seconds)
{
    struct mm_err err;
    struct mm_shard_options so = {.ann = {.min_rows = min_rows}};
    double t0 = now();
    struct mm_shard *sh = mm_shard_open(dir, &so, &err);
    if (!sh) die(dir, &err);
    if (seconds) *seconds = now() - t0;
    return sh;
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
    double t0 = now();
    write_facts(m, subj, obj, facts, 1000, "latency relation");
    printf("latency memory: %d entities in one shard, written in %.1f s (1000 facts per write; "
           "the graph indexer runs beside the writes)\n",
           2 * facts, now() - t0);
    if (mm_memory_close(m, &err) != 0) die("close", &err);

    const int n = 500, dim = emb->dim;
    struct mm_query *q = xmalloc(n * sizeof(*q));
    float *vecs = xmalloc((size_t)n * 2 * (size_t)dim * sizeof(float));
    srand(1);
    for (int i = 0; i < n; i++) {
        q[i] = (struct mm_query){subj[rand() % facts], "latency relation", 0};
        const char *texts[2] = {q[i].entity, q[i].relation};
        if (mm_embed(emb, texts, 2, vecs + (size_t)i * 2 * (size_t)dim, &err) != 0)
            die("embed", &err);
    }
    char shard_dir[4200], graph[4300];
    snprintf(shard_dir, sizeof(shard_dir), "%s/shard-000", dir);
    snprintf(graph, sizeof(graph), "%s/memllm-names.hnsw", shard_dir);

    struct shard_rounds *exact = calloc((size_t)n, sizeof(*exact)),
                        *approx = calloc((size_t)n, sizeof(*approx));
    double open_exact, p50, p99;
    struct mm_shard *sh = open_shard(shard_dir, UINT32_MAX, &open_exact);
    shard_latency(sh, q, vecs, n, dim, exact, &p50, &p99);
    printf("search + lookup at the shard, exact search, %d entities: p50 %.2f ms, p99 %.2f ms\n",
           2 * facts, p50, p99);
    mm_shard_close(sh);

    /* The graph from scratch (what was indexed beside the writes is
     * dropped), then timed. */
    remove(graph);
    sh = open_shard(shard_dir, 0, NULL);
    struct mm_ann_status st;
    t0 = now();
    if (mm_shard_ann_wait(sh, &st, &err) != 0) die("approximate index", &err);
    double build = now() - t0;
    shard_latency(sh, q, vecs, n, dim, approx, &p50, &p99);
    int same = 0;
    for (int i = 0; i < n; i++)
        same += exact[i].search_len == approx[i].search_len &&
                exact[i].query_len == approx[i].query_len &&
                !memcmp(exact[i].search, approx[i].search, exact[i].search_len) &&
                !memcmp(exact[i].query, approx[i].query, exact[i].query_len);
    printf("search + lookup at the shard, approximate index, %d entities: p50 %.2f ms, p99 %.2f "
           "ms; answers identical to exact search: %d of %d\n",
           2 * facts, p50, p99, same, n);
    printf("approximate index: %zu names indexed in %.1f s (%.0f us/name, one indexer thread), "
           "graph and codes %.0f MB beside %.0f MB of float vectors\n",
           st.nodes, build, 1e6 * build / (double)st.nodes, (double)st.graph_bytes / 1e6,
           (double)st.nodes * dim * 4 / 1e6);
    t0 = now();
    mm_shard_close(sh); /* saves the graph */
    double save = now() - t0, open_ann;
    sh = open_shard(shard_dir, 0, &open_ann);
    if (mm_shard_ann_wait(sh, &st, &err) != 0) die("approximate index", &err);
    printf("shard open: %.1f s without the graph, %.1f s with it (%zu nodes from its file; "
           "close with save %.1f s)\n",
           open_exact, open_ann, st.loaded, save);
    mm_shard_close(sh);
    for (int i = 0; i < n; i++) {
        free(exact[i].search);
        free(exact[i].query);
        free(approx[i].search);
        free(approx[i].query);
    }
    free(exact);
    free(approx);

    m = mm_memory_open_local(dir, 1, emb, 0, &err);
    if (!m) die("open", &err);
    latency(m, q, n, &p50, &p99);
    printf("query through the client (embedding included), approximate index, %d entities: "
           "p50 %.2f ms, p99 %.2f ms\n",
           2 * facts, p50, p99);
    if (mm_memory_close(m, &err) != 0) die("close", &err);
    free(vecs);
    free(q);
    free(subj);
    free(obj);
    rmtree(dir);
}

/* Recall@10 of the approximate index on n synthetic rows. */
static void bench_recall(size_t n)
{
    const int dim = 384, nq = 1000;
    struct synth_model model;
    if (synth_model_init(&model, dim, 7) != 0) {
        fprintf(stderr, "bench_memory: out of memory\n");
        exit(1);
    }
    float *vecs = xmalloc((n + (size_t)nq) * (size_t)dim * sizeof(float));
    if (synth_vectors(&model, 0, n + (size_t)nq, vecs) != 0) {
        fprintf(stderr, "bench_memory: out of memory\n");
        exit(1);
    }
    synth_model_free(&model);
    const float *queries = vecs + n * (size_t)dim;

    struct mm_vector_index ix;
    struct mm_err err;
    mm_vindex_init(&ix, dim);
    if (mm_vindex_reserve(&ix, n, &err) != 0) die("vector index", &err);
    char text[32];
    for (size_t i = 0; i < n; i++) {
        snprintf(text, sizeof(text), "row %zu", i);
        if (mm_vindex_add(&ix, i, text, vecs + i * (size_t)dim, &err) != 0)
            die("vector index", &err);
    }
    struct mm_ann_options o = {.min_rows = 1};
    double t0 = now();
    mm_vindex_enable_ann(&ix, &o, NULL);
    struct mm_ann_status st;
    if (mm_vindex_ann_wait(&ix, &st, &err) != 0) die("approximate index", &err);
    double build = now() - t0;
    mm_ann_options_resolve(&o);
    printf("recall, %zu synthetic rows (dim %d): graph (m %u, ef_construction %u) built in %.1f s "
           "(%.0f us/row), graph and codes %.0f MB beside %.0f MB of float vectors\n",
           n, dim, o.m, o.ef_construction, build, 1e6 * build / (double)n,
           (double)st.graph_bytes / 1e6, (double)n * dim * 4 / 1e6);

    /* The truth: the 10 best rows of every query by a full scan. */
    size_t *truth = xmalloc((size_t)nq * 10 * sizeof(*truth));
    float *best = xmalloc((size_t)nq * 10 * sizeof(*best));
    for (int i = 0; i < nq * 10; i++)
        best[i] = -2.0f;
    const size_t block = 16384;
    float *sims = xmalloc((size_t)nq * block * sizeof(float));
    t0 = now();
    for (size_t start = 0; start < n; start += block) {
        size_t rows = n - start < block ? n - start : block;
        struct k_matrix w = {.dtype = MM_F32,
                             .rows = (int64_t)rows,
                             .cols = dim,
                             .row_bytes = (size_t)dim * sizeof(float),
                             .data = ix.vecs + start * (size_t)dim};
        k_matmul_forward(sims, queries, &w, nq);
        for (int qi = 0; qi < nq; qi++) {
            float *b = best + qi * 10;
            size_t *tr = truth + qi * 10;
            for (size_t r = 0; r < rows; r++) {
                float s = sims[(size_t)qi * rows + r];
                if (s <= b[9]) continue;
                int k = 9;
                for (; k > 0 && b[k - 1] < s; k--) {
                    b[k] = b[k - 1];
                    tr[k] = tr[k - 1];
                }
                b[k] = s;
                tr[k] = ix.owner[start + r];
            }
        }
    }
    printf("  brute-force scan (batched, the reference): %.1f ms per query\n",
           1e3 * (now() - t0) / nq);
    free(sims);
    free(best);

    const uint32_t efs[] = {64, 128, 192, 256};
    double *t = xmalloc((size_t)nq * sizeof(*t));
    for (size_t e = 0; e < sizeof(efs) / sizeof(efs[0]); e++) {
        mm_vindex_set_ef_search(&ix, efs[e]);
        size_t found = 0;
        for (int qi = 0; qi < nq; qi++) {
            struct mm_vector_hit *h;
            size_t nh;
            double q0 = now();
            if (mm_vindex_search_k(&ix, queries + (size_t)qi * dim, 1, -1.0, 10, &h, &nh, &err))
                die("search", &err);
            t[qi] = (now() - q0) * 1e3;
            for (int i = 0; i < 10; i++)
                for (size_t j = 0; j < 10 && j < nh; j++)
                    found += ix.owner[h[j].row] == truth[qi * 10 + i];
            free(h);
        }
        double p50, p99;
        percentiles(t, nq, &p50, &p99);
        printf("  ef_search %3u%s: recall@10 %.4f, top-10 search p50 %.3f ms, p99 %.3f ms\n",
               efs[e], efs[e] == MM_ANN_DEFAULT_EF_SEARCH ? " (default)" : "",
               (double)found / (10.0 * nq), p50, p99);
    }
    free(t);
    free(truth);
    mm_vindex_free(&ix);
    free(vecs);
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

/* Passes over the query set per shard count, the first one a warm-up. The
 * two memories take turns pass by pass, so that load from other processes
 * on the machine falls on both alike. */
#define SCATTER_PASSES 8

static void bench_scatter(const char *docred, const char *props, struct mm_embedder *emb)
{
    struct collect c = {.cap = 500};
    c.q = calloc((size_t)c.cap, sizeof(*c.q));
    size_t ndocs;
    struct mm_err err;
    if (mm_docred_each(docred, props, collect_queries, &c, &ndocs, &err) != 0) die(docred, &err);
    const uint32_t shards[2] = {1, 3};
    char *dir[2];
    struct mm_memory *m[2];
    for (int l = 0; l < 2; l++) {
        dir[l] = scratch("scatter");
        m[l] = mm_memory_open_local(dir[l], shards[l], emb, 0, &err);
        if (!m[l]) die("open", &err);
        struct import_ctx im = {.m = m[l]};
        if (mm_docred_each(docred, props, import_doc, &im, &ndocs, &err) != 0) die(docred, &err);
    }
    const int timed = (SCATTER_PASSES - 1) * c.n;
    double *t[2] = {xmalloc((size_t)timed * sizeof(double)),
                    xmalloc((size_t)timed * sizeof(double))};
    for (int pass = 0; pass < SCATTER_PASSES; pass++)
        for (int l = 0; l < 2; l++)
            time_queries(m[l], c.q, c.n, pass ? t[l] + (size_t)(pass - 1) * (size_t)c.n : t[l]);
    double p50[2], p99[2];
    for (int l = 0; l < 2; l++) {
        percentiles(t[l], timed, &p50[l], &p99[l]);
        free(t[l]);
        if (mm_memory_close(m[l], &err) != 0) die("close", &err);
        rmtree(dir[l]);
    }
    printf("scatter-gather, %d DocRED queries x %d passes (after a warm-up), in one process: "
           "1 shard p50 %.3f / p99 %.3f ms, 3 shards p50 %.3f / p99 %.3f ms (x%.2f at p50, "
           "x%.2f at p99)\n",
           c.n, SCATTER_PASSES - 1, p50[0], p99[0], p50[1], p99[1], p50[1] / p50[0],
           p99[1] / p99[0]);
    for (int i = 0; i < c.n; i++) {
        free((char *)c.q[i].entity);
        free((char *)c.q[i].relation);
    }
    free(c.q);
}

static int wanted(const char *only, const char *section)
{
    return !only[0] || strcmp(only, section) == 0;
}

int main(int argc, char **argv)
{
    char docred[4096], props[4096], only[32] = "", recall_rows[256] = "100000,1000000";
    const char *model = NULL;
    /* data/ of the source tree this was built from (bench/CMakeLists.txt),
     * or MEMLLM_DATA: never a path relative to the current directory. */
    const char *data = getenv("MEMLLM_DATA");
    if (!data || !data[0]) data = MEMLLM_DATA_DIR;
    snprintf(docred, sizeof(docred), "%s/redocred/dev_revised.json", data);
    snprintf(props, sizeof(props), "%s/wikidata_props_en.json", data);
    int entities = 1000000, writes = 20000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--docred") && i + 1 < argc)
            snprintf(docred, sizeof(docred), "%s", argv[++i]);
        else if (!strcmp(argv[i], "--props") && i + 1 < argc)
            snprintf(props, sizeof(props), "%s", argv[++i]);
        else if (!strcmp(argv[i], "--entities") && i + 1 < argc)
            entities = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--writes") && i + 1 < argc)
            writes = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--recall-rows") && i + 1 < argc)
            snprintf(recall_rows, sizeof(recall_rows), "%s", argv[++i]);
        else if (!strcmp(argv[i], "--embedder") && i + 1 < argc)
            model = argv[++i];
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            snprintf(only, sizeof(only), "%s", argv[++i]);
        else {
            fprintf(stderr, "usage: bench_memory [--docred FILE] [--props FILE] [--entities N] "
                            "[--writes N] [--recall-rows N[,N...]] [--embedder DIR] "
                            "[--only import|writes|latency|recall|scatter]\n");
            return 2;
        }
    }
    if (entities < 2 || writes < 1) {
        fprintf(stderr, "bench_memory: --entities must be >= 2 and --writes >= 1\n");
        return 2;
    }
    struct mm_err err;
    struct timed_embedder emb = {.inner = model ? mm_bert_embedder_new(model, &err)
                                                : mm_fallback_embedder_new(&err)};
    if (!emb.inner) die(model ? model : "fallback embedder", &err);
    printf("embedder: %s\n", emb.inner->name);
    emb.base = *emb.inner;
    emb.base.embed = timed_embed;
    emb.base.destroy = timed_destroy;

    if (wanted(only, "import")) bench_import(docred, props, &emb);
    if (wanted(only, "writes")) bench_writes(&emb.base, writes);
    if (wanted(only, "latency")) bench_latency(&emb.base, entities);
    if (wanted(only, "recall"))
        for (char *tok = strtok(recall_rows, ","); tok; tok = strtok(NULL, ","))
            if (atol(tok) > 0) bench_recall((size_t)atol(tok));
    if (wanted(only, "scatter")) bench_scatter(docred, props, &emb.base);
    mm_embedder_free(emb.inner);
    return 0;
}
