/* internal.h - what the kernels share: the precision template, the table
 * of a kernel set and a row-major GEMM on top of a Fortran BLAS.
 *
 * The kernel files (*.inc) are written once in terms of `real` and FN(name);
 * precision_f32.c and precision_f64.c include them with real = float / double
 * and FN(name) = name##_f32 / name##_f64. That is the baseline kernel set;
 * its copies for the SIMD levels (simd.h: precision_f32_avx2.c, ...) define
 * FR_KERNEL_SUFFIX first, and their FN(name) = name##_f32_avx2, ...
 */
#ifndef FASTRNN_INTERNAL_H
#define FASTRNN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "fastrnn.h"
#include "simd.h"
#include "cache_sizes.h"

/* The precision files name their kernels FR_SUFFIXED(name##_f32,
 * FR_KERNEL_SUFFIX): FR_KERNEL_SUFFIX is empty in the baseline set, _avx2 or
 * _avx512 in its copies, whose symbols then differ. */
#ifndef FR_KERNEL_SUFFIX
#define FR_KERNEL_SUFFIX
#endif
#define FR_PASTE(a, b) a##b
#define FR_SUFFIXED(name, suffix) FR_PASTE(name, suffix)

/* The gate loops read and write disjoint ranges: no runtime alias checks. */
#if defined(__GNUC__) && !defined(__clang__)
#define FR_IVDEP _Pragma("GCC ivdep")
#else
#define FR_IVDEP
#endif

/* Rows per panel of packed weights (fr_pack_col_block() in matmul.h); threads
 * that split the hidden units take blocks of as many. */
#define FR_BLOCK 32

/* Whether the backward writes `bytes` of kept gate gradients past the
 * caches, by non-temporal stores (FN(keep_row)): when they are three times
 * L2 or more. Smaller, the weight products after the loop read them back
 * from L3 sooner than from memory; larger, ordinary stores would evict from
 * L2 and L3 the weights the time loop reads at every step. (The C test
 * harness builds with FR_NT_MIN_L2S=0: every backward takes that path.) */
#ifndef FR_NT_MIN_L2S
#define FR_NT_MIN_L2S 3
#endif
static inline int fr_nt_worthwhile(size_t bytes)
{
    return bytes >= FR_NT_MIN_L2S * fr_l2_bytes();
}

/* A thread's share of a time loop (forward or backward): rows [b0, b1) of the
 * batch and hidden units [u0, u1) (a projected LSTM: also columns [p0, p1) of
 * h; the backward: columns [x0, x1) of dx). Threads split either the units
 * (each has every row; every step then needs all of h, so `sync`: barriers)
 * or the rows (each has every unit; the rows' recurrences are independent, no
 * barrier). See fr_forward. */
typedef struct {
    int b0, b1, u0, u1, p0, p1, x0, x1;
    int sync;
} fr_share;

/* P of a projected LSTM (fastrnn.h), 0 for every other layer */
static inline int fr_proj(const fr_layer *L)
{
    return L->cell == FR_LSTM && L->proj_size > 0 ? L->proj_size : 0;
}

/* A kernel set: one precision compiled for one SIMD level, as its entry
 * points (fastrnn.h's fr_pack, fr_work_size, ... for one dtype). Each
 * precision file defines one, FN(fr_kernels) (kernels.inc); fastrnn.c runs
 * the one of the dtype and of the level in use. */
typedef struct {
    void (*pack)(int rows, int cols, const void *W, void *packed);
    size_t (*work_size)(const fr_layer *L, int T, int B);
    void (*forward)(const fr_layer *L, const fr_sequence *seq, const fr_blas *blas);
    size_t (*backward_work_size)(const fr_layer *L, int T, int B);
    void (*backward)(const fr_layer *L, const fr_sequence *seq, const fr_sequence_grad *d,
                     const fr_grads *g, const fr_blas *blas);
    /* streaming (stream.inc; fastrnn.c checks the layers before these run) */
    size_t (*stream_memory_size)(const fr_layer *layers, int num_layers, int B);
    void (*stream_init)(fr_stream *s, const fr_layer *layers, int num_layers, int B, void *memory,
                        const fr_blas *blas);
    void (*stream_set_weights)(fr_stream *s, const fr_layer *layers);
    void (*stream_step)(const fr_stream *s, const void *x, void *y);
    void (*stream_run)(const fr_stream *s, int T, const void *x, void *y);
    void (*stream_reset)(const fr_stream *s, int row);
} fr_kernels;

extern const fr_kernels fr_kernels_f32, fr_kernels_f64;
#if FR_SIMD_COPIES
extern const fr_kernels fr_kernels_f32_avx2, fr_kernels_f64_avx2;
extern const fr_kernels fr_kernels_f32_avx512, fr_kernels_f64_avx512;
#endif

#endif
