/* test_matmul.c - checks fr_matmul_packed_f32 against a triple loop in double.
 *
 * For every SIMD path the CPU supports (generic, avx2, avx512) and many random
 * shapes (M 1..70, N 1..300, K 1..300), column ranges [n0, n1) (aligned to the
 * panel and not), beta 0 / 1 / 0.5, lda > K and ldc > N: the result must match
 * within a rounding bound, columns outside [n0, n1) must be untouched, and
 * beta = 0 must not read C (C starts as NaN). Buffers are allocated to their
 * exact extent so that -fsanitize=address catches any access out of bounds.
 *
 * Build and run (see benchmarks/c/Makefile):
 *   gcc -std=c99 -O2 -g -fsanitize=address,undefined -fno-sanitize-recover=all \
 *       -I csrc benchmarks/c/test_matmul.c csrc/matmul.c -lm -o test_matmul
 *   ./test_matmul [trials]
 */
#include "fastrnn.h"
#include "matmul.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static unsigned long long rng_state = 88172645463325252ULL;

static unsigned rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (unsigned)(rng_state >> 11);
}

static int rnd_int(int lo, int hi)
{
    return lo + (int)(rng() % (unsigned)(hi - lo + 1));
}
static float rnd_float(void)
{
    return (float)((rng() % 2000001u) / 1000000.0 - 1.0);
}

static float *alloc_floats(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof(float));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

/* One case; returns the number of failures (prints the first few). */
static int check(int M, int N, int K, int n0, int n1, int lda, int ldc, float beta)
{
    size_t a_len = (size_t)(M - 1) * lda + K; /* exact extents */
    size_t c_len = (size_t)(M - 1) * ldc + n1;
    float *A = alloc_floats(a_len), *W = alloc_floats((size_t)N * K);
    float *C = alloc_floats(c_len), *C0 = alloc_floats(c_len);
    float *P = alloc_floats(fr_pack_size_f32(N, K));
    for (size_t i = 0; i < a_len; i++)
        A[i] = rnd_float();
    for (size_t i = 0; i < (size_t)N * K; i++)
        W[i] = rnd_float();
    for (size_t i = 0; i < c_len; i++)
        C0[i] = C[i] = beta == 0.0f ? NAN : rnd_float();
    /* columns outside [n0, n1) get a sentinel that must survive */
    for (int m = 0; m < M; m++)
        for (int n = 0; n < ldc && (size_t)m * ldc + n < c_len; n++)
            if (n < n0 || n >= n1)
                C0[(size_t)m * ldc + n] = C[(size_t)m * ldc + n] = 12345.0f;
    fr_pack_f32(N, K, W, P);
    fr_matmul_packed_f32(M, n0, n1, K, A, lda, P, beta, C, ldc);

    int bad = 0;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < ldc && (size_t)m * ldc + n < c_len; n++) {
            size_t at = (size_t)m * ldc + n;
            if (n < n0 || n >= n1) {
                if (C[at] != 12345.0f) {
                    if (bad++ < 3)
                        printf("  touched C[%d,%d] outside [%d,%d)\n", m, n, n0, n1);
                }
                continue;
            }
            double ref = beta == 0.0f ? 0.0 : (double)beta * C0[at], mag = fabs(ref);
            for (int k = 0; k < K; k++) {
                double t = (double)A[(size_t)m * lda + k] * W[(size_t)n * K + k];
                ref += t;
                mag += fabs(t);
            }
            double tol = 4.0 * (K + 2) * 6e-8 * mag + 1e-30;
            if (!(fabs(C[at] - ref) <= tol)) {
                if (bad++ < 3)
                    printf("  C[%d,%d] = %.9g, want %.9g (tol %.3g)\n", m, n, C[at], ref, tol);
            }
        }
    if (bad)
        printf("FAIL %s M=%d N=%d K=%d n0=%d n1=%d lda=%d ldc=%d beta=%g: %d bad\n",
               fr_simd_level_name(fr_simd_level()), M, N, K, n0, n1, lda, ldc, beta, bad);
    free(A);
    free(W);
    free(C);
    free(C0);
    free(P);
    return bad != 0;
}

static int random_case(void)
{
    int M = rnd_int(1, 70), N = rnd_int(1, 300), K = rnd_int(1, 300);
    int nb = fr_pack_col_block(), panels = (N + nb - 1) / nb;
    int n0, n1;
    switch (rng() % 4) {
    case 0:
        n0 = 0;
        n1 = N;
        break;
    case 1: /* a thread's share: panel-aligned */
        n0 = nb * rnd_int(0, panels - 1);
        n1 = nb * rnd_int(n0 / nb + 1, panels);
        if (n1 > N)
            n1 = N;
        break;
    case 2: /* unaligned range (allowed, slower) */
        n0 = rnd_int(0, N - 1);
        n1 = rnd_int(n0 + 1, N);
        break;
    default:
        n0 = 0;
        n1 = N < nb ? N : nb * rnd_int(1, panels);
        if (n1 > N)
            n1 = N;
        break;
    }
    int lda = K + (rng() % 2 ? rnd_int(1, 9) : 0);
    int ldc = N + (rng() % 2 ? rnd_int(1, 9) : 0);
    float beta = (float[]){0.0f, 1.0f, 0.5f}[rng() % 3];
    return check(M, N, K, n0, n1, lda, ldc, beta);
}

int main(int argc, char **argv)
{
    int trials = argc > 1 ? atoi(argv[1]) : 400, fails = 0;
    for (int isa = FR_SIMD_GENERIC; isa <= FR_SIMD_AVX512; isa++) {
        if (fr_set_simd_level(isa) < 0) {
            printf("%-8s not supported here, skipped\n", fr_simd_level_name(isa));
            continue;
        }
        int f = 0;
        /* edge shapes: every M up to two row blocks, K = 1, N around a panel */
        for (int M = 1; M <= 17; M++)
            for (int K = 1; K <= 5; K += 2)
                for (int N = 1; N <= 65; N += 16)
                    f += check(M, N, K, 0, N, K, N, (M & 1) ? 0.0f : 1.0f);
        f += check(1, 33, 1000, 32, 33, 1000, 33, 0.0f);
        f += check(64, 1024, 256, 0, 1024, 256, 1024, 1.0f);
        f += check(64, 1024, 256, 512, 1024, 256, 1024, 0.0f);
        for (int t = 0; t < trials; t++)
            f += random_case();
        printf("%-8s %s (%d failing cases)\n", fr_simd_level_name(isa), f ? "FAIL" : "ok", f);
        fails += f;
    }
    fr_set_simd_level(FR_SIMD_AUTO);
    /* K = 0: C = beta*C; M = 0 and empty ranges do nothing */
    float c[3] = {NAN, NAN, NAN}, p[1] = {0};
    fr_matmul_packed_f32(1, 0, 3, 0, p, 1, p, 0.0f, c, 3);
    fr_matmul_packed_f32(0, 0, 3, 4, NULL, 4, NULL, 0.0f, NULL, 3);
    fr_matmul_packed_f32(1, 2, 2, 4, NULL, 4, NULL, 0.0f, NULL, 3);
    if (c[0] != 0.0f || c[1] != 0.0f || c[2] != 0.0f) {
        printf("FAIL K = 0\n");
        fails++;
    }
    printf("%s\n", fails ? "FAILED" : "all ok");
    return fails != 0;
}
