#include "trainer_log.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plot_png.h"
#include "remove_tree.h"
#include "safetensors.h"
#include "trainer.h"

int trainer_log_init(struct trainer_log *l, const struct trainer_options *o,
                     const struct train_params *p, int64_t total_steps, struct mm_err *err)
{
    memset(l, 0, sizeof(*l));
    size_t n = (size_t)(total_steps > 0 ? total_steps : 1);
    l->train_loss = malloc(n * sizeof(double));
    l->val_loss = malloc(n * sizeof(double));
    l->grad_norm = malloc(n * sizeof(double));
    l->meta = json_pack("{s:s, s:s, s:s?, s:s?, s:I, s:I, s:i, s:i, s:I, s:f, s:f, s:I}", "model",
                        o->model, "data", o->data, "val", o->val, "init", o->init, "params",
                        (json_int_t)p->count, "steps", (json_int_t)total_steps, "batch", o->batch,
                        "epochs", o->epochs, "seed", (json_int_t)o->seed, "lr", o->lr, "dropout",
                        (double)p->cfg.dropout, "warmup", (json_int_t)o->warmup);
    if (!l->train_loss || !l->val_loss || !l->grad_norm || !l->meta) {
        trainer_log_free(l);
        mm_err_set(err, "trainer: out of memory");
        return -1;
    }
    return 0;
}

void trainer_log_free(struct trainer_log *l)
{
    free(l->train_loss);
    free(l->val_loss);
    free(l->grad_norm);
    json_decref(l->meta);
    memset(l, 0, sizeof(*l));
}

int trainer_log_step(struct trainer_log *l, int64_t step, double loss, double val, double norm,
                     struct mm_err *err)
{
    (void)err;
    l->train_loss[step - 1] = loss;
    l->val_loss[step - 1] = val;
    l->grad_norm[step - 1] = norm;
    l->n = step;
    return 0;
}

int trainer_log_write(const struct trainer_log *l, const char *dir, struct mm_err *err)
{
    char path[8192];
    snprintf(path, sizeof(path), "%s/loss.csv", dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        mm_err_set(err, "%s: %s", path, strerror(errno));
        return -1;
    }
    fprintf(f, "step,train_loss,val_loss,grad_norm\n");
    for (int64_t i = 0; i < l->n; i++) {
        fprintf(f, "%lld,%.6f,", (long long)i + 1, l->train_loss[i]);
        if (!isnan(l->val_loss[i])) fprintf(f, "%.6f", l->val_loss[i]);
        fprintf(f, ",%.6g\n", l->grad_norm[i]);
    }
    if (fclose(f) != 0) {
        mm_err_set(err, "%s: write failed", path);
        return -1;
    }
    if (l->n == 0) return 0;
    /* x of every step; the validation points (every --val-every steps)
     * gathered so that they join up */
    double *x = malloc((size_t)l->n * 3 * sizeof(double)), *vx = x + l->n, *vy = vx + l->n;
    if (!x) {
        mm_err_set(err, "trainer: out of memory");
        return -1;
    }
    size_t nv = 0;
    for (int64_t i = 0; i < l->n; i++) {
        x[i] = (double)(i + 1);
        if (isnan(l->val_loss[i])) continue;
        vx[nv] = x[i];
        vy[nv++] = l->val_loss[i];
    }
    int n_series = nv > 0 ? 2 : 1;
    struct plot_series s[2] = {{"train", x, l->train_loss, (size_t)l->n},
                               {"validation", vx, vy, nv}};
    struct plot_spec spec = {"memllm train: loss",
                             "optimizer step",
                             "mean cross-entropy of the target tokens",
                             800,
                             500,
                             0};
    snprintf(path, sizeof(path), "%s/loss.png", dir);
    int rc = plot_png_write(path, &spec, s, (size_t)n_series, err);
    free(x);
    return rc;
}

static int write_state(const char *dir, const struct train_params *p, const struct adamw *o,
                       int64_t step, const struct trainer_log *l, struct mm_err *err)
{
    char path[8192];
    snprintf(path, sizeof(path), "%s/state.safetensors", dir);
    struct st_out_tensor t[3] = {{"value", MM_F32, 1, (int64_t)p->count, p->value},
                                 {"adam_m", MM_F32, 1, (int64_t)p->count, o->m},
                                 {"adam_v", MM_F32, 1, (int64_t)p->count, o->v}};
    if (st_write(path, t, 3, NULL, err)) return -1;
    json_t *curve = json_array();
    for (int64_t i = 0; i < l->n; i++)
        json_array_append_new(
            curve, json_pack("[f, o, f]", l->train_loss[i],
                             isnan(l->val_loss[i]) ? json_null() : json_real(l->val_loss[i]),
                             l->grad_norm[i]));
    json_t *state = json_pack("{s:I, s:I, s:O, s:o}", "step", (json_int_t)step, "adam_step",
                              (json_int_t)o->step, "run", l->meta, "curve", curve);
    snprintf(path, sizeof(path), "%s/state.json", dir);
    int bad = !state || json_dump_file(state, path, JSON_INDENT(1)) != 0;
    json_decref(state);
    if (bad) {
        mm_err_set(err, "%s: write failed", path);
        return -1;
    }
    return 0;
}

int trainer_checkpoint_save(const char *dir, const struct train_params *p, const struct adamw *o,
                            int64_t step, const struct trainer_log *l, struct mm_err *err)
{
    char tmp[4096], cur[4096], old[4096];
    snprintf(tmp, sizeof(tmp), "%s/checkpoint.tmp", dir);
    snprintf(cur, sizeof(cur), "%s/checkpoint", dir);
    snprintf(old, sizeof(old), "%s/checkpoint.old", dir);
    if (remove_tree(tmp) != 0 || mkdir(tmp, 0755) != 0) {
        mm_err_set(err, "%s: %s", tmp, strerror(errno));
        return -1;
    }
    if (write_state(tmp, p, o, step, l, err)) return -1;
    remove_tree(old);
    if ((rename(cur, old) != 0 && errno != ENOENT) || rename(tmp, cur) != 0) {
        mm_err_set(err, "%s: could not swap in the new checkpoint: %s", cur, strerror(errno));
        return -1;
    }
    remove_tree(old);
    return 0;
}

static int read_state(const char *dir, struct train_params *p, struct adamw *o, int64_t *step,
                      struct trainer_log *l, struct mm_err *err)
{
    char path[8192];
    snprintf(path, sizeof(path), "%s/state.json", dir);
    json_error_t jerr;
    json_t *state = json_load_file(path, 0, &jerr);
    struct st_file *st = NULL;
    int rc = -1;
    if (!state) {
        mm_err_set(err, "%s: %s", path, jerr.text);
        goto out;
    }
    json_t *curve = json_object_get(state, "curve");
    if (!json_equal(json_object_get(state, "run"), l->meta)) {
        char *have = json_dumps(json_object_get(state, "run"), JSON_COMPACT);
        mm_err_set(err,
                   "%s: the checkpoint is of another run (%s); use another --out or drop "
                   "--resume",
                   path, have ? have : "?");
        free(have);
        goto out;
    }
    int64_t s = json_integer_value(json_object_get(state, "step"));
    if (!json_is_array(curve) || (int64_t)json_array_size(curve) != s) {
        mm_err_set(err, "%s: the loss curve does not match the step", path);
        goto out;
    }
    snprintf(path, sizeof(path), "%s/state.safetensors", dir);
    st = st_open(path, err);
    if (!st) goto out;
    const char *names[3] = {"value", "adam_m", "adam_v"};
    float *dst[3] = {p->value, o->m, o->v};
    for (int i = 0; i < 3; i++) {
        const struct st_tensor *t = st_find(st, names[i]);
        if (!t || t->dtype != MM_F32 || t->nbytes != p->count * sizeof(float)) {
            mm_err_set(err, "%s: tensor '%s' is missing or not %zu f32 values", path, names[i],
                       p->count);
            goto out;
        }
        memcpy(dst[i], t->data, t->nbytes);
    }
    *step = s;
    o->step = json_integer_value(json_object_get(state, "adam_step"));
    size_t i;
    json_t *row;
    json_array_foreach(curve, i, row)
    {
        json_t *v = json_array_get(row, 1);
        l->train_loss[i] = json_number_value(json_array_get(row, 0));
        l->val_loss[i] = json_is_number(v) ? json_number_value(v) : NAN;
        l->grad_norm[i] = json_number_value(json_array_get(row, 2));
    }
    l->n = s;
    rc = 0;
out:
    if (st) st_close(st);
    json_decref(state);
    return rc;
}

int trainer_checkpoint_load(const char *dir, struct train_params *p, struct adamw *o, int64_t *step,
                            struct trainer_log *l, int *found, struct mm_err *err)
{
    /* checkpoint/, or checkpoint.old/ when a kill came between the renames */
    static const char *const names[] = {"checkpoint", "checkpoint.old"};
    *found = 0;
    for (size_t i = 0; i < 2; i++) {
        char path[4096], probe[4200];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        snprintf(probe, sizeof(probe), "%s/state.json", path);
        if (access(probe, F_OK) != 0) continue;
        *found = 1;
        return read_state(path, p, o, step, l, err);
    }
    return 0;
}
