/* activations.h - sigmoid and tanh for the gate kernels.
 *
 * float: branch-free polynomial/rational forms that GCC vectorises inside the
 * gate loops (libm's expf/tanhf would not be), accurate to a few ulp.
 * double: libm, since float64 is for checking, not for speed.
 * NaN propagates through both; large magnitudes saturate without inf/inf.
 */
#ifndef FASTRNN_ACTIVATIONS_H
#define FASTRNN_ACTIVATIONS_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* exp(x) = 2^n * e^r, n = round(x / ln 2), |r| <= ln2 / 2; e^r by Cephes'
 * minimax polynomial. x is clamped to the range where the result is finite. */
static inline float fr_expf(float x)
{
    x = x > 88.3762626647949f ? 88.3762626647949f : x;
    x = x < -87.3365447504f ? -87.3365447504f : x;
    float n = floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    n = (n == n) ? n : 0.0f; /* NaN: keep the int conversion defined */
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale; /* NaN in x stays NaN through p */
}

/* sigmoid(x) = 1 / (1 + e^-x), exactly 0 where e^-x overflows (PyTorch's
 * 0 * inf = NaN then holds here too) */
static inline float fr_sigmoidf(float x)
{
    return x < -88.3762626647949f ? 0.0f : 1.0f / (1.0f + fr_expf(-x));
}

/* tanh(x) = x P(x^2) / Q(x^2) on [-7.9, 7.9] (Eigen's rational form); beyond
 * that tanh(x) rounds to +-1 in float. Odd, so small |x| keeps full relative
 * accuracy. */
static inline float fr_tanhf(float x)
{
    float c = x > 7.90531110763549805f ? 7.90531110763549805f : x;
    c = c < -7.90531110763549805f ? -7.90531110763549805f : c;
    float x2 = c * c;
    float p = -2.76076847742355e-16f;
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 - 8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    p = p * c;
    float q = 1.19825839466702e-06f;
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    return p / q;
}

static inline double fr_sigmoid(double x)
{
    return 1.0 / (1.0 + exp(-x));
}
static inline double fr_tanh(double x)
{
    return tanh(x);
}

#endif
