/* bench_matmul.c - fr_matmul_packed_f32 against OpenBLAS sgemm, one thread.
 *
 * C (M, N) = A (M, K) W^T, W (N, K) as in an RNN step: K = H, N = 3H (GRU)
 * or 4H (LSTM). Both run on the same data, in interleaved batches of calls;
 * each batch is timed and the median batch gives us per call. The OpenBLAS is
 * SciPy's (the Fortran sgemm_ that scipy.linalg.cython_blas hands out, here
 * under its symbol scipy_sgemm_), column-major: C^T = W A^T.
 *
 * Build (see benchmarks/c/Makefile; SCIPY_LIBS = .../site-packages/scipy.libs):
 *   gcc -std=c99 -O3 -I csrc benchmarks/c/bench_matmul.c csrc/matmul.c \
 *       $SCIPY_LIBS/libscipy_openblas-*.so -Wl,-rpath,$SCIPY_LIBS -lm -o bench_matmul
 * Run:  OPENBLAS_NUM_THREADS=1 ./bench_matmul [isa [M ...]]
 *       isa: auto avx512 avx2 generic; M: the batch sizes (default 1 4 16 32 64)
 */
#define _POSIX_C_SOURCE 200809L
#include "fastrnn.h"
#include "matmul.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void scipy_sgemm_(const char *transa, const char *transb, const int *m, const int *n, const int *k,
                  const float *alpha, const float *a, const int *lda, const float *b,
                  const int *ldb, const float *beta, float *c, const int *ldc);
void scipy_openblas_set_num_threads(int n);

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec * 1e-3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void *xmalloc(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64)) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

typedef struct {
    int M, N, K;
    const float *A, *W, *P;
    float *C;
} problem;

static void run_ours(const problem *p, int reps)
{
    for (int r = 0; r < reps; r++)
        fr_matmul_packed_f32(p->M, 0, p->N, p->K, p->A, p->K, p->P, 1.0f, p->C, p->N);
}

static void run_blas(const problem *p, int reps)
{
    const float one = 1.0f;
    for (int r = 0; r < reps; r++)
        scipy_sgemm_("T", "N", &p->N, &p->M, &p->K, &one, p->W, &p->K, p->A, &p->K, &one, p->C,
                     &p->N);
}

#define BATCHES 41

/* Median us per call of each engine, batches interleaved. */
static void time_both(const problem *p, double *ours_us, double *blas_us)
{
    /* reps per batch: about 200 us of work at an assumed 50 GFLOP/s */
    double flop = 2.0 * p->M * p->N * p->K;
    int reps = (int)(200e-6 * 50e9 / flop);
    if (reps < 1)
        reps = 1;
    run_ours(p, reps * 5); /* warm-up: caches, clocks */
    run_blas(p, reps * 5);
    double t_ours[BATCHES], t_blas[BATCHES];
    for (int b = 0; b < BATCHES; b++) {
        /* one untimed call first: the other engine's weights (W vs packed W)
         * may have evicted ours from L2/L3, which an RNN step would not do */
        run_ours(p, 1);
        double t0 = now_us();
        run_ours(p, reps);
        double t1 = now_us();
        run_blas(p, 1);
        double t2 = now_us();
        run_blas(p, reps);
        double t3 = now_us();
        t_ours[b] = (t1 - t0) / reps;
        t_blas[b] = (t3 - t2) / reps;
    }
    qsort(t_ours, BATCHES, sizeof(double), cmp_double);
    qsort(t_blas, BATCHES, sizeof(double), cmp_double);
    *ours_us = t_ours[BATCHES / 2];
    *blas_us = t_blas[BATCHES / 2];
}

int main(int argc, char **argv)
{
    scipy_openblas_set_num_threads(1);
    if (argc > 1) {
        int isa = !strcmp(argv[1], "auto")      ? FR_SIMD_AUTO
                  : !strcmp(argv[1], "avx512")  ? FR_SIMD_AVX512
                  : !strcmp(argv[1], "avx2")    ? FR_SIMD_AVX2
                  : !strcmp(argv[1], "generic") ? FR_SIMD_GENERIC
                                                : -2;
        if (isa == -2 || fr_set_simd_level(isa) < 0) {
            fprintf(stderr, "isa %s: unknown or not supported by this CPU\n", argv[1]);
            return 1;
        }
    }
    printf("isa %s, 1 thread, median of %d batches\n", fr_simd_level_name(fr_simd_level()),
           BATCHES);
    printf("| M | H=K | N | ours us | ours GFLOP/s | ours W GB/s | OpenBLAS us | OpenBLAS GFLOP/s "
           "| speed-up |\n");
    printf("|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    int Ms[16] = {1, 4, 16, 32, 64}, nM = 5;
    static const int Hs[] = {64, 128, 256, 512, 1024}, Gs[] = {4, 3};
    if (argc > 2)
        for (nM = 0; nM < argc - 2 && nM < 16; nM++)
            Ms[nM] = atoi(argv[nM + 2]) > 0 ? atoi(argv[nM + 2]) : 1;
    for (int hi = 0; hi < 5; hi++)
        for (int gi = 0; gi < 2; gi++) {
            int K = Hs[hi], N = Gs[gi] * K, Mmax = 1;
            for (int mi = 0; mi < nM; mi++)
                Mmax = Ms[mi] > Mmax ? Ms[mi] : Mmax;
            float *A = xmalloc(sizeof(float) * Mmax * K), *W = xmalloc(sizeof(float) * N * K);
            float *P = xmalloc(sizeof(float) * fr_pack_size_f32(N, K));
            float *C = xmalloc(sizeof(float) * Mmax * N);
            srand(1);
            for (int i = 0; i < Mmax * K; i++)
                A[i] = (float)rand() / RAND_MAX - 0.5f;
            for (int i = 0; i < N * K; i++)
                W[i] = ((float)rand() / RAND_MAX - 0.5f) * 0.1f;
            memset(C, 0, sizeof(float) * Mmax * N);
            fr_pack_f32(N, K, W, P);
            for (int mi = 0; mi < nM; mi++) {
                problem p = {Ms[mi], N, K, A, W, P, C};
                double ours, blas;
                time_both(&p, &ours, &blas);
                double gf = 2.0 * p.M * N * K * 1e-3;
                char gbs[32] = "";
                if (p.M == 1)
                    snprintf(gbs, sizeof gbs, "%.0f", 4.0 * N * K * 1e-3 / ours);
                printf("| %d | %d | %d | %.2f | %.1f | %s | %.2f | %.1f | %.2fx |\n", p.M, K, N,
                       ours, gf / ours, gbs, blas, gf / blas, blas / ours);
                fflush(stdout);
            }
            free(A);
            free(W);
            free(P);
            free(C);
        }
    return 0;
}
