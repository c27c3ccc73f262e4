#include "cli_args.h"

#include <cblas.h>
#include <errno.h>
#include <omp.h>
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
    if (!strcmp(argv[*i], "--merge")) {
        o->engine.merge = 1;
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

int cli_run_with_engine(const char *cmd, struct cli_model_opts *o, cli_job_fn job, void *arg)
{
    struct mm_err err = {{0}};
    struct cluster c;
    if (cluster_init(&c, o->engine.n_stages, 0, &err)) {
        if (c.rank == 0) fprintf(stderr, "memllm %s: %s\n", cmd, err.msg);
        cluster_finish(&c);
        return 2;
    }
    int rc = 0;
    if (c.role == ROLE_STAGE) {
        if (engine_serve_stage(&o->engine, c.index, c.comm, 0, cluster_first_stage(&c), &err)) {
            fprintf(stderr, "memllm %s: stage %d (rank %d): %s\n", cmd, c.index, c.rank, err.msg);
            cluster_abort(&c, 1);
            rc = 1;
        }
        cluster_finish(&c);
        return rc;
    }
    struct engine e;
    int opened = c.mpi ? engine_open_mpi(&e, &o->engine, c.comm, cluster_first_stage(&c), &err)
                       : engine_open(&e, &o->engine, &err);
    if (opened) {
        fprintf(stderr, "memllm %s: %s\n", cmd, err.msg);
        /* The stage ranks wait for batches that will not come. */
        cluster_abort(&c, 1);
        cluster_finish(&c);
        return 1;
    }
    rc = job(&e, &c, arg, &err);
    if (rc) fprintf(stderr, "memllm %s: %s\n", cmd, err.msg);
    engine_close(&e);
    cluster_finish(&c);
    return rc ? 1 : 0;
}
