/* simd.h - what the SIMD code of the build shares: which code exists, and
 * what the code of each level (fastrnn.h: fr_simd_level) may use.
 *
 * One level runs at a time, for everything: the packed products (matmul.c),
 * the activations and one-pass cells (vmath.c) and the kernel set of the
 * time loops (internal.h), so that FASTRNN_ISA (or fr_set_simd_level) tests
 * and measures the whole of a path on any CPU that has it. */
#ifndef FASTRNN_SIMD_H
#define FASTRNN_SIMD_H

#include <stddef.h>

/* x86 SIMD kernels need GCC-style target attributes (GCC, Clang, ICX);
 * -DFR_MATMUL_NO_SIMD builds the portable code only (then the only level is
 * FR_SIMD_GENERIC). */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && !defined(FR_MATMUL_NO_SIMD)
#define FR_X86_SIMD 1
#endif

/* The kernel set (precision_f32.c, precision_f64.c) has one copy per level
 * where GCC targets x86-64 and its SIMD code is built: the baseline files
 * themselves, and precision_f32_avx2.c ... compiled for the features below
 * (a whole file for a target needs GCC's `#pragma GCC target`). Otherwise,
 * and with -DFR_NO_SIMD_COPIES (the sanitizer builds: one copy is enough there),
 * every level runs the baseline copy; the products and activations still
 * follow the level. */
#if defined(FR_X86_SIMD) && defined(__x86_64__) && !defined(__clang__) && \
    !defined(FR_NO_SIMD_COPIES)
#define FR_SIMD_COPIES 1
#else
#define FR_SIMD_COPIES 0
#endif

/* What the code of each level is compiled for; simd.c grants a level only
 * to a CPU that has every feature listed here (the x86-64-v3 and v4 levels
 * less BMI, LZCNT, MOVBE and F16C, which float loops do not use: the same
 * code as -march=x86-64-v3 / v4 gives the kernel set). */
#define FR_FEATURES_AVX2 "avx2,fma"
#define FR_FEATURES_AVX512 "avx2,fma,avx512f,avx512bw,avx512cd,avx512dq,avx512vl"

/* FR_TARGET(FR_FEATURES_AVX2): the rest of the file is compiled for them */
#define FR_PRAGMA(text) _Pragma(#text)
#define FR_TARGET(features) FR_PRAGMA(GCC target(features))

#endif
