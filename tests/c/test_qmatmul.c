/* test_qmatmul.c - the int8 products (qmatmul.h) against references written
 * for reading:
 *
 *   quantizers  fr_quantize_pack_s8 and fr_quantize_rows_u7 against a float64
 *               computation: scales and codes bit-exact, |x - q*scale| <=
 *               scale/2, zero rows, exact ties, K not a multiple of 4, the
 *               packed layout and its zero padding, the padding codes, and
 *               bytes outside the rows never written; on every SIMD level
 *   product     fr_qmatmul_f32 on every SIMD level the CPU has against int64
 *               sums and the float expression of qmatmul.h: C bitwise equal
 *               (memcmp of the whole buffer: columns outside [n0, n1) and
 *               row gaps untouched, beta 0 never reads C's NaN); extreme
 *               codes (127 against -127 and 127: no saturation); K at the
 *               documented limit of exactness
 *   accuracy    the dequantized result against the float64 product of A and
 *               W within the bound of qmatmul.h
 *
 *   ./test_qmatmul [seed] [rounds]
 *
 * Buffers are malloc'ed at exactly the size the API needs, so the sanitizer
 * build (Makefile) reports any access past them. Exit status 0: all passed. */
/* common.h: CHECK, the random generator; its float64 layer reference is not
 * used here */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "common.h"
#pragma GCC diagnostic pop
#include "qmatmul.h"

static int g_checks = 0;

static const int LEVELS[] = {FR_SIMD_GENERIC, FR_SIMD_AVX2, FR_SIMD_AVX512};
#define NLEVELS 3

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static int kpad(int K)
{
    return (K + 3) / 4 * 4;
}

/* ---- float64 references of the quantizers ------------------------------ */

/* max|x| / levels as a float: the float division, correctly rounded (double
 * rounding through float64 is innocuous for a quotient of floats) */
static float ref_scale(const float *x, int K, double levels)
{
    double m = 0;
    for (int k = 0; k < K; k++)
        m = fabs(x[k]) > m ? fabs(x[k]) : m;
    return (float)(m / levels);
}

/* x / s rounded to nearest, ties to even, clamped: the float64 quotient of
 * two floats is never close enough to a half-integer to change the rounding
 * unless it is one exactly, so this is the rounding of the real quotient */
static int ref_code(float x, float s, int lim)
{
    if (s == 0)
        return 0;
    double q = nearbyint((double)x / (double)s);
    return q > lim ? lim : q < -lim ? -lim : (int)q;
}

/* a row of K values of one of several kinds: uniform at a random magnitude,
 * zero, exact ties (halves of the scale: rounded to even), values a few
 * ulps off ties, a single non-zero, all equal */
static void fill_row(rng_t *r, float *x, int K, int lim)
{
    if (K == 0)
        return;
    const int kind = rng_int(r, 0, 9);
    const double mag = pow(10.0, rng_int(r, -3, 3));
    for (int k = 0; k < K; k++)
        x[k] = (float)rng_unif(r, mag);
    if (kind == 0)
        for (int k = 0; k < K; k++)
            x[k] = 0.0f;
    if (kind == 1 || kind == 4) {
        /* scale s of 16 significant bits, values half-integers times s (both
         * exact in float): every value a tie; x * (1/s) in float64 lands on
         * the wrong side of some of them */
        const double s = ldexp(rng_int(r, 1 << 15, (1 << 16) - 1), -15 - rng_int(r, 0, 12));
        for (int k = 0; k < K; k++) {
            x[k] = (float)(rng_int(r, -lim, lim - 1) * s + 0.5 * s);
            for (int u = rng_int(r, -3, 3); kind == 4 && u; u += u < 0 ? 1 : -1)
                x[k] = nextafterf(x[k], u < 0 ? -INFINITY : INFINITY); /* near ties */
        }
        x[rng_int(r, 0, K - 1)] = (float)(rng_int(r, 0, 1) ? lim * s : -lim * s);
    }
    if (kind == 2) {
        for (int k = 0; k < K; k++)
            x[k] = 0.0f;
        x[rng_int(r, 0, K - 1)] = (float)rng_unif(r, mag);
    }
    if (kind == 3) {
        const float v = (float)rng_unif(r, mag);
        for (int k = 0; k < K; k++)
            x[k] = v;
    }
}

/* the quantizer's promise for one value: its code and |x - q*s| <= s/2 */
static void check_value(float x, float s, int got, int lim, const char *what, int row, int k)
{
    const int want = ref_code(x, s, lim);
    CHECK(got == want, "%s[%d,%d] = %d, want %d (x %.9g, scale %.9g)", what, row, k, got, want, x,
          s);
    CHECK(fabs((double)x - (double)got * s) <= 0.5 * (double)s, "%s[%d,%d]: |%.9g - %d*%.9g| > s/2",
          what, row, k, x, got, s);
}

/* ---- fr_quantize_pack_s8 ---------------------------------------------- */

static void check_pack(rng_t *r, int N, int K)
{
    snprintf(g_case, sizeof g_case, "quantize_pack_s8 N=%d K=%d", N, K);
    const int Kq = kpad(K) / 4, P = (N + 31) / 32;
    float *W = xmalloc((size_t)N * K * sizeof(float));
    for (int n = 0; n < N; n++)
        fill_row(r, W + (size_t)n * K, K, 127);
    const size_t bytes = fr_qpack_size(N, K);
    CHECK(bytes == (size_t)P * 32 * Kq * 4, "fr_qpack_size = %zu", bytes);
    int8_t *packed = xmalloc(bytes);
    float *scale = xmalloc((size_t)N * sizeof(float));
    int32_t *rowsum = xmalloc((size_t)N * sizeof(int32_t));
    memset(packed, 0x5a, bytes); /* every byte must be written */
    fr_quantize_pack_s8(N, K, W, packed, scale, rowsum);
    for (int n = 0; n < N; n++) {
        const float *w = W + (size_t)n * K;
        const float s = ref_scale(w, K, 127);
        CHECK(scale[n] == s, "scale[%d] = %.9g, want %.9g", n, scale[n], s);
        int64_t sum = 0;
        for (int k = 0; k < K; k++)
            sum += ref_code(w[k], s, 127);
        CHECK(rowsum[n] == sum, "rowsum[%d] = %d, want %lld", n, rowsum[n], (long long)sum);
    }
    for (int p = 0; p < P; p++)
        for (int kq = 0; kq < Kq; kq++)
            for (int j = 0; j < 32; j++)
                for (int i = 0; i < 4; i++) {
                    const int n = 32 * p + j, k = 4 * kq + i;
                    const int got = packed[(((size_t)p * Kq + kq) * 32 + j) * 4 + i];
                    if (n < N && k < K)
                        check_value(W[(size_t)n * K + k], scale[n], got, 127, "q", n, k);
                    else
                        CHECK(got == 0, "padding packed[%d,%d,%d,%d] = %d", p, kq, j, i, got);
                }
    g_checks++;
    free(W);
    free(packed);
    free(scale);
    free(rowsum);
}

/* ---- fr_quantize_rows_u7 ---------------------------------------------- */

/* A (M, K) with row stride lda; the gaps hold 1e30, which a quantizer
 * reading them would take as the row's max */
static float *make_rows(rng_t *r, int M, int K, int lda)
{
    const size_t n = M ? (size_t)(M - 1) * lda + K : 0;
    float *A = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        A[i] = 1e30f;
    for (int m = 0; m < M; m++)
        fill_row(r, A + (size_t)m * lda, K, 63);
    return A;
}

static void check_rows(rng_t *r, int level, int M, int K, int lda, int ldq)
{
    snprintf(g_case, sizeof g_case, "quantize_rows_u7 %s M=%d K=%d lda=%d ldq=%d",
             fr_simd_level_name(level), M, K, lda, ldq);
    const int Kp = kpad(K);
    float *A = make_rows(r, M, K, lda);
    const size_t nq = M ? (size_t)(M - 1) * ldq + Kp : 0;
    uint8_t *Aq = xmalloc(nq);
    float *scale = xmalloc((size_t)M * sizeof(float));
    memset(Aq, 0xee, nq); /* the gaps [Kp, ldq) must stay so */
    fr_quantize_rows_u7(M, K, A, lda, Aq, ldq, scale);
    for (int m = 0; m < M; m++) {
        const float *x = A + (size_t)m * lda;
        const uint8_t *q = Aq + (size_t)m * ldq;
        const float s = ref_scale(x, K, 63);
        CHECK(scale[m] == s, "scale[%d] = %.9g, want %.9g", m, scale[m], s);
        for (int k = 0; k < K; k++) {
            CHECK(q[k] >= 1 && q[k] <= 127, "code[%d,%d] = %d", m, k, q[k]);
            check_value(x[k], s, q[k] - 64, 63, "a", m, k);
        }
        for (int k = K; k < Kp; k++)
            CHECK(q[k] == 64, "padding code[%d,%d] = %d", m, k, q[k]);
        if (m < M - 1)
            for (int k = Kp; k < ldq; k++)
                CHECK(q[k] == 0xee, "gap byte [%d,%d] written", m, k);
    }
    g_checks++;
    free(A);
    free(Aq);
    free(scale);
}

/* ---- fr_qmatmul_f32 ------------------------------------------------------ */

typedef struct {
    int M, N, K, n0, n1, lda, ldq, ldc;
    float beta;
    int extreme; /* 1: A, W entries +-1 (codes 127 and 1, q = +-127), mostly
                  * of one sign per row of A; 2: A all 1, W rows all 1 or all -1 */
} qcase;

static void check_qmatmul(rng_t *r, int level, const qcase *c)
{
    const int M = c->M, N = c->N, K = c->K, n0 = c->n0, n1 = c->n1, Kp = kpad(K);
    const int lda = c->lda, ldq = c->ldq, ldc = c->ldc;
    snprintf(g_case, sizeof g_case,
             "qmatmul %s (%s) M=%d N=%d K=%d n=[%d,%d) lda=%d ldq=%d ldc=%d beta=%g%s",
             fr_simd_level_name(level), fr_qmatmul_kernel_name(), M, N, K, n0, n1, lda, ldq, ldc,
             c->beta, c->extreme ? " extreme" : "");
    float *W = xmalloc((size_t)N * K * sizeof(float));
    float *A = make_rows(r, M, K, lda);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++)
            if (c->extreme == 1)
                W[(size_t)n * K + k] = rng_int(r, 0, 1) ? 1.0f : -1.0f;
            else if (c->extreme == 2)
                W[(size_t)n * K + k] = n & 1 ? -1.0f : 1.0f;
    if (!c->extreme)
        for (int n = 0; n < N; n++)
            fill_row(r, W + (size_t)n * K, K, 127);
    if (c->extreme)
        for (int m = 0; m < M; m++)
            for (int k = 0; k < K; k++)
                A[(size_t)m * lda + k] = c->extreme == 2 || rng_int(r, 0, 7) == 0 ? 1.0f
                                         : m & 1                                  ? 1.0f
                                                                                  : -1.0f;

    int8_t *packed = xmalloc(fr_qpack_size(N, K));
    float *wscale = xmalloc((size_t)N * sizeof(float)),
          *ascale = xmalloc((size_t)M * sizeof(float));
    int32_t *rowsum = xmalloc((size_t)N * sizeof(int32_t));
    const size_t nq = (size_t)(M - 1) * ldq + Kp, nc = (size_t)(M - 1) * ldc + n1;
    uint8_t *Aq = xmalloc(nq);
    memset(Aq, 0xee, nq);
    fr_quantize_pack_s8(N, K, W, packed, wscale, rowsum);
    fr_quantize_rows_u7(M, K, A, lda, Aq, ldq, ascale);

    float *C = xmalloc(nc * sizeof(float)), *want = xmalloc(nc * sizeof(float));
    for (size_t i = 0; i < nc; i++) {
        const int n = (int)(i % ldc);
        C[i] = n < n0 || n >= n1 ? 777.0f : c->beta == 0 ? NAN : (float)rng_unif(r, 1);
    }
    memcpy(want, C, nc * sizeof(float));

    /* the values as ints: a[m, k] = code - 64, q[n, k] (the quantizers'
     * outputs, checked above against their own reference) */
    int *a = xmalloc(((size_t)M * K + 1) * sizeof(int)),
        *q = xmalloc(((size_t)N * K + 1) * sizeof(int));
    for (int m = 0; m < M; m++)
        for (int k = 0; k < K; k++)
            a[(size_t)m * K + k] = Aq[(size_t)m * ldq + k] - 64;
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++)
            q[(size_t)n * K + k] =
                packed[(((size_t)(n / 32) * (Kp / 4) + k / 4) * 32 + n % 32) * 4 + k % 4];

    /* the reference: int64 sums, then the float expression of qmatmul.h */
    int overflow = 0;
    for (int m = 0; m < M; m++)
        for (int n = n0; n < n1; n++) {
            const int *am = a + (size_t)m * K, *qn = q + (size_t)n * K;
            int64_t acc = 0;
            for (int k = 0; k < K; k++)
                acc += (int64_t)am[k] * qn[k];
            overflow |= acc > INT32_MAX || acc < INT32_MIN;
            const float v = (float)(int32_t)acc * (ascale[m] * wscale[n]);
            float *w = want + (size_t)m * ldc + n;
            *w = c->beta == 0 ? v : fmaf(c->beta, *w, v);
        }
    CHECK(!overflow, "test case beyond int32");

    fr_qmatmul_f32(M, n0, n1, K, Aq, ldq, ascale, packed, wscale, rowsum, c->beta, C, ldc);
    if (memcmp(C, want, nc * sizeof(float)) != 0) {
        int shown = 0;
        for (size_t i = 0; i < nc && shown < 5; i++)
            if (memcmp(C + i, want + i, sizeof(float)) != 0) {
                CHECK(0, "C[%d,%d] = %.9g, want %.9g", (int)(i / ldc), (int)(i % ldc), C[i],
                      want[i]);
                shown++;
            }
    }
    g_checks++;

    /* the dequantized product against the float64 one (beta 0: C is it) */
    if (c->beta == 0) {
        for (int m = 0; m < M; m++)
            for (int n = n0; n < n1; n++) {
                const float *x = A + (size_t)m * lda, *w = W + (size_t)n * K;
                const int *am = a + (size_t)m * K, *qn = q + (size_t)n * K;
                double exact = 0, qsum = 0, mag = 0;
                for (int k = 0; k < K; k++) {
                    exact += (double)x[k] * w[k];
                    mag += fabs((double)x[k] * w[k]);
                    qsum += abs(am[k]) + abs(qn[k]);
                }
                const double s = (double)ascale[m] * wscale[n];
                const double bound = s * (qsum + 0.5 * K) / 2 * (1 + 1e-6) + 1e-6 * mag + 1e-30;
                const double got = C[(size_t)m * ldc + n];
                CHECK(fabs(got - exact) <= bound, "C[%d,%d] = %.9g, A W^T = %.9g, bound %.3g", m, n,
                      got, exact, bound);
            }
        g_checks++;
    }
    free(a);
    free(q);
    free(W);
    free(A);
    free(packed);
    free(wscale);
    free(ascale);
    free(rowsum);
    free(Aq);
    free(C);
    free(want);
}

static qcase random_qcase(rng_t *r)
{
    qcase c;
    c.M = rng_int(r, 1, 70);
    c.N = rng_int(r, 1, 300);
    c.K = rng_int(r, 1, 600);
    if (rng_int(r, 0, 2) == 0) /* small: every tail */
        c.M = rng_int(r, 1, 9), c.N = rng_int(r, 1, 70), c.K = rng_int(r, 1, 20);
    c.n0 = rng_int(r, 0, c.N - 1);
    c.n1 = rng_int(r, c.n0 + 1, c.N);
    if (rng_int(r, 0, 2) == 0) /* the whole range */
        c.n0 = 0, c.n1 = c.N;
    else if (rng_int(r, 0, 1)) /* panel-aligned, the fast case */
        c.n0 = c.n0 / 32 * 32, c.n1 = (c.n1 + 31) / 32 * 32 < c.N ? (c.n1 + 31) / 32 * 32 : c.N;
    c.lda = c.K + (rng_int(r, 0, 1) ? 0 : rng_int(r, 1, 5));
    c.ldq = kpad(c.K) + (rng_int(r, 0, 1) ? 0 : rng_int(r, 1, 5));
    c.ldc = c.n1 + (rng_int(r, 0, 1) ? 0 : rng_int(r, 1, 5));
    c.beta = rng_int(r, 0, 1) ? 0.0f : 0.5f;
    c.extreme = rng_int(r, 0, 9) == 0;
    return c;
}

int main(int argc, char **argv)
{
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 10) : 1;
    int rounds = argc > 2 ? atoi(argv[2]) : 3;
    rng_t r = {seed};
    char kernels[64] = ""; /* the product code each level ran */

    for (int i = 0; i < 30 * rounds; i++)
        check_pack(&r, rng_int(&r, 1, 100), rng_int(&r, 1, 70));

    for (int l = 0; l < NLEVELS; l++) {
        if (fr_set_simd_level(LEVELS[l]) < 0)
            continue;
        snprintf(kernels + strlen(kernels), sizeof kernels - strlen(kernels), " %s",
                 fr_qmatmul_kernel_name());
        for (int i = 0; i < 30 * rounds; i++) {
            const int K = rng_int(&r, 1, 100);
            check_rows(&r, LEVELS[l], rng_int(&r, 1, 6), K, K + rng_int(&r, 0, 3),
                       kpad(K) + rng_int(&r, 0, 5));
        }
        /* the extremes, on purpose: every level, every shape */
        for (int M = 1; M <= 9; M++) {
            qcase c = {M, 70, 4 * M + 33, 0, 70, 4 * M + 33, kpad(4 * M + 33) + 1, 71, 0.0f, 1};
            check_qmatmul(&r, LEVELS[l], &c);
        }
        for (int i = 0; i < 40 * rounds; i++) {
            qcase c = random_qcase(&r);
            check_qmatmul(&r, LEVELS[l], &c);
        }
        /* K = 0: C = beta*C + 0; an empty column range writes nothing */
        qcase k0 = {3, 40, 0, 5, 40, 1, 1, 41, 0.5f, 0};
        check_qmatmul(&r, LEVELS[l], &k0);
        {
            float c[4] = {1, 2, 3, 4}, s = 1;
            int32_t rs = 0;
            int8_t w = 0;
            uint8_t a[4] = {64, 64, 64, 64};
            fr_qmatmul_f32(1, 2, 2, 4, a, 4, &s, &w, &s, &rs, 0.0f, c, 4);
            CHECK(c[0] == 1 && c[1] == 2 && c[2] == 3 && c[3] == 4, "n0 == n1 wrote C");
            g_checks++;
        }
        /* K at the documented limit: 63*127*K < 2^31 with every value +-1
         * (the sums of code*q wrap through 2^32 on the way and come back) */
        qcase big = {2, 33, 268401, 0, 33, 268401, 268404, 33, 0.5f, 2};
        check_qmatmul(&r, LEVELS[l], &big);
    }
    fr_set_simd_level(FR_SIMD_AUTO);

    if (g_failures) {
        fprintf(stderr, "test_qmatmul: %d failure(s) in %d checks (seed %llu)\n", g_failures,
                g_checks, (unsigned long long)seed);
        return 1;
    }
    printf("test_qmatmul: %d checks passed (seed %llu, %d rounds; kernels%s)\n", g_checks,
           (unsigned long long)seed, rounds, kernels);
    return 0;
}
