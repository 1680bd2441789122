/* common.h - what the C harnesses share: a random generator, a naive
 * Fortran-style ?gemm to hand fastrnn as its BLAS, exact-size buffers, and a
 * plain float64 reference of one layer-direction (the math of fastrnn.h,
 * written for reading: loops over rows and time).
 *
 * Every buffer handed to fastrnn is malloc'ed at exactly the size the API
 * asks for, so AddressSanitizer reports any access past it; buffers fastrnn
 * must not read before writing (outputs, work, cache) start as NaN, so a
 * read of stale memory shows up in the results. */
#ifndef FR_TEST_COMMON_H
#define FR_TEST_COMMON_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fastrnn.h"

/* ---- failures ---------------------------------------------------------- */

static int g_failures = 0;
static char g_case[512] = ""; /* what the current check is about */

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            g_failures++;                                                    \
            fprintf(stderr, "FAIL %s:%d [%s] ", __FILE__, __LINE__, g_case); \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
            if (g_failures > 20) {                                           \
                fprintf(stderr, "too many failures\n");                      \
                exit(1);                                                     \
            }                                                                \
        }                                                                    \
    } while (0)

/* ---- random numbers ---------------------------------------------------- */

typedef struct {
    uint64_t s;
} rng_t;

static uint64_t rng_next(rng_t *r) /* splitmix64 */
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int rng_int(rng_t *r, int lo, int hi) /* in [lo, hi] */
{
    return lo + (int)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

static double rng_unif(rng_t *r, double a) /* in [-a, a) */
{
    return a * (2.0 * (double)(rng_next(r) >> 11) / 9007199254740992.0 - 1.0);
}

/* ---- buffers ----------------------------------------------------------- */

static size_t dsize(fr_dtype dt)
{
    return dt == FR_F32 ? sizeof(float) : sizeof(double);
}

/* exactly n elements (at least one byte, so the pointer is never NULL) */
static void *xalloc(size_t n, fr_dtype dt)
{
    void *p = malloc(n ? n * dsize(dt) : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static void fill_nan(void *p, size_t n, fr_dtype dt)
{
    for (size_t i = 0; i < n; i++) {
        if (dt == FR_F32)
            ((float *)p)[i] = NAN;
        else
            ((double *)p)[i] = NAN;
    }
}

static double get(const void *p, size_t i, fr_dtype dt)
{
    return dt == FR_F32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

static void put(void *p, size_t i, double v, fr_dtype dt)
{
    if (dt == FR_F32)
        ((float *)p)[i] = (float)v;
    else
        ((double *)p)[i] = v;
}

/* a typed copy of n doubles, in a buffer of exactly n elements (NULL -> NULL) */
static void *typed(const double *src, size_t n, fr_dtype dt)
{
    if (!src)
        return NULL;
    void *p = xalloc(n, dt);
    for (size_t i = 0; i < n; i++)
        put(p, i, src[i], dt);
    return p;
}

/* the values of a typed buffer as doubles (a new array) */
static double *doubles(const void *p, size_t n, fr_dtype dt)
{
    double *d = malloc((n ? n : 1) * sizeof(double));
    for (size_t i = 0; i < n; i++)
        d[i] = get(p, i, dt);
    return d;
}

static double *rand_array(rng_t *r, size_t n, double a)
{
    double *d = malloc((n ? n : 1) * sizeof(double));
    for (size_t i = 0; i < n; i++)
        d[i] = rng_unif(r, a);
    return d;
}

/* ---- a naive Fortran ?gemm (column-major), fastrnn's "BLAS" ------------- */

#define NAIVE_GEMM(NAME, T)                                                                      \
    static void NAME(char *ta, char *tb, int *m, int *n, int *k, T *alpha, T *a, int *lda, T *b, \
                     int *ldb, T *beta, T *c, int *ldc)                                          \
    {                                                                                            \
        const int M = *m, N = *n, K = *k, ta_ = (*ta == 'T' || *ta == 't'),                      \
                  tb_ = (*tb == 'T' || *tb == 't');                                              \
        CHECK(*lda >= (ta_ ? (K > 1 ? K : 1) : (M > 1 ? M : 1)), "gemm lda %d", *lda);           \
        CHECK(*ldb >= (tb_ ? (N > 1 ? N : 1) : (K > 1 ? K : 1)), "gemm ldb %d", *ldb);           \
        CHECK(*ldc >= (M > 1 ? M : 1), "gemm ldc %d < m %d", *ldc, M);                           \
        for (int j = 0; j < N; j++)                                                              \
            for (int i = 0; i < M; i++) {                                                        \
                double s = 0;                                                                    \
                for (int p = 0; p < K; p++) {                                                    \
                    double av = ta_ ? a[p + (size_t)i * *lda] : a[i + (size_t)p * *lda];         \
                    double bv = tb_ ? b[j + (size_t)p * *ldb] : b[p + (size_t)j * *ldb];         \
                    s += av * bv;                                                                \
                }                                                                                \
                T *cij = &c[i + (size_t)j * *ldc];                                               \
                /* beta == 0: C is output only (BLAS semantics: NaN in C is ignored) */          \
                *cij = (T)(*alpha * s + (*beta == 0 ? 0 : *beta * *cij));                        \
            }                                                                                    \
    }

NAIVE_GEMM(naive_sgemm, float)
NAIVE_GEMM(naive_dgemm, double)

static const fr_blas NAIVE_BLAS = {naive_sgemm, naive_dgemm};

/* ---- the float64 reference of one layer-direction ----------------------- */

typedef struct {
    fr_cell cell;
    int peephole, lbr; /* LSTM peepholes; GRU linear_before_reset */
    int I, H;
    const double *w_ih, *w_hh, *b_ih, *b_hh, *w_peep; /* b_*, w_peep may be NULL */
} ref_layer;

static double sigm(double v)
{
    return 1.0 / (1.0 + exp(-v));
}

/* row-vector times W^T: out[n] = sum_k v[k] W[n, k] for rows n0 .. n0+cnt of W */
static void rowdot(const double *W, int ncols, int n0, int cnt, const double *v, double *out)
{
    for (int n = 0; n < cnt; n++) {
        double s = 0;
        for (int k = 0; k < ncols; k++)
            s += W[(size_t)(n0 + n) * ncols + k] * v[k];
        out[n] = s;
    }
}

/* one step: h, c updated in place */
static void ref_step(const ref_layer *L, const double *x, double *h, double *c)
{
    const int H = L->H, G = fr_gates(L->cell), GH = G * H;
    double *xa = calloc((size_t)GH, sizeof(double)), *ha = calloc((size_t)GH, sizeof(double));
    double *hn = malloc((size_t)H * sizeof(double));
    rowdot(L->w_ih, L->I, 0, GH, x, xa);
    rowdot(L->w_hh, H, 0, GH, h, ha);
    for (int j = 0; j < GH; j++) {
        xa[j] += L->b_ih ? L->b_ih[j] : 0;
        ha[j] += L->b_hh ? L->b_hh[j] : 0;
    }
    for (int j = 0; j < H; j++) {
        if (L->cell == FR_RNN_TANH || L->cell == FR_RNN_RELU) {
            double v = xa[j] + ha[j];
            hn[j] = L->cell == FR_RNN_TANH ? tanh(v) : (v > 0 ? v : 0);
        } else if (L->cell == FR_LSTM) {
            const double *p = L->peephole ? L->w_peep : NULL;
            double i = sigm(xa[j] + ha[j] + (p ? p[j] * c[j] : 0));
            double f = sigm(xa[H + j] + ha[H + j] + (p ? p[H + j] * c[j] : 0));
            double g = tanh(xa[2 * H + j] + ha[2 * H + j]);
            double cn = f * c[j] + i * g;
            double o = sigm(xa[3 * H + j] + ha[3 * H + j] + (p ? p[2 * H + j] * cn : 0));
            c[j] = cn;
            hn[j] = o * tanh(cn);
        }
    }
    if (L->cell == FR_GRU) {
        double *r = malloc((size_t)H * sizeof(double)), *rh = malloc((size_t)H * sizeof(double));
        double *wn = malloc((size_t)H * sizeof(double));
        for (int j = 0; j < H; j++) {
            r[j] = sigm(xa[j] + ha[j]);
            rh[j] = r[j] * h[j];
        }
        rowdot(L->w_hh, H, 2 * H, H, rh, wn); /* W_hn (r h) */
        for (int j = 0; j < H; j++) {
            double z = sigm(xa[H + j] + ha[H + j]);
            double n = L->lbr ? tanh(xa[2 * H + j] + r[j] * ha[2 * H + j])
                              : tanh(xa[2 * H + j] + wn[j] + (L->b_hh ? L->b_hh[2 * H + j] : 0));
            hn[j] = (1 - z) * n + z * h[j];
        }
        free(r);
        free(rh);
        free(wn);
    }
    memcpy(h, hn, (size_t)H * sizeof(double));
    free(xa);
    free(ha);
    free(hn);
}

/* Over a sequence, as fr_forward: x dense (T*B, I), y dense (T*B, H) with
 * zeros past each row's length, h_n / c_n (B, H). h0, c0 may be NULL. */
static void ref_forward(const ref_layer *L, int T, int B, int reverse, const int *lengths,
                        const double *x, const double *h0, const double *c0, double *y, double *h_n,
                        double *c_n)
{
    const int H = L->H;
    double *h = malloc((size_t)(H ? H : 1) * sizeof(double));
    double *c = malloc((size_t)(H ? H : 1) * sizeof(double));
    memset(y, 0, (size_t)T * B * H * sizeof(double));
    for (int b = 0; b < B; b++) {
        int len = lengths ? lengths[b] : T;
        for (int j = 0; j < H; j++) {
            h[j] = h0 ? h0[(size_t)b * H + j] : 0;
            c[j] = c0 ? c0[(size_t)b * H + j] : 0;
        }
        for (int s = 0; s < len; s++) {
            int t = reverse ? len - 1 - s : s;
            ref_step(L, x + ((size_t)t * B + b) * L->I, h, c);
            memcpy(y + ((size_t)t * B + b) * H, h, (size_t)H * sizeof(double));
        }
        memcpy(h_n + (size_t)b * H, h, (size_t)H * sizeof(double));
        if (c_n)
            memcpy(c_n + (size_t)b * H, c, (size_t)H * sizeof(double));
    }
    free(h);
    free(c);
}

#endif
