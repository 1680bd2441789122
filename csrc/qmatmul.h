/* qmatmul.h - C = beta*C + A W^T in int8: the products of reduced-precision
 * inference (quantized RNN layers).
 *
 * The scheme: symmetric quantization, one float scale per row.
 *   Weights W (N, K), once (fr_quantize_pack_s8): per row n,
 *       wscale[n] = max_k |W[n, k]| / 127,   q[n, k] = rne(W[n, k] / wscale[n])
 *   in [-127, 127] (int8), and rowsum[n] = sum_k q[n, k].
 *   Activations A (M, K), per call (fr_quantize_rows_u7): per row m,
 *       ascale[m] = max_k |A[m, k]| / 63,   a[m, k] = rne(A[m, k] / ascale[m])
 *   in [-63, 63], stored as the unsigned code a + 64 in [1, 127].
 *   The product (fr_qmatmul_f32):
 *       acc[m, n] = sum_k code[m, k] * q[n, k] - 64 * rowsum[n]
 *                 = sum_k a[m, k] * q[n, k]                        (exact)
 *       C[m, n] = (float)acc * (ascale[m] * wscale[n])            (beta == 0)
 *       C[m, n] = fmaf(beta, C[m, n], (float)acc * (ascale[m] * wscale[n]))
 * rne(x): x rounded to the nearest integer, ties to even, of the exact real
 * quotient (not of a rounded float quotient: so |W - q*wscale| <= wscale/2
 * holds exactly). A row whose scale is 0 (all zeros, or a max so small that
 * max/127 or max/63 underflows) gets scale 0 and all values 0 (codes 64).
 * Inputs must be finite: an Inf or NaN gives codes that are in range but
 * meaningless. The round-to-nearest floating-point mode (the default) is
 * assumed. Since the codes are the exact rne however computed, the
 * quantizers give the same bytes and scales on every SIMD level.
 *
 * Why unsigned 7-bit activations: the x86 int8 products multiply unsigned
 * by signed bytes. AVX-512 VNNI (vpdpbusd) adds four such products into an
 * int32 exactly; AVX2 (vpmaddubsw) first adds adjacent pairs into an int16
 * with saturation, and with codes <= 127 and |q| <= 127 a pair is at most
 * 2*127*127 = 32258 < 32767: it never saturates. So every SIMD level (and
 * the portable C) computes the same integers, and with the same float
 * expression above the same float bits: results are bitwise equal across
 * levels, whatever the row blocking or the column range.
 *
 * Exactness: every level sums in int32 with wrap-around (mod 2^32), so acc
 * is exact whenever the true value fits in int32: |acc| <= 63*127*K < 2^31
 * for K <= 268,401 (partial sums may wrap on the way; they come back; for
 * K <= 133,144 even sum_k code*q < 127*127*K stays below 2^31). Beyond that
 * acc wraps, identically on every level. Nothing is refused.
 *
 * Accuracy: with A = ascale*(a + ea), W = wscale*(q + ew), |ea|, |ew| <= 1/2,
 *   |C - A W^T| <= ascale*wscale * sum_k (|a_k| + |q_k| + 1/2) / 2
 * plus the float rounding of the last three operations (~3 ulp of C).
 *
 * Packed weights: panels of 32 rows of W (the columns n of C; the same
 * granularity as fr_pack_f32, so threads split the columns alike), K padded
 * with zeros to Kp = 4*Kq, Kq = ceil(K/4), stored in k-quads:
 *     packed[((p*Kq + kq)*32 + j)*4 + i] = q[32p + j, 4kq + i]
 * (0 where 32p + j >= N or 4kq + i >= K): a k-quad of a panel is 128
 * contiguous bytes, two zmm for vpdpbusd (columns 0-15, 16-31), four ymm
 * for AVX2. The layout is the same on every CPU and level.
 *
 * Plain C99; the code of the SIMD level in use (fastrnn.h: fr_simd_level):
 * AVX-512 with VNNI (at the AVX512 level, if the CPU has avx512vnni; else
 * the AVX2 code runs at that level), AVX2, or portable C. Nothing allocates;
 * everything is thread-safe (threads take column ranges [n0, n1), best cut
 * at multiples of fr_qpack_col_block()).
 */
#ifndef FASTRNN_QMATMUL_H
#define FASTRNN_QMATMUL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Rows of W per panel of the packed layout (32). */
int fr_qpack_col_block(void);

/* Bytes of the packed W (N, K): ceil(N/32)*32 * ceil(K/4)*4 (0 if N <= 0 or
 * K <= 0). Any alignment works; 64 bytes is best. */
size_t fr_qpack_size(int N, int K);

/* Quantize W (N, K), row-major with leading dimension K, into `packed`
 * (fr_qpack_size(N, K) bytes, every one written, padding included) and
 * scale[n], rowsum[n] for n < N (the scheme above). */
void fr_quantize_pack_s8(int N, int K, const float *W, int8_t *packed, float *scale,
                         int32_t *rowsum);

/* Quantize the M rows of A (leading dimension lda >= K) into codes:
 * Aq[m*ldq + k] = a[m, k] + 64 for k < K, and 64 (the value 0) for
 * K <= k < Kp = K rounded up to a multiple of 4; scale[m] = ascale[m].
 * ldq >= Kp; bytes [Kp, ldq) of a row are not written, so Aq needs
 * (M-1)*ldq + Kp bytes. */
void fr_quantize_rows_u7(int M, int K, const float *A, int lda, uint8_t *Aq, int ldq, float *scale);

/* C[m, n] = beta*C[m, n] + ascale[m]*wscale[n] * sum_k a[m, k] q[n, k]
 *   for m in [0, M), n in [n0, n1), exactly as the expressions above
 * (beta == 0 writes C without reading it: NaN there does not leak).
 * Aq, ascale: from fr_quantize_rows_u7 (M rows, stride ldq; the kernels read
 * Kp bytes of each row, so the codes must be <= 127 and the padding there);
 * packed, wscale, rowsum: from fr_quantize_pack_s8 for (N, K) with
 * n1 <= N. C is row-major, C[m, n] = C[m*ldc + n] (n absolute). Any
 * 0 <= n0 <= n1 works; n0 and n1 at multiples of 32 (or n1 = N) are the fast
 * case. M <= 0 or n1 <= n0 does nothing; K <= 0 gives C = beta*C + 0. */
void fr_qmatmul_f32(int M, int n0, int n1, int K, const uint8_t *Aq, int ldq, const float *ascale,
                    const int8_t *packed, const float *wscale, const int32_t *rowsum, float beta,
                    float *C, int ldc);

/* The code fr_qmatmul_f32 runs at the SIMD level in use: "avx512vnni",
 * "avx2" or "generic" (for tests and benchmarks). */
const char *fr_qmatmul_kernel_name(void);

#ifdef __cplusplus
}
#endif

#endif
