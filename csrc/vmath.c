/* vmath.c - sigmoid and tanh over float32 arrays, and the LSTM and GRU
 * forward cells in one pass of them (see vmath.h).
 *
 * AVX-512: exp by range reduction, x = n ln2 + r, e^x = 2^n e^r with Cephes'
 * polynomial for e^r and vscalefps for 2^n; tanh by Eigen's rational form
 * x P(x^2) / Q(x^2); reciprocals by vrcp14ps and one Newton step. AVX2+FMA:
 * the same with 8 lanes, 2^n built from the exponent bits and vrcpps. The
 * generic level: the scalar forms of activations.h, which the compiler
 * vectorises. The level in use picks (fastrnn.h: fr_simd_level).
 * Clamps use min/max with the input second, so NaN passes through. */
#include "vmath.h"

#include "activations.h"
#include "fastrnn.h"
#include "simd.h"
#ifdef FR_X86_SIMD
#include <immintrin.h>
#endif

static void sigmoid_generic(int n, const float *x, float *y)
{
    for (int j = 0; j < n; j++)
        y[j] = fr_sigmoidf(x[j]);
}

static void tanh_generic(int n, const float *x, float *y)
{
    for (int j = 0; j < n; j++)
        y[j] = fr_tanhf(x[j]);
}

#ifdef FR_X86_SIMD

/* Cephes expf: e^r = 1 + r + r^2 P(r) on |r| <= ln2 / 2 */
#define EXP_POLY(V, FMA, SET, r)          \
    V p = SET(1.9875691500e-4f);          \
    p = FMA(p, r, SET(1.3981999507e-3f)); \
    p = FMA(p, r, SET(8.3334519073e-3f)); \
    p = FMA(p, r, SET(4.1665795894e-2f)); \
    p = FMA(p, r, SET(1.6666665459e-1f)); \
    p = FMA(p, r, SET(5.0000001201e-1f));

/* tanh(c) = c P(c^2) / Q(c^2), c = x clamped to +-7.905 (Eigen's coefficients) */
#define TANH_PQ(V, FMA, MUL, SET, c, p, q)       \
    V x2 = MUL(c, c);                            \
    V p = SET(-2.76076847742355e-16f);           \
    p = FMA(p, x2, SET(2.00018790482477e-13f));  \
    p = FMA(p, x2, SET(-8.60467152213735e-11f)); \
    p = FMA(p, x2, SET(5.12229709037114e-08f));  \
    p = FMA(p, x2, SET(1.48572235717979e-05f));  \
    p = FMA(p, x2, SET(6.37261928875436e-04f));  \
    p = FMA(p, x2, SET(4.89352455891786e-03f));  \
    p = MUL(p, c);                               \
    V q = SET(1.19825839466702e-06f);            \
    q = FMA(q, x2, SET(1.18534705686654e-04f));  \
    q = FMA(q, x2, SET(2.26843463243900e-03f));  \
    q = FMA(q, x2, SET(4.89352518554385e-03f));

/* ---- AVX-512F ---- */

__attribute__((target("avx512f"))) static inline __m512 exp16(__m512 x)
{
    x = _mm512_min_ps(_mm512_set1_ps(88.7228391f), x); /* beyond: 2^128 e^r = inf */
    x = _mm512_max_ps(_mm512_set1_ps(-103.972084f), x);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    EXP_POLY(__m512, _mm512_fmadd_ps, _mm512_set1_ps, r)
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
    p = _mm512_add_ps(p, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* 1 / d: 14-bit estimate, one Newton step */
__attribute__((target("avx512f"))) static inline __m512 recip16(__m512 d)
{
    __m512 r = _mm512_rcp14_ps(d);
    return _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
}

/* sigmoid(x) = 1 / (1 + e^-x); exactly 0 where e^-x overflows, as in PyTorch */
__attribute__((target("avx512f"))) static inline __m512 sigmoid16(__m512 x)
{
    __m512 d = _mm512_add_ps(exp16(_mm512_sub_ps(_mm512_setzero_ps(), x)), _mm512_set1_ps(1.0f));
    __mmask16 overflow = _mm512_cmp_ps_mask(d, _mm512_set1_ps(__builtin_inff()), _CMP_EQ_OQ);
    return _mm512_maskz_mov_ps((__mmask16)~overflow, recip16(d));
}

__attribute__((target("avx512f"))) static inline __m512 tanh16(__m512 x)
{
    __m512 c = _mm512_min_ps(_mm512_set1_ps(7.90531110763549805f), x);
    c = _mm512_max_ps(_mm512_set1_ps(-7.90531110763549805f), c);
    TANH_PQ(__m512, _mm512_fmadd_ps, _mm512_mul_ps, _mm512_set1_ps, c, p, q)
    return _mm512_mul_ps(p, recip16(q));
}

#define ARRAY16(name, f)                                                                 \
    __attribute__((target("avx512f"))) static void name(int n, const float *x, float *y) \
    {                                                                                    \
        int j = 0;                                                                       \
        for (; j + 16 <= n; j += 16)                                                     \
            _mm512_storeu_ps(y + j, f(_mm512_loadu_ps(x + j)));                          \
        if (j < n) {                                                                     \
            __mmask16 m = (__mmask16)((1u << (n - j)) - 1);                              \
            _mm512_mask_storeu_ps(y + j, m, f(_mm512_maskz_loadu_ps(m, x + j)));         \
        }                                                                                \
    }
ARRAY16(sigmoid_avx512, sigmoid16)
ARRAY16(tanh_avx512, tanh16)

/* ---- AVX2 + FMA ---- */

__attribute__((target("avx2,fma"))) static inline __m256 exp8(__m256 x)
{
    x = _mm256_min_ps(_mm256_set1_ps(88.3762626647949f), x);
    x = _mm256_max_ps(_mm256_set1_ps(-87.3365447504f), x);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    EXP_POLY(__m256, _mm256_fmadd_ps, _mm256_set1_ps, r)
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r);
    p = _mm256_add_ps(p, _mm256_set1_ps(1.0f));
    __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e)); /* NaN x: p is NaN */
}

/* vrcpps has 12 bits: two Newton steps r += r (1 - d r). One leaves 1 / 1 at
 * 1 - 2^-24, so a saturated gate (sigmoid = 1) would shrink c at every step;
 * after two, 1 / 1 is 1 and sigmoid(0) is 0.5. */
__attribute__((target("avx2,fma"))) static inline __m256 recip8(__m256 d)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 r = _mm256_rcp_ps(d);
    r = _mm256_fmadd_ps(r, _mm256_fnmadd_ps(d, r, one), r);
    return _mm256_fmadd_ps(r, _mm256_fnmadd_ps(d, r, one), r);
}

/* exactly 0 where e^-x would overflow (exp8 clamps its argument) */
__attribute__((target("avx2,fma"))) static inline __m256 sigmoid8(__m256 x)
{
    __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
    __m256 s = recip8(_mm256_add_ps(e, _mm256_set1_ps(1.0f)));
    __m256 underflow = _mm256_cmp_ps(x, _mm256_set1_ps(-88.3762626647949f), _CMP_LT_OQ);
    return _mm256_andnot_ps(underflow, s);
}

__attribute__((target("avx2,fma"))) static inline __m256 tanh8(__m256 x)
{
    __m256 c = _mm256_min_ps(_mm256_set1_ps(7.90531110763549805f), x);
    c = _mm256_max_ps(_mm256_set1_ps(-7.90531110763549805f), c);
    TANH_PQ(__m256, _mm256_fmadd_ps, _mm256_mul_ps, _mm256_set1_ps, c, p, q)
    return _mm256_mul_ps(p, recip8(q));
}

#define ARRAY8(name, f, tail)                                                             \
    __attribute__((target("avx2,fma"))) static void name(int n, const float *x, float *y) \
    {                                                                                     \
        int j = 0;                                                                        \
        for (; j + 8 <= n; j += 8)                                                        \
            _mm256_storeu_ps(y + j, f(_mm256_loadu_ps(x + j)));                           \
        tail(n - j, x + j, y + j);                                                        \
    }
ARRAY8(sigmoid_avx2, sigmoid8, sigmoid_generic)
ARRAY8(tanh_avx2, tanh8, tanh_generic)

/* ---- The LSTM and GRU cells' forward passes in one pass: AVX-512F ----
 * lstm_cell.inc and gru_cell.inc state the math and the layouts; these
 * compute it in the order of operations of their loops (where the compiler
 * fuses a multiply-add there, here it is an FMA), 16 units at a time (the
 * last ones masked), each value loaded and stored once. */

/* m: the units to load and store, all 16 but at the end of a row */
#define LOAD16(p) (m == 0xFFFF ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(m, p))
#define STORE16(p, v) (m == 0xFFFF ? _mm512_storeu_ps(p, v) : _mm512_mask_storeu_ps(p, m, v))

/* FR_PEEP(p, c): p * c, or 0 where p == 0 (no 0 * inf) */
__attribute__((target("avx512f"))) static inline __m512 peep16(__mmask16 m, const float *p,
                                                               __m512 c)
{
    __m512 q = LOAD16(p);
    return _mm512_maskz_mul_ps(_mm512_cmp_ps_mask(q, _mm512_setzero_ps(), _CMP_NEQ_UQ), q, c);
}

__attribute__((target("avx512f"), always_inline)) static inline void
lstm16(const int peephole, const __mmask16 m, int H, float *pre, const float *bias,
       const float *peep, const float *c_in, float *c_out, float *h)
{
    __m512 c = LOAD16(c_in), bi = LOAD16(bias), bf = LOAD16(bias + H);
    if (peephole) {
        bi = _mm512_add_ps(bi, peep16(m, peep, c));
        bf = _mm512_add_ps(bf, peep16(m, peep + H, c));
    }
    __m512 i = sigmoid16(_mm512_add_ps(LOAD16(pre), bi));
    __m512 f = sigmoid16(_mm512_add_ps(LOAD16(pre + H), bf));
    __m512 g = tanh16(_mm512_add_ps(LOAD16(pre + 2 * H), LOAD16(bias + 2 * H)));
    c = _mm512_fmadd_ps(f, c, _mm512_mul_ps(i, g));
    __m512 bo = LOAD16(bias + 3 * H);
    if (peephole)
        bo = _mm512_add_ps(bo, peep16(m, peep + 2 * H, c));
    __m512 o = sigmoid16(_mm512_add_ps(LOAD16(pre + 3 * H), bo));
    STORE16(pre, i);
    STORE16(pre + H, f);
    STORE16(pre + 2 * H, g);
    STORE16(pre + 3 * H, o);
    STORE16(c_out, c);
    STORE16(h, _mm512_mul_ps(tanh16(c), o));
}

__attribute__((target("avx512f"))) static void
lstm_forward_avx512(int n, int H, float *pre, const float *bias, const float *peep,
                    const float *c_in, float *c_out, float *h)
{
    int j = 0;
    if (peep) {
        for (; j + 16 <= n; j += 16)
            lstm16(1, 0xFFFF, H, pre + j, bias + j, peep + j, c_in + j, c_out + j, h + j);
    } else {
        for (; j + 16 <= n; j += 16)
            lstm16(0, 0xFFFF, H, pre + j, bias + j, NULL, c_in + j, c_out + j, h + j);
    }
    if (j < n)
        lstm16(peep != NULL, (__mmask16)((1u << (n - j)) - 1), H, pre + j, bias + j,
               peep ? peep + j : NULL, c_in + j, c_out + j, h + j);
}

__attribute__((target("avx512f"), always_inline)) static inline void
gru16(const __mmask16 m, int H, float *xj, const float *rj, const float *bj, float *a_out,
      const float *h, float *h_out)
{
    __m512 rg = sigmoid16(_mm512_add_ps(LOAD16(xj), _mm512_add_ps(LOAD16(rj), LOAD16(bj))));
    __m512 z =
        sigmoid16(_mm512_add_ps(LOAD16(xj + H), _mm512_add_ps(LOAD16(rj + H), LOAD16(bj + H))));
    __m512 a = _mm512_add_ps(LOAD16(rj + 2 * H), LOAD16(bj + 3 * H));
    __m512 nn =
        tanh16(_mm512_add_ps(LOAD16(xj + 2 * H), _mm512_fmadd_ps(rg, a, LOAD16(bj + 2 * H))));
    STORE16(xj, rg);
    STORE16(xj + H, z);
    STORE16(xj + 2 * H, nn);
    STORE16(a_out, a);
    STORE16(h_out, _mm512_fmadd_ps(z, _mm512_sub_ps(LOAD16(h), nn), nn));
}

__attribute__((target("avx512f"))) static void gru_forward_avx512(int n, int H, float *x,
                                                                  const float *r, const float *bias,
                                                                  float *a_out, const float *h,
                                                                  float *h_out)
{
    int j = 0;
    for (; j + 16 <= n; j += 16)
        gru16(0xFFFF, H, x + j, r + j, bias + j, a_out + j, h + j, h_out + j);
    if (j < n)
        gru16((__mmask16)((1u << (n - j)) - 1), H, x + j, r + j, bias + j, a_out + j, h + j,
              h_out + j);
}

#undef LOAD16
#undef STORE16

/* ---- The same cells for AVX2 + FMA, 8 units at a time ----
 * The tail of a row (fewer than 8 units) goes through vmaskmov loads and
 * stores, which touch nothing past the row. */

#define LOAD8(p) (m8 ? _mm256_maskload_ps(p, mask) : _mm256_loadu_ps(p))
#define STORE8(p, v) (m8 ? _mm256_maskstore_ps(p, mask, v) : _mm256_storeu_ps(p, v))

/* the first n (< 8) lanes */
__attribute__((target("avx2,fma"))) static inline __m256i first8(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* FR_PEEP(p, c): p * c, or 0 where p == 0 (no 0 * inf) */
__attribute__((target("avx2,fma"))) static inline __m256 peep8(const int m8, __m256i mask,
                                                               const float *p, __m256 c)
{
    __m256 q = LOAD8(p);
    return _mm256_and_ps(_mm256_cmp_ps(q, _mm256_setzero_ps(), _CMP_NEQ_UQ), _mm256_mul_ps(q, c));
}

__attribute__((target("avx2,fma"), always_inline)) static inline void
lstm8(const int peephole, const int m8, __m256i mask, int H, float *pre, const float *bias,
      const float *peep, const float *c_in, float *c_out, float *h)
{
    __m256 c = LOAD8(c_in), bi = LOAD8(bias), bf = LOAD8(bias + H);
    if (peephole) {
        bi = _mm256_add_ps(bi, peep8(m8, mask, peep, c));
        bf = _mm256_add_ps(bf, peep8(m8, mask, peep + H, c));
    }
    __m256 i = sigmoid8(_mm256_add_ps(LOAD8(pre), bi));
    __m256 f = sigmoid8(_mm256_add_ps(LOAD8(pre + H), bf));
    __m256 g = tanh8(_mm256_add_ps(LOAD8(pre + 2 * H), LOAD8(bias + 2 * H)));
    c = _mm256_fmadd_ps(f, c, _mm256_mul_ps(i, g));
    __m256 bo = LOAD8(bias + 3 * H);
    if (peephole)
        bo = _mm256_add_ps(bo, peep8(m8, mask, peep + 2 * H, c));
    __m256 o = sigmoid8(_mm256_add_ps(LOAD8(pre + 3 * H), bo));
    STORE8(pre, i);
    STORE8(pre + H, f);
    STORE8(pre + 2 * H, g);
    STORE8(pre + 3 * H, o);
    STORE8(c_out, c);
    STORE8(h, _mm256_mul_ps(tanh8(c), o));
}

__attribute__((target("avx2,fma"))) static void
lstm_forward_avx2(int n, int H, float *pre, const float *bias, const float *peep, const float *c_in,
                  float *c_out, float *h)
{
    const __m256i all = _mm256_set1_epi32(-1);
    int j = 0;
    if (peep) {
        for (; j + 8 <= n; j += 8)
            lstm8(1, 0, all, H, pre + j, bias + j, peep + j, c_in + j, c_out + j, h + j);
    } else {
        for (; j + 8 <= n; j += 8)
            lstm8(0, 0, all, H, pre + j, bias + j, NULL, c_in + j, c_out + j, h + j);
    }
    if (j < n)
        lstm8(peep != NULL, 1, first8(n - j), H, pre + j, bias + j, peep ? peep + j : NULL,
              c_in + j, c_out + j, h + j);
}

__attribute__((target("avx2,fma"), always_inline)) static inline void
gru8(const int m8, __m256i mask, int H, float *xj, const float *rj, const float *bj, float *a_out,
     const float *h, float *h_out)
{
    __m256 rg = sigmoid8(_mm256_add_ps(LOAD8(xj), _mm256_add_ps(LOAD8(rj), LOAD8(bj))));
    __m256 z = sigmoid8(_mm256_add_ps(LOAD8(xj + H), _mm256_add_ps(LOAD8(rj + H), LOAD8(bj + H))));
    __m256 a = _mm256_add_ps(LOAD8(rj + 2 * H), LOAD8(bj + 3 * H));
    __m256 nn = tanh8(_mm256_add_ps(LOAD8(xj + 2 * H), _mm256_fmadd_ps(rg, a, LOAD8(bj + 2 * H))));
    STORE8(xj, rg);
    STORE8(xj + H, z);
    STORE8(xj + 2 * H, nn);
    STORE8(a_out, a);
    STORE8(h_out, _mm256_fmadd_ps(z, _mm256_sub_ps(LOAD8(h), nn), nn));
}

__attribute__((target("avx2,fma"))) static void gru_forward_avx2(int n, int H, float *x,
                                                                 const float *r, const float *bias,
                                                                 float *a_out, const float *h,
                                                                 float *h_out)
{
    const __m256i all = _mm256_set1_epi32(-1);
    int j = 0;
    for (; j + 8 <= n; j += 8)
        gru8(0, all, H, x + j, r + j, bias + j, a_out + j, h + j, h_out + j);
    if (j < n)
        gru8(1, first8(n - j), H, x + j, r + j, bias + j, a_out + j, h + j, h_out + j);
}

#undef LOAD8
#undef STORE8

#endif /* FR_X86_SIMD */

int fr_lstm_forward_f32(int n, int H, float *pre, const float *bias, const float *peep,
                        const float *c_in, float *c_out, float *h)
{
#ifdef FR_X86_SIMD
    switch (fr_simd_level()) {
    case FR_SIMD_AVX512: lstm_forward_avx512(n, H, pre, bias, peep, c_in, c_out, h); return 1;
    case FR_SIMD_AVX2: lstm_forward_avx2(n, H, pre, bias, peep, c_in, c_out, h); return 1;
    }
#endif
    (void)n, (void)H, (void)pre, (void)bias, (void)peep, (void)c_in, (void)c_out, (void)h;
    return 0;
}

int fr_gru_forward_f32(int n, int H, float *x, const float *r, const float *bias, float *a_out,
                       const float *h, float *h_out)
{
#ifdef FR_X86_SIMD
    switch (fr_simd_level()) {
    case FR_SIMD_AVX512: gru_forward_avx512(n, H, x, r, bias, a_out, h, h_out); return 1;
    case FR_SIMD_AVX2: gru_forward_avx2(n, H, x, r, bias, a_out, h, h_out); return 1;
    }
#endif
    (void)n, (void)H, (void)x, (void)r, (void)bias, (void)a_out, (void)h, (void)h_out;
    return 0;
}

void fr_sigmoid_f32(int n, const float *x, float *y)
{
    switch (fr_simd_level()) {
#ifdef FR_X86_SIMD
    case FR_SIMD_AVX512: sigmoid_avx512(n, x, y); return;
    case FR_SIMD_AVX2: sigmoid_avx2(n, x, y); return;
#endif
    default: sigmoid_generic(n, x, y); return;
    }
}

void fr_tanh_f32(int n, const float *x, float *y)
{
    switch (fr_simd_level()) {
#ifdef FR_X86_SIMD
    case FR_SIMD_AVX512: tanh_avx512(n, x, y); return;
    case FR_SIMD_AVX2: tanh_avx2(n, x, y); return;
#endif
    default: tanh_generic(n, x, y); return;
    }
}
