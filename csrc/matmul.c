/* matmul.c - C = beta*C + A W^T with W pre-packed in column panels.
 *
 * The math (see matmul.h):  C[m, n] = beta*C[m, n] + sum_k A[m, k] * W[n, k].
 *
 * Pack layout (the same on every CPU): W's N rows become ceil(N/32) panels of
 * NR = 32 columns of the product; panel p is K rows of 32 floats, k-major,
 *     packed[(p*K + k)*32 + j] = W[32p + j, k],   zero-padded past N,
 * so one k step of a panel is 128 contiguous bytes (two zmm, four ymm).
 *
 * Loop order: for each panel, for each block of MR rows of A, one microkernel
 * call runs over all of K with MR x 32 accumulators in registers (broadcast
 * A[m, k], FMA with the panel row). The panel (K*128 bytes: 128 KB at K=1024)
 * is read from memory once and re-read from L2 by the next row blocks; at
 * M = 1 the kernel is a pure stream of the panels, bound by cache bandwidth.
 *
 * The SIMD code is the one of the level in use (fastrnn.h: fr_simd_level):
 * AVX-512F (MR = 8, two zmm per row), AVX2+FMA (MR = 6 over half panels of
 * 16 columns; full panel at M = 1), or portable C that the compiler
 * vectorizes for the baseline ISA. Small MR
 * use K-unrolled accumulator sets so that FMA latency is hidden. Each kernel
 * shape is its own (non-inlined) function: mr and ku are compile-time
 * constants there, so the accumulators live in registers.
 *
 * Columns of a panel outside [n0, n1) are computed but never stored: full
 * panels store straight from registers, the partial ones through a buffer.
 *
 * fr_matmul_packed_at_f32 takes A transposed, (K, M): every kernel has the
 * flag `at` (a compile-time constant in the SIMD ones) that reads A[m, k]
 * from A[k*lda + m] instead of A[m*lda + k]. Its K (the T*B rows of a weight
 * gradient) goes in blocks sized by the L2 cache, A copied a row block at a
 * time (see matmul_at()).
 *
 * The SIMD kernels prefetch their rows of C before the K loop: in an RNN's
 * time loop C (a step's slice of the input projection) is cold in DRAM.
 */
#include "matmul.h"

#include <stdint.h>
#include <string.h>

#include "fastrnn.h"
#include "simd.h"
#include "cache_sizes.h"
#include "panels.h"
#ifdef FR_X86_SIMD
#include <immintrin.h>
#endif

#define NR FR_PANEL /* columns per panel: the pack layout */
#define MR_MAX 8    /* the most rows a kernel takes (AVX-512) */

int fr_pack_col_block(void)
{
    return NR;
}

size_t fr_pack_size_f32(int N, int K)
{
    if (N <= 0 || K <= 0)
        return 0;
    return (size_t)((N + NR - 1) / NR) * NR * (size_t)K;
}

void fr_pack_f32(int N, int K, const float *W, float *packed)
{
    /* a transpose by tiles of 32 columns x KB k, so that the 32 rows read and
     * the KB panel rows written stay in L1 */
    enum { KB = 16 };
    int panels = (N + NR - 1) / NR;
    for (int p = 0; p < panels; p++) {
        float *dst = packed + (size_t)p * K * NR;
        int nj = N - p * NR < NR ? N - p * NR : NR; /* real columns */
        for (int k0 = 0; k0 < K; k0 += KB) {
            int kn = K - k0 < KB ? K - k0 : KB;
            for (int j = 0; j < nj; j++) {
                const float *w = W + (size_t)(p * NR + j) * K + k0;
                for (int k = 0; k < kn; k++)
                    dst[(size_t)(k0 + k) * NR + j] = w[k];
            }
            for (int j = nj; j < NR; j++)
                for (int k = 0; k < kn; k++)
                    dst[(size_t)(k0 + k) * NR + j] = 0.0f;
        }
    }
}

/* c[j] = beta*c[j] + acc[j] for j in [j0, j1); beta == 0 never reads c. */
static void store_cols(const float *acc, int j0, int j1, float beta, float *c)
{
    if (beta == 0.0f)
        for (int j = j0; j < j1; j++)
            c[j] = acc[j];
    else
        for (int j = j0; j < j1; j++)
            c[j] = beta * c[j] + acc[j];
}

/* ------------------------------------------------------------------------ */
/* Portable C: MR_G rows x 32 columns, vectorized by the compiler.          */

#define MR_G 4

static void kernel_generic(int mr, int at, int K, const float *A, int lda, const float *B,
                           float beta, float *C, int ldc, int lo, int hi)
{
    float acc[MR_G][NR];
    memset(acc, 0, sizeof acc);
    for (int k = 0; k < K; k++) {
        const float *b = B + (size_t)k * NR;
        for (int i = 0; i < mr; i++) {
            float a = at ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
            for (int j = 0; j < NR; j++)
                acc[i][j] += a * b[j];
        }
    }
    for (int i = 0; i < mr; i++)
        store_cols(acc[i], lo, hi, beta, C + (size_t)i * ldc);
}

static void matmul_generic(int at, int M, int n0, int n1, int K, int ldp, const float *A, int lda,
                           const float *packed, float beta, float *C, int ldc)
{
    for (int p = n0 / NR; p * NR < n1; p++) {
        int lo, hi;
        fr_panel_cols(p, n0, n1, &lo, &hi);
        const float *B = packed + (size_t)p * ldp * NR;
        for (int m = 0; m < M; m += MR_G) {
            int mr = M - m < MR_G ? M - m : MR_G;
            kernel_generic(mr, at, K, at ? A + m : A + (size_t)m * lda, lda, B, beta,
                           C + (size_t)m * ldc + (size_t)p * NR, ldc, lo, hi);
        }
    }
}

#ifdef FR_X86_SIMD
/* ------------------------------------------------------------------------ */
/* AVX-512F: mr (<= 8) rows x 32 columns = 2*mr zmm accumulators, times ku   */
/* K-unrolled sets (ku = 4 at mr = 1, 2 at mr = 2) to keep 8+ FMA chains.    */

#define AVX512_FN __attribute__((target("avx512f")))
#define AVX512_INLINE static inline __attribute__((always_inline, target("avx512f")))
#define MR_512 8

AVX512_INLINE void kernel_avx512(const int mr, const int ku, const int at, int K, const float *A,
                                 int lda, const float *B, float beta, float *C, int ldc, int lo,
                                 int hi)
{
    __m512 c[4][MR_512][2];
    const float *a[MR_512];
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
        a[i] = at ? A + i : A + (size_t)i * lda;
        fr_prefetch_cols(C + (size_t)i * ldc, lo, hi);
    }
#pragma GCC unroll 4
    for (int u = 0; u < ku; u++)
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++)
            c[u][i][0] = c[u][i][1] = _mm512_setzero_ps();

    int k = 0;
    for (; k + ku <= K; k += ku) {
#pragma GCC unroll 4
        for (int u = 0; u < ku; u++) {
            __m512 b0 = _mm512_loadu_ps(B + (size_t)(k + u) * NR);
            __m512 b1 = _mm512_loadu_ps(B + (size_t)(k + u) * NR + 16);
#pragma GCC unroll 8
            for (int i = 0; i < mr; i++) {
                __m512 ai = _mm512_set1_ps(at ? a[i][(size_t)(k + u) * lda] : a[i][k + u]);
                c[u][i][0] = _mm512_fmadd_ps(ai, b0, c[u][i][0]);
                c[u][i][1] = _mm512_fmadd_ps(ai, b1, c[u][i][1]);
            }
        }
    }
    for (; k < K; k++) {
        __m512 b0 = _mm512_loadu_ps(B + (size_t)k * NR);
        __m512 b1 = _mm512_loadu_ps(B + (size_t)k * NR + 16);
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            __m512 ai = _mm512_set1_ps(at ? a[i][(size_t)k * lda] : a[i][k]);
            c[0][i][0] = _mm512_fmadd_ps(ai, b0, c[0][i][0]);
            c[0][i][1] = _mm512_fmadd_ps(ai, b1, c[0][i][1]);
        }
    }
#pragma GCC unroll 4
    for (int u = 1; u < ku; u++)
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            c[0][i][0] = _mm512_add_ps(c[0][i][0], c[u][i][0]);
            c[0][i][1] = _mm512_add_ps(c[0][i][1], c[u][i][1]);
        }

    if (lo == 0 && hi == NR) {
        __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            float *ci = C + (size_t)i * ldc;
            if (beta == 0.0f) {
                _mm512_storeu_ps(ci, c[0][i][0]);
                _mm512_storeu_ps(ci + 16, c[0][i][1]);
            } else {
                _mm512_storeu_ps(ci, _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci), c[0][i][0]));
                _mm512_storeu_ps(ci + 16,
                                 _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci + 16), c[0][i][1]));
            }
        }
    } else {
        float tmp[NR];
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            _mm512_storeu_ps(tmp, c[0][i][0]);
            _mm512_storeu_ps(tmp + 16, c[0][i][1]);
            store_cols(tmp, lo, hi, beta, C + (size_t)i * ldc);
        }
    }
}

/* One function per row count and A layout (not inlined into one big loop,
 * which would starve the register allocator): kernels_avx512[at][mr] for
 * mr = 1..8. */
typedef void kernel_fn(int K, const float *A, int lda, const float *B, float beta, float *C,
                       int ldc, int lo, int hi);
#define KERNEL_avx512(MR, KU, AT, NAME)                                                    \
    AVX512_FN static void NAME(int K, const float *A, int lda, const float *B, float beta, \
                               float *C, int ldc, int lo, int hi)                          \
    {                                                                                      \
        kernel_avx512(MR, KU, AT, K, A, lda, B, beta, C, ldc, lo, hi);                     \
    }
/* The kernel shapes of an ISA are listed once, as X(ISA, MR, KU) for each:
 * KERNEL_PAIR defines a shape's two A layouts, kernel_ISA_MR and
 * kernel_ISA_at_MR (with KERNEL_ISA); KERNEL_NAME and KERNEL_AT_NAME list
 * them for the dispatch table. */
#define KERNEL_PAIR(ISA, MR, KU) \
    KERNEL_##ISA(MR, KU, 0, kernel_##ISA##_##MR) KERNEL_##ISA(MR, KU, 1, kernel_##ISA##_at_##MR)
#define KERNEL_NAME(ISA, MR, KU) kernel_##ISA##_##MR,
#define KERNEL_AT_NAME(ISA, MR, KU) kernel_##ISA##_at_##MR,
/* one kernel per X(level, rows, k steps a loop turn) */
// clang-format off
#define AVX512_SHAPES(X) \
    X(avx512, 1, 4) X(avx512, 2, 2) X(avx512, 3, 1) X(avx512, 4, 1) \
    X(avx512, 5, 1) X(avx512, 6, 1) X(avx512, 7, 1) X(avx512, 8, 1)
// clang-format on
AVX512_SHAPES(KERNEL_PAIR)
static kernel_fn *const kernels_avx512[2][MR_512 + 1] = {{NULL, AVX512_SHAPES(KERNEL_NAME)},
                                                         {NULL, AVX512_SHAPES(KERNEL_AT_NAME)}};

AVX512_FN static void matmul_avx512(int at, int M, int n0, int n1, int K, int ldp, const float *A,
                                    int lda, const float *packed, float beta, float *C, int ldc)
{
    for (int p = n0 / NR; p * NR < n1; p++) {
        int lo, hi;
        fr_panel_cols(p, n0, n1, &lo, &hi);
        const float *B = packed + (size_t)p * ldp * NR;
        float *Cp = C + (size_t)p * NR;
        for (int m = 0; m < M; m += MR_512) {
            const float *a = at ? A + m : A + (size_t)m * lda;
            float *c = Cp + (size_t)m * ldc;
            kernels_avx512[at][M - m < MR_512 ? M - m : MR_512](K, a, lda, B, beta, c, ldc, lo, hi);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* AVX2 + FMA (16 ymm registers): nv ymm per row (4 = the whole panel, 2 =   */
/* the half at column `off`), mr rows, ku K-unrolled accumulator sets (8+   */
/* FMA chains: ku 2 at 1 to 3 rows, the tails of B = 32 or 64).            */
/* Used as 1 x 32 x ku 2 for a block of one row, else 6 x 16 on each half.  */

#define AVX2_FN __attribute__((target("avx2,fma")))
#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma")))
#define MR_256 6

AVX2_INLINE void kernel_avx2(const int mr, const int ku, const int nv, const int at, int off, int K,
                             const float *A, int lda, const float *B, float beta, float *C, int ldc,
                             int lo, int hi)
{
    __m256 c[4][MR_256][4];
    const float *a[MR_256];
    B += off;
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
        a[i] = at ? A + i : A + (size_t)i * lda;
        fr_prefetch_cols(C + (size_t)i * ldc, lo > off ? lo : off,
                         hi - off < 8 * nv ? hi : off + 8 * nv);
    }
#pragma GCC unroll 4
    for (int u = 0; u < ku; u++)
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++)
                c[u][i][v] = _mm256_setzero_ps();

    /* two k steps a loop turn: at 6 x 16 a step is 12 FMAs and 8 loads, and
     * the loop's own index arithmetic was a third of its instructions */
    int k = 0;
#pragma GCC unroll 2
    for (; k + ku <= K; k += ku) {
#pragma GCC unroll 4
        for (int u = 0; u < ku; u++) {
            __m256 b[4];
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++)
                b[v] = _mm256_loadu_ps(B + (size_t)(k + u) * NR + 8 * v);
#pragma GCC unroll 6
            for (int i = 0; i < mr; i++) {
                __m256 ai = _mm256_broadcast_ss(at ? a[i] + (size_t)(k + u) * lda : a[i] + k + u);
#pragma GCC unroll 4
                for (int v = 0; v < nv; v++)
                    c[u][i][v] = _mm256_fmadd_ps(ai, b[v], c[u][i][v]);
            }
        }
    }
    for (; k < K; k++) {
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            __m256 ai = _mm256_broadcast_ss(at ? a[i] + (size_t)k * lda : a[i] + k);
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++)
                c[0][i][v] =
                    _mm256_fmadd_ps(ai, _mm256_loadu_ps(B + (size_t)k * NR + 8 * v), c[0][i][v]);
        }
    }
#pragma GCC unroll 4
    for (int u = 1; u < ku; u++)
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++)
                c[0][i][v] = _mm256_add_ps(c[0][i][v], c[u][i][v]);

    int j0 = lo > off ? lo - off : 0;
    int j1 = hi - off < 8 * nv ? hi - off : 8 * nv;
    if (j1 <= j0)
        return;
    if (j0 == 0 && j1 == 8 * nv) {
        __m256 vb = _mm256_set1_ps(beta);
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            float *ci = C + (size_t)i * ldc + off;
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) {
                if (beta == 0.0f)
                    _mm256_storeu_ps(ci + 8 * v, c[0][i][v]);
                else
                    _mm256_storeu_ps(ci + 8 * v,
                                     _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci + 8 * v), c[0][i][v]));
            }
        }
    } else {
        float tmp[NR];
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++)
                _mm256_storeu_ps(tmp + 8 * v, c[0][i][v]);
            store_cols(tmp, j0, j1, beta, C + (size_t)i * ldc + off);
        }
    }
}

/* One function per shape and A layout, as for AVX-512: kernel_avx2_m1 is
 * 1 x 32 (a block of one row), kernels_avx2[at][mr] is mr x 16 on the half panel at column
 * `off`. */
typedef void half_kernel_fn(int off, int K, const float *A, int lda, const float *B, float beta,
                            float *C, int ldc, int lo, int hi);
#define KERNEL_avx2(MR, KU, AT, NAME)                                                             \
    AVX2_FN static void NAME(int off, int K, const float *A, int lda, const float *B, float beta, \
                             float *C, int ldc, int lo, int hi)                                   \
    {                                                                                             \
        kernel_avx2(MR, KU, 2, AT, off, K, A, lda, B, beta, C, ldc, lo, hi);                      \
    }
#define AVX2_SHAPES(X) X(avx2, 2, 2) X(avx2, 3, 2) X(avx2, 4, 1) X(avx2, 5, 1) X(avx2, 6, 1)
AVX2_SHAPES(KERNEL_PAIR)
static half_kernel_fn *const kernels_avx2[2][MR_256 + 1] = {
    {NULL, NULL, AVX2_SHAPES(KERNEL_NAME)}, {NULL, NULL, AVX2_SHAPES(KERNEL_AT_NAME)}};

/* One row of A: its K elements at stride lda (1 for a row of A; A given
 * transposed, lda) */
AVX2_FN static void kernel_avx2_m1(int K, const float *A, int lda, const float *B, float beta,
                                   float *C, int lo, int hi)
{
    if (lda == 1)
        kernel_avx2(1, 2, 4, 0, 0, K, A, 0, B, beta, C, 0, lo, hi);
    else
        kernel_avx2(1, 2, 4, 1, 0, K, A, lda, B, beta, C, 0, lo, hi);
}

AVX2_FN static void matmul_avx2(int at, int M, int n0, int n1, int K, int ldp, const float *A,
                                int lda, const float *packed, float beta, float *C, int ldc)
{
    for (int p = n0 / NR; p * NR < n1; p++) {
        int lo, hi;
        fr_panel_cols(p, n0, n1, &lo, &hi);
        const float *B = packed + (size_t)p * ldp * NR;
        float *Cp = C + (size_t)p * NR;
        /* a last block of one row, M = 1 included, takes the whole panel at
         * once; whatever M, a row's block decides its kernel (and its bits) */
        const int whole = M - M % MR_256, last = M % MR_256 == 1 ? whole : M;
        for (int off = 0; off < hi; off += 16) {
            if (off + 16 <= lo)
                continue;
            for (int m = 0; m < last; m += MR_256) {
                const float *a = at ? A + m : A + (size_t)m * lda;
                float *c = Cp + (size_t)m * ldc;
                kernels_avx2[at][last - m < MR_256 ? last - m : MR_256](off, K, a, lda, B, beta, c,
                                                                        ldc, lo, hi);
            }
        }
        if (last < M)
            kernel_avx2_m1(K, at ? A + last : A + (size_t)last * lda, at ? lda : 1, B, beta,
                           Cp + (size_t)last * ldc, lo, hi);
    }
}

/* ------------------------------------------------------------------------ */
/* gw[n, m] += ct[m, n] (fr_add_transposed_f32) by 16 x 16 tiles in zmm.    */

/* r[j] <- column j of the 16 x 16 tile whose rows are r[0..15] */
AVX512_INLINE void transpose16(__m512 r[16])
{
    __m512 t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        u[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++) {
            t[8 * i + j] = _mm512_shuffle_f32x4(u[8 * i + j], u[8 * i + 4 + j], 0x88);
            t[8 * i + 4 + j] = _mm512_shuffle_f32x4(u[8 * i + j], u[8 * i + 4 + j], 0xDD);
        }
    for (int j = 0; j < 8; j++) {
        r[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);
        r[8 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xDD);
    }
}

AVX512_FN static void add_transposed_avx512(int M, int n0, int n1, const float *ct, ptrdiff_t ldc,
                                            float *gw)
{
    for (int c0 = n0; c0 < n1; c0 += 16) {
        const int nn = n1 - c0 < 16 ? n1 - c0 : 16;
        const __mmask16 cols = (__mmask16)((1u << nn) - 1);
        for (int m0 = 0; m0 < M; m0 += 16) {
            const int mm = M - m0 < 16 ? M - m0 : 16;
            const __mmask16 rows = (__mmask16)((1u << mm) - 1);
            __m512 r[16];
            for (int i = 0; i < 16; i++)
                r[i] = i < mm ? _mm512_maskz_loadu_ps(cols, ct + (size_t)(m0 + i) * ldc + c0)
                              : _mm512_setzero_ps();
            transpose16(r);
            for (int j = 0; j < nn; j++) {
                float *g = gw + (size_t)(c0 + j) * M + m0;
                _mm512_mask_storeu_ps(g, rows, _mm512_add_ps(_mm512_maskz_loadu_ps(rows, g), r[j]));
            }
        }
    }
}
#endif /* FR_X86_SIMD */

int fr_add_transposed_f32(int M, int n0, int n1, const float *ct, ptrdiff_t ldc, float *gw)
{
#ifdef FR_X86_SIMD
    if (fr_simd_level() == FR_SIMD_AVX512) {
        add_transposed_avx512(M, n0, n1, ct, ldc, gw);
        return 1;
    }
#endif
    (void)M, (void)n0, (void)n1, (void)ct, (void)ldc, (void)gw;
    return 0;
}

/* Row k of a (K, N) matrix into its places in panels of 32 columns, k-major
 * (as fr_pack_f32 lays out the transpose), by non-temporal stores: each
 * panel row is two whole cache lines, written in four 32-byte stores (as
 * fast as two 64-byte ones: the lines fill in the write-combining buffers). */
#ifdef FR_X86_SIMD
AVX2_FN static void pack_row_nt_avx2(int N, int K, size_t k, const float *row, float *packed)
{
    for (int p = 0; p < N / NR; p++) {
        float *dst = packed + ((size_t)p * K + k) * NR;
        for (int j = 0; j < NR; j += 8)
            _mm256_stream_ps(dst + j, _mm256_loadu_ps(row + p * NR + j));
    }
}
#endif /* FR_X86_SIMD */

int fr_pack_row_nt_f32(int N, int K, size_t k, const float *row, float *packed)
{
#ifdef FR_X86_SIMD
    /* the AVX-512 level has AVX2 too */
    if (N % NR == 0 && (uintptr_t)packed % 64 == 0 && fr_simd_level() >= FR_SIMD_AVX2) {
        pack_row_nt_avx2(N, K, k, row, packed);
        return 1;
    }
#endif
    (void)N, (void)K, (void)k, (void)row, (void)packed;
    return 0;
}

void fr_nt_fence(void)
{
#ifdef FR_X86_SIMD
    _mm_sfence();
#endif
}

/* Runs the kernels of the level in use over rows [0, M) and columns [n0, n1)
 * of one block of K (kk rows of the panels, whose full K is ldp). */
static void run_block(int at, int M, int n0, int n1, int kk, int ldp, const float *A, int lda,
                      const float *packed, float beta, float *C, int ldc)
{
    switch (fr_simd_level()) {
#ifdef FR_X86_SIMD
    case FR_SIMD_AVX512: matmul_avx512(at, M, n0, n1, kk, ldp, A, lda, packed, beta, C, ldc); break;
    case FR_SIMD_AVX2: matmul_avx2(at, M, n0, n1, kk, ldp, A, lda, packed, beta, C, ldc); break;
#endif
    default: matmul_generic(at, M, n0, n1, kk, ldp, A, lda, packed, beta, C, ldc); break;
    }
}

/* A given transposed: the weight gradients' X or Hprev, (K = T*B, M), row k
 * at A + k*lda. A row block's values (mr columns) lie one to a cache line,
 * K lines apart, and the panels (K*128 bytes each) are read from memory.
 * So the product goes in blocks of AT_KC rows of K by as many columns as
 * fill half of L2 with those rows of the panels; in a block, each row block
 * of A is first copied, k-major, into `slice` (read in order by the kernel,
 * as fr_matmul_row_block() columns at lda = mr) and then runs over every
 * panel of the block, which stays in L2 for the next row block. */
#define AT_KC 256

static void matmul_at(int M, int n0, int n1, int K, const float *A, int lda, const float *packed,
                      float beta, float *C, int ldc)
{
    float slice[AT_KC * MR_MAX];
    const int mr = fr_matmul_row_block();
    const size_t half_l2 = fr_l2_bytes() / 2;
    for (int k0 = 0; k0 < K; k0 += AT_KC) {
        const int kk = K - k0 < AT_KC ? K - k0 : AT_KC;
        const float bk = k0 ? 1.0f : beta;
        const float *b = packed + (size_t)k0 * NR;
        int nc = (int)(half_l2 / ((size_t)kk * NR * sizeof(float))) * NR;
        nc = nc > NR ? nc : NR;
        for (int c0 = n0; c0 < n1;) {
            const int c1 = (c0 / NR) * NR + nc < n1 ? (c0 / NR) * NR + nc : n1;
            for (int m0 = 0; m0 < M; m0 += mr) {
                const int mm = M - m0 < mr ? M - m0 : mr;
                for (int k = 0; k < kk; k++) {
                    const float *row = A + (size_t)(k0 + k) * lda + m0;
                    for (int i = 0; i < mr; i++)
                        slice[k * mr + i] = i < mm ? row[i] : 0.0f;
                }
                run_block(1, mm, c0, c1, kk, K, slice, mr, b, bk, C + (size_t)m0 * ldc, ldc);
            }
            c0 = c1;
        }
    }
}

static void matmul(int at, int M, int n0, int n1, int K, const float *A, int lda,
                   const float *packed, float beta, float *C, int ldc)
{
    if (M <= 0 || n0 < 0 || n1 <= n0)
        return;
    if (K <= 0) { /* empty sum: C = beta*C */
        float zero[NR] = {0};
        for (int m = 0; m < M; m++)
            for (int n = n0; n < n1; n += NR) {
                int w = n1 - n < NR ? n1 - n : NR;
                store_cols(zero, 0, w, beta, C + (size_t)m * ldc + n);
            }
        return;
    }
    if (at)
        matmul_at(M, n0, n1, K, A, lda, packed, beta, C, ldc);
    else
        run_block(0, M, n0, n1, K, K, A, lda, packed, beta, C, ldc);
}

int fr_matmul_row_block(void)
{
    switch (fr_simd_level()) {
#ifdef FR_X86_SIMD
    case FR_SIMD_AVX512: return MR_512;
    case FR_SIMD_AVX2: return MR_256;
#endif
    default: return MR_G;
    }
}

void fr_matmul_packed_f32(int M, int n0, int n1, int K, const float *A, int lda,
                          const float *packed, float beta, float *C, int ldc)
{
    matmul(0, M, n0, n1, K, A, lda, packed, beta, C, ldc);
}

void fr_matmul_packed_at_f32(int M, int n0, int n1, int K, const float *A, int lda,
                             const float *packed, float beta, float *C, int ldc)
{
    matmul(1, M, n0, n1, K, A, lda, packed, beta, C, ldc);
}
