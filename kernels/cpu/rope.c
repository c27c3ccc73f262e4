/* Rotary position embedding. Pair i of a head rotates by pos * theta^(-2i/d);
 * NEOX pairs element i with i + d/2 (HF's rotate_half), NORM pairs 2i with
 * 2i + 1 (llama.cpp's layout of GGUF llama tensors). The backward of a
 * rotation is the rotation by the opposite angle. */
#include <math.h>

#include "internal.h"

/* sign 1: the forward rotation; -1: its inverse (the backward). */
static void rope(float *x, const int32_t *pos, int n, int n_heads, int head_dim, float theta,
                 enum k_rope_style style, float sign)
{
    int half = head_dim / 2;
    float inv_freq[K_MAX_HEAD_DIM / 2];
    /* as HF: exponent 2i/d in f32, the power in higher precision, one
     * rounding to f32, and below the angle as an f32 product */
    for (int i = 0; i < half; i++) {
        float e = (float)(2 * i) / (float)head_dim;
        inv_freq[i] = (float)(1.0 / pow((double)theta, (double)e));
    }
    int64_t width = (int64_t)n_heads * head_dim;
#pragma omp parallel for schedule(static) if ((int64_t)n * width >= K_PARALLEL_MIN_WORK)
    for (int t = 0; t < n; t++) {
        float cs[K_MAX_HEAD_DIM / 2], sn[K_MAX_HEAD_DIM / 2];
        for (int i = 0; i < half; i++) {
            float angle = (float)pos[t] * inv_freq[i];
            cs[i] = cosf(angle);
            sn[i] = sign * sinf(angle);
        }
        for (int h = 0; h < n_heads; h++) {
            float *v = x + t * width + (int64_t)h * head_dim;
            if (style == K_ROPE_NEOX) {
                for (int i = 0; i < half; i++) {
                    float a = v[i], b = v[i + half];
                    v[i] = a * cs[i] - b * sn[i];
                    v[i + half] = b * cs[i] + a * sn[i];
                }
            } else {
                for (int i = 0; i < half; i++) {
                    float a = v[2 * i], b = v[2 * i + 1];
                    v[2 * i] = a * cs[i] - b * sn[i];
                    v[2 * i + 1] = a * sn[i] + b * cs[i];
                }
            }
        }
    }
}

void k_rope_forward(float *x, const int32_t *pos, int n, int n_heads, int head_dim, float theta,
                    enum k_rope_style style)
{
    rope(x, pos, n, n_heads, head_dim, theta, style, 1.0f);
}

void k_rope_backward(float *dx, const int32_t *pos, int n, int n_heads, int head_dim, float theta,
                     enum k_rope_style style)
{
    rope(dx, pos, n, n_heads, head_dim, theta, style, -1.0f);
}
