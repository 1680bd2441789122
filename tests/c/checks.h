/* checks.h - the checks both C harnesses run (test_kernels.c sweeps sizes
 * and options; fuzz_kernels.c takes them from fuzzer bytes):
 *
 *   check_pack      fr_pack's layout, float32 and float64
 *   check_matmul    fr_matmul_packed_f32 and fr_matmul_packed_at_f32 (A
 *                   transposed) on every SIMD code the CPU has, any column
 *                   range, beta 0 / 1 / other, spaced rows
 *   check_forward   fr_forward against the float64 reference, with spaced
 *                   x / y rows, lengths, h0 / c0, packed weights or not,
 *                   cache or not, 1 or 2 threads
 *   check_backward  fr_backward: float64 against a central difference of
 *                   the reference along one random direction of x, h0, c0
 *                   and every weight; float32 against float64
 *   check_stream    fr_stream_* against the reference stacked over layers
 *
 * Beyond the numbers, each checks the contract of fastrnn.h: no byte outside
 * a buffer is touched (exact-size buffers under AddressSanitizer), inputs
 * are never written, spaced rows' gaps are never written, outputs past a
 * row's length are zero, and no buffer is read before it is written
 * (outputs, work and cache start as NaN). */
#ifndef FR_TEST_CHECKS_H
#define FR_TEST_CHECKS_H

#include "common.h"
#include "matmul.h"

/* ---- fr_pack ------------------------------------------------------------ */

static void check_pack(rng_t *r, fr_dtype dt, int N, int K)
{
    snprintf(g_case, sizeof g_case, "pack %s N=%d K=%d", dt == FR_F32 ? "f32" : "f64", N, K);
    double *w = rand_array(r, (size_t)N * K, 1);
    void *W = typed(w, (size_t)N * K, dt);
    size_t n = fr_packed_size(N, K);
    void *P = xalloc(n, dt);
    fill_nan(P, n, dt);
    fr_pack(dt, N, K, W, P);
    for (int p = 0; p * 32 < N; p++)
        for (int k = 0; k < K; k++)
            for (int j = 0; j < 32; j++) {
                int row = p * 32 + j;
                double want = row < N ? get(W, (size_t)row * K + k, dt) : 0;
                double got = get(P, ((size_t)p * K + k) * 32 + j, dt);
                CHECK(got == want, "packed[%d,%d,%d] = %g, want %g", p, k, j, got, want);
            }
    free(w);
    free(W);
    free(P);
}

/* ---- fr_matmul_packed_f32, fr_matmul_packed_at_f32 ---------------------- */

/* at: A given transposed, (K, M) with leading dimension lda */
static void check_matmul(rng_t *r, int level, int at, int M, int N, int K, int n0, int n1,
                         float beta, int lda_extra, int ldc_extra)
{
    snprintf(g_case, sizeof g_case, "matmul%s %s M=%d N=%d K=%d n=[%d,%d) beta=%g lda+%d ldc+%d",
             at ? "_at" : "", fr_simd_level_name(level), M, N, K, n0, n1, beta, lda_extra,
             ldc_extra);
    const int rows_a = at ? K : M, cols_a = at ? M : K; /* A as stored */
    const int lda = cols_a + lda_extra, ldc = n1 + ldc_extra;
    size_t na = rows_a && cols_a ? (size_t)(rows_a - 1) * lda + cols_a : 0;
    size_t nc = M ? (size_t)(M - 1) * ldc + n1 : 0;
    float *A = xalloc(na, FR_F32), *W = xalloc((size_t)N * K, FR_F32);
    float *P = xalloc(fr_pack_size_f32(N, K), FR_F32), *C = xalloc(nc, FR_F32);
    float *C0 = xalloc(nc, FR_F32);
    for (size_t i = 0; i < na; i++)
        A[i] = (i % lda) < (size_t)cols_a ? (float)rng_unif(r, 1) : NAN; /* gaps: never read */
    for (size_t i = 0; i < (size_t)N * K; i++)
        W[i] = (float)rng_unif(r, 1);
    for (size_t i = 0; i < nc; i++)
        C0[i] = C[i] = beta == 0 ? NAN : (float)rng_unif(r, 1); /* beta 0: never read */
    for (size_t i = 0; i < nc; i++)                             /* outside [n0, n1) */
        if ((int)(i % ldc) < n0 || (int)(i % ldc) >= n1)
            C0[i] = C[i] = 777.0f;
    if (fr_pack_size_f32(N, K))
        fr_pack_f32(N, K, W, P);
    (at ? fr_matmul_packed_at_f32 : fr_matmul_packed_f32)(M, n0, n1, K, A, lda, P, beta, C, ldc);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < (m == M - 1 ? n1 : ldc); n++) {
            size_t i = (size_t)m * ldc + n;
            if (n < n0 || n >= n1) {
                CHECK(C[i] == 777.0f, "C[%d,%d] outside the columns was written", m, n);
                continue;
            }
            double s = 0, mag = 0;
            for (int k = 0; k < K; k++) {
                double a = A[at ? (size_t)k * lda + m : (size_t)m * lda + k];
                s += a * W[(size_t)n * K + k];
                mag += fabs(a * W[(size_t)n * K + k]);
            }
            if (beta != 0) {
                s += beta * (double)C0[i];
                mag += fabs(beta * (double)C0[i]);
            }
            CHECK(fabs(C[i] - s) <= 1e-5 * (mag + 1), "C[%d,%d] = %.8g, want %.8g", m, n, C[i], s);
        }
    free(A);
    free(W);
    free(P);
    free(C);
    free(C0);
}

/* ---- one layer-direction: a random case ---------------------------------- */

typedef struct {
    fr_cell cell;
    int peephole, lbr, bias, I, H, T, B, reverse;
    int use_lengths, use_h0, use_c0, packed_hh, packed_ih, threads;
    int x_extra, y_extra; /* spaced rows: stride = I + x_extra, H + y_extra */
    double *w_ih, *w_hh, *b_ih, *b_hh, *w_peep, *x, *h0, *c0; /* x dense (T*B, I) */
    int *lengths;
} layer_case;

static void case_describe(const layer_case *c, const char *what, fr_dtype dt)
{
    static const char *names[] = {"rnn_tanh", "rnn_relu", "lstm", "gru"};
    snprintf(g_case, sizeof g_case,
             "%s %s %s%s%s I=%d H=%d T=%d B=%d rev=%d bias=%d lengths=%d h0=%d c0=%d "
             "packed=%d/%d threads=%d strides+%d/+%d",
             what, dt == FR_F32 ? "f32" : "f64", names[c->cell], c->peephole ? "+peep" : "",
             c->cell == FR_GRU && !c->lbr ? "(original)" : "", c->I, c->H, c->T, c->B, c->reverse,
             c->bias, c->use_lengths, c->use_h0, c->use_c0, c->packed_ih, c->packed_hh, c->threads,
             c->x_extra, c->y_extra);
}

/* Weights and data for the sizes and options already set in c. The scale
 * keeps every gate away from saturation and relu from blowing up. */
static void case_fill(layer_case *c, rng_t *r)
{
    const int G = fr_gates(c->cell), GH = G * c->H, rows = c->T * c->B;
    const double a = 1.0 / sqrt((double)c->H + c->I);
    c->w_ih = rand_array(r, (size_t)GH * c->I, a);
    c->w_hh = rand_array(r, (size_t)GH * c->H, a);
    c->b_ih = c->bias ? rand_array(r, (size_t)GH, 0.5) : NULL;
    c->b_hh = c->bias ? rand_array(r, (size_t)GH, 0.5) : NULL;
    c->w_peep = c->peephole ? rand_array(r, (size_t)3 * c->H, 0.5) : NULL;
    c->x = rand_array(r, (size_t)rows * c->I, 1);
    c->h0 = c->use_h0 ? rand_array(r, (size_t)c->B * c->H, 1) : NULL;
    c->c0 = c->use_c0 && c->cell == FR_LSTM ? rand_array(r, (size_t)c->B * c->H, 1) : NULL;
    c->lengths = NULL;
    if (c->use_lengths) {
        c->lengths = malloc((size_t)(c->B ? c->B : 1) * sizeof(int));
        for (int b = 0; b < c->B; b++)
            c->lengths[b] = rng_int(r, 0, c->T);
    }
}

static void case_free(layer_case *c)
{
    free(c->w_ih);
    free(c->w_hh);
    free(c->b_ih);
    free(c->b_hh);
    free(c->w_peep);
    free(c->x);
    free(c->h0);
    free(c->c0);
    free(c->lengths);
}

/* The values a run in dtype dt computes with (rounded to float for f32). */
static double *rounded(const double *a, size_t n, fr_dtype dt)
{
    if (!a)
        return NULL;
    double *d = malloc((n ? n : 1) * sizeof(double));
    for (size_t i = 0; i < n; i++)
        d[i] = dt == FR_F32 ? (double)(float)a[i] : a[i];
    return d;
}

typedef struct { /* a case's arrays in one dtype, for one run */
    fr_dtype dt;
    fr_layer L;
    void *w_ih, *w_hh, *b_ih, *b_hh, *w_peep, *p_ih, *p_hh, *x, *h0, *c0;
    int *lengths;
    size_t nx;        /* elements of the spaced x buffer */
    void *copies[10]; /* inputs as they were, to check they are never written */
    size_t sizes[10];
} typed_case;

static typed_case typed_make(const layer_case *c, fr_dtype dt)
{
    typed_case t;
    memset(&t, 0, sizeof t);
    const int G = fr_gates(c->cell), GH = G * c->H, rows = c->T * c->B;
    const int xs = c->I + c->x_extra;
    t.dt = dt;
    t.w_ih = typed(c->w_ih, (size_t)GH * c->I, dt);
    t.w_hh = typed(c->w_hh, (size_t)GH * c->H, dt);
    t.b_ih = typed(c->b_ih, (size_t)GH, dt);
    t.b_hh = typed(c->b_hh, (size_t)GH, dt);
    t.w_peep = typed(c->w_peep, (size_t)3 * c->H, dt);
    t.h0 = typed(c->h0, (size_t)c->B * c->H, dt);
    t.c0 = typed(c->c0, (size_t)c->B * c->H, dt);
    t.nx = rows ? (size_t)(rows - 1) * xs + c->I : 0;
    t.x = xalloc(t.nx, dt);
    fill_nan(t.x, t.nx, dt); /* the gaps between rows: never read */
    for (int row = 0; row < rows; row++)
        for (int i = 0; i < c->I; i++)
            put(t.x, (size_t)row * xs + i, c->x[(size_t)row * c->I + i], dt);
    if (c->lengths) {
        t.lengths = malloc((size_t)(c->B ? c->B : 1) * sizeof(int));
        memcpy(t.lengths, c->lengths, (size_t)c->B * sizeof(int));
    }
    t.L.dtype = dt;
    t.L.cell = c->cell;
    t.L.input_size = c->I;
    t.L.hidden_size = c->H;
    t.L.peephole = c->peephole;
    t.L.linear_before_reset = c->lbr;
    t.L.w_ih = t.w_ih;
    t.L.w_hh = t.w_hh;
    t.L.b_ih = t.b_ih;
    t.L.b_hh = t.b_hh;
    t.L.w_peep = t.w_peep;
    if (c->packed_hh) {
        t.p_hh = xalloc(fr_packed_size(GH, c->H), dt);
        fr_pack(dt, GH, c->H, t.w_hh, t.p_hh);
    }
    if (c->packed_ih) {
        t.p_ih = xalloc(fr_packed_size(GH, c->I), dt);
        fr_pack(dt, GH, c->I, t.w_ih, t.p_ih);
    }
    t.L.w_hh_packed = t.p_hh;
    t.L.w_ih_packed = t.p_ih;
    void *in[10] = {t.w_ih, t.w_hh, t.b_ih, t.b_hh, t.w_peep, t.p_ih, t.p_hh, t.x, t.h0, t.c0};
    size_t n[10] = {(size_t)GH * c->I,
                    (size_t)GH * c->H,
                    (size_t)GH,
                    (size_t)GH,
                    (size_t)3 * c->H,
                    fr_packed_size(GH, c->I),
                    fr_packed_size(GH, c->H),
                    t.nx,
                    (size_t)c->B * c->H,
                    (size_t)c->B * c->H};
    for (int k = 0; k < 10; k++) {
        t.sizes[k] = in[k] ? n[k] * dsize(dt) : 0;
        t.copies[k] = in[k] ? malloc(t.sizes[k] ? t.sizes[k] : 1) : NULL;
        if (in[k])
            memcpy(t.copies[k], in[k], t.sizes[k]);
    }
    return t;
}

static void typed_check_unchanged(const typed_case *t, const int *lengths, int B)
{
    const void *in[10] = {t->w_ih, t->w_hh, t->b_ih, t->b_hh, t->w_peep,
                          t->p_ih, t->p_hh, t->x,    t->h0,   t->c0};
    static const char *names[10] = {"w_ih",        "w_hh",        "b_ih", "b_hh", "w_peep",
                                    "w_ih_packed", "w_hh_packed", "x",    "h0",   "c0"};
    for (int k = 0; k < 10; k++)
        if (in[k])
            CHECK(memcmp(in[k], t->copies[k], t->sizes[k]) == 0, "input %s was written", names[k]);
    if (lengths)
        CHECK(memcmp(lengths, t->lengths, (size_t)B * sizeof(int)) == 0, "lengths written");
}

static void typed_free(typed_case *t)
{
    free(t->w_ih);
    free(t->w_hh);
    free(t->b_ih);
    free(t->b_hh);
    free(t->w_peep);
    free(t->p_ih);
    free(t->p_hh);
    free(t->x);
    free(t->h0);
    free(t->c0);
    free(t->lengths);
    for (int k = 0; k < 10; k++)
        free(t->copies[k]);
}

/* the reference layer on the values a run in dt computes with */
typedef struct {
    ref_layer L;
    double *w_ih, *w_hh, *b_ih, *b_hh, *w_peep, *x, *h0, *c0;
} ref_case;

static ref_case ref_make(const layer_case *c, fr_dtype dt)
{
    ref_case R;
    const int GH = fr_gates(c->cell) * c->H;
    R.w_ih = rounded(c->w_ih, (size_t)GH * c->I, dt);
    R.w_hh = rounded(c->w_hh, (size_t)GH * c->H, dt);
    R.b_ih = rounded(c->b_ih, (size_t)GH, dt);
    R.b_hh = rounded(c->b_hh, (size_t)GH, dt);
    R.w_peep = rounded(c->w_peep, (size_t)3 * c->H, dt);
    R.x = rounded(c->x, (size_t)c->T * c->B * c->I, dt);
    R.h0 = rounded(c->h0, (size_t)c->B * c->H, dt);
    R.c0 = rounded(c->c0, (size_t)c->B * c->H, dt);
    R.L.cell = c->cell;
    R.L.peephole = c->peephole && c->cell == FR_LSTM;
    R.L.lbr = c->lbr;
    R.L.I = c->I;
    R.L.H = c->H;
    R.L.w_ih = R.w_ih;
    R.L.w_hh = R.w_hh;
    R.L.b_ih = R.b_ih;
    R.L.b_hh = R.b_hh;
    R.L.w_peep = R.w_peep;
    return R;
}

static void ref_free(ref_case *R)
{
    free(R->w_ih);
    free(R->w_hh);
    free(R->b_ih);
    free(R->b_hh);
    free(R->w_peep);
    free(R->x);
    free(R->h0);
    free(R->c0);
}

static double tol_for(fr_dtype dt)
{
    return dt == FR_F32 ? 2e-5 : 1e-11;
}

/* ---- fr_forward ------------------------------------------------------------ */

/* Runs a training (with_cache) or inference forward of c in dt, checks it,
 * and leaves the cache (NaN-initialised, exact size) in *cache_out when asked. */
static void check_forward_run(const layer_case *c, fr_dtype dt, int with_cache, void **cache_out)
{
    case_describe(c, with_cache ? "forward+cache" : "forward", dt);
    const int H = c->H, B = c->B, T = c->T, rows = T * B, ys = H + c->y_extra;
    const int lstm = c->cell == FR_LSTM;
    typed_case t = typed_make(c, dt);
    size_t ny = rows ? (size_t)(rows - 1) * ys + H : 0, nh = (size_t)B * H;
    void *y = xalloc(ny, dt), *h_n = xalloc(nh, dt), *c_n = lstm ? xalloc(nh, dt) : NULL;
    for (size_t i = 0; i < ny; i++) /* gaps keep 555, rows start as NaN */
        put(y, i, (i % ys) < (size_t)H ? NAN : 555.0, dt);
    fill_nan(h_n, nh, dt);
    if (c_n)
        fill_nan(c_n, nh, dt);
    size_t nwork = fr_work_size(&t.L, T, B), ncache = fr_cache_size(&t.L, T, B);
    void *work = xalloc(nwork, dt), *cache = with_cache ? xalloc(ncache, dt) : NULL;
    fill_nan(work, nwork, dt);
    if (cache)
        fill_nan(cache, ncache, dt);

    fr_sequence S;
    memset(&S, 0, sizeof S);
    S.T = T;
    S.B = B;
    S.reverse = c->reverse;
    S.lengths = t.lengths;
    S.x = t.x;
    S.x_stride = c->I + c->x_extra;
    S.h0 = t.h0;
    S.c0 = t.c0;
    S.y = y;
    S.y_stride = ys;
    S.h_n = h_n;
    S.c_n = c_n;
    S.cache = cache;
    S.work = work;
    S.num_threads = c->threads;
    fr_forward(&t.L, &S, &NAIVE_BLAS);

    typed_check_unchanged(&t, c->lengths, B);
    ref_case R = ref_make(c, dt);
    double *ry = malloc(((size_t)rows * H + 1) * sizeof(double));
    double *rh = malloc((nh + 1) * sizeof(double)), *rc = malloc((nh + 1) * sizeof(double));
    ref_forward(&R.L, T, B, c->reverse, c->lengths, R.x, R.h0, R.c0, ry, rh, rc);
    const double tol = tol_for(dt);
    for (int row = 0; row < rows; row++) {
        int tt = row / (B ? B : 1), b = row % (B ? B : 1);
        int active = !c->lengths || tt < c->lengths[b];
        for (int j = 0; j < ys && (size_t)row * ys + j < ny; j++) {
            double v = get(y, (size_t)row * ys + j, dt);
            if (j >= H) {
                CHECK(v == 555.0, "y gap (row %d, %d) was written: %g", row, j, v);
            } else if (!active) {
                CHECK(v == 0, "y(t=%d, b=%d)[%d] = %g past the length, want 0", tt, b, j, v);
            } else {
                double w = ry[(size_t)row * H + j];
                CHECK(fabs(v - w) <= tol * (1 + fabs(w)), "y(t=%d, b=%d)[%d] = %.12g, want %.12g",
                      tt, b, j, v, w);
            }
        }
    }
    for (size_t i = 0; i < nh; i++) {
        double v = get(h_n, i, dt);
        CHECK(fabs(v - rh[i]) <= tol * (1 + fabs(rh[i])), "h_n[%zu] = %.12g, want %.12g", i, v,
              rh[i]);
        if (c_n) {
            v = get(c_n, i, dt);
            CHECK(fabs(v - rc[i]) <= tol * (1 + fabs(rc[i])), "c_n[%zu] = %.12g, want %.12g", i, v,
                  rc[i]);
        }
    }
    if (cache) { /* what the backward reads is defined: the whole cache, or with
                    the rows sorted by length (fastrnn.h) each block's tokens */
        const size_t G = lstm ? 4 : c->cell == FR_GRU ? 3 : 1, HH = (size_t)H;
        size_t tokens = 0, first = 0, short_row = 0;
        for (int b = 0; b < B; b++) {
            int len = c->lengths ? c->lengths[b] : T;
            tokens += (size_t)len;
            first += len > 0;
            short_row |= len < T;
        }
        const int sorted = c->lengths && short_row;
        const size_t K = sorted ? tokens : (size_t)rows, extra = (size_t)rows * (G + 1) * HH;
        const size_t block[3][2] = {{0, K * G * HH},
                                    {(size_t)rows * G * HH, K * HH},
                                    {extra, lstm ? (sorted ? first + K : (size_t)rows + B) * HH
                                            : c->cell == FR_GRU ? K * HH
                                                                : 0}};
        size_t nan = 0, n = 0;
        for (int k = 0; k < 3; k++)
            for (size_t i = block[k][0]; i < block[k][0] + block[k][1]; i++, n++)
                nan += isnan(get(cache, i, dt));
        CHECK(sorted || n == ncache, "%zu of %zu cache elements checked", n, ncache);
        CHECK(nan == 0, "%zu of %zu cache elements left unwritten", nan, n);
    }
    if (cache_out)
        *cache_out = cache;
    else
        free(cache);
    free(ry);
    free(rh);
    free(rc);
    ref_free(&R);
    free(y);
    free(h_n);
    free(c_n);
    free(work);
    typed_free(&t);
}

static void check_forward(const layer_case *c)
{
    check_forward_run(c, FR_F32, 0, NULL);
    check_forward_run(c, FR_F64, 0, NULL);
    check_forward_run(c, FR_F32, 1, NULL);
    check_forward_run(c, FR_F64, 1, NULL);
}

/* ---- fr_backward -------------------------------------------------------------- */

typedef struct { /* what a backward returns, as doubles (NULL where skipped) */
    double *dx, *dh0, *dc0, *g[5];
} grads_out;

static void grads_free(grads_out *o)
{
    free(o->dx);
    free(o->dh0);
    free(o->dc0);
    for (int k = 0; k < 5; k++)
        free(o->g[k]);
}

/* The gradient of loss = sum dy.y + dh_n.h_n + dc_n.c_n. skip: bit k set
 * skips output k (0 dx, 1 dh0, 2 dc0, 3.. the 5 parameter gradients). */
static grads_out run_backward(const layer_case *c, fr_dtype dt, const double *dy,
                              const double *dh_n, const double *dc_n, int skip, int dx_accumulate,
                              int dy_extra, int dx_extra)
{
    const int H = c->H, I = c->I, B = c->B, T = c->T, rows = T * B, G = fr_gates(c->cell);
    const int GH = G * H, lstm = c->cell == FR_LSTM;
    void *cache = NULL;
    check_forward_run(c, dt, 1, &cache);
    case_describe(c, "backward", dt);
    typed_case t = typed_make(c, dt);
    fr_sequence S;
    memset(&S, 0, sizeof S);
    S.T = T;
    S.B = B;
    S.reverse = c->reverse;
    S.lengths = t.lengths;
    S.x = t.x;
    S.x_stride = I + c->x_extra;
    S.cache = cache;
    size_t nwork = fr_backward_work_size(&t.L, T, B);
    S.work = xalloc(nwork, dt);
    fill_nan(S.work, nwork, dt);
    S.num_threads = c->threads;

    fr_sequence_grad D;
    memset(&D, 0, sizeof D);
    const int dys = H + dy_extra, dxs = I + dx_extra;
    size_t ndy = rows ? (size_t)(rows - 1) * dys + H : 0;
    size_t ndx = rows ? (size_t)(rows - 1) * dxs + I : 0;
    void *dyb = NULL;
    if (dy) {
        dyb = xalloc(ndy, dt);
        fill_nan(dyb, ndy, dt); /* gaps and padded rows: ignored */
        for (int row = 0; row < rows; row++) {
            int tt = row / B, b = row % B;
            if (c->lengths && tt >= c->lengths[b])
                continue;
            for (int j = 0; j < H; j++)
                put(dyb, (size_t)row * dys + j, dy[(size_t)row * H + j], dt);
        }
    }
    D.dy = dyb;
    D.dy_stride = dys;
    void *dhn = typed(dh_n, (size_t)B * H, dt), *dcn = lstm ? typed(dc_n, (size_t)B * H, dt) : NULL;
    D.dh_n = dhn;
    D.dc_n = dcn;
    double *dx_before = NULL;
    void *dxb = NULL;
    if (!(skip & 1)) {
        dxb = xalloc(ndx, dt);
        dx_before = malloc((ndx + 1) * sizeof(double));
        for (size_t i = 0; i < ndx; i++) { /* gaps: 444, never written */
            int gap = (i % dxs) >= (size_t)I;
            double old = dx_accumulate ? 0.25 * (double)(i % 7) : NAN; /* exact in float */
            dx_before[i] = gap ? 444.0 : old;
            put(dxb, i, dx_before[i], dt);
        }
    }
    D.dx = dxb;
    D.dx_stride = dxs;
    D.dx_accumulate = dx_accumulate;
    void *dh0 = !(skip & 2) ? xalloc((size_t)B * H, dt) : NULL;
    void *dc0 = lstm && !(skip & 4) ? xalloc((size_t)B * H, dt) : NULL;
    if (dh0)
        fill_nan(dh0, (size_t)B * H, dt);
    if (dc0)
        fill_nan(dc0, (size_t)B * H, dt);
    D.dh0 = dh0;
    D.dc0 = dc0;

    /* parameter gradients start at 0.5 (they accumulate) */
    size_t gn[5] = {(size_t)GH * I, (size_t)GH * H, (size_t)GH, (size_t)GH, (size_t)3 * H};
    int present[5] = {1, 1, c->bias, c->bias, c->peephole && lstm};
    void *gb[5] = {NULL};
    for (int k = 0; k < 5; k++)
        if (present[k] && !(skip & (8 << k))) {
            gb[k] = xalloc(gn[k], dt);
            for (size_t i = 0; i < gn[k]; i++)
                put(gb[k], i, 0.5, dt);
        }
    fr_grads Gr = {gb[0], gb[1], gb[2], gb[3], gb[4], NULL};
    fr_backward(&t.L, &S, &D, &Gr, &NAIVE_BLAS);
    typed_check_unchanged(&t, c->lengths, B);

    grads_out o;
    memset(&o, 0, sizeof o);
    if (dxb) { /* dense dx, accumulation taken out */
        o.dx = malloc(((size_t)rows * I + 1) * sizeof(double));
        for (size_t i = 0; i < ndx; i++) {
            double v = get(dxb, i, dt);
            if ((i % dxs) >= (size_t)I) {
                CHECK(v == 444.0, "dx gap %zu was written", i);
                continue;
            }
            o.dx[(i / dxs) * I + i % dxs] = v - (dx_accumulate ? dx_before[i] : 0);
        }
    }
    if (dh0)
        o.dh0 = doubles(dh0, (size_t)B * H, dt);
    if (dc0)
        o.dc0 = doubles(dc0, (size_t)B * H, dt);
    for (int k = 0; k < 5; k++)
        if (gb[k]) {
            o.g[k] = doubles(gb[k], gn[k], dt);
            for (size_t i = 0; i < gn[k]; i++)
                o.g[k][i] -= 0.5;
        }
    for (int k = 0; k < 5; k++)
        free(gb[k]);
    free(dh0);
    free(dc0);
    free(dxb);
    free(dx_before);
    free(dhn);
    free(dcn);
    free(dyb);
    free(S.work);
    free(cache);
    typed_free(&t);
    return o;
}

static double dotn(const double *a, const double *b, size_t n)
{
    double s = 0;
    if (a && b)
        for (size_t i = 0; i < n; i++)
            s += a[i] * b[i];
    return s;
}

/* sum dy.y + dh_n.h_n + dc_n.c_n of the reference with everything moved by eps*v */
static double ref_loss(const layer_case *c, double eps, double *const v[8], const double *dy,
                       const double *dh_n, const double *dc_n)
{
    const int H = c->H, B = c->B, T = c->T, GH = fr_gates(c->cell) * H;
    const double *base[8] = {c->x, c->h0, c->c0, c->w_ih, c->w_hh, c->b_ih, c->b_hh, c->w_peep};
    size_t n[8] = {(size_t)T * B * c->I, (size_t)B * H, (size_t)B * H, (size_t)GH * c->I,
                   (size_t)GH * H,       (size_t)GH,    (size_t)GH,    (size_t)3 * H};
    double *moved[8];
    for (int k = 0; k < 8; k++) {
        moved[k] = NULL;
        if (!base[k] && k > 2)
            continue; /* no such parameter */
        moved[k] = malloc((n[k] + 1) * sizeof(double));
        for (size_t i = 0; i < n[k]; i++)
            moved[k][i] = (base[k] ? base[k][i] : 0) + (v[k] ? eps * v[k][i] : 0);
    }
    ref_layer L = {c->cell,  c->peephole && c->cell == FR_LSTM,
                   c->lbr,   c->I,
                   H,        moved[3],
                   moved[4], moved[5],
                   moved[6], moved[7]};
    double *y = malloc(((size_t)T * B * H + 1) * sizeof(double));
    double *hn = malloc(((size_t)B * H + 1) * sizeof(double));
    double *cn = malloc(((size_t)B * H + 1) * sizeof(double));
    ref_forward(&L, T, B, c->reverse, c->lengths, moved[0], moved[1], moved[2], y, hn, cn);
    double s = dotn(dy, y, (size_t)T * B * H) + dotn(dh_n, hn, (size_t)B * H) +
               (c->cell == FR_LSTM ? dotn(dc_n, cn, (size_t)B * H) : 0);
    for (int k = 0; k < 8; k++)
        free(moved[k]);
    free(y);
    free(hn);
    free(cn);
    return s;
}

static void check_backward(const layer_case *c, rng_t *r, int skip, int use_dy, int use_dstate,
                           int dx_accumulate, int dy_extra, int dx_extra)
{
    const int H = c->H, B = c->B, T = c->T, I = c->I, GH = fr_gates(c->cell) * H;
    const int lstm = c->cell == FR_LSTM;
    double *dy = use_dy ? rand_array(r, (size_t)T * B * H, 1) : NULL;
    double *dh_n = use_dstate ? rand_array(r, (size_t)B * H, 1) : NULL;
    double *dc_n = use_dstate && lstm ? rand_array(r, (size_t)B * H, 1) : NULL;
    if (dy && c->lengths) /* padded rows carry no gradient */
        for (int row = 0; row < T * B; row++)
            if (row / B >= c->lengths[row % B])
                for (int j = 0; j < H; j++)
                    dy[(size_t)row * H + j] = 0;
    grads_out g64 =
        run_backward(c, FR_F64, dy, dh_n, dc_n, skip, dx_accumulate, dy_extra, dx_extra);
    grads_out g32 =
        run_backward(c, FR_F32, dy, dh_n, dc_n, skip, dx_accumulate, dy_extra, dx_extra);
    case_describe(c, "backward check", FR_F64);

    /* float64: one central difference along a random direction of everything */
    size_t n[8] = {(size_t)T * B * I, (size_t)B * H, (size_t)B * H, (size_t)GH * I,
                   (size_t)GH * H,    (size_t)GH,    (size_t)GH,    (size_t)3 * H};
    double *got[8] = {g64.dx, g64.dh0, g64.dc0, g64.g[0], g64.g[1], g64.g[2], g64.g[3], g64.g[4]};
    double *v[8];
    double analytic = 0, scale = 0;
    for (int k = 0; k < 8; k++) {
        v[k] = got[k] ? rand_array(r, n[k], 1) : NULL;
        if (got[k]) {
            double d = dotn(got[k], v[k], n[k]);
            analytic += d;
            scale += fabs(d);
        }
    }
    double eps = 1e-6;
    double numeric =
        (ref_loss(c, eps, v, dy, dh_n, dc_n) - ref_loss(c, -eps, v, dy, dh_n, dc_n)) / (2 * eps);
    if (fabs(analytic - numeric) > 1e-6 * scale + 1e-8) {
        /* relu: a pre-activation within eps of 0 puts the difference across
         * the kink; 100 times closer it (almost surely) is not */
        eps = 1e-8;
        double closer =
            (ref_loss(c, eps, v, dy, dh_n, dc_n) - ref_loss(c, -eps, v, dy, dh_n, dc_n)) /
            (2 * eps);
        if (fabs(analytic - closer) <= 1e-6 * scale + 1e-6)
            numeric = closer;
    }
    CHECK(fabs(analytic - numeric) <= 1e-6 * scale + 1e-8,
          "gradient along a random direction %.12g, central difference %.12g", analytic, numeric);
    if (fabs(analytic - numeric) > 1e-6 * scale + 1e-8) { /* which gradient is off */
        static const char *what[8] = {"dx",    "dh0",   "dc0",   "dw_ih",
                                      "dw_hh", "db_ih", "db_hh", "dw_peep"};
        for (int k = 0; k < 8; k++) {
            if (!got[k])
                continue;
            double *only[8] = {NULL};
            only[k] = v[k];
            double num =
                (ref_loss(c, eps, only, dy, dh_n, dc_n) - ref_loss(c, -eps, only, dy, dh_n, dc_n)) /
                (2 * eps);
            fprintf(stderr, "    %-8s analytic %.12g  central difference %.12g\n", what[k],
                    dotn(got[k], v[k], n[k]), num);
        }
    }

    /* float32 against float64, relative to the size of all gradients */
    double big = 1e-3;
    for (int k = 0; k < 8; k++)
        for (size_t i = 0; got[k] && i < n[k]; i++)
            big = fmax(big, fabs(got[k][i]));
    double *got32[8] = {g32.dx, g32.dh0, g32.dc0, g32.g[0], g32.g[1], g32.g[2], g32.g[3], g32.g[4]};
    static const char *names[8] = {"dx",    "dh0",   "dc0",   "dw_ih",
                                   "dw_hh", "db_ih", "db_hh", "dw_peep"};
    for (int k = 0; k < 8; k++) {
        CHECK(!got[k] == !got32[k], "%s present in one dtype only", names[k]);
        for (size_t i = 0; got[k] && got32[k] && i < n[k]; i++)
            CHECK(fabs(got32[k][i] - got[k][i]) <= 1e-4 * big, "f32 %s[%zu] = %.8g, f64 %.8g",
                  names[k], i, got32[k][i], got[k][i]);
    }
    for (int k = 0; k < 8; k++)
        free(v[k]);
    grads_free(&g64);
    grads_free(&g32);
    free(dy);
    free(dh_n);
    free(dc_n);
}

/* ---- streams ------------------------------------------------------------------ */

static void check_stream(rng_t *r, fr_dtype dt, fr_cell cell, int peephole, int lbr, int bias,
                         int nl, int I, int H, int B, int T, int packed)
{
    snprintf(g_case, sizeof g_case,
             "stream %s cell=%d peep=%d lbr=%d bias=%d L=%d I=%d H=%d "
             "B=%d T=%d packed=%d",
             dt == FR_F32 ? "f32" : "f64", cell, peephole, lbr, bias, nl, I, H, B, T, packed);
    layer_case lc[4];
    typed_case tc[4];
    fr_layer layers[4];
    for (int l = 0; l < nl; l++) {
        memset(&lc[l], 0, sizeof lc[l]);
        lc[l].cell = cell;
        lc[l].peephole = peephole && cell == FR_LSTM;
        lc[l].lbr = lbr;
        lc[l].bias = bias;
        lc[l].I = l ? H : I;
        lc[l].H = H;
        lc[l].T = l ? 0 : T; /* layer 0 holds the input sequence */
        lc[l].B = B;
        lc[l].packed_hh = lc[l].packed_ih = packed;
        case_fill(&lc[l], r);
        tc[l] = typed_make(&lc[l], dt);
        layers[l] = tc[l].L;
    }
    /* refused setups change nothing and say -1 */
    CHECK(fr_stream_check(layers, nl, 0) == -1, "batch 0 accepted");
    CHECK(fr_stream_check(layers, 0, B) == -1, "0 layers accepted");
    if (nl > 1) {
        fr_layer bad[4];
        memcpy(bad, layers, sizeof bad);
        bad[1].input_size = H + 1;
        CHECK(fr_stream_check(bad, nl, B) == -1, "mismatched layers accepted");
    }
    size_t bytes = fr_stream_memory_size(layers, nl, B);
    char *memory = malloc(bytes);
    memset(memory, 0xA5, bytes);
    fr_stream s;
    CHECK(fr_stream_init(&s, layers, nl, B, memory, &NAIVE_BLAS) == 0, "init refused");

    /* the reference: each layer over the whole sequence, stacked */
    double *in = rounded(lc[0].x, (size_t)T * B * I, dt), *out = NULL;
    for (int l = 0; l < nl; l++) {
        ref_case R = ref_make(&lc[l], dt);
        out = malloc(((size_t)T * B * H + 1) * sizeof(double));
        double *hn = malloc(((size_t)B * H + 1) * sizeof(double));
        double *cn = malloc(((size_t)B * H + 1) * sizeof(double));
        ref_forward(&R.L, T, B, 0, NULL, in, NULL, NULL, out, hn, cn);
        free(in);
        free(hn);
        free(cn);
        in = out;
        ref_free(&R);
    }
    void *x = xalloc((size_t)B * I, dt), *y = xalloc((size_t)B * H, dt);
    const double tol = tol_for(dt) * 4;
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < B * I; i++)
            put(x, (size_t)i, lc[0].x[(size_t)t * B * I + i], dt);
        fill_nan(y, (size_t)B * H, dt);
        fr_stream_step(&s, x, y);
        for (int i = 0; i < B * H; i++) {
            double v = get(y, (size_t)i, dt), w = out[(size_t)t * B * H + i];
            CHECK(fabs(v - w) <= tol * (1 + fabs(w)), "step %d y[%d] = %.10g, want %.10g", t, i, v,
                  w);
        }
    }
    /* run from a reset state gives the same as the steps; reset(row) zeroes one row */
    fr_stream_reset(&s, -1);
    void *xs = typed(lc[0].x, (size_t)T * B * I, dt), *ys = xalloc((size_t)T * B * H, dt);
    if (T) {
        fr_stream_run(&s, T, xs, ys);
        for (size_t i = 0; i < (size_t)T * B * H; i++) {
            double v = get(ys, i, dt), w = out[i];
            CHECK(fabs(v - w) <= tol * (1 + fabs(w)), "run y[%zu] = %.10g, want %.10g", i, v, w);
        }
    }
    fr_stream_reset(&s, B - 1);
    for (int l = 0; l < nl; l++)
        for (int j = 0; j < H; j++)
            CHECK(get(s.layers[l].h, (size_t)(B - 1) * H + j, dt) == 0, "reset row not zero");
    CHECK(fr_stream_set_weights(&s, layers) == 0, "set_weights refused the same layers");
    fr_stream_step(&s, x, NULL);
    for (int l = 0; l < nl; l++)
        typed_check_unchanged(&tc[l], NULL, B);
    free(xs);
    free(ys);
    free(x);
    free(y);
    free(out);
    free(memory);
    for (int l = 0; l < nl; l++) {
        typed_free(&tc[l]);
        case_free(&lc[l]);
    }
}

#endif
