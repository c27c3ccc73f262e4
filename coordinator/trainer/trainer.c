#include "trainer.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model.h"
#include "optimizer.h"
#include "progress.h"
#include "safetensors.h"
#include "tokenizer.h"
#include "train_data.h"
#include "train_model.h"
#include "train_rng.h"
#include "trainer_log.h"
#ifdef MEMLLM_HAVE_CUDA
#include "forward_cuda.h"
#include "train_model_cuda.h"
#endif

/* The loss is summed exactly too, in units of 2^-LOSS_BITS, so every rank
 * count prints the same figures. */
#define LOSS_BITS 32

void trainer_options_default(struct trainer_options *o)
{
    memset(o, 0, sizeof(*o));
    o->lora.rank = 16;
    o->lora.alpha = 8;
    o->lora.dropout = 0.1f;
    o->lora.targets = (1u << (LIN_COUNT + 1)) - 1;
    o->auto_tokens = 1;
    o->lr = 2e-5;
    o->weight_decay = 0.0;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->eps = 1e-8;
    o->max_grad_norm = 1.0;
    o->epochs = 2;
    o->batch = 96;
    o->max_tokens = 1024;
    o->dtype = MM_F32;
}

struct run {
    const struct trainer_options *o;
    const struct cluster *c;
    struct model *m;
    struct tokenizer *tok;
    struct train_set train, val;
    struct train_params p;
    struct train_model tm; /* the CPU's, unless gpu */
    /* On the CPU, a step's examples run lanes at a time, one per thread:
     * lane 0 on tm, lane i on copies[i - 1], each with its own gradient
     * (lane 0's is g). Each example's kernels then run on one thread, with
     * no barrier between two threads' kernels. */
    int lanes;
    struct train_model *copies;
    float **grads;
#ifdef MEMLLM_HAVE_CUDA
    struct train_model_cuda *gpu; /* --device cuda */
#endif
    struct grad_sum sum;
    struct adamw opt;
    float *g;   /* one example's gradient, then the batch's */
    int *order; /* the epoch's example order */
    int64_t steps_per_epoch, total_steps, step;
    int64_t schedule_steps; /* the learning-rate schedule's length: all epochs */
    struct trainer_log log;
};

/* "({", "})", "-->" where the tokenizer has each as a single token. */
static void auto_tokens(struct train_lora_config *cfg, const struct tokenizer *tok)
{
    static const char *const markers[] = {"({", "})", "-->"};
    for (size_t i = 0; i < sizeof(markers) / sizeof(markers[0]); i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (tok_encode(tok, markers[i], strlen(markers[i]), 0, 1, &ids, &n, NULL) == 0 && n == 1 &&
            cfg->n_tokens < TRAIN_MAX_TOKENS)
            cfg->token_ids[cfg->n_tokens++] = ids[0];
        free(ids);
    }
}

/* The examples of global step `step`: order[first .. first + count). */
static void batch_of(const struct run *r, int64_t step, int *first, int *count)
{
    int64_t in_epoch = step % r->steps_per_epoch;
    *first = (int)(in_epoch * r->o->batch);
    *count = r->train.n - *first < r->o->batch ? r->train.n - *first : r->o->batch;
}

/* The epoch's order: a Fisher-Yates shuffle drawn from (seed, epoch). */
static void shuffle(struct run *r, int64_t epoch)
{
    for (int i = 0; i < r->train.n; i++)
        r->order[i] = i;
    for (int i = r->train.n - 1; i > 0; i--) {
        int j = (int)(train_rng_u64(r->o->seed, 0x5348554646ULL + (uint64_t)epoch, (uint64_t)i) %
                      (uint64_t)(i + 1));
        int t = r->order[i];
        r->order[i] = r->order[j];
        r->order[j] = t;
    }
}

static int allreduce(const struct run *r, int64_t *v, size_t n)
{
    if (!r->c->mpi || r->c->world == 1) return 0;
    return MPI_Allreduce(MPI_IN_PLACE, v, (int)n, MPI_INT64_T, MPI_SUM, r->c->comm) == MPI_SUCCESS
               ? 0
               : -1;
}

/* An example's forward (and backward when grad is not NULL) on this rank's
 * device, on one lane's copy of the model: train_model_example's contract on
 * either. */
static int run_example(struct run *r, int lane, const struct train_example *e, float scale,
                       uint64_t key, float *grad, double *loss, int *n_loss, struct mm_err *err)
{
#ifdef MEMLLM_HAVE_CUDA
    if (r->gpu)
        return train_model_cuda_example(r->gpu, e->tokens, e->target, e->n, scale, key, grad, loss,
                                        n_loss, err);
#endif
    return train_model_example(lane ? &r->copies[lane - 1] : &r->tm, e->tokens, e->target, e->n,
                               scale, key, grad, loss, n_loss, err);
}

/* Runs examples idx[0..n) of set, r->lanes at a time: with gradients
 * (train: each example's dropout drawn from (seed, epoch, index), its
 * gradient added to r->sum) or the forward only. acc gets the losses in
 * fixed point, the tokens run and the target tokens. The sums are exact, so
 * they do not depend on which lane ran which example or in what order. On
 * failure, the error is the first failing example's. */
static int run_examples(struct run *r, const struct train_set *set, const int *idx, int n,
                        float scale, int64_t epoch, int train, int64_t acc[3], struct mm_err *err)
{
    int lanes = r->lanes < n ? r->lanes : n, failed = n;
#pragma omp parallel for num_threads(lanes > 1 ? lanes : 1) if (lanes > 1) schedule(dynamic, 1)
    for (int j = 0; j < n; j++) {
        int lane = omp_get_thread_num();
        const struct train_example *e = &set->ex[idx[j]];
        uint64_t key =
            train ? train_rng_u64(r->o->seed, 0x44524f50ULL + (uint64_t)epoch, (uint64_t)idx[j])
                  : 0;
        float *grad = !train ? NULL : lane ? r->grads[lane] : r->g;
        double loss;
        int n_loss;
        struct mm_err e_err;
        int rc = run_example(r, lane, e, scale, key, grad, &loss, &n_loss, &e_err);
#pragma omp critical(trainer_sums)
        {
            if (rc == 0 && train) rc = grad_sum_add(&r->sum, grad, &e_err);
            if (rc == 0) {
                acc[0] += llrint(ldexp(loss, LOSS_BITS));
                acc[1] += e->n;
                acc[2] += n_loss;
            } else if (j < failed) {
                failed = j;
                *err = e_err;
            }
        }
    }
    if (failed == n) return 0;
    if (train) mm_err_prefix(err, "%s: line %d", r->o->data, set->ex[idx[failed]].line);
    return -1;
}

/* After the parameters changed. */
static int refresh(struct run *r, struct mm_err *err)
{
#ifdef MEMLLM_HAVE_CUDA
    if (r->gpu) return train_model_cuda_refresh(r->gpu, err);
#endif
    (void)err;
    train_model_refresh(&r->tm);
    return 0;
}

/* The forward and backward's state on the chosen device. */
static int open_model(struct run *r, int max_tokens, struct mm_err *err)
{
    if (!r->o->cuda) return train_model_init(&r->tm, r->m, &r->p, max_tokens, err);
#ifdef MEMLLM_HAVE_CUDA
    int device = stage_cuda_local_device(err);
    if (device < 0) {
        mm_err_prefix(err, "--device cuda");
        return -1;
    }
    r->gpu = train_model_cuda_init(r->m, &r->p, max_tokens, device, err);
    return r->gpu ? 0 : -1;
#else
    mm_err_set(err, "--device cuda: this memllm was built without the CUDA backend (nvcc was not "
                    "found when it was built)");
    return -1;
#endif
}

/* The lanes of the CPU path: as many as OpenMP threads, each but the first
 * a copy of the model with its own activations (train_model_init_copy) and
 * gradient. */
static int open_lanes(struct run *r, struct mm_err *err)
{
    r->lanes = 1;
    int want = r->o->cuda ? 1 : omp_get_max_threads();
    if (want < 2) return 0;
    r->copies = calloc((size_t)want - 1, sizeof(*r->copies));
    r->grads = calloc((size_t)want, sizeof(*r->grads));
    if (!r->copies || !r->grads) {
        mm_err_set(err, "trainer: out of memory for %d lanes", want);
        return -1;
    }
    for (int lane = 1; lane < want; lane++) {
        if (train_model_init_copy(&r->copies[lane - 1], &r->tm, err)) {
            mm_err_prefix(err, "lane %d of %d (one per thread; --threads sets how many)", lane + 1,
                          want);
            return -1;
        }
        r->lanes++;
        r->grads[lane] = malloc((r->p.count ? r->p.count : 1) * sizeof(float));
        if (!r->grads[lane]) {
            mm_err_set(err, "trainer: out of memory for the gradient of lane %d", lane + 1);
            return -1;
        }
    }
    return 0;
}

/* Mean loss over the validation examples' target tokens. */
static int validate(struct run *r, double *mean, struct mm_err *err)
{
    int64_t acc[3] = {0, 0, 0}; /* loss in fixed point, tokens, target tokens */
    int n = 0, *idx = malloc((size_t)(r->val.n > 0 ? r->val.n : 1) * sizeof(int));
    if (!idx) {
        mm_err_set(err, "validation: out of memory");
        return -1;
    }
    for (int i = r->c->rank; i < r->val.n; i += r->c->world)
        idx[n++] = i;
    int rc = run_examples(r, &r->val, idx, n, 1.0f, 0, 0, acc, err);
    free(idx);
    if (rc) return -1;
    acc[1] = acc[2];
    if (allreduce(r, acc, 2)) {
        mm_err_set(err, "validation: MPI_Allreduce failed");
        return -1;
    }
    *mean = ldexp((double)acc[0], -LOSS_BITS) / (double)acc[1];
    return 0;
}

/* One optimizer step over the step's global batch. */
static int train_step(struct run *r, double *mean_loss, double *grad_norm, int64_t *tokens,
                      struct mm_err *err)
{
    int first, count;
    batch_of(r, r->step, &first, &count);
    int64_t epoch = r->step / r->steps_per_epoch, targets = 0;
    for (int i = 0; i < count; i++)
        targets += r->train.ex[r->order[first + i]].n_target;
    float scale = (float)(1.0 / (double)targets);
    int64_t acc[3] = {0, 0, 0}; /* the loss in fixed point, the tokens run, the targets */
    grad_sum_zero(&r->sum);
    int n = 0, *idx = malloc((size_t)(count > 0 ? count : 1) * sizeof(int));
    if (!idx) {
        mm_err_set(err, "step %lld: out of memory", (long long)r->step);
        return -1;
    }
    for (int i = r->c->rank; i < count; i += r->c->world)
        idx[n++] = r->order[first + i];
    int rc = run_examples(r, &r->train, idx, n, scale, epoch, 1, acc, err);
    free(idx);
    if (rc) return -1;
    if (allreduce(r, r->sum.q, r->sum.count) || allreduce(r, acc, 2)) {
        mm_err_set(err, "step %lld: MPI_Allreduce of the gradients failed", (long long)r->step);
        return -1;
    }
    *mean_loss = ldexp((double)acc[0], -LOSS_BITS) / (double)targets;
    *tokens = acc[1];
    grad_sum_read(&r->sum, r->g);
    *grad_norm = grad_clip(r->g, r->p.count, r->o->max_grad_norm);
    double lr = lr_linear_warmup(r->o->lr, r->step, r->o->warmup, r->schedule_steps);
    adamw_step(&r->opt, r->p.value, r->g, lr);
    if (refresh(r, err)) return -1;
    r->step++;
    return 0;
}

static int setup(struct run *r, struct mm_err *err)
{
    const struct trainer_options *o = r->o;
    r->m = model_load(o->model, 0, -1, err);
    if (!r->m) return -1;
    r->tok = tok_load(o->model, err);
    if (!r->tok) return -1;
    int max_tokens =
        o->max_tokens < r->m->cfg.max_positions ? o->max_tokens : r->m->cfg.max_positions;
    if (train_set_load(&r->train, o->data, r->tok, max_tokens, err)) return -1;
    if (o->val && train_set_load(&r->val, o->val, r->tok, max_tokens, err)) return -1;
    if (o->init) {
        if (train_params_load(&r->p, r->m, o->init, o->lora.dropout, err)) return -1;
    } else {
        struct train_lora_config cfg = o->lora;
        if (o->auto_tokens) auto_tokens(&cfg, r->tok);
        if (train_params_init(&r->p, r->m, &cfg, o->seed, err)) return -1;
    }
    int longest = 2;
    for (int i = 0; i < r->train.n; i++)
        if (r->train.ex[i].n > longest) longest = r->train.ex[i].n;
    for (int i = 0; i < r->val.n; i++)
        if (r->val.ex[i].n > longest) longest = r->val.ex[i].n;
    if (open_model(r, longest, err) || open_lanes(r, err) ||
        grad_sum_init(&r->sum, r->p.count, err) || adamw_init(&r->opt, r->p.count, err))
        return -1;
    r->opt.beta1 = o->beta1;
    r->opt.beta2 = o->beta2;
    r->opt.eps = o->eps;
    r->opt.weight_decay = o->weight_decay;
    r->g = malloc((r->p.count ? r->p.count : 1) * sizeof(float));
    r->order = malloc((size_t)r->train.n * sizeof(int));
    if (!r->g || !r->order) {
        mm_err_set(err, "trainer: out of memory");
        return -1;
    }
    r->steps_per_epoch = (r->train.n + o->batch - 1) / o->batch;
    r->schedule_steps = r->steps_per_epoch * o->epochs;
    r->total_steps = r->schedule_steps;
    if (o->max_steps > 0 && o->max_steps < r->total_steps) r->total_steps = o->max_steps;
    return 0;
}

static void teardown(struct run *r)
{
    free(r->g);
    free(r->order);
    adamw_free(&r->opt);
    grad_sum_free(&r->sum);
    for (int lane = 1; lane < r->lanes; lane++) {
        train_model_free(&r->copies[lane - 1]);
        free(r->grads[lane]);
    }
    free(r->copies);
    free(r->grads);
    if (r->tm.m) train_model_free(&r->tm);
#ifdef MEMLLM_HAVE_CUDA
    train_model_cuda_free(r->gpu);
#endif
    train_params_free(&r->p);
    train_set_free(&r->train);
    train_set_free(&r->val);
    if (r->tok) tok_free(r->tok);
    if (r->m) model_free(r->m);
    trainer_log_free(&r->log);
}

static int make_dir(const char *dir, struct mm_err *err)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        mm_err_set(err, "%s: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

int trainer_run(const struct trainer_options *o, const struct cluster *c, struct mm_err *err)
{
    struct run r = {.o = o, .c = c};
    int rc = -1, lead = c->rank == 0;
    if (lead && make_dir(o->out, err)) return -1;
    if (setup(&r, err)) goto out;
    if (trainer_log_init(&r.log, o, &r.p, r.total_steps, err)) goto out;
    if (o->resume) {
        int found;
        if (trainer_checkpoint_load(o->out, &r.p, &r.opt, &r.step, &r.log, &found, err)) goto out;
        if (refresh(&r, err)) goto out;
        if (lead && !o->quiet)
            fprintf(stderr, "memllm train: %s at step %lld of %lld\n",
                    found ? "resuming" : "no checkpoint yet, starting", (long long)r.step,
                    (long long)r.total_steps);
    }
    if (lead && !o->quiet)
        fprintf(stderr,
                "memllm train: %d training examples (%lld tokens, %lld targets), %d validation; "
                "%lld steps of %d examples; %zu trainable parameters; %d rank(s)\n",
                r.train.n, (long long)r.train.tokens, (long long)r.train.targets, r.val.n,
                (long long)r.total_steps, o->batch, r.p.count, c->world);
    /* the rates and the ETA count this run's steps (a resumed run starts
     * mid-way); the first step also pays for touching fresh memory, hence
     * the steady rate after it */
    int64_t shuffled = -1, tokens_done = 0, first_step = r.step, tokens_first = 0;
    double t0 = progress_now(), t_first = 0, last_print = 0;
    while (r.step < r.total_steps) {
        int64_t epoch = r.step / r.steps_per_epoch;
        if (epoch != shuffled) {
            shuffle(&r, epoch);
            shuffled = epoch;
        }
        double loss, norm;
        int64_t tokens;
        if (train_step(&r, &loss, &norm, &tokens, err)) goto out;
        tokens_done += tokens;
        if (r.step == first_step + 1) {
            t_first = progress_now();
            tokens_first = tokens_done;
        }
        double val = NAN;
        int last = r.step == r.total_steps;
        if (r.val.n > 0 && ((o->val_every > 0 && r.step % o->val_every == 0) || last) &&
            validate(&r, &val, err))
            goto out;
        if (trainer_log_step(&r.log, r.step, loss, val, norm, err)) goto out;
        double now = progress_now(), rate = (double)tokens_done / (now - t0);
        if (lead && !o->quiet && (now - last_print >= 1.0 || last || !isnan(val))) {
            double eta =
                (double)(r.total_steps - r.step) * (now - t0) / (double)(r.step - first_step);
            fprintf(stderr,
                    "step %lld/%lld  epoch %lld  loss %.4f  grad-norm %.3g  %.0f tok/s  ETA %.0f s",
                    (long long)r.step, (long long)r.total_steps, (long long)epoch + 1, loss, norm,
                    rate, eta);
            if (!isnan(val)) fprintf(stderr, "  val-loss %.4f", val);
            fputc('\n', stderr);
            last_print = now;
        }
        if (lead && o->save_every > 0 && r.step % o->save_every == 0 && !last &&
            trainer_checkpoint_save(o->out, &r.p, &r.opt, r.step, &r.log, err))
            goto out;
    }
    if (lead) {
        if (train_params_save(&r.p, o->out, o->dtype, err) ||
            trainer_log_write(&r.log, o->out, err) ||
            trainer_checkpoint_save(o->out, &r.p, &r.opt, r.step, &r.log, err))
            goto out;
        if (!o->quiet) {
            double now = progress_now();
            fprintf(stderr, "memllm train: %lld steps, %lld tokens in %.1f s: %.1f tok/s",
                    (long long)(r.step - first_step), (long long)tokens_done, now - t0,
                    tokens_done / (now - t0));
            if (r.step - first_step > 1)
                fprintf(stderr, " (%.1f tok/s after the first step)",
                        (tokens_done - tokens_first) / (now - t_first));
            fprintf(stderr,
                    "\nmemllm train: adapter written to %s (loss.csv, loss.png beside it)\n",
                    o->out);
        }
    }
    rc = 0;
out:
    teardown(&r);
    return rc;
}
