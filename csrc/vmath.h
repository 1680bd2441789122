/* vmath.h - sigmoid and tanh over float32 arrays, SIMD chosen at run time
 * (the same choice as matmul.h's fr_matmul_isa).
 *
 * Accurate to a few ulp; NaN propagates; large magnitudes saturate (no inf
 * from exp). y may equal x (in place). */
#ifndef FASTRNN_VMATH_H
#define FASTRNN_VMATH_H

void fr_sigmoid_f32(int n, const float *x, float *y);   /* y = 1 / (1 + e^-x) */
void fr_tanh_f32(int n, const float *x, float *y);      /* y = tanh(x) */

#endif
