/* qmatmul.c - int8 products: C = beta*C + A W^T with W quantized and packed
 * once, A quantized per call (the scheme and its guarantees: qmatmul.h).
 *
 * Pack layout (the same on every CPU): panels of NR = 32 rows of W, K in
 * quads, packed[((p*Kq + kq)*32 + j)*4 + i] = q[32p + j, 4kq + i], zero past
 * N and K. A k-quad of a panel is 128 contiguous bytes: the four signed
 * bytes of column j are the 32-bit lane j, which is what vpdpbusd (and
 * vpmaddubsw + vpmaddwd) multiply with the four codes of a row of A
 * broadcast to every lane.
 *
 * Loop order, as in matmul.c: for each panel, for each block of mr rows of
 * A, one kernel call runs over all of K with mr x 32 int32 accumulators in
 * registers; the panel (Kq*128 bytes) is re-read from L1/L2 by the next row
 * blocks. At M = 1 the kernel streams the panels.
 *
 * The sums are integers, so any blocking, unrolling or order gives the same
 * acc; the float epilogue is the one expression of qmatmul.h, evaluated
 * element by element in the same order on every level (the SIMD ones with
 * the vector forms of the same IEEE operations), so C is bitwise equal
 * across levels.
 *
 * Columns of a panel outside [n0, n1) are computed but never stored (and
 * their rowsum, wscale and C never read).
 */
#include "qmatmul.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "fastrnn.h"
#include "panels.h"
#include "simd.h"
#ifdef FR_X86_SIMD
#include <immintrin.h>
#endif

#define NR FR_PANEL /* rows of W (columns of C) per panel: the pack layout */
#define QB (NR * 4) /* bytes of a k-quad of a panel */

int fr_qpack_col_block(void)
{
    return NR;
}

size_t fr_qpack_size(int N, int K)
{
    if (N <= 0 || K <= 0)
        return 0;
    return (size_t)((N + NR - 1) / NR) * NR * (size_t)((K + 3) / 4) * 4;
}

/* ------------------------------------------------------------------------ */
/* Quantization                                                             */

/* x / s rounded to the nearest integer, ties to even, for the exact real
 * quotient, given inv = 1 / (double)s (s > 0 a float) and |x / s| <= 128.
 *
 * Why it is exact without a division: y = x * inv is within 2^-45 of x/s
 * (two double roundings). A quotient of two floats that is not exactly a
 * half-integer h lies at least 2^-26 from it (write x = X 2^a, s = S 2^b
 * with integers X, S < 2^24: x/s - h is a non-zero multiple of
 * min(1/2, 2^(a-b)) / S, and 2^(a-b) / S > |x/s| 2^-24, with |x/s| >= 1/4
 * near any h). So rounding y decides right except where x/s is a tie;
 * there y is within 2^-30 of h, and h is rounded to even explicitly. The
 * decision has that margin either way, so it is the same whether or not
 * the compiler contracts x * inv into the following additions (FMA): every
 * level gives the same codes. */
static inline double round_quotient(float x, double inv)
{
    const double y = (double)x * inv;
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
    /* 1.5 * 2^52: adding it leaves no fraction bits (round to nearest even);
     * no libm call, so the loops vectorize */
    const double magic = 6755399441055744.0;
    double r = (y + magic) - magic;
#else
    double r = nearbyint(y);
#endif
    const double d = y - r;
    if (fabs(d) > 0.5 - 0x1p-30) {
        const double h = r + (d > 0 ? 0.5 : -0.5); /* the tie x/s itself */
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
        r = 2.0 * ((0.5 * h + magic) - magic); /* h/2 is never a tie */
#else
        r = 2.0 * nearbyint(0.5 * h);
#endif
    }
    return r;
}

/* round_quotient clamped to [-lim, lim] (a NaN to -lim) */
static inline int quantize_value(float x, double inv, double lim)
{
    double r = round_quotient(x, inv);
    r = r > -lim ? r : -lim;
    r = r < lim ? r : lim;
    return (int)r;
}

/* max |x[k]|, k < K (NaN ignored) */
static float max_abs(int K, const float *x)
{
    float m = 0.0f;
    for (int k = 0; k < K; k++) {
        float v = fabsf(x[k]);
        m = v > m ? v : m;
    }
    return m;
}

void fr_quantize_pack_s8(int N, int K, const float *W, int8_t *packed, float *scale,
                         int32_t *rowsum)
{
    if (N <= 0)
        return;
    const size_t bytes = fr_qpack_size(N, K);
    if (bytes)
        memset(packed, 0, bytes);
    const int Kq = K > 0 ? (K + 3) / 4 : 0;
    for (int n = 0; n < N; n++) {
        const float *w = K > 0 ? W + (size_t)n * K : W;
        const float s = K > 0 ? max_abs(K, w) / 127.0f : 0.0f;
        uint32_t sum = 0; /* exact for K < 2^24; mod 2^32 as the products use it */
        scale[n] = s;
        if (s > 0) {
            const double inv = 1.0 / (double)s;
            int8_t *dst = packed + (size_t)(n / NR) * Kq * QB + (size_t)(n % NR) * 4;
            for (int k = 0; k < K; k++) {
                int q = quantize_value(w[k], inv, 127.0);
                dst[(size_t)(k / 4) * QB + k % 4] = (int8_t)q;
                sum += (uint32_t)q;
            }
        }
        rowsum[n] = (int32_t)sum;
    }
}

/* Activation rows: scale = max|x| / 63, codes rne(x / scale) + 64 in [1, 127]
 * for k < K, 64 for K <= k < Kp. Each level's code gives the same bytes:
 * the same max (exact, in any order), and per element the same decision
 * (round_quotient; the SIMD forms round with an explicit mode). */

/* A row's scale from its max, and *inv = 1/scale; a zero row (scale 0) gets
 * all its Kp codes 64 here, and 0 is returned: nothing left to quantize */
static int row_scale(float amax, int Kp, uint8_t *q, float *scale, double *inv)
{
    const float s = amax / 63.0f;
    *scale = s > 0 ? s : 0.0f;
    *inv = s > 0 ? 1.0 / (double)s : 0.0;
    if (s > 0)
        return 1;
    if (Kp)
        memset(q, 64, (size_t)Kp);
    return 0;
}

static void quantize_row_generic(int K, int Kp, const float *x, uint8_t *q, float *scale)
{
    double inv;
    if (!row_scale(max_abs(K, x), Kp, q, scale, &inv))
        return;
    for (int k = 0; k < K; k++)
        q[k] = (uint8_t)(quantize_value(x[k], inv, 63.0) + 64);
    for (int k = K; k < Kp; k++)
        q[k] = 64;
}

#ifdef FR_X86_SIMD
/* The SIMD forms first try float32: y = x * (float)(1/s) is within 2^-17
 * of x/s (|x/s| <= 63.0001; two float roundings and that of the double
 * 1/s), so where y lies more than 2^-14 from every half-integer, round(y)
 * is the exact rne(x/s), which is not a tie. Where any lane of a vector is
 * nearer (about 1 in 8000 lanes, or every exact tie), the vector takes the
 * float64 path of round_quotient. Either way the code is the exact one, so
 * all levels agree; and as for round_quotient, the decision holds whether
 * or not the compiler contracts the product into the subtraction. 1/s
 * beyond float range (a tiny max) goes float64 all along. */
#define NEAR_TIE (0.5f - 0x1p-14f)
#define FAST_INV_MAX 0x1p100

#define AVX2_FN __attribute__((target("avx2,fma")))
#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma")))
#define AVX512_FN __attribute__((target("avx512f")))
#define AVX512_INLINE static inline __attribute__((always_inline, target("avx512f")))

/* round_quotient and the clamp to [-63, 63] of four lanes */
AVX2_INLINE __m128i quantize4_avx2(__m256d x, __m256d inv)
{
    const __m256d y = _mm256_mul_pd(x, inv);
    __m256d r = _mm256_round_pd(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256d d = _mm256_sub_pd(y, r);
    const __m256d absd = _mm256_andnot_pd(_mm256_set1_pd(-0.0), d);
    const __m256d tie = _mm256_cmp_pd(absd, _mm256_set1_pd(0.5 - 0x1p-30), _CMP_GT_OQ);
    const __m256d half = _mm256_blendv_pd(_mm256_set1_pd(-0.5), _mm256_set1_pd(0.5),
                                          _mm256_cmp_pd(d, _mm256_setzero_pd(), _CMP_GT_OQ));
    const __m256d h = _mm256_add_pd(r, half);
    const __m256d even = _mm256_mul_pd(
        _mm256_set1_pd(2.0), _mm256_round_pd(_mm256_mul_pd(h, _mm256_set1_pd(0.5)),
                                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    r = _mm256_blendv_pd(r, even, tie);
    /* max(r, lo) = r > lo ? r : lo, as the C clamp (NaN -> -63) */
    r = _mm256_min_pd(_mm256_max_pd(r, _mm256_set1_pd(-63.0)), _mm256_set1_pd(63.0));
    return _mm256_cvtpd_epi32(r);
}

AVX2_FN static void quantize_row_avx2(int K, int Kp, const float *x, uint8_t *q, float *scale)
{
    __m256 m = _mm256_setzero_ps();
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    int k = 0;
    for (; k + 8 <= K; k += 8) /* max(v, m) = v > m ? v : m: NaN ignored */
        m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + k), abs_mask), m);
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
    float amax = _mm_cvtss_f32(m4);
    for (; k < K; k++) {
        float v = fabsf(x[k]);
        amax = v > amax ? v : amax;
    }
    double inv;
    if (!row_scale(amax, Kp, q, scale, &inv))
        return;
    const __m256d vinv = _mm256_set1_pd(inv);
    const __m256 finv = _mm256_set1_ps((float)inv), near = _mm256_set1_ps(NEAR_TIE);
    const int fast = inv < FAST_INV_MAX;
    k = 0;
    for (; k + 8 <= K; k += 8) {
        const __m256 v = _mm256_loadu_ps(x + k);
        const __m256 y = _mm256_mul_ps(v, finv);
        const __m256 r = _mm256_round_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __m256 d = _mm256_and_ps(_mm256_sub_ps(y, r), abs_mask);
        __m128i lo, hi;
        if (fast && !_mm256_movemask_ps(_mm256_cmp_ps(d, near, _CMP_GT_OQ))) {
            /* max(r, lo) = r > lo ? r : lo, as the C clamp (NaN -> -63) */
            const __m256i c = _mm256_cvtps_epi32(
                _mm256_min_ps(_mm256_max_ps(r, _mm256_set1_ps(-63.0f)), _mm256_set1_ps(63.0f)));
            lo = _mm256_castsi256_si128(c);
            hi = _mm256_extracti128_si256(c, 1);
        } else {
            lo = quantize4_avx2(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), vinv);
            hi = quantize4_avx2(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), vinv);
        }
        const __m128i c16 = _mm_add_epi16(_mm_packs_epi32(lo, hi), _mm_set1_epi16(64));
        _mm_storel_epi64((__m128i *)(q + k), _mm_packus_epi16(c16, c16));
    }
    for (; k < K; k++)
        q[k] = (uint8_t)(quantize_value(x[k], inv, 63.0) + 64);
    for (; k < Kp; k++)
        q[k] = 64;
}

/* round_quotient and the clamp to [-63, 63] of eight lanes */
AVX512_INLINE __m256i quantize8_avx512(__m512d x, __m512d inv)
{
    const int nearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    const __m512d y = _mm512_mul_pd(x, inv);
    __m512d r = _mm512_roundscale_pd(y, nearest);
    const __m512d d = _mm512_sub_pd(y, r);
    const __mmask8 tie =
        _mm512_cmp_pd_mask(_mm512_abs_pd(d), _mm512_set1_pd(0.5 - 0x1p-30), _CMP_GT_OQ);
    if (tie) {
        const __mmask8 up = _mm512_cmp_pd_mask(d, _mm512_setzero_pd(), _CMP_GT_OQ);
        const __m512d h =
            _mm512_add_pd(r, _mm512_mask_blend_pd(up, _mm512_set1_pd(-0.5), _mm512_set1_pd(0.5)));
        const __m512d even =
            _mm512_mul_pd(_mm512_set1_pd(2.0),
                          _mm512_roundscale_pd(_mm512_mul_pd(h, _mm512_set1_pd(0.5)), nearest));
        r = _mm512_mask_mov_pd(r, tie, even);
    }
    r = _mm512_min_pd(_mm512_max_pd(r, _mm512_set1_pd(-63.0)), _mm512_set1_pd(63.0));
    return _mm512_cvtpd_epi32(r);
}

AVX512_FN static void quantize_row_avx512(int K, int Kp, const float *x, uint8_t *q, float *scale)
{
    __m512 m = _mm512_setzero_ps();
    for (int k = 0; k < K; k += 16) {
        const __mmask16 in = K - k >= 16 ? 0xffff : (__mmask16)((1u << (K - k)) - 1);
        m = _mm512_max_ps(_mm512_abs_ps(_mm512_maskz_loadu_ps(in, x + k)), m);
    }
    double inv;
    if (!row_scale(_mm512_reduce_max_ps(m), Kp, q, scale, &inv))
        return;
    /* lanes in [K, Kp) load 0 and store its code, 64: the padding */
    const __m512d vinv = _mm512_set1_pd(inv);
    const __m512 finv = _mm512_set1_ps((float)inv), near = _mm512_set1_ps(NEAR_TIE);
    const int fast = inv < FAST_INV_MAX;
    for (int k = 0; k < Kp; k += 16) {
        const __mmask16 in = K - k >= 16 ? 0xffff : (__mmask16)((1u << (K - k)) - 1);
        const __mmask16 out = Kp - k >= 16 ? 0xffff : (__mmask16)((1u << (Kp - k)) - 1);
        const __m512 v = _mm512_maskz_loadu_ps(in, x + k);
        const __m512 y = _mm512_mul_ps(v, finv);
        const __m512 r = _mm512_roundscale_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m512i c;
        if (fast && !_mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(y, r)), near, _CMP_GT_OQ)) {
            c = _mm512_cvtps_epi32(
                _mm512_min_ps(_mm512_max_ps(r, _mm512_set1_ps(-63.0f)), _mm512_set1_ps(63.0f)));
        } else {
            const __m256i lo = quantize8_avx512(_mm512_cvtps_pd(_mm512_castps512_ps256(v)), vinv);
            const __m256i hi = quantize8_avx512(
                _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))),
                vinv);
            c = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
        }
        _mm512_mask_cvtepi32_storeu_epi8(q + k, out, _mm512_add_epi32(c, _mm512_set1_epi32(64)));
    }
}
#endif /* FR_X86_SIMD */

void fr_quantize_rows_u7(int M, int K, const float *A, int lda, uint8_t *Aq, int ldq, float *scale)
{
    if (K < 0)
        K = 0;
    const int Kp = (K + 3) / 4 * 4;
    const int level = fr_simd_level();
    for (int m = 0; m < M; m++) {
        const float *x = A + (size_t)m * lda;
        uint8_t *q = Aq + (size_t)m * ldq;
#ifdef FR_X86_SIMD
        if (level == FR_SIMD_AVX512) {
            quantize_row_avx512(K, Kp, x, q, scale + m);
            continue;
        }
        if (level == FR_SIMD_AVX2) {
            quantize_row_avx2(K, Kp, x, q, scale + m);
            continue;
        }
#endif
        (void)level;
        quantize_row_generic(K, Kp, x, q, scale + m);
    }
}

/* ------------------------------------------------------------------------ */
/* The product                                                              */

static inline int32_t load_i32(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* c[j] for j in [lo, hi) from the raw sums sum[j] = sum_k code*q (mod 2^32)
 * of one row: the expression of qmatmul.h. rowsum, wscale and c start at
 * the panel's first column; as = ascale of the row. */
static void store_row(const uint32_t *sum, const int32_t *rowsum, const float *wscale, float as,
                      int lo, int hi, float beta, float *c)
{
    for (int j = lo; j < hi; j++) {
        const int32_t acc = (int32_t)(sum[j] - 64u * (uint32_t)rowsum[j]);
        const float v = (float)acc * (as * wscale[j]);
        c[j] = beta == 0.0f ? v : fmaf(beta, c[j], v);
    }
}

/* The arguments every kernel takes: rows [m, m + mr) of A (A, ascale at
 * row m), panel p (B at its first k-quad; rowsum, wscale, C at its first
 * column), the columns [lo, hi) of the panel to store. */
#define KERNEL_ARGS                                                                             \
    int Kq, const uint8_t *A, int ldq, const float *ascale, const int8_t *B, const int32_t *rs, \
        const float *ws, float beta, float *C, int ldc, int lo, int hi
#define KERNEL_CALL Kq, A, ldq, ascale, B, rs, ws, beta, C, ldc, lo, hi
typedef void kernel_fn(KERNEL_ARGS);

/* ------------------------------------------------------------------------ */
/* Portable C: sum[i][j] += sum_{t<4} code[i, 4kq+t] * q[j, 4kq+t], MR_G     */
/* rows x 32 columns. The k-quad of the panel is first spread into w[t][j]   */
/* (int16, shared by the rows), so that the loops over j run on contiguous  */
/* arrays and vectorize; the pair sums code*q + code'*q' fit in int16       */
/* (<= 32258, as on AVX2), so the compiler may multiply and add in 16 bits. */
/* The sums are uint32: wrap-around is defined, as on the SIMD levels.      */

#define MR_G 4

static void kernel_generic(int mr, KERNEL_ARGS)
{
    uint32_t sum[MR_G][NR];
    memset(sum, 0, sizeof sum);
    for (int kq = 0; kq < Kq; kq++) {
        const int8_t *b = B + (size_t)kq * QB;
        int16_t w[4][NR];
        for (int j = 0; j < NR; j++)
            for (int t = 0; t < 4; t++)
                w[t][j] = b[4 * j + t];
        for (int i = 0; i < mr; i++) {
            const uint8_t *a = A + (size_t)i * ldq + 4 * kq;
            const int16_t a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
            for (int j = 0; j < NR; j++) {
                const int16_t p01 = (int16_t)(a0 * w[0][j] + a1 * w[1][j]);
                const int16_t p23 = (int16_t)(a2 * w[2][j] + a3 * w[3][j]);
                sum[i][j] += (uint32_t)(p01 + p23);
            }
        }
    }
    for (int i = 0; i < mr; i++)
        store_row(sum[i], rs, ws, ascale[i], lo, hi, beta, C + (size_t)i * ldc);
}

#ifdef FR_X86_SIMD
/* ------------------------------------------------------------------------ */
/* AVX-512 VNNI: acc[i][v] += vpdpbusd(codes of row i at kq (4 bytes to      */
/* every lane), q of columns 16v..16v+15 at kq): 4 exact u8*s8 products     */
/* per int32 lane. mr (<= 8) rows x 32 columns = 2*mr zmm accumulators,     */
/* times ku k-unrolled sets so that 8+ vpdpbusd chains (latency 5) run at   */
/* once at small mr.                                                        */

#define VNNI_FN __attribute__((target("avx512f,avx512bw,avx512vnni")))
#define VNNI_INLINE \
    static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vnni")))
#define MR_VNNI 8

/* C[16h + j] for the columns j in bit 16h + j of `cols` from the raw sums s
 * of 16 columns of one row: the expression of qmatmul.h per lane (cvtdq2ps
 * rounds as (float) does). Columns outside are neither read nor written, so
 * a panel past N or n1 is safe. */
AVX512_INLINE void store16_avx512(__m512i s, uint32_t cols, int h, const int32_t *rs,
                                  const float *ws, float as, float beta, float *c)
{
    const __mmask16 mask = (__mmask16)(cols >> 16 * h);
    if (!mask)
        return;
    rs += 16 * h, ws += 16 * h, c += 16 * h;
    const __m512i acc =
        _mm512_sub_epi32(s, _mm512_slli_epi32(_mm512_maskz_loadu_epi32(mask, rs), 6));
    const __m512 v =
        _mm512_mul_ps(_mm512_cvtepi32_ps(acc),
                      _mm512_mul_ps(_mm512_set1_ps(as), _mm512_maskz_loadu_ps(mask, ws)));
    if (beta == 0.0f)
        _mm512_mask_storeu_ps(c, mask, v);
    else
        _mm512_mask_storeu_ps(
            c, mask, _mm512_fmadd_ps(_mm512_set1_ps(beta), _mm512_maskz_loadu_ps(mask, c), v));
}

VNNI_INLINE void kernel_vnni(const int mr, const int ku, KERNEL_ARGS)
{
    __m512i acc[4][MR_VNNI][2];
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++)
        fr_prefetch_cols(C + (size_t)i * ldc, lo, hi);
#pragma GCC unroll 4
    for (int u = 0; u < ku; u++)
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++)
            acc[u][i][0] = acc[u][i][1] = _mm512_setzero_si512();

    int kq = 0;
    for (; kq + ku <= Kq; kq += ku) {
#pragma GCC unroll 4
        for (int u = 0; u < ku; u++) {
            const __m512i b0 = _mm512_loadu_si512(B + (size_t)(kq + u) * QB);
            const __m512i b1 = _mm512_loadu_si512(B + (size_t)(kq + u) * QB + 64);
#pragma GCC unroll 8
            for (int i = 0; i < mr; i++) {
                const __m512i a = _mm512_set1_epi32(load_i32(A + (size_t)i * ldq + 4 * (kq + u)));
                acc[u][i][0] = _mm512_dpbusd_epi32(acc[u][i][0], a, b0);
                acc[u][i][1] = _mm512_dpbusd_epi32(acc[u][i][1], a, b1);
            }
        }
    }
    for (; kq < Kq; kq++) {
        const __m512i b0 = _mm512_loadu_si512(B + (size_t)kq * QB);
        const __m512i b1 = _mm512_loadu_si512(B + (size_t)kq * QB + 64);
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            const __m512i a = _mm512_set1_epi32(load_i32(A + (size_t)i * ldq + 4 * kq));
            acc[0][i][0] = _mm512_dpbusd_epi32(acc[0][i][0], a, b0);
            acc[0][i][1] = _mm512_dpbusd_epi32(acc[0][i][1], a, b1);
        }
    }
#pragma GCC unroll 4
    for (int u = 1; u < ku; u++)
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            acc[0][i][0] = _mm512_add_epi32(acc[0][i][0], acc[u][i][0]);
            acc[0][i][1] = _mm512_add_epi32(acc[0][i][1], acc[u][i][1]);
        }

    /* bit j of cols: column j of the panel is in [lo, hi) */
    const uint32_t cols = (hi >= NR ? ~0u : (1u << hi) - 1) & ~((1u << lo) - 1);
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
        store16_avx512(acc[0][i][0], cols, 0, rs, ws, ascale[i], beta, C + (size_t)i * ldc);
        store16_avx512(acc[0][i][1], cols, 1, rs, ws, ascale[i], beta, C + (size_t)i * ldc);
    }
}

/* One function per shape (mr and ku compile-time constants, so the
 * accumulators live in registers): kernels_vnni[mr], mr = 1..8. */
#define KERNEL_vnni(MR, KU)                           \
    VNNI_FN static void kernel_vnni_##MR(KERNEL_ARGS) \
    {                                                 \
        kernel_vnni(MR, KU, KERNEL_CALL);             \
    }
// clang-format off
#define VNNI_SHAPES(X) \
    X(vnni, 1, 4) X(vnni, 2, 2) X(vnni, 3, 2) X(vnni, 4, 2) \
    X(vnni, 5, 1) X(vnni, 6, 1) X(vnni, 7, 1) X(vnni, 8, 1)
// clang-format on
#define KERNEL_DEF(ISA, MR, KU) KERNEL_##ISA(MR, KU)
#define KERNEL_NAME(ISA, MR, KU) kernel_##ISA##_##MR,
VNNI_SHAPES(KERNEL_DEF)
static kernel_fn *const kernels_vnni[MR_VNNI + 1] = {NULL, VNNI_SHAPES(KERNEL_NAME)};

/* ------------------------------------------------------------------------ */
/* AVX2: per 8 columns, vpmaddubsw(codes, q) gives 16 int16 pair sums       */
/* code*q + code'*q' (<= 2*127*127 = 32258: never saturates), vpmaddwd with */
/* ones adds the pairs into 8 int32 (the 4-product sums), vpaddd adds them  */
/* to the accumulator (whose chain is only the 1-cycle add). mr (<= 4) rows */
/* x nv ymm (16 or 32 columns) from column `off` of the panel.             */

#define MR_AVX2 4

/* the raw sums s of 8 columns of one row into c[0..8): as store_row */
AVX2_INLINE void store8_avx2(__m256i s, const int32_t *rs, const float *ws, float as, float beta,
                             float *c)
{
    const __m256i acc =
        _mm256_sub_epi32(s, _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)rs), 6));
    const __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(acc),
                                   _mm256_mul_ps(_mm256_set1_ps(as), _mm256_loadu_ps(ws)));
    if (beta == 0.0f)
        _mm256_storeu_ps(c, v);
    else
        _mm256_storeu_ps(c, _mm256_fmadd_ps(_mm256_set1_ps(beta), _mm256_loadu_ps(c), v));
}

AVX2_INLINE void kernel_avx2(const int mr, const int nv, int off, KERNEL_ARGS)
{
    __m256i acc[MR_AVX2][4];
    const __m256i ones = _mm256_set1_epi16(1);
    const int8_t *b = B + 4 * off;
#pragma GCC unroll 4
    for (int i = 0; i < mr; i++) {
        fr_prefetch_cols(C + (size_t)i * ldc, lo > off ? lo : off,
                         hi - off < 8 * nv ? hi : off + 8 * nv);
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            acc[i][v] = _mm256_setzero_si256();
    }
#pragma GCC unroll 2
    for (int kq = 0; kq < Kq; kq++) {
        __m256i w[4];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            w[v] = _mm256_loadu_si256((const __m256i *)(b + (size_t)kq * QB + 32 * v));
#pragma GCC unroll 4
        for (int i = 0; i < mr; i++) {
            const __m256i a = _mm256_set1_epi32(load_i32(A + (size_t)i * ldq + 4 * kq));
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) {
                const __m256i pairs = _mm256_maddubs_epi16(a, w[v]);
                acc[i][v] = _mm256_add_epi32(acc[i][v], _mm256_madd_epi16(pairs, ones));
            }
        }
    }

    const int j0 = lo > off ? lo - off : 0;
    const int j1 = hi - off < 8 * nv ? hi - off : 8 * nv;
    if (j1 <= j0)
        return;
    rs += off, ws += off, C += off;
#pragma GCC unroll 4
    for (int i = 0; i < mr; i++) {
        float *c = C + (size_t)i * ldc;
        if (j0 == 0 && j1 == 8 * nv) {
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++)
                store8_avx2(acc[i][v], rs + 8 * v, ws + 8 * v, ascale[i], beta, c + 8 * v);
        } else {
            uint32_t sum[NR];
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++)
                _mm256_storeu_si256((__m256i *)(sum + 8 * v), acc[i][v]);
            store_row(sum, rs, ws, ascale[i], j0, j1, beta, c);
        }
    }
}

/* kernels_avx2[mr]: mr x 16 columns on the half panel at column `off`;
 * kernel_avx2_m1: one row x the whole panel (fewer broadcasts of A). */
typedef void half_kernel_fn(int off, KERNEL_ARGS);
#define KERNEL_avx2(MR, KU)                                    \
    AVX2_FN static void kernel_avx2_##MR(int off, KERNEL_ARGS) \
    {                                                          \
        kernel_avx2(MR, 2, off, KERNEL_CALL);                  \
    }
#define AVX2_SHAPES(X) X(avx2, 2, 1) X(avx2, 3, 1) X(avx2, 4, 1)
AVX2_SHAPES(KERNEL_DEF)
static half_kernel_fn *const kernels_avx2[MR_AVX2 + 1] = {NULL, NULL, AVX2_SHAPES(KERNEL_NAME)};

AVX2_FN static void kernel_avx2_m1(KERNEL_ARGS)
{
    kernel_avx2(1, 4, 0, KERNEL_CALL);
}

/* AVX-512 VNNI is not part of the AVX512 level (simd.h): asked of the CPU
 * once, to the same answer from any thread */
static int cpu_has_vnni(void)
{
    static int has = -1;
    int v = __atomic_load_n(&has, __ATOMIC_RELAXED);
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx512vnni") != 0;
        __atomic_store_n(&has, v, __ATOMIC_RELAXED);
    }
    return v;
}
#endif /* FR_X86_SIMD */

enum { RUN_GENERIC, RUN_AVX2, RUN_VNNI };

/* the code of the level in use */
static int which_kernel(void)
{
#ifdef FR_X86_SIMD
    switch (fr_simd_level()) {
    case FR_SIMD_AVX512: return cpu_has_vnni() ? RUN_VNNI : RUN_AVX2;
    case FR_SIMD_AVX2: return RUN_AVX2;
    default: break;
    }
#endif
    return RUN_GENERIC;
}

const char *fr_qmatmul_kernel_name(void)
{
    static const char *const names[] = {"generic", "avx2", "avx512vnni"};
    return names[which_kernel()];
}

void fr_qmatmul_f32(int M, int n0, int n1, int K, const uint8_t *Aq, int ldq, const float *ascale,
                    const int8_t *packed, const float *wscale, const int32_t *rowsum, float beta,
                    float *C, int ldc)
{
    if (M <= 0 || n0 < 0 || n1 <= n0)
        return;
    const int Kq = K > 0 ? (K + 3) / 4 : 0;
    const int run = which_kernel();
    for (int p = n0 / NR; p * NR < n1; p++) {
        int lo, hi;
        fr_panel_cols(p, n0, n1, &lo, &hi);
        const int8_t *B = Kq ? packed + (size_t)p * Kq * QB : packed;
        const int32_t *rs = rowsum + (size_t)p * NR;
        const float *ws = wscale + (size_t)p * NR;
        float *Cp = C + (size_t)p * NR;
#ifdef FR_X86_SIMD
        if (run == RUN_VNNI) {
            for (int m = 0; m < M; m += MR_VNNI)
                kernels_vnni[M - m < MR_VNNI ? M - m : MR_VNNI](Kq, Aq + (size_t)m * ldq, ldq,
                                                                ascale + m, B, rs, ws, beta,
                                                                Cp + (size_t)m * ldc, ldc, lo, hi);
            continue;
        }
        if (run == RUN_AVX2) {
            /* a last block of one row (M = 1 included) takes the whole panel */
            const int last = M % MR_AVX2 == 1 ? M - 1 : M;
            for (int off = 0; off < hi; off += 16) {
                if (off + 16 <= lo)
                    continue;
                for (int m = 0; m < last; m += MR_AVX2)
                    kernels_avx2[last - m < MR_AVX2 ? last - m : MR_AVX2](
                        off, Kq, Aq + (size_t)m * ldq, ldq, ascale + m, B, rs, ws, beta,
                        Cp + (size_t)m * ldc, ldc, lo, hi);
            }
            if (last < M)
                kernel_avx2_m1(Kq, Aq + (size_t)last * ldq, ldq, ascale + last, B, rs, ws, beta,
                               Cp + (size_t)last * ldc, ldc, lo, hi);
            continue;
        }
#endif
        (void)run;
        for (int m = 0; m < M; m += MR_G)
            kernel_generic(M - m < MR_G ? M - m : MR_G, Kq, Aq + (size_t)m * ldq, ldq, ascale + m,
                           B, rs, ws, beta, Cp + (size_t)m * ldc, ldc, lo, hi);
    }
}
