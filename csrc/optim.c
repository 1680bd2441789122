/* optim.c - fused optimizer updates: one pass over a parameter p, its
 * gradient g and the optimizer's state, in place, with torch.optim's update
 * rules operation for operation (the single-tensor code path PyTorch runs on
 * CPU), so that a run matches PyTorch step for step.
 *
 * Scalars (lr, betas, bias corrections) are computed in double, as PyTorch
 * computes them in Python, and rounded once to the parameter's type; the
 * elementwise math then runs in that type, as PyTorch's kernels do.
 *
 * The kernels are written once in terms of `real` and FN(name): this file
 * includes itself for float and for double (as precision_f32.c and
 * precision_f64.c do with the recurrent kernels).
 */
#ifndef FR_OPTIM_KERNELS
#include <math.h>
#include <stddef.h>
#include "fastrnn.h"

#define FR_OPTIM_KERNELS
#define real float
#define FN(name) name##_f32
#define SQRT sqrtf
#include "optim.c"
#undef real
#undef FN
#undef SQRT
#define real double
#define FN(name) name##_f64
#define SQRT sqrt
#include "optim.c"
#undef real
#undef FN
#undef SQRT

void fr_sgd_update(fr_dtype dtype, size_t n, void *p, const void *g, void *buf, double lr,
                   double momentum, double dampening, double weight_decay, int nesterov,
                   int first_step)
{
    if (dtype == FR_F32)
        sgd_f32(n, p, g, buf, lr, momentum, dampening, weight_decay, nesterov, first_step);
    else
        sgd_f64(n, p, g, buf, lr, momentum, dampening, weight_decay, nesterov, first_step);
}

void fr_adam_update(fr_dtype dtype, size_t n, void *p, const void *g, void *exp_avg,
                    void *exp_avg_sq, void *max_exp_avg_sq, double lr, double beta1, double beta2,
                    double eps, double weight_decay, int decoupled_weight_decay, long long step)
{
    if (dtype == FR_F32)
        adam_f32(n, p, g, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, beta1, beta2, eps, weight_decay,
                 decoupled_weight_decay, step);
    else
        adam_f64(n, p, g, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, beta1, beta2, eps, weight_decay,
                 decoupled_weight_decay, step);
}

void fr_adagrad_update(fr_dtype dtype, size_t n, void *p, const void *g, void *sum, double lr,
                       double lr_decay, double weight_decay, double eps, long long step)
{
    if (dtype == FR_F32)
        adagrad_f32(n, p, g, sum, lr, lr_decay, weight_decay, eps, step);
    else
        adagrad_f64(n, p, g, sum, lr, lr_decay, weight_decay, eps, step);
}

double fr_sum_squares(fr_dtype dtype, size_t n, const void *x)
{
    return dtype == FR_F32 ? sum_squares_f32(n, x) : sum_squares_f64(n, x);
}

#else /* the kernels, for one `real` */

/* SGD:  d = g + weight_decay * p
 *       momentum: buf = d on the first step, else buf = momentum * buf + (1 - dampening) * d;
 *                 d = nesterov ? d + momentum * buf : buf
 *       p = p - lr * d */
static void FN(sgd)(size_t n, real *restrict p, const real *restrict g, real *restrict buf,
                    double lr, double momentum, double dampening, double weight_decay, int nesterov,
                    int first_step)
{
    const real neg_lr = (real)-lr, wd = (real)weight_decay, mom = (real)momentum;
    const real keep = (real)(1.0 - dampening);
    for (size_t i = 0; i < n; i++) {
        real d = g[i];
        if (weight_decay != 0.0)
            d = d + wd * p[i];
        if (momentum != 0.0) {
            real b = first_step ? d : buf[i] * mom + keep * d;
            buf[i] = b;
            d = nesterov ? d + mom * b : b;
        }
        p[i] = p[i] + neg_lr * d;
    }
}

/* Adam (decoupled_weight_decay = 0) and AdamW (1), step = 1, 2, ...:
 *   Adam:  g = g + weight_decay * p          AdamW:  p = p * (1 - lr * weight_decay)
 *   m = lerp(m, g, 1 - beta1)                v = v * beta2 + (1 - beta2) * g * g
 *   amsgrad (vmax != NULL): vmax = max(vmax, v), used for v below
 *   p = p - lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps) */
static void FN(adam)(size_t n, real *restrict p, const real *restrict g, real *restrict m,
                     real *restrict v, real *restrict vmax, double lr, double beta1, double beta2,
                     double eps, double weight_decay, int decoupled, long long step)
{
    const real decay = (real)(1.0 - lr * weight_decay), wd = (real)weight_decay;
    const real w1 = (real)(1.0 - beta1), b2 = (real)beta2, w2 = (real)(1.0 - beta2);
    const real neg_step_size = (real) - (lr / (1.0 - pow(beta1, (double)step)));
    const real bc2_sqrt = (real)sqrt(1.0 - pow(beta2, (double)step));
    const real e = (real)eps;
    const int l2 = weight_decay != 0.0 && !decoupled, shrink = weight_decay != 0.0 && decoupled;
    for (size_t i = 0; i < n; i++) {
        real gi = g[i], pi = p[i];
        if (shrink)
            pi = pi * decay;
        if (l2)
            gi = gi + wd * pi;
        /* torch.lerp: start + w (end - start) for |w| < 0.5, else end - (end - start)(1 - w) */
        real mi = w1 < (real)0.5 ? m[i] + w1 * (gi - m[i]) : gi - (gi - m[i]) * ((real)1 - w1);
        real vi = v[i] * b2 + w2 * (gi * gi);
        m[i] = mi;
        v[i] = vi;
        if (vmax) {
            vi = vmax[i] > vi || vmax[i] != vmax[i] ? vmax[i] : vi; /* torch.maximum keeps NaN */
            vmax[i] = vi;
        }
        real denom = SQRT(vi) / bc2_sqrt + e;
        p[i] = pi + neg_step_size * (mi / denom);
    }
}

/* Adagrad, step = 1, 2, ...:
 *   g = g + weight_decay * p;   sum = sum + g * g
 *   p = p - lr / (1 + (step - 1) * lr_decay) * g / (sqrt(sum) + eps) */
static void FN(adagrad)(size_t n, real *restrict p, const real *restrict g, real *restrict sum,
                        double lr, double lr_decay, double weight_decay, double eps, long long step)
{
    const real neg_clr = (real) - (lr / (1.0 + (double)(step - 1) * lr_decay));
    const real wd = (real)weight_decay, e = (real)eps;
    for (size_t i = 0; i < n; i++) {
        real gi = g[i];
        if (weight_decay != 0.0)
            gi = gi + wd * p[i];
        real s = sum[i] + gi * gi;
        sum[i] = s;
        p[i] = p[i] + neg_clr * (gi / (SQRT(s) + e));
    }
}

/* sum_i x[i]^2, accumulated in double (for the gradient norm of clipping). */
static double FN(sum_squares)(size_t n, const real *restrict x)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += (double)x[i] * x[i];
        s1 += (double)x[i + 1] * x[i + 1];
        s2 += (double)x[i + 2] * x[i + 2];
        s3 += (double)x[i + 3] * x[i + 3];
    }
    for (; i < n; i++)
        s0 += (double)x[i] * x[i];
    return (s0 + s1) + (s2 + s3);
}

#endif
