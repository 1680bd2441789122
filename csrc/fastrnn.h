/* fastrnn.h - the C API of fastrnn's recurrent kernels.
 *
 * Plain C99, no Python. A C or C++ service can use it directly: describe one
 * layer (one direction) with fr_layer, one sequence with fr_sequence, hand in
 * a Fortran-style ?gemm (any BLAS), and call fr_forward / fr_backward.
 *
 * Conventions (PyTorch's):
 *   gates G: RNN 1, LSTM 4 (i, f, g, o), GRU 3 (r, z, n)
 *   w_ih (G*H, I), w_hh (G*H, H), b_ih (G*H), b_hh (G*H), row-major
 *   w_peep (3H): peepholes for i, f (they see c(t-1)) and o (it sees c(t))
 *   x is time-major: row (t, b) of the input starts at x + (t*B + b)*x_stride
 *   y row (t, b) starts at y + (t*B + b)*y_stride; it gets h(t), or zeros
 *   where t >= lengths[b].
 * All arrays hold elements of the layer's dtype (float or double); sizes are
 * in elements. The caller owns every buffer; nothing here allocates.
 */
#ifndef FASTRNN_H
#define FASTRNN_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { FR_F32 = 0, FR_F64 = 1 } fr_dtype;
typedef enum { FR_RNN_TANH = 0, FR_RNN_RELU = 1, FR_LSTM = 2, FR_GRU = 3 } fr_cell;

/* Fortran BLAS ?gemm, column-major, as SciPy's cython_blas exports it. */
typedef void (*fr_sgemm_t)(char *transa, char *transb, int *m, int *n, int *k,
                           float *alpha, float *a, int *lda, float *b, int *ldb,
                           float *beta, float *c, int *ldc);
typedef void (*fr_dgemm_t)(char *transa, char *transb, int *m, int *n, int *k,
                           double *alpha, double *a, int *lda, double *b, int *ldb,
                           double *beta, double *c, int *ldc);
typedef struct {
    fr_sgemm_t sgemm;
    fr_dgemm_t dgemm;
} fr_blas;

/* One layer in one direction. */
typedef struct {
    fr_dtype dtype;
    fr_cell cell;
    int input_size;            /* I */
    int hidden_size;           /* H */
    int peephole;              /* LSTM: w_peep is used */
    int linear_before_reset;   /* GRU: 1 = PyTorch's form, 0 = the original */
    const void *w_ih, *w_hh;
    const void *b_ih, *b_hh;   /* NULL when the layer has no bias */
    const void *w_peep;        /* NULL unless peephole */
} fr_layer;

/* One batch of sequences through one layer-direction. */
typedef struct {
    int T, B;
    int reverse;               /* run from each sequence's last step to t = 0 */
    const int *lengths;        /* (B) each in [0, T], or NULL: all T */
    const void *x;  ptrdiff_t x_stride;
    const void *h0, *c0;       /* (B, H) or NULL for zeros; c0 only for LSTM */
    void *y;        ptrdiff_t y_stride;
    void *h_n, *c_n;           /* (B, H) final states; c_n only for LSTM */
    void *cache;               /* NULL for inference; else fr_cache_size elements */
    void *work;                /* fr_work_size elements */
} fr_sequence;

/* Number of gates G of a cell: 1, 4 or 3. */
int fr_gates(fr_cell cell);

/* Scratch needed by fr_forward / fr_backward (elements of the dtype). */
size_t fr_work_size(const fr_layer *L, int T, int B);

/* What a training forward keeps for fr_backward (elements), all in time
 * order t = 0..T-1, each block (T, B, n):
 *   gates  n = G*H  gate activations (LSTM i f g o; GRU r z n; RNN h(t))
 *   hprev  n = H    the state the step at time t started from
 *   LSTM:  cprev n = H, c n = H     cell state before / after the step
 *   GRU:   hn    n = H    linear_before_reset: W_hn h + b_hn; else r * hprev */
size_t fr_cache_size(const fr_layer *L, int T, int B);

/* Forward over the sequence. With seq->cache non-NULL it also fills the cache. */
void fr_forward(const fr_layer *L, const fr_sequence *seq, const fr_blas *blas);

#ifdef __cplusplus
}
#endif
#endif
