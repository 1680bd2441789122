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
 *   LSTM with a projection (proj_size P > 0; PyTorch asks P < H): the state
 *   the layer outputs and feeds back is h = (o * tanh(c)) W_hr^T, w_hr (P, H);
 *   w_hh is then (G*H, P). R = fr_output_size(L) (P, else H) is the width of h0,
 *   h_n, y and dy; c0 and c_n stay H wide.
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
typedef void (*fr_sgemm_t)(char *transa, char *transb, int *m, int *n, int *k, float *alpha,
                           float *a, int *lda, float *b, int *ldb, float *beta, float *c, int *ldc);
typedef void (*fr_dgemm_t)(char *transa, char *transb, int *m, int *n, int *k, double *alpha,
                           double *a, int *lda, double *b, int *ldb, double *beta, double *c,
                           int *ldc);
typedef struct {
    fr_sgemm_t sgemm;
    fr_dgemm_t dgemm;
} fr_blas;

/* One layer in one direction. */
typedef struct {
    fr_dtype dtype;
    fr_cell cell;
    int input_size;          /* I */
    int hidden_size;         /* H */
    int peephole;            /* LSTM: w_peep is used */
    int linear_before_reset; /* GRU: 1 = PyTorch's form, 0 = the original */
    const void *w_ih, *w_hh;
    const void *b_ih, *b_hh; /* NULL when the layer has no bias */
    const void *w_peep;      /* NULL unless peephole */
    const void *w_ih_packed; /* fr_pack(w_ih), or NULL: the input projection
                                  is one BLAS GEMM */
    const void *w_hh_packed; /* fr_pack(w_hh), or NULL: fr_forward packs it
                                  into its workspace on every call */
    int proj_size;           /* LSTM: P > 0 projects h through w_hr (PyTorch: P < H); 0: none */
    const void *w_hr;        /* (P, H) when proj_size > 0, else unused */
    const void *w_hr_packed; /* fr_pack(w_hr), or NULL (as w_hh_packed) */
} fr_layer;

/* One batch of sequences through one layer-direction. */
typedef struct {
    int T, B;
    int reverse;        /* run from each sequence's last step to t = 0 */
    const int *lengths; /* (B) each in [0, T], or NULL: all T */
    const void *x;
    ptrdiff_t x_stride;
    const void *h0, *c0; /* (B, R) and (B, H), or NULL for zeros; c0 only for LSTM */
    void *y;
    ptrdiff_t y_stride;
    void *h_n, *c_n; /* (B, R), (B, H) final states; c_n only for LSTM */
    void *cache;     /* NULL for inference; else fr_cache_size elements */
    void *work;      /* fr_work_size elements */
    int num_threads; /* threads for the time loop (OpenMP); <= 1: one */
} fr_sequence;

/* Number of gates G of a cell: 1, 4 or 3. */
int fr_gates(fr_cell cell);

/* R, the width of the layer's output and fed-back state: proj_size for a
 * projected LSTM, else hidden_size. */
int fr_output_size(const fr_layer *L);

/* A weight matrix W (rows, cols) laid out for fastrnn's products: panels of
 * 32 rows, k-major, zero padded (matmul.h). A service packs w_ih and w_hh once
 * per weight set and sets L->w_ih_packed / w_hh_packed; fr_packed_size counts
 * elements of the dtype. */
size_t fr_packed_size(int rows, int cols);
void fr_pack(fr_dtype dtype, int rows, int cols, const void *W, void *packed);

/* Scratch needed by fr_forward (elements of the dtype), for this L: with
 * L->w_ih_packed set the input projection needs room for one block of steps
 * (about 256 rows); without it for all T*B rows, and for W_ih packed (which
 * a call with lengths does itself). */
size_t fr_work_size(const fr_layer *L, int T, int B);

/* What a training forward keeps for fr_backward (elements), all in time
 * order t = 0..T-1, each block (T, B, n):
 *   gates  n = G*H  gate activations (LSTM i f g o; GRU r z n; RNN h(t))
 *   hprev  n = R    the state the step at time t started from
 *   LSTM:  c (T+1, B, H): the cell state at the T+1 boundaries between
 *          steps; boundary t lies between times t-1 and t, so the step at
 *          time t goes from boundary t to t+1 (reverse: t+1 to t)
 *          projected LSTM then hraw n = H: o * tanh(c), before W_hr
 *   GRU:   hn    n = H    linear_before_reset: W_hn h + b_hn; else r * hprev
 * Without lengths, or when every row has length T, row (t, b)
 * of a block is its row t*B + b, and boundary j's row b is j*B + b. Else the
 * rows run sorted by length, longest first (ties in batch order), and each
 * block holds tokens: the rows running at t = 0, then those at t = 1, ...,
 * so row (t, b) of the b-th longest row is koff[t] + b, koff[t] the rows
 * running before step t; boundary j holds the rows that touch it (those
 * running at t = 0 for j = 0, else those running at j-1), boundary j's row b
 * at koff[1] + koff[j-1] + b (0 + b for j = 0). Past the tokens the blocks
 * are left as they were, and fr_backward does not read them.
 * Any alignment works; with the cache (and dx) on a 64-byte boundary the
 * rows' vector loads and stores do not straddle cache lines when the block
 * widths are multiples of 16 floats, which makes training steps faster. */
size_t fr_cache_size(const fr_layer *L, int T, int B);

/* Forward over the sequence. With seq->cache non-NULL it also fills the cache. */
void fr_forward(const fr_layer *L, const fr_sequence *seq, const fr_blas *blas);

/* Backward (BPTT) of one layer-direction: what flows in and out along the
 * sequence. Rows of dy and dx are spaced like y's (row (t, b) at
 * (t*B + b)*stride), so one direction's half of a bidirectional gradient
 * works in place. */
typedef struct {
    const void *dy;
    ptrdiff_t dy_stride;     /* (T, B, R) gradient of y, or NULL for zeros;
                                              ignored where t >= lengths[b] */
    const void *dh_n, *dc_n; /* (B, R), (B, H) gradient of the final states, or NULL */
    void *dx;
    ptrdiff_t dx_stride; /* (T, B, I) gradient of x, or NULL to skip */
    int dx_accumulate;   /* 0: dx is overwritten; 1: dx += (a second direction) */
    void *dh0, *dc0;     /* (B, R), (B, H) gradient of the initial states, or NULL */
} fr_sequence_grad;

/* Parameter gradients, shaped as the parameters; ACCUMULATED (+=). Any may
 * be NULL to skip it (b_ih, b_hh for a layer without bias; w_peep unless
 * peephole; w_hr unless proj_size > 0). */
typedef struct {
    void *w_ih, *w_hh, *b_ih, *b_hh, *w_peep, *w_hr;
} fr_grads;

/* Scratch needed by fr_backward (elements of the dtype): the gate gradients
 * of all T*B rows, packed for the weight gradients as each step makes them
 * (and two steps' worth as computed), W_hh^T and W_ih^T packed, dW^T of one
 * weight (max(I, H) * G*H), the running rows of x gathered for dW_ih (T*B*I),
 * a few (B, H) and (G*H) vectors. */
size_t fr_backward_work_size(const fr_layer *L, int T, int B);

/* Backward over the sequence, from the cache a training fr_forward filled
 * with the same L, T, B, reverse, lengths and x (seq->h0, c0, y, h_n, c_n are
 * not used; seq->work holds fr_backward_work_size elements). Walks the steps
 * in the opposite order of the forward: per step one fused pass gives the
 * pre-activation gate gradients and dc, one GEMM gives dh(t-1) (GRU's
 * original form adds the product through W_hn) and one dx(t) while the
 * step's gate gradients are in cache. After the loop, dW_ih and dW_hh are
 * one GEMM each over the rows that ran (all T*B without lengths), the bias
 * and peephole gradients one reduction. A row with t >= lengths[b] adds
 * nothing, passes dh (and dc) through unchanged and gets dx = 0 (with
 * dx_accumulate, nothing added). */
void fr_backward(const fr_layer *L, const fr_sequence *seq, const fr_sequence_grad *d,
                 const fr_grads *g, const fr_blas *blas);

/* ---- Optimizer updates (csrc/optim.c) ----
 * One fused pass over n elements of a parameter p, its gradient g and the
 * optimizer's state buffers (same dtype and length), in place, with
 * torch.optim's exact rules; step counts this parameter's updates from 1. */

/* SGD: buf may be NULL when momentum == 0; first_step != 0 sets buf = g. */
void fr_sgd_update(fr_dtype dtype, size_t n, void *p, const void *g, void *buf, double lr,
                   double momentum, double dampening, double weight_decay, int nesterov,
                   int first_step);

/* Adam (decoupled_weight_decay = 0) or AdamW (1); max_exp_avg_sq non-NULL for amsgrad. */
void fr_adam_update(fr_dtype dtype, size_t n, void *p, const void *g, void *exp_avg,
                    void *exp_avg_sq, void *max_exp_avg_sq, double lr, double beta1, double beta2,
                    double eps, double weight_decay, int decoupled_weight_decay, long long step);

/* Adagrad: sum is the accumulator (start it at initial_accumulator_value). */
void fr_adagrad_update(fr_dtype dtype, size_t n, void *p, const void *g, void *sum, double lr,
                       double lr_decay, double weight_decay, double eps, long long step);

/* sum of x[i]^2 over n elements, accumulated in double (gradient clipping). */
double fr_sum_squares(fr_dtype dtype, size_t n, const void *x);

/* ---- Streaming: one time step per call (csrc/stream.inc) ----
 * A stream runs a stack of num_layers unidirectional layers (layer l > 0
 * takes layer l-1's h as its input) over a batch of B rows, one time step
 * per fr_stream_step, keeping every layer's state in between. All layers
 * share dtype, cell, hidden_size, proj_size, peephole and linear_before_reset;
 * layer 0 has input_size I, the others R = fr_output_size (H, or P). Each
 * layer's products use w_ih_packed / w_hh_packed / w_hr_packed (fr_pack) when
 * set, else BLAS on w_ih / w_hh / w_hr.
 *
 * The caller hands fr_stream_init one block of memory (fr_stream_memory_size
 * bytes, any alignment); the stream lays out in it its layer table, folded
 * biases, states and scratch, so a step allocates nothing. The weights stay
 * the caller's: read-only, shared by any number of streams, and they must
 * outlive the stream (or the next fr_stream_set_weights). A stream is used by
 * one thread at a time; streams with their own memory run in parallel. */
typedef struct {
    fr_layer layer;    /* this layer's sizes and weights (a copy of the description) */
    void *bias, *peep; /* folded biases (G*H + H) and peepholes or zeros (3H) */
    void *h, *c;       /* (B, R), (B, H) its state: h, and c for LSTM (else NULL) */
} fr_stream_layer;

typedef struct {
    int num_layers, batch;   /* L, B */
    fr_stream_layer *layers; /* L entries, in the stream's memory */
    void *h, *c;             /* (L, B, R), (L, B, H) every layer's state, as h_n / c_n */
    void *xg, *hg, *rh, *ht; /* scratch */
    fr_blas blas;
} fr_stream;

/* Whether the layers stack into a stream of batch B: 0, or -1 (mismatched
 * sizes or types, missing weights, B < 1, num_layers < 1). */
int fr_stream_check(const fr_layer *layers, int num_layers, int B);

/* Bytes of memory a stream of these layers and batch B needs. */
size_t fr_stream_memory_size(const fr_layer *layers, int num_layers, int B);

/* Lays the stream out in `memory`, takes the layers' weights and zeroes the
 * state. Returns fr_stream_check's answer (and does nothing on -1). */
int fr_stream_init(fr_stream *s, const fr_layer *layers, int num_layers, int B, void *memory,
                   const fr_blas *blas);

/* New weights of the same shapes (e.g. after a training step); keeps the
 * state. Returns -1 (and changes nothing) if the layers do not match. */
int fr_stream_set_weights(fr_stream *s, const fr_layer *layers);

/* One time step: x (B, I) in, the top layer's new h (B, R) out into y (or
 * nowhere when y is NULL); row-major, contiguous. */
void fr_stream_step(const fr_stream *s, const void *x, void *y);

/* T steps: x (T, B, I), y (T, B, R); the same as T calls of fr_stream_step. */
void fr_stream_run(const fr_stream *s, int T, const void *x, void *y);

/* Zero the state of batch row `row` in every layer, or of all rows (row < 0). */
void fr_stream_reset(const fr_stream *s, int row);

/* ---- The SIMD path (csrc/simd.c) ----
 * One instruction-set level runs everything: the products, the activations,
 * the gate passes and the time loops. The default is the best the CPU has;
 * a lower one can be forced (tests, benchmarks; Python: FASTRNN_ISA).
 *   FR_SIMD_GENERIC  portable C, compiled for the baseline of the target
 *   FR_SIMD_AVX2     x86 AVX2 + FMA
 *   FR_SIMD_AVX512   x86 AVX-512 F, BW, CD, DQ and VL (with AVX2 + FMA)
 * The results of each level agree with the others to rounding; the sizes
 * (fr_work_size, fr_stream_memory_size, ...) are the same at every level,
 * and a stream may be stepped at another level than it was made at. */
enum { FR_SIMD_AUTO = 0, FR_SIMD_GENERIC = 1, FR_SIMD_AVX2 = 2, FR_SIMD_AVX512 = 3 };

/* The level in use: FR_SIMD_GENERIC, FR_SIMD_AVX2 or FR_SIMD_AVX512. */
int fr_simd_level(void);

/* Run `level` from now on (FR_SIMD_AUTO: the best again) and return it; a
 * level the CPU (or the build) lacks returns -1 and changes nothing. Not to
 * be called while another thread is inside a fastrnn call. */
int fr_set_simd_level(int level);

/* "generic", "avx2", "avx512" ("auto" for any other value) */
const char *fr_simd_level_name(int level);

#ifdef __cplusplus
}
#endif
#endif
