/* fma_peak.c - the float32 multiply-add peak of one core at the SIMD level in
 * use (fma_peak.h): what "x% of peak" in fastrnn bench is a fraction of. */
#define _POSIX_C_SOURCE 199309L /* clock_gettime */
#include "fma_peak.h"

#include <stdint.h>
#include <time.h>

#include "fastrnn.h"
#include "simd.h"
#ifdef FR_X86_SIMD
#include <immintrin.h>
#endif

/* Each loop below runs `iters` times, on CHAINS independent accumulators of
 * one SIMD register each, acc = acc * a + b, and returns the sum of every
 * lane (so that no accumulator can be dropped). With 0 < a < 1 the values
 * settle at b / (1 - a): no overflow, no subnormals. Nothing but the
 * multiply-adds runs in the loop, and a multiply-add waits only for its own
 * chain's previous one, so CHAINS must cover the latency times the number of
 * pipes of any x86 core: FMA 5 cycles x 2 pipes on Haswell and Zen 2/3, 4 x 2
 * on later Intel cores and Zen 4; for SSE2's multiply then add, 3 + 3 cycles
 * with 2 multiply and 2 add pipes on Zen 2/3 (12 chains). With the two
 * constants they must also fit in the registers of the level: 16 for SSE2
 * and AVX2, 32 for AVX-512. */

/* generic: the code the compiler makes of plain C for the baseline of the
 * target (on x86-64 SSE2: a multiply and an add of 4 floats each, no FMA),
 * which is what the generic kernels run on */
#define GENERIC_CHAINS 12
#define GENERIC_LANES 4

static float multiply_add_generic(int64_t iters, float a, float b)
{
    float acc[GENERIC_CHAINS][GENERIC_LANES];
    for (int j = 0; j < GENERIC_CHAINS; j++)
        for (int l = 0; l < GENERIC_LANES; l++)
            acc[j][l] = (float)(j * GENERIC_LANES + l);
    for (int64_t it = 0; it < iters; it++)
        for (int j = 0; j < GENERIC_CHAINS; j++)
            for (int l = 0; l < GENERIC_LANES; l++)
                acc[j][l] = acc[j][l] * a + b;
    float sum = 0;
    for (int j = 0; j < GENERIC_CHAINS; j++)
        for (int l = 0; l < GENERIC_LANES; l++)
            sum += acc[j][l];
    return sum;
}

#ifdef FR_X86_SIMD
#define AVX2_CHAINS 12
#define AVX512_CHAINS 16

__attribute__((target(FR_FEATURES_AVX2))) static float multiply_add_avx2(int64_t iters, float a,
                                                                         float b)
{
    const __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
    __m256 acc[AVX2_CHAINS];
    for (int j = 0; j < AVX2_CHAINS; j++)
        acc[j] = _mm256_set1_ps((float)j);
    for (int64_t it = 0; it < iters; it++)
        for (int j = 0; j < AVX2_CHAINS; j++)
            acc[j] = _mm256_fmadd_ps(acc[j], va, vb);
    for (int j = 1; j < AVX2_CHAINS; j++)
        acc[0] = _mm256_add_ps(acc[0], acc[j]);
    float lanes[8], sum = 0;
    _mm256_storeu_ps(lanes, acc[0]);
    for (int l = 0; l < 8; l++)
        sum += lanes[l];
    return sum;
}

__attribute__((target(FR_FEATURES_AVX512))) static float multiply_add_avx512(int64_t iters, float a,
                                                                             float b)
{
    const __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b);
    __m512 acc[AVX512_CHAINS];
    for (int j = 0; j < AVX512_CHAINS; j++)
        acc[j] = _mm512_set1_ps((float)j);
    for (int64_t it = 0; it < iters; it++)
        for (int j = 0; j < AVX512_CHAINS; j++)
            acc[j] = _mm512_fmadd_ps(acc[j], va, vb);
    for (int j = 1; j < AVX512_CHAINS; j++)
        acc[0] = _mm512_add_ps(acc[0], acc[j]);
    return _mm512_reduce_add_ps(acc[0]);
}
#endif /* FR_X86_SIMD */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define REPETITIONS 10
#define MIN_REPETITION_S 1e-3

/* fr_fma_peak measures the most float32 FLOP/s that code of the level in use
 * can reach on this core, when nothing but multiply-adds runs: the ceiling a
 * benchmark holds a kernel against ("x% of peak"), on whatever CPU it runs
 * and at whatever clock that CPU keeps for such code. It is the best of
 * REPETITIONS runs of one iteration count, chosen by doubling it until a run
 * takes a quarter of a repetition's share of `seconds` (which also wakes the
 * vector units and the clock up); the best, not the median, since nothing but
 * interruptions makes a run slower. The loop is called through a volatile
 * pointer: an opaque call, which the compiler can neither inline nor move
 * across the clock readings. */

double fr_fma_peak(double seconds)
{
    float (*volatile loop)(int64_t, float, float) = multiply_add_generic;
    double flops_per_iter = 2.0 * GENERIC_CHAINS * GENERIC_LANES;
#ifdef FR_X86_SIMD
    switch (fr_simd_level()) {
    case FR_SIMD_AVX512:
        loop = multiply_add_avx512;
        flops_per_iter = 2.0 * AVX512_CHAINS * 16;
        break;
    case FR_SIMD_AVX2:
        loop = multiply_add_avx2;
        flops_per_iter = 2.0 * AVX2_CHAINS * 8;
        break;
    default: break;
    }
#endif
    const float a = 0.75f, b = 0.25f;
    volatile float sink; /* every run's result is stored: none is skipped */
    double repetition = seconds / REPETITIONS;
    if (!(repetition > MIN_REPETITION_S))
        repetition = MIN_REPETITION_S;

    int64_t iters = 256;
    double t;
    for (;;) {
        const double t0 = now();
        sink = loop(iters, a, b);
        t = now() - t0;
        if (t >= repetition / 4 || iters > INT64_MAX / 8)
            break;
        iters *= 2;
    }
    if (t > 0 && (double)iters * repetition / t < (double)(INT64_MAX / 2))
        iters = (int64_t)((double)iters * repetition / t) + 1;

    double best = 0;
    for (int r = 0; r < REPETITIONS; r++) {
        const double t0 = now();
        sink = loop(iters, a, b);
        t = now() - t0;
        if (r == 0 || t < best)
            best = t;
    }
    (void)sink;
    return best > 0 ? flops_per_iter * (double)iters / best : 0;
}
