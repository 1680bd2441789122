/* precision_f32.c - the kernels in float32 (see internal.h): the baseline
 * kernel set, which precision_f32_avx2.c and precision_f32_avx512.c compile
 * again for their SIMD levels. */
#include <string.h>
#include "internal.h"
#include "activations.h"
#include "matmul.h"
#include "vmath.h"

#define real float
#define FN(name) FR_SUFFIXED(name##_f32, FR_KERNEL_SUFFIX)
#define SIGMOID fr_sigmoidf
#define TANH fr_tanhf
#define SIGMOID_N fr_sigmoid_f32
#define TANH_N fr_tanh_f32
#define LSTM_FORWARD_SIMD fr_lstm_forward_f32 /* 0: not done, run the passes */
#define GRU_FORWARD_SIMD fr_gru_forward_f32
#define ADD_TRANSPOSED_SIMD fr_add_transposed_f32
#define PACK_ROW_NT fr_pack_row_nt_f32 /* 0: not done, pack_row it */
#define NT_FENCE fr_nt_fence
#define BLAS_GEMM blas->sgemm
#define ROW_BLOCK fr_matmul_row_block() /* rows per kernel call */

#include "gemm.inc"

/* the packed products: the SIMD kernels of matmul.c */
static void FN(pack_rows)(int N, int K, const float *W, float *packed)
{
    fr_pack_f32(N, K, W, packed);
}

static void FN(matmul_packed)(const fr_blas *blas, int M, int n0, int n1, int K, const float *A,
                              int lda, const float *packed, float beta, float *C, int ldc)
{
    (void)blas;
    fr_matmul_packed_f32(M, n0, n1, K, A, lda, packed, beta, C, ldc);
}

static void FN(matmul_packed_at)(const fr_blas *blas, int M, int n0, int n1, int K, const float *A,
                                 int lda, const float *packed, float beta, float *C, int ldc)
{
    (void)blas;
    fr_matmul_packed_at_f32(M, n0, n1, K, A, lda, packed, beta, C, ldc);
}

#include "rnn_cell.inc"
#include "lstm_cell.inc"
#include "gru_cell.inc"
#include "sequence.inc"
#include "stream.inc"
#include "sequence_backward.inc"
#include "kernels.inc"
