#include "cli_args.h"

#include "cli_memory_internal.h"
#include "memory_service.h"

#include <cblas.h>
#include <errno.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_opt(int argc, char **argv, int *i, const char *name, const char **value)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return 0;
    if (a[n] == '=') {
        *value = a + n + 1;
        return 1;
    }
    if (a[n] != 0) return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "memllm: option %s needs a value\n", name);
        return -1;
    }
    *value = argv[++*i];
    return 1;
}

int cli_int(const char *name, const char *text, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi) {
        fprintf(stderr, "memllm: %s: '%s' is not an integer in [%ld, %ld]\n", name, text, lo, hi);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int cli_float(const char *name, const char *text, double lo, double hi, float *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "memllm: %s: '%s' is not a number in [%g, %g]\n", name, text, lo, hi);
        return -1;
    }
    *out = (float)v;
    return 0;
}

int cli_int_list(const char *name, const char *text, int *out, int cap, int *n)
{
    *n = 0;
    const char *p = text;
    while (*p) {
        char item[32];
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof(item) || *n == cap) {
            fprintf(stderr, "memllm: %s: '%s' is not a list of at most %d integers\n", name, text,
                    cap);
            return -1;
        }
        memcpy(item, p, len);
        item[len] = 0;
        if (cli_int(name, item, 1, 1 << 20, &out[(*n)++])) return -1;
        p += len + (p[len] == ',');
    }
    return 0;
}

int cli_model_opt(int argc, char **argv, int *i, struct cli_model_opts *o)
{
    const char *v = NULL;
    int r;
    if ((r = cli_opt(argc, argv, i, "--model", &v))) {
        o->engine.model_path = v;
        return r;
    }
    if ((r = cli_opt(argc, argv, i, "--adapter", &v))) {
        if (r < 0) return r;
        if (o->engine.n_adapters == ENGINE_MAX_ADAPTERS) {
            fprintf(stderr, "memllm: at most %d --adapter options\n", ENGINE_MAX_ADAPTERS);
            return -1;
        }
        o->engine.adapters[o->engine.n_adapters++] = v;
        return 1;
    }
    if ((r = cli_opt(argc, argv, i, "--context", &v)))
        return r < 0 ? r : cli_int("--context", v, 1, 1 << 24, &o->engine.context) ? -1 : 1;
    if ((r = cli_opt(argc, argv, i, "--threads", &v)))
        return r < 0 ? r : cli_int("--threads", v, 1, 4096, &o->threads) ? -1 : 1;
    if ((r = cli_opt(argc, argv, i, "--stages", &v)))
        return r < 0                                                               ? r
               : cli_int("--stages", v, 1, ENGINE_MAX_STAGES, &o->engine.n_stages) ? -1
                                                                                   : 1;
    if ((r = cli_opt(argc, argv, i, "--micro-batches", &v)))
        return r < 0                                                              ? r
               : cli_int("--micro-batches", v, 1, 4096, &o->engine.micro_batches) ? -1
                                                                                  : 1;
    if ((r = cli_opt(argc, argv, i, "--layers", &v))) {
        if (r < 0) return r;
        return cli_int_list("--layers", v, o->engine.split, ENGINE_MAX_STAGES - 1,
                            &o->engine.n_split)
                   ? -1
                   : 1;
    }
    if ((r = cli_opt(argc, argv, i, "--device", &v))) {
        if (r < 0) return r;
        if (!strcmp(v, "cpu") || !strcmp(v, "cuda")) {
            o->engine.device = !strcmp(v, "cuda") ? ENGINE_DEVICE_CUDA : ENGINE_DEVICE_CPU;
            return 1;
        }
        fprintf(stderr, "memllm: --device: '%s' is not cpu or cuda\n", v);
        return -1;
    }
    if (!strcmp(argv[*i], "--merge")) {
        o->engine.merge = 1;
        return 1;
    }
    if ((r = cli_opt(argc, argv, i, "--kv-cache-mb", &v)))
        return r < 0                                                                  ? r
               : cli_float("--kv-cache-mb", v, 1e-3, 1 << 24, &o->engine.kv_cache_mb) ? -1
                                                                                      : 1;
    if (!strcmp(argv[*i], "--no-prefix-cache")) {
        o->engine.no_prefix_cache = 1;
        return 1;
    }
    if (!strcmp(argv[*i], "--cuda-fast")) {
        o->engine.cuda_fast = 1;
        return 1;
    }
    return 0;
}

int cli_model_ready(const char *cmd, struct cli_model_opts *o)
{
    if (!o->engine.model_path) {
        fprintf(stderr, "memllm %s: --model PATH is required (see --help)\n", cmd);
        return -1;
    }
    if (o->threads > 0) {
        omp_set_num_threads(o->threads);
        openblas_set_num_threads(o->threads);
    }
    return 0;
}

int cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    return 0;
}

void cli_memory_opts_default(struct cli_memory_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->shards = -1;
    mm_query_options_default(&o->q);
}

static int refuse_no_memory(const char *cmd)
{
    fprintf(stderr,
            "memllm %s: --memshards 0 means no memory, and %s needs one (give --memshards S "
            ">= 1, or leave it out)\n",
            cmd, cmd);
    return -1;
}

int cli_memshards(const char *needs_memory, const char *text, int *out)
{
    int s;
    if (cli_int("--memshards", text, 0, 4096, &s)) return -1;
    if (s == 0 && needs_memory) return refuse_no_memory(needs_memory);
    *out = s;
    return 0;
}

int cli_memory_opt(int argc, char **argv, int *i, struct cli_memory_opts *o)
{
    const char *v = NULL;
    int r;
    if ((r = cli_opt(argc, argv, i, "--memory", &v))) {
        o->dir = v;
        return r;
    }
    if ((r = cli_opt(argc, argv, i, "--embedder", &v))) {
        o->embedder = v;
        return r;
    }
    if (!strcmp(argv[*i], "--sync")) {
        o->sync = 1;
        return 1;
    }
    /* 0 is checked against the command's needs in cli_memory_ready. */
    if ((r = cli_opt(argc, argv, i, "--memshards", &v)))
        return r < 0 ? r : cli_memshards(NULL, v, &o->shards) ? -1 : 1;
    return 0;
}

int cli_query_opt(int argc, char **argv, int *i, struct mm_query_options *q)
{
    const char *v = NULL;
    int r, qthr;
    if ((r = cli_opt(argc, argv, i, "--tau-e", &v)))
        return r < 0 ? r : cli_float("--tau-e", v, -1.0, 1.0, &q->tau_e) ? -1 : 1;
    if ((r = cli_opt(argc, argv, i, "--tau-r", &v)))
        return r < 0 ? r : cli_float("--tau-r", v, -1.0, 1.0, &q->tau_r) ? -1 : 1;
    if ((r = cli_opt(argc, argv, i, "--tau-t", &v)))
        return r < 0 ? r : cli_float("--tau-t", v, -1.0, 1.0, &q->tau_t) ? -1 : 1;
    if ((r = cli_opt(argc, argv, i, "--qthr", &v))) {
        if (r < 0 || cli_int("--qthr", v, 1, 100000, &qthr)) return -1;
        q->qthr = (uint32_t)qthr;
        return 1;
    }
    return 0;
}

int cli_write_opt(int argc, char **argv, int *i, struct mw_options *o)
{
    const char *v = NULL;
    int r;
    if ((r = cli_opt(argc, argv, i, "--delay", &v)))
        return r < 0 ? r : cli_int("--delay", v, 0, 1000, &o->delay) ? -1 : 1;
    if ((r = cli_opt(argc, argv, i, "--max-tokens", &v)))
        return r < 0 ? r : cli_int("--max-tokens", v, 1, 1 << 20, &o->max_tokens) ? -1 : 1;
    if ((r = cli_opt(argc, argv, i, "--repeats", &v)))
        return r < 0 ? r : cli_int("--repeats", v, 0, 1000, &o->repeats) ? -1 : 1;
    return 0;
}

int cli_memory_ready(const char *cmd, const struct cli_memory_opts *o, int required)
{
    if (required && o->shards == 0) return refuse_no_memory(cmd);
    if (required && !o->dir) {
        fprintf(stderr, "memllm %s: --memory DIR is required (see --help)\n", cmd);
        return -1;
    }
    if (o->shards == 0 && o->dir) {
        fprintf(stderr,
                "memllm %s: --memshards 0 means no memory, but --memory %s was given: drop "
                "one of them\n",
                cmd, o->dir);
        return -1;
    }
    if (o->shards > 0 && !o->dir) {
        fprintf(stderr,
                "memllm %s: --memshards %d needs --memory DIR (--memshards 0: run without a "
                "memory)\n",
                cmd, o->shards);
        return -1;
    }
    return 0;
}

/* Rank 0 picks the embedder (it may read the memory's record) before any
 * shard opens, and tells every rank whether that worked, so that no rank
 * waits for a job that will not start. */
static int agree_on_embedder(const struct cluster *c, const struct cli_memory_opts *mem,
                             struct mm_embedder **emb, struct mm_err *err)
{
    *emb = NULL;
    if (c->rank == 0) {
        uint32_t on_disk = mm_memory_shards_on_disk(mem->dir);
        *emb = cli_memory_embedder(mem->embedder, mem->dir, on_disk > 0, err);
    }
    int ok = c->rank != 0 || *emb != NULL;
    if (c->mpi) MPI_Bcast(&ok, 1, MPI_INT, 0, c->comm);
    if (!ok && c->rank != 0) mm_err_set(err, "the coordinator could not load the embedder");
    return ok ? 0 : -1;
}

static struct mm_memory *open_memory(const struct cluster *c, const struct cli_memory_opts *mem,
                                     struct mm_embedder *emb, struct mm_err *err)
{
    if (c->mpi && c->n_shards > 0)
        return mm_memory_open_mpi(c->comm, cluster_first_shard(c), (uint32_t)c->n_shards, emb, err);
    uint32_t on_disk = mm_memory_shards_on_disk(mem->dir);
    uint32_t shards = mem->shards > 0 ? (uint32_t)mem->shards : on_disk ? on_disk : 1;
    return mm_memory_open_local(mem->dir, shards, emb, mem->sync, err);
}

int cli_run_with_engine(const char *cmd, struct cli_model_opts *o,
                        const struct cli_memory_opts *mem, cli_job_fn job, void *arg)
{
    struct mm_err err = {{0}};
    struct cluster c;
    /* Shard ranks only with --memshards S >= 1: without it (or with 0) the
     * job is 1+P ranks, and a memory is opened by the coordinator. */
    int shard_ranks = mem && mem->dir && mem->shards > 0 ? mem->shards : 0;
    if (cluster_init(&c, o->engine.n_stages > 0 ? o->engine.n_stages : 1, shard_ranks, &err)) {
        if (c.rank == 0) fprintf(stderr, "memllm %s: %s\n", cmd, err.msg);
        cluster_finish(&c);
        return 2;
    }
    struct mm_embedder *emb = NULL;
    if (mem && mem->dir && agree_on_embedder(&c, mem, &emb, &err)) {
        if (c.rank == 0) fprintf(stderr, "memllm %s: %s\n", cmd, err.msg);
        cluster_finish(&c);
        return 1;
    }
    int rc = 0;
    if (c.role != ROLE_COORDINATOR) {
        /* mpirun forwards a SIGTERM to every rank. Stopping is the
         * coordinator's to do: memllm serve drains (answers what it took)
         * and then stops the stages and shards through the protocol, a batch
         * job dies and mpirun then ends the other ranks. A stage or shard
         * that died at once would cut a drain short. */
        signal(SIGTERM, SIG_IGN);
        int failed =
            c.role == ROLE_STAGE
                ? engine_serve_stage(&o->engine, c.index, c.comm, 0, cluster_first_stage(&c), &err)
                : mm_memory_serve_shard(mem->dir, (uint32_t)c.index, mem->sync, c.comm, 0, &err);
        if (failed) {
            fprintf(stderr, "memllm %s: %s %d (rank %d): %s\n", cmd,
                    c.role == ROLE_STAGE ? "stage" : "shard", c.index, c.rank, err.msg);
            cluster_abort(&c, 1);
            rc = 1;
        }
        cluster_finish(&c);
        return rc;
    }
    struct engine e;
    struct mm_memory *m = NULL;
    int opened = c.mpi ? engine_open_mpi(&e, &o->engine, c.comm, cluster_first_stage(&c), &err)
                       : engine_open(&e, &o->engine, &err);
    if (opened == 0 && emb && !(m = open_memory(&c, mem, emb, &err))) {
        engine_close(&e);
        opened = -1;
    }
    if (opened) {
        fprintf(stderr, "memllm %s: %s\n", cmd, err.msg);
        /* The other ranks wait for work that will not come. */
        cluster_abort(&c, 1);
        mm_embedder_free(emb);
        cluster_finish(&c);
        return 1;
    }
    rc = job(&e, m, &c, arg, &err);
    if (rc) fprintf(stderr, "memllm %s: %s\n", cmd, err.msg);
    struct mm_err cerr = {{0}};
    if (m && mm_memory_close(m, &cerr)) {
        fprintf(stderr, "memllm %s: %s\n", cmd, cerr.msg);
        rc = 1;
    }
    mm_embedder_free(emb);
    engine_close(&e);
    cluster_finish(&c);
    return rc ? 1 : 0;
}
