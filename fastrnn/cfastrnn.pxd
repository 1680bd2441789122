# The C API of csrc/ as the binding (fastrnn/_core.pyx and its parts) sees
# it: declared here once, every function callable without the GIL. Mirrors
# csrc/fastrnn.h, csrc/matmul.h and csrc/fma_peak.h, which document each
# name; keep the two in step when a C signature changes.

cdef extern from "fastrnn.h" nogil:
    # --- types
    ctypedef enum fr_dtype:
        FR_F32, FR_F64
    ctypedef enum fr_cell:
        FR_RNN_TANH, FR_RNN_RELU, FR_LSTM, FR_GRU
    ctypedef void (*fr_sgemm_t)(char *, char *, int *, int *, int *, float *, float *, int *,
                                float *, int *, float *, float *, int *)
    ctypedef void (*fr_dgemm_t)(char *, char *, int *, int *, int *, double *, double *, int *,
                                double *, int *, double *, double *, int *)
    ctypedef struct fr_blas:
        fr_sgemm_t sgemm
        fr_dgemm_t dgemm
    ctypedef struct fr_layer:
        fr_dtype dtype
        fr_cell cell
        int input_size, hidden_size, peephole, linear_before_reset
        const void *w_ih
        const void *w_hh
        const void *b_ih
        const void *b_hh
        const void *w_peep
        const void *w_ih_packed
        const void *w_hh_packed
        int proj_size
        const void *w_hr
        const void *w_hr_packed
    ctypedef struct fr_sequence:
        int T, B, reverse
        const int *lengths
        const void *x
        ptrdiff_t x_stride
        const void *h0
        const void *c0
        void *y
        ptrdiff_t y_stride
        void *h_n
        void *c_n
        void *cache
        void *work
        int num_threads

    # --- a layer over a sequence: sizes, packing, forward
    int fr_gates(fr_cell cell)
    int fr_output_size(const fr_layer *L)
    size_t fr_packed_size(int rows, int cols)
    void fr_pack(fr_dtype dtype, int rows, int cols, const void *W, void *packed)
    size_t fr_work_size(const fr_layer *L, int T, int B)
    size_t fr_cache_size(const fr_layer *L, int T, int B)
    void fr_forward(const fr_layer *L, const fr_sequence *seq, const fr_blas *blas)

    # --- backward
    ctypedef struct fr_sequence_grad:
        const void *dy
        ptrdiff_t dy_stride
        const void *dh_n
        const void *dc_n
        void *dx
        ptrdiff_t dx_stride
        int dx_accumulate
        void *dh0
        void *dc0
    ctypedef struct fr_grads:
        void *w_ih
        void *w_hh
        void *b_ih
        void *b_hh
        void *w_peep
        void *w_hr
    size_t fr_backward_work_size(const fr_layer *L, int T, int B)
    void fr_backward(const fr_layer *L, const fr_sequence *seq, const fr_sequence_grad *d,
                     const fr_grads *g, const fr_blas *blas)

    # --- optimizer updates (csrc/optim.c)
    void fr_sgd_update(fr_dtype dtype, size_t n, void *p, const void *g, void *buf,
                       double lr, double momentum, double dampening, double weight_decay,
                       int nesterov, int first_step)
    void fr_adam_update(fr_dtype dtype, size_t n, void *p, const void *g, void *exp_avg,
                        void *exp_avg_sq, void *max_exp_avg_sq, double lr, double beta1,
                        double beta2, double eps, double weight_decay,
                        int decoupled_weight_decay, long long step)
    void fr_adagrad_update(fr_dtype dtype, size_t n, void *p, const void *g, void *sum,
                           double lr, double lr_decay, double weight_decay, double eps,
                           long long step)
    double fr_sum_squares(fr_dtype dtype, size_t n, const void *x)

    # --- streams (csrc/stream.inc)
    ctypedef struct fr_stream_layer:
        fr_layer layer
        void *bias
        void *peep
        void *h
        void *c
    ctypedef struct fr_stream:
        int num_layers, batch
        fr_stream_layer *layers
        void *h
        void *c
        void *xg
        void *hg
        void *rh
        void *ht
        fr_blas blas
    size_t fr_stream_memory_size(const fr_layer *layers, int num_layers, int B)
    int fr_stream_init(fr_stream *s, const fr_layer *layers, int num_layers, int B,
                       void *memory, const fr_blas *blas)
    int fr_stream_set_weights(fr_stream *s, const fr_layer *layers)
    void fr_stream_step(const fr_stream *s, const void *x, void *y)
    void fr_stream_run(const fr_stream *s, int T, const void *x, void *y)
    void fr_stream_reset(const fr_stream *s, int row)

    # --- the SIMD level, process-wide
    enum:
        FR_SIMD_GENERIC, FR_SIMD_AVX2, FR_SIMD_AVX512
    int fr_simd_level()
    int fr_set_simd_level(int level)
    const char *fr_simd_level_name(int level)


cdef extern from "matmul.h" nogil:
    void fr_matmul_packed_f32(int M, int n0, int n1, int K, const float *A, int lda,
                              const float *packed, float beta, float *C, int ldc)


cdef extern from "fma_peak.h" nogil:
    double fr_fma_peak(double seconds)
