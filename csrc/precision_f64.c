/* precision_f64.c - the kernels in float64 (see internal.h): the baseline
 * kernel set, which precision_f64_avx2.c and precision_f64_avx512.c compile
 * again for their SIMD levels. */
#include <string.h>
#include "internal.h"
#include "activations.h"

#define real double
#define FN(name) FR_SUFFIXED(name##_f64, FR_KERNEL_SUFFIX)
#define SIGMOID fr_sigmoid
#define TANH fr_tanh
#define BLAS_GEMM blas->dgemm
#define ROW_BLOCK 8 /* rows per BLAS call in packed_gemm.inc */

static void sigmoid_n_f64(int n, const double *x, double *y)
{
    for (int j = 0; j < n; j++)
        y[j] = fr_sigmoid(x[j]);
}

static void tanh_n_f64(int n, const double *x, double *y)
{
    for (int j = 0; j < n; j++)
        y[j] = tanh(x[j]);
}

#define SIGMOID_N sigmoid_n_f64
#define TANH_N tanh_n_f64
#define LSTM_FORWARD_SIMD(n, H, pre, bias, peep, c_in, c_out, h) ((void)(peep), 0)
#define GRU_FORWARD_SIMD(n, H, x, r, bias, a_out, h, h_out) 0
#define ADD_TRANSPOSED_SIMD(M, n0, n1, ct, ldc, gw) 0
#define PACK_ROW_NT(N, K, k, row, packed) 0
#define NT_FENCE() ((void)0)

#include "gemm.inc"
#include "packed_gemm.inc"
#include "rnn_cell.inc"
#include "lstm_cell.inc"
#include "gru_cell.inc"
#include "sequence.inc"
#include "stream.inc"
#include "sequence_backward.inc"
#include "kernels.inc"
