#include "optimizer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int grad_sum_init(struct grad_sum *s, size_t count, struct mm_err *err)
{
    s->count = count;
    s->q = calloc(count ? count : 1, sizeof(int64_t));
    if (!s->q) {
        mm_err_set(err, "trainer: out of memory for the gradient sum of %zu parameters", count);
        return -1;
    }
    return 0;
}

void grad_sum_free(struct grad_sum *s)
{
    free(s->q);
    memset(s, 0, sizeof(*s));
}

void grad_sum_zero(struct grad_sum *s)
{
    memset(s->q, 0, s->count * sizeof(int64_t));
}

int grad_sum_add(struct grad_sum *s, const float *g, struct mm_err *err)
{
    const double unit = ldexp(1.0, GRAD_SUM_BITS), limit = ldexp(1.0, 62 - GRAD_SUM_BITS);
    for (size_t i = 0; i < s->count; i++) {
        double v = (double)g[i];
        if (!(fabs(v) < limit)) {
            mm_err_set(err,
                       "gradient element %zu is %g: beyond the fixed-point sum's range "
                       "(the run diverged; lower the learning rate)",
                       i, v);
            return -1;
        }
        s->q[i] += llrint(v * unit);
    }
    return 0;
}

void grad_sum_read(const struct grad_sum *s, float *out)
{
    const double unit = ldexp(1.0, -GRAD_SUM_BITS);
    for (size_t i = 0; i < s->count; i++)
        out[i] = (float)((double)s->q[i] * unit);
}

double grad_clip(float *g, size_t count, double max_norm)
{
    double ss = 0;
    for (size_t i = 0; i < count; i++)
        ss += (double)g[i] * g[i];
    double norm = sqrt(ss);
    if (max_norm > 0 && norm > max_norm) {
        float coef = (float)(max_norm / (norm + 1e-6));
        for (size_t i = 0; i < count; i++)
            g[i] *= coef;
    }
    return norm;
}

int adamw_init(struct adamw *o, size_t count, struct mm_err *err)
{
    o->count = count;
    o->step = 0;
    o->m = calloc(count ? count : 1, sizeof(float));
    o->v = calloc(count ? count : 1, sizeof(float));
    if (!o->m || !o->v) {
        adamw_free(o);
        mm_err_set(err, "trainer: out of memory for AdamW's moments");
        return -1;
    }
    return 0;
}

void adamw_free(struct adamw *o)
{
    free(o->m);
    free(o->v);
    o->m = o->v = NULL;
}

void adamw_step(struct adamw *o, float *param, const float *g, double lr)
{
    o->step++;
    /* torch.optim.AdamW (single tensor): decoupled decay first, then the
     * moments (m by lerp), bias corrections, and the update in float */
    float decay = (float)(1.0 - lr * o->weight_decay);
    float b1 = (float)o->beta1, b2 = (float)o->beta2;
    double bc1 = 1.0 - pow(o->beta1, (double)o->step);
    double bc2_sqrt = sqrt(1.0 - pow(o->beta2, (double)o->step));
    float step_size = (float)(lr / bc1), bc2s = (float)bc2_sqrt, eps = (float)o->eps;
    for (size_t i = 0; i < o->count; i++) {
        param[i] *= decay;
        o->m[i] += (1.0f - b1) * (g[i] - o->m[i]);
        o->v[i] = o->v[i] * b2 + (1.0f - b2) * g[i] * g[i];
        float denom = sqrtf(o->v[i]) / bc2s + eps;
        param[i] -= step_size * (o->m[i] / denom);
    }
}

double lr_linear_warmup(double lr, int64_t step, int64_t warmup, int64_t total)
{
    if (step < warmup) return lr * (double)step / (double)(warmup > 1 ? warmup : 1);
    double f = (double)(total - step) / (double)(total - warmup > 1 ? total - warmup : 1);
    return lr * (f > 0 ? f : 0);
}
