/* fma_peak.h - the float32 multiply-add peak of one core at the SIMD level in
 * use (fastrnn.h: fr_simd_level): the rate benchmarks (fastrnn bench) hold
 * the kernels against. */
#ifndef FASTRNN_FMA_PEAK_H
#define FASTRNN_FMA_PEAK_H

#ifdef __cplusplus
extern "C" {
#endif

/* FLOP/s (a multiply-add counts 2) of float32 multiply-adds on the calling
 * thread, in the SIMD code of the level in use: the best of a few timed
 * repetitions of a register-only loop, taking about `seconds` in all (at
 * least a few milliseconds, whatever `seconds` is). */
double fr_fma_peak(double seconds);

#ifdef __cplusplus
}
#endif
#endif
