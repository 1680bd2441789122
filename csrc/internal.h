/* internal.h - what the kernels share: the precision template, the SIMD
 * dispatch attribute and a row-major GEMM on top of a Fortran BLAS.
 *
 * The kernel files (*.inc) are written once in terms of `real` and FN(name);
 * precision_f32.c and precision_f64.c include them with real = float / double
 * and FN(name) = name##_f32 / name##_f64.
 */
#ifndef FASTRNN_INTERNAL_H
#define FASTRNN_INTERNAL_H

#include <stddef.h>
#include "fastrnn.h"

/* Gate loops are compiled for AVX-512, AVX2+FMA and baseline x86-64; the
 * loader picks one for the CPU it runs on (GCC ifunc). */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && !defined(FR_NO_CLONES)
#define FR_VECTORIZE __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FR_VECTORIZE
#endif

#define FR_DECLARE_PRECISION(S)                                                \
    size_t fr_work_size_##S(const fr_layer *L, int T, int B);                  \
    void fr_forward_##S(const fr_layer *L, const fr_sequence *seq, const fr_blas *blas);

FR_DECLARE_PRECISION(f32)
FR_DECLARE_PRECISION(f64)

#endif
