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
#include <stdint.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "fastrnn.h"

/* Gate loops are compiled for AVX-512, AVX2+FMA and baseline x86-64; the
 * loader picks one for the CPU it runs on (GCC ifunc). */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && !defined(FR_NO_CLONES)
#define FR_VECTORIZE __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FR_VECTORIZE
#endif

/* The gate loops read and write disjoint ranges: no runtime alias checks. */
#if defined(__GNUC__) && !defined(__clang__)
#define FR_IVDEP _Pragma("GCC ivdep")
#else
#define FR_IVDEP
#endif

/* Rows per panel of packed weights (fr_pack_col_block() in matmul.h); threads
 * that split the hidden units take blocks of as many. */
#define FR_BLOCK 32

/* Bytes of kept gate gradients from which the backward writes them past the
 * caches (FN(keep_step)). Below, the weight products read them back from L3
 * sooner than from memory (LSTM H = 64, T*B = 2048: 2 MB, 1% slower a step
 * streamed); above, the stores would evict what the time loop reads (GRU
 * and LSTM H = 128: 4 MB, 3% faster). */
#ifndef FR_STREAM_MIN_BYTES
#define FR_STREAM_MIN_BYTES ((size_t)4 << 20)
#endif

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

#define FR_DECLARE_PRECISION(S)                                                \
    size_t fr_work_size_##S(const fr_layer *L, int T, int B);                  \
    void fr_forward_##S(const fr_layer *L, const fr_sequence *seq, const fr_blas *blas);

FR_DECLARE_PRECISION(f32)
FR_DECLARE_PRECISION(f64)

/* float64 packing (float32 packs with matmul.c's fr_pack_f32) */
void pack_rows_f64(int N, int K, const double *W, double *packed);

#define FR_DECLARE_BACKWARD(S)                                                 \
    size_t fr_backward_work_size_##S(const fr_layer *L, int T, int B);         \
    void fr_backward_##S(const fr_layer *L, const fr_sequence *seq,            \
                         const fr_sequence_grad *d, const fr_grads *g, const fr_blas *blas);

FR_DECLARE_BACKWARD(f32)
FR_DECLARE_BACKWARD(f64)

/* streaming (stream.inc; fastrnn.c checks the layers before these run) */
#define FR_DECLARE_STREAM(S)                                                   \
    size_t fr_stream_memory_size_##S(const fr_layer *layers, int num_layers, int B); \
    void fr_stream_init_##S(fr_stream *s, const fr_layer *layers, int num_layers, int B, \
                            void *memory, const fr_blas *blas);                \
    void fr_stream_set_weights_##S(fr_stream *s, const fr_layer *layers);      \
    void fr_stream_step_##S(const fr_stream *s, const void *x, void *y);       \
    void fr_stream_run_##S(const fr_stream *s, int T, const void *x, void *y); \
    void fr_stream_reset_##S(const fr_stream *s, int row);

FR_DECLARE_STREAM(f32)
FR_DECLARE_STREAM(f64)

#endif
