/* vmath.h - sigmoid and tanh over float32 arrays, in the SIMD code of the
 * level in use (fastrnn.h: fr_simd_level).
 *
 * Accurate to a few ulp; NaN propagates; large magnitudes saturate (no inf
 * from exp). y may equal x (in place). */
#ifndef FASTRNN_VMATH_H
#define FASTRNN_VMATH_H

void fr_sigmoid_f32(int n, const float *x, float *y); /* y = 1 / (1 + e^-x) */
void fr_tanh_f32(int n, const float *x, float *y);    /* y = tanh(x) */

/* The forward passes of the LSTM cell (peep NULL: no peepholes) and of the
 * GRU cell in PyTorch's form, n units of one batch row, with the arguments
 * and in-place outputs of lstm_cell.inc's and gru_cell.inc's forward (which
 * state the math), in one SIMD pass: 1 at the AVX-512 and AVX2 levels; else 0,
 * having done nothing (the caller then runs its passes over the arrays). */
int fr_lstm_forward_f32(int n, int H, float *pre, const float *bias, const float *peep,
                        const float *c_in, float *c_out, float *h);
int fr_gru_forward_f32(int n, int H, float *x, const float *r, const float *bias, float *a_out,
                       const float *h, float *h_out);

#endif
