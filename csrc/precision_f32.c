/* precision_f32.c - the kernels in float32 (see internal.h). */
#include <string.h>
#include "internal.h"
#include "activations.h"

#define real float
#define FN(name) name##_f32
#define SIGMOID fr_sigmoidf
#define TANH fr_tanhf
#define BLAS_GEMM blas->sgemm

#include "rnn_cell.inc"
#include "lstm_cell.inc"
#include "gru_cell.inc"
#include "sequence.inc"
