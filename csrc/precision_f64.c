/* precision_f64.c - the kernels in float64 (see internal.h). */
#include <string.h>
#include "internal.h"
#include "activations.h"

#define real double
#define FN(name) name##_f64
#define SIGMOID fr_sigmoid
#define TANH fr_tanh
#define BLAS_GEMM blas->dgemm

#include "gemm.inc"
#include "packed_gemm.inc"
#include "rnn_cell.inc"
#include "lstm_cell.inc"
#include "gru_cell.inc"
#include "sequence.inc"
#include "stream.inc"
#include "sequence_backward.inc"
