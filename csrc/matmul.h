/* matmul.h - C += A W^T with W pre-packed: the recurrent product of an RNN step.
 *
 * Per time step an RNN computes h(t-1) W_hh^T: A = h(t-1) is (M, K) = (B, H),
 * W = W_hh is (N, K) = (G*H, H) in PyTorch's row-major layout. W is fixed for a
 * whole sequence, so it is packed once (fr_pack_f32) into column panels that
 * the SIMD kernels stream, and every step calls fr_matmul_packed_f32.
 *
 * Plain C99; the SIMD code (AVX-512F, AVX2+FMA, or portable C) is the one of
 * the SIMD level in use (fastrnn.h: fr_simd_level), by default the best the
 * CPU has. The packed layout is the same on every CPU and level.
 * Nothing here allocates; the functions are thread-safe (callers split the
 * columns among threads with n0, n1).
 */
#ifndef FASTRNN_MATMUL_H
#define FASTRNN_MATMUL_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Column granularity of the packed layout (32): a caller splitting the
 * columns among threads should cut at multiples of it. */
int fr_pack_col_block(void);

/* Floats needed for the packed W of shape (N, K): ceil(N/32)*32*K.
 * The packed buffer is best 64-byte aligned (any float alignment works). */
size_t fr_pack_size_f32(int N, int K);

/* Pack W (N, K), row-major with leading dimension K, into `packed`
 * (fr_pack_size_f32(N, K) floats). Layout: panel p holds columns
 * n = 32p .. 32p+31 of the product (rows of W), k-major:
 *     packed[(p*K + k)*32 + j] = W[32p + j, k]   (0 where 32p + j >= N). */
void fr_pack_f32(int N, int K, const float *W, float *packed);

/* C[m, n] = beta*C[m, n] + sum_k A[m, k] * W[n, k]
 *   for m in [0, M), n in [n0, n1), with W given packed by fr_pack_f32.
 * A is row-major (M, K) with leading dimension lda >= K; C is row-major with
 * leading dimension ldc (C[m, n] = C[m*ldc + n], n absolute, so C must hold
 * at least n1 columns per row). beta == 0 writes C without reading it
 * (garbage or NaN in C does not leak). Any 0 <= n0 <= n1 <= N works; n0 and n1
 * at multiples of fr_pack_col_block() (or n1 = N) are the fast case.
 * M <= 0 or n1 <= n0 does nothing; K <= 0 gives C = beta*C. */
void fr_matmul_packed_f32(int M, int n0, int n1, int K, const float *A, int lda,
                          const float *packed, float beta, float *C, int ldc);

/* The same with A given transposed: A is row-major (K, M) with leading
 * dimension lda >= M, and
 *     C[m, n] = beta*C[m, n] + sum_k A[k, m] * W[n, k].
 * Weight gradients use it: dW^T = X^T dG reads X (rows, I) as it is stored.
 * K is summed in blocks of 1024 (C adds the blocks), so results may differ
 * in rounding from one sum over all of K. */
void fr_matmul_packed_at_f32(int M, int n0, int n1, int K, const float *A, int lda,
                             const float *packed, float beta, float *C, int ldc);

/* gw[n, m] += ct[m, n] for m < M, n in [n0, n1): dW^T from
 * fr_matmul_packed_at_f32 (ct, row stride ldc) added to the gradient dW (gw,
 * rows of M floats). 1 at the AVX-512 level (16 x 16 tiles transposed in
 * registers); else 0, having done nothing (the caller transposes). */
int fr_add_transposed_f32(int M, int n0, int n1, const float *ct, ptrdiff_t ldc, float *gw);

/* Row k of a (K, N) matrix V into the layout fr_pack_f32 gives V^T (N, K):
 * packed[(p*K + k)*32 + j] = row[32p + j], by non-temporal stores, which
 * skip the cache. For a matrix written a row at a time and read only much
 * later (the backward's gate gradients for the weight gradients): it no
 * longer evicts what the time loop uses, nor reads each line before writing
 * it. 1 where done (the AVX2 or AVX-512 level, by AVX2 stores; N a multiple
 * of 32, packed 64-byte aligned); else 0, having done nothing. A thread that
 * wrote so calls fr_nt_fence() before other threads read the rows. */
int fr_pack_row_nt_f32(int N, int K, size_t k, const float *row, float *packed);
void fr_nt_fence(void);

/* Rows per kernel call at the SIMD level in use (fastrnn.h: fr_simd_level;
 * 8 for AVX-512, 6 for AVX2, 4 generic): a product computes its rows in
 * blocks of as many from its first row, so products split at multiples of
 * it make the same kernel calls. */
int fr_matmul_row_block(void);

#ifdef __cplusplus
}
#endif

#endif
