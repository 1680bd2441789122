# cython: language_level=3, boundscheck=False, wraparound=False
"""The one binding between Python and csrc/: checks what it is handed, takes
raw pointers, releases the GIL and calls C. No math here.

The public layers validate user input with friendly messages first; the checks
below are the last line that keeps C inside its buffers whoever calls it."""

import numpy as np
cimport numpy as cnp
from scipy.linalg.cython_blas cimport sgemm, dgemm

cnp.import_array()

cdef extern from "fastrnn.h" nogil:
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
    int fr_gates(fr_cell cell)
    int fr_output_size(const fr_layer *L)
    size_t fr_packed_size(int rows, int cols)
    void fr_pack(fr_dtype dtype, int rows, int cols, const void *W, void *packed)
    size_t fr_work_size(const fr_layer *L, int T, int B)
    size_t fr_cache_size(const fr_layer *L, int T, int B)
    void fr_forward(const fr_layer *L, const fr_sequence *seq, const fr_blas *blas)
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

RNN_TANH, RNN_RELU, LSTM, GRU = FR_RNN_TANH, FR_RNN_RELU, FR_LSTM, FR_GRU

cdef fr_blas BLAS
BLAS.sgemm = <fr_sgemm_t>sgemm
BLAS.dgemm = <fr_dgemm_t>dgemm

INT_MAX = 2**31 - 1


cdef const void *_in(object a, str name, tuple shape, object dtype) except? NULL:
    """Pointer to a C-contiguous array of this shape and dtype, or NULL for None."""
    if a is None:
        return NULL
    _check(a, name, shape, dtype)
    return cnp.PyArray_DATA(<cnp.ndarray>a)


cdef void *_out(object a, str name, tuple shape, object dtype) except NULL:
    _check(a, name, shape, dtype)
    if not (<cnp.ndarray>a).flags.writeable:
        raise ValueError(f"{name}: must be writeable")
    return cnp.PyArray_DATA(<cnp.ndarray>a)


cdef _check_shape(object a, str name, tuple shape, object dtype):
    """Every array that reaches C is checked in one order: type, dtype, rank,
    shape (then, by the callers, layout); no dimension is read before the
    rank is known."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {np.dtype(dtype)}, got {a.dtype}")
    if a.ndim != len(shape):
        raise ValueError(f"{name}: expected a {len(shape)}-D array of shape {shape}, "
                         f"got {a.ndim}-D shape {a.shape}")
    if a.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {a.shape}")


cdef _check(object a, str name, tuple shape, object dtype):
    _check_shape(a, name, shape, dtype)
    if not a.flags.c_contiguous:
        raise ValueError(f"{name}: must be C-contiguous")


cdef void *_rows(object a, str name, int T, int B, int n, object dtype, ptrdiff_t *stride,
                 bint writeable=True) except NULL:
    """A (T, B, n) array, writeable unless told, whose rows (t, b) lie at
    (t*B + b) * stride elements: e.g. one direction's half of a bidirectional
    output."""
    _check_shape(a, name, (T, B, n), dtype)
    if writeable and not (<cnp.ndarray>a).flags.writeable:
        raise ValueError(f"{name}: must be writeable")
    cdef Py_ssize_t item = a.itemsize
    s0, s1, s2 = a.strides
    r = s1 if B > 1 else (s0 if T > 1 else n * item)
    if T * B == 0:      # nothing is read or written
        r = n * item
    elif (r % item or r < n * item or (n > 1 and s2 != item)
            or (B > 1 and T > 1 and s0 != B * s1)):
        raise ValueError(f"{name}: rows must be evenly spaced with unit inner stride")
    stride[0] = r // item
    return cnp.PyArray_DATA(<cnp.ndarray>a)


cdef fr_layer _layer(int cell, int I, int H, bint peephole, bint lbr, w_ih, w_hh, b_ih, b_hh,
                     w_peep, dtype, int P=0, w_hr=None) except *:
    """The C description of one layer-direction; P > 0: an LSTM projecting
    h through w_hr (P, H), whose w_hh is then (G*H, P)."""
    cdef fr_layer L
    if cell not in (FR_RNN_TANH, FR_RNN_RELU, FR_LSTM, FR_GRU):
        raise ValueError(f"cell: unknown cell type {cell}")
    if I < 1 or H < 1:
        raise ValueError(f"input_size and hidden_size must be >= 1, got {I} and {H}")
    if P and (cell != FR_LSTM or not 0 < P < H):
        raise ValueError(f"proj_size: expected an LSTM with 0 < proj_size < hidden_size {H}, "
                         f"got {P}")
    if dtype == np.float32:
        L.dtype = FR_F32
    elif dtype == np.float64:
        L.dtype = FR_F64
    else:
        raise TypeError(f"dtype: expected float32 or float64, got {dtype}")
    L.cell = <fr_cell>cell
    cdef int GH = fr_gates(L.cell) * H
    L.input_size, L.hidden_size = I, H
    L.peephole = peephole and cell == FR_LSTM
    L.linear_before_reset = lbr
    L.proj_size = P
    L.w_hr = _in(w_hr, "w_hr", (P, H), dtype) if P else NULL
    if P and L.w_hr == NULL:
        raise ValueError("w_hr is required for a projected LSTM")
    L.w_hr_packed = NULL
    L.w_ih = _in(w_ih, "w_ih", (GH, I), dtype)
    L.w_hh = _in(w_hh, "w_hh", (GH, P if P else H), dtype)
    if L.w_ih == NULL or L.w_hh == NULL:
        raise ValueError("w_ih and w_hh are required")
    L.b_ih = _in(b_ih, "b_ih", (GH,), dtype)
    L.b_hh = _in(b_hh, "b_hh", (GH,), dtype)
    L.w_peep = _in(w_peep, "w_peep", (3 * H,), dtype) if L.peephole else NULL
    if L.peephole and L.w_peep == NULL:
        raise ValueError("w_peep is required for a peephole LSTM")
    L.w_hh_packed = NULL
    L.w_ih_packed = NULL
    return L


cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int fr_max_threads(void) { return omp_get_max_threads(); }
    #else
    static int fr_max_threads(void) { return 1; }
    #endif
    """
    int fr_max_threads() nogil


def max_threads():
    """OpenMP's current thread limit (OMP_NUM_THREADS, threadpoolctl)."""
    return fr_max_threads()


cdef extern from "fastrnn.h" nogil:
    enum:
        FR_SIMD_GENERIC, FR_SIMD_AVX2, FR_SIMD_AVX512
    int fr_simd_level()
    int fr_set_simd_level(int level)
    const char *fr_simd_level_name(int level)

_SIMD_LEVELS = {"generic": FR_SIMD_GENERIC, "avx2": FR_SIMD_AVX2, "avx512": FR_SIMD_AVX512}


def simd_level():
    """The SIMD path every kernel runs: "avx512", "avx2" or "generic"."""
    return fr_simd_level_name(fr_simd_level()).decode()


def set_simd_level(str name):
    """Run the SIMD path `name` (a simd_level() value) from now on: True, or
    False, changing nothing, where the CPU (or the build) lacks it. Only
    while no other thread is in a fastrnn call (fastrnn.simd does it once,
    at import)."""
    return name in _SIMD_LEVELS and fr_set_simd_level(_SIMD_LEVELS[name]) >= 0


def aligned_empty(Py_ssize_t n, dtype):
    """An uninitialised 1-D array of n elements starting on a 64-byte boundary."""
    itemsize = np.dtype(dtype).itemsize
    cdef cnp.ndarray raw = np.empty(n + 64 // itemsize, dtype)
    skip = (-<size_t>cnp.PyArray_DATA(raw) % 64) // itemsize
    return raw[skip:skip + n]


def pack(w):
    """A weight matrix (rows, cols) laid out for fastrnn's products
    (fastrnn.h: fr_pack): a new 64-byte aligned 1-D array."""
    if not isinstance(w, np.ndarray) or w.ndim != 2 or w.dtype not in (np.float32, np.float64):
        raise TypeError("w: expected a 2-D float32 or float64 numpy array")
    w = np.ascontiguousarray(w)
    cdef int rows = w.shape[0], cols = w.shape[1]
    cdef fr_dtype dtype = FR_F32 if w.dtype == np.float32 else FR_F64
    packed = aligned_empty(fr_packed_size(rows, cols), w.dtype)
    cdef const void *src = cnp.PyArray_DATA(<cnp.ndarray>w)
    cdef void *dst = cnp.PyArray_DATA(<cnp.ndarray>packed)
    with nogil:
        fr_pack(dtype, rows, cols, src, dst)
    return packed


# Scratch buffers are reused across calls: a fresh large array costs page
# faults and zeroing on every call. A few are kept, none over 256 MB;
# list.pop/append are atomic, so concurrent calls each get their own.
_scratch_pool = []


cdef object _take_scratch(size_t n, object dtype):
    while True:
        try:
            a = _scratch_pool.pop()
        except IndexError:
            return np.empty(max(n, 1), dtype)
        if a.dtype == dtype and <size_t>a.shape[0] >= n:
            return a


cdef _give_scratch(object a):
    if a.nbytes <= (256 << 20) and len(_scratch_pool) < 4:
        _scratch_pool.append(a)


cdef const int *_lengths(object lengths, int B, int T) except? NULL:
    """Pointer to int32 lengths (B,), each in [0, T], or NULL for None."""
    if lengths is None:
        return NULL
    _check(lengths, "lengths", (B,), np.int32)
    if B and (lengths.min() < 0 or lengths.max() > T):
        raise ValueError(f"lengths: expected values in [0, {T}]")
    return <const int *>cnp.PyArray_DATA(<cnp.ndarray>lengths)


def _sizes(int cell, x, w_hh, w_hr):
    """dtype, T, B, I of x (T, B, I), H of w_hh (G*H, R) and the projection
    P of w_hr (P, H) (0 for None), checked."""
    if not isinstance(x, np.ndarray) or x.ndim != 3:
        raise ValueError("x: expected a 3-D numpy array (T, B, I)")
    T, B, I = x.shape
    if T * B > INT_MAX:
        raise ValueError(f"x: T * B = {T * B} rows exceed {INT_MAX}")
    G = fr_gates(<fr_cell>cell) if cell in (FR_RNN_TANH, FR_RNN_RELU, FR_LSTM, FR_GRU) else 1
    H = w_hh.shape[0] // G if isinstance(w_hh, np.ndarray) and w_hh.ndim == 2 else 0
    P = 0
    if w_hr is not None:
        if not isinstance(w_hr, np.ndarray) or w_hr.ndim != 2:
            raise ValueError("w_hr: expected a 2-D numpy array (P, H)")
        P = w_hr.shape[0]
    return x.dtype, T, B, I, H, P


def cache_size(int cell, int H, int T, int B, int proj_size=0):
    """Elements a training forward keeps for backward (see fastrnn.h)."""
    cdef fr_layer L
    L.cell = <fr_cell>cell
    L.hidden_size = H
    L.proj_size = proj_size
    return fr_cache_size(&L, T, B)


def layer_forward(int cell, bint peephole, bint linear_before_reset,
                  w_ih, w_hh, b_ih, b_hh, w_peep,
                  x, h0, c0, lengths, bint reverse, y, h_n, c_n, cache=None,
                  packed=None, int num_threads=1, packed_ih=None, w_hr=None, packed_hr=None):
    """One layer in one direction over x (T, B, I): writes y (T, B, R) (rows
    may be spaced, e.g. one half of a bidirectional output), h_n (B, R) and
    c_n (B, H), R = H, or P for an LSTM projecting through w_hr (P, H); fills
    `cache` (1-D, cache_size elements) when given. `packed` is pack(w_hh) of
    these weights, or None to pack on the fly; `packed_ih` pack(w_ih), or None
    for a BLAS input projection; `packed_hr` pack(w_hr) or None."""
    dtype, T_, B_, I_, H_, P_ = _sizes(cell, x, w_hh, w_hr)
    cdef int T = T_, B = B_, I = I_, H = H_, P = P_
    cdef fr_layer L = _layer(cell, I, H, peephole, linear_before_reset,
                             w_ih, w_hh, b_ih, b_hh, w_peep, dtype, P, w_hr)
    cdef int R = fr_output_size(&L)
    cdef fr_sequence S
    S.T, S.B, S.reverse = T, B, reverse
    S.x = _in(x, "x", (T, B, I), dtype)
    S.x_stride = I
    S.h0 = _in(h0, "h0", (B, R), dtype)
    S.c0 = _in(c0, "c0", (B, H), dtype) if cell == FR_LSTM else NULL
    S.lengths = _lengths(lengths, B, T)
    S.y = _rows(y, "y", T, B, R, dtype, &S.y_stride)
    S.h_n = _out(h_n, "h_n", (B, R), dtype)
    S.c_n = _out(c_n, "c_n", (B, H), dtype) if cell == FR_LSTM else NULL
    S.cache = NULL
    if cache is not None:
        S.cache = _out(cache, "cache", (fr_cache_size(&L, T, B),), dtype)
    cdef int GH = fr_gates(L.cell) * H
    if packed is not None:
        L.w_hh_packed = _in(packed, "packed", (fr_packed_size(GH, R),), dtype)
    if packed_ih is not None:
        L.w_ih_packed = _in(packed_ih, "packed_ih", (fr_packed_size(GH, I),), dtype)
    if packed_hr is not None and P:
        L.w_hr_packed = _in(packed_hr, "packed_hr", (fr_packed_size(P, H),), dtype)
    S.num_threads = num_threads
    work = _take_scratch(fr_work_size(&L, T, B), dtype)
    S.work = cnp.PyArray_DATA(<cnp.ndarray>work)
    with nogil:
        fr_forward(&L, &S, &BLAS)
    _give_scratch(work)


# ---------------------------------------------------------------------------
# Optimizer updates (csrc/optim.c): fused, in place, GIL released.
# Used by fastrnn/optim.py; each function checks that every buffer is a
# C-contiguous array of the parameter's shape and dtype before C sees it.
# ---------------------------------------------------------------------------

cdef extern from "fastrnn.h" nogil:
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


cdef fr_dtype _real_dtype(object a, str name) except *:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {type(a).__name__}")
    if a.dtype == np.float32:
        return FR_F32
    if a.dtype == np.float64:
        return FR_F64
    raise TypeError(f"{name}: expected dtype float32 or float64, got {a.dtype}")


def sgd_update(p, g, buf, double lr, double momentum, double dampening, double weight_decay,
               bint nesterov, bint first_step):
    """torch.optim.SGD's update of p (and the momentum buffer buf, or None
    without momentum), in place."""
    cdef fr_dtype dt = _real_dtype(p, "param")
    cdef void *pp = _out(p, "param", p.shape, p.dtype)
    cdef const void *gp = _in(g, "grad", p.shape, p.dtype)
    cdef void *bp = NULL
    if momentum != 0:
        bp = _out(buf, "momentum_buffer", p.shape, p.dtype)
    cdef size_t n = p.size
    with nogil:
        fr_sgd_update(dt, n, pp, gp, bp, lr, momentum, dampening, weight_decay, nesterov,
                      first_step)


def adam_update(p, g, exp_avg, exp_avg_sq, max_exp_avg_sq, double lr, double beta1,
                double beta2, double eps, double weight_decay, bint decoupled_weight_decay,
                long long step):
    """torch.optim.Adam's (AdamW's with decoupled_weight_decay) update of p
    and its moments, in place; max_exp_avg_sq is None unless amsgrad."""
    cdef fr_dtype dt = _real_dtype(p, "param")
    cdef void *pp = _out(p, "param", p.shape, p.dtype)
    cdef const void *gp = _in(g, "grad", p.shape, p.dtype)
    cdef void *mp = _out(exp_avg, "exp_avg", p.shape, p.dtype)
    cdef void *vp = _out(exp_avg_sq, "exp_avg_sq", p.shape, p.dtype)
    cdef void *vmp = NULL
    if max_exp_avg_sq is not None:
        vmp = _out(max_exp_avg_sq, "max_exp_avg_sq", p.shape, p.dtype)
    if step < 1:
        raise ValueError(f"step: expected >= 1, got {step}")
    cdef size_t n = p.size
    with nogil:
        fr_adam_update(dt, n, pp, gp, mp, vp, vmp, lr, beta1, beta2, eps, weight_decay,
                       decoupled_weight_decay, step)


def adagrad_update(p, g, state_sum, double lr, double lr_decay, double weight_decay,
                   double eps, long long step):
    """torch.optim.Adagrad's update of p and its accumulator, in place."""
    cdef fr_dtype dt = _real_dtype(p, "param")
    cdef void *pp = _out(p, "param", p.shape, p.dtype)
    cdef const void *gp = _in(g, "grad", p.shape, p.dtype)
    cdef void *sp = _out(state_sum, "sum", p.shape, p.dtype)
    if step < 1:
        raise ValueError(f"step: expected >= 1, got {step}")
    cdef size_t n = p.size
    with nogil:
        fr_adagrad_update(dt, n, pp, gp, sp, lr, lr_decay, weight_decay, eps, step)


def sum_squares(x):
    """sum(x**2) of a C-contiguous float array, accumulated in double."""
    cdef fr_dtype dt = _real_dtype(x, "x")
    cdef const void *xp = _in(x, "x", x.shape, x.dtype)
    cdef size_t n = x.size
    cdef double s
    with nogil:
        s = fr_sum_squares(dt, n, xp)
    return s


cdef void *_grad(object a, str name, tuple shape, object dtype) except? NULL:
    """Pointer to a writeable gradient accumulator, or NULL for None."""
    if a is None:
        return NULL
    return _out(a, name, shape, dtype)


def layer_backward(int cell, bint peephole, bint linear_before_reset,
                   w_ih, w_hh, w_peep, x, lengths, bint reverse, cache,
                   dy, dh_n, dc_n, dx, bint dx_accumulate, dh0, dc0,
                   gw_ih, gw_hh, gb_ih, gb_hh, gw_peep, work=None, int num_threads=1,
                   w_hr=None, gw_hr=None):
    """Backward of one layer-direction from the `cache` its training
    layer_forward filled (same weights, x, lengths, reverse). dy (T, B, R) may
    have spaced rows (one half of a bidirectional gradient), or None for zeros;
    dh_n (B, R), dc_n (B, H) or None. Writes dx (T, B, I) (rows may be spaced;
    added to with dx_accumulate), dh0 (B, R), dc0 (B, H) unless None, and ADDS
    the parameter gradients into gw_ih, gw_hh, gb_ih, gb_hh, gw_peep, gw_hr
    (each None to skip). `work`: optional 1-D scratch of fr_backward_work_size
    elements (by default one from the scratch pool)."""
    dtype, T_, B_, I_, H_, P_ = _sizes(cell, x, w_hh, w_hr)
    cdef int T = T_, B = B_, I = I_, H = H_, P = P_
    cdef fr_layer L = _layer(cell, I, H, peephole, linear_before_reset,
                             w_ih, w_hh, None, None, w_peep, dtype, P, w_hr)
    cdef int GH = fr_gates(L.cell) * H, R = fr_output_size(&L)
    cdef fr_sequence S
    S.T, S.B, S.reverse = T, B, reverse
    S.x = _in(x, "x", (T, B, I), dtype)
    S.x_stride = I
    S.h0 = S.c0 = NULL
    S.y = S.h_n = S.c_n = NULL
    S.y_stride = 0
    S.lengths = _lengths(lengths, B, T)
    S.cache = <void *>_in(cache, "cache", (fr_cache_size(&L, T, B),), dtype)
    if S.cache == NULL:
        raise ValueError("cache is required")
    cdef size_t n_work = fr_backward_work_size(&L, T, B)
    pooled = work is None
    if pooled:
        work = _take_scratch(n_work, dtype)
    elif not isinstance(work, np.ndarray) or work.ndim != 1 or work.shape[0] < n_work:
        raise ValueError(f"work: expected a 1-D array of at least {n_work} elements")
    S.work = _out(work, "work", work.shape, dtype)
    S.num_threads = num_threads

    cdef fr_sequence_grad D
    D.dy, D.dy_stride = NULL, 0
    if dy is not None:
        D.dy = _rows(dy, "dy", T, B, R, dtype, &D.dy_stride, False)
    D.dh_n = _in(dh_n, "dh_n", (B, R), dtype)
    D.dc_n = _in(dc_n, "dc_n", (B, H), dtype) if cell == FR_LSTM else NULL
    D.dx, D.dx_stride = NULL, 0
    if dx is not None:
        D.dx = _rows(dx, "dx", T, B, I, dtype, &D.dx_stride)
    D.dx_accumulate = dx_accumulate
    D.dh0 = _grad(dh0, "dh0", (B, R), dtype)
    D.dc0 = _grad(dc0, "dc0", (B, H), dtype) if cell == FR_LSTM else NULL

    cdef fr_grads G
    G.w_ih = _grad(gw_ih, "gw_ih", (GH, I), dtype)
    G.w_hh = _grad(gw_hh, "gw_hh", (GH, R), dtype)
    G.b_ih = _grad(gb_ih, "gb_ih", (GH,), dtype)
    G.b_hh = _grad(gb_hh, "gb_hh", (GH,), dtype)
    G.w_peep = _grad(gw_peep, "gw_peep", (3 * H,), dtype) if L.peephole else NULL
    G.w_hr = _grad(gw_hr, "gw_hr", (P, H), dtype) if P else NULL
    with nogil:
        fr_backward(&L, &S, &D, &G, &BLAS)
    if pooled:
        _give_scratch(work)


# ---------------------------------------------------------------------------
# Streaming (csrc/stream.inc): a stack of layers run one time step per call.
# fastrnn/stream.py makes Stream objects from a layer and documents what users
# see. The step path is kept to a few checks: an exact ndarray of the stream's
# dtype, shape and layout goes straight to C with the GIL released; anything
# else is converted once (errors name 'x_t', as the layers' do).
# ---------------------------------------------------------------------------

from cpython.mem cimport PyMem_Malloc, PyMem_Free
from libc.stdint cimport int64_t
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

cdef extern from "fastrnn.h" nogil:
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

cdef extern from "matmul.h" nogil:
    void fr_matmul_packed_f32(int M, int n0, int n1, int K, const float *A, int lda,
                              const float *packed, float beta, float *C, int ldc)

cdef extern from "fma_peak.h" nogil:
    double fr_fma_peak(double seconds)

cdef extern from *:
    """
    /* A stream's owner flag, taken by compare-and-swap: two threads never
     * both hold it, with or without the GIL. */
    static int stream_try_enter(int *busy)
    {
        int idle = 0;
        return __atomic_compare_exchange_n(busy, &idle, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
    }
    static void stream_leave(int *busy) { __atomic_store_n(busy, 0, __ATOMIC_RELEASE); }
    """
    int stream_try_enter(int *busy) nogil
    void stream_leave(int *busy) nogil

from ._validate import as_real_array, is_pair


cdef class Stream:
    """A stack of unidirectional layers run one time step per call, with its
    own state, output buffer and scratch (see fastrnn/stream.py: made by
    `layer.stream(batch_size)`)."""

    cdef fr_stream s
    cdef int busy                  # owner flag: one thread inside at a time
    cdef object memory             # the bytes fr_stream_init laid the stream out in
    cdef object weights            # the arrays the C layers point at, kept alive
    cdef object source             # () -> weights, as __init__ describes
    cdef object version_array      # the weights' version counter, or None
    cdef const int64_t *version    # its data, read before every step
    cdef int64_t seen              # the version the current weights are from
    cdef cnp.ndarray out2, out1    # the output buffer (B, R), and as (R,) when B == 1
    cdef object h_view, c_view     # (L, B, R), (L, B, H) views of the state inside `memory`
    cdef void *descr               # the dtype's descr (fast path: an identity check)
    cdef object descr_ref
    cdef int cell
    cdef bint peephole, linear_before_reset
    cdef readonly object dtype
    cdef readonly int num_layers, batch_size, input_size, hidden_size, proj_size
    cdef readonly int output_size  # R: proj_size, else hidden_size

    def __init__(self, int cell, bint peephole, bint linear_before_reset, int num_layers,
                 int batch_size, int input_size, int hidden_size, dtype, source,
                 version=None, int proj_size=0):
        """source(): per layer a tuple (w_ih, w_hh, b_ih, b_hh, w_peep,
        packed_ih, packed_hh, w_hr, packed_hr) of arrays (b_*, w_peep, w_hr,
        packed_* may be None; packed_* = pack(w_*): the packed kernel, None:
        BLAS; w_hr (proj_size, H) for a projected LSTM). version: a 1-element
        int64 array that changes whenever source() would return other weights
        (the stream then calls it again before its next step), or None."""
        if self.memory is not None:
            raise RuntimeError("Stream: already initialised")
        if num_layers < 1 or batch_size < 1 or input_size < 1 or hidden_size < 1:
            raise ValueError("num_layers, batch_size, input_size and hidden_size must be >= 1")
        self.cell, self.peephole = cell, peephole
        self.linear_before_reset = linear_before_reset
        self.num_layers, self.batch_size = num_layers, batch_size
        self.input_size, self.hidden_size = input_size, hidden_size
        self.proj_size = proj_size
        self.output_size = proj_size if proj_size > 0 else hidden_size
        self.dtype = np.dtype(dtype)
        self.descr_ref = self.dtype
        self.descr = <void *>self.dtype
        self.source = source
        if version is not None:
            _check(version, "version", (1,), np.int64)
            self.version_array = version
            self.version = <const int64_t *>cnp.PyArray_DATA(<cnp.ndarray>version)
            self.seen = self.version[0]
        self._set_weights(source(), True)
        cdef Py_ssize_t L = num_layers, B = batch_size, H = hidden_size, R = self.output_size
        base = <char *>cnp.PyArray_DATA(<cnp.ndarray>self.memory)
        off = <char *>self.s.h - base
        nbytes = L * B * R * self.dtype.itemsize
        self.h_view = self.memory[off:off + nbytes].view(self.dtype).reshape(L, B, R)
        if cell == FR_LSTM:
            off = <char *>self.s.c - base
            nbytes = L * B * H * self.dtype.itemsize
            self.c_view = self.memory[off:off + nbytes].view(self.dtype).reshape(L, B, H)
        self.out2 = np.zeros((B, R), self.dtype)
        self.out2.flags.writeable = False
        self.out1 = self.out2.reshape(R) if B == 1 else None

    cdef int _set_weights(self, weights, bint first) except -1:
        """The C layers from source()'s arrays: checked here, then handed to C."""
        cdef int L = self.num_layers, H = self.hidden_size, P = self.proj_size, I, GH, l, rc
        if len(weights) != L:
            raise ValueError(f"source: expected weights of {L} layers, got {len(weights)}")
        cdef fr_layer *layers = <fr_layer *>PyMem_Malloc(L * sizeof(fr_layer))
        if layers == NULL:
            raise MemoryError()
        try:
            for l in range(L):
                (w_ih, w_hh, b_ih, b_hh, w_peep, packed_ih, packed_hh, w_hr,
                 packed_hr) = weights[l]
                I = self.input_size if l == 0 else self.output_size
                layers[l] = _layer(self.cell, I, H, self.peephole, self.linear_before_reset,
                                   w_ih, w_hh, b_ih, b_hh, w_peep, self.dtype, P, w_hr)
                GH = fr_gates(layers[l].cell) * H
                layers[l].w_ih_packed = _in(packed_ih, "packed_ih", (fr_packed_size(GH, I),),
                                            self.dtype)
                layers[l].w_hh_packed = _in(packed_hh, "packed_hh",
                                            (fr_packed_size(GH, self.output_size),), self.dtype)
                if P:
                    layers[l].w_hr_packed = _in(packed_hr, "packed_hr",
                                                (fr_packed_size(P, H),), self.dtype)
            if first:
                self.memory = aligned_empty(fr_stream_memory_size(layers, L, self.batch_size),
                                            np.uint8)
                rc = fr_stream_init(&self.s, layers, L, self.batch_size,
                                    cnp.PyArray_DATA(<cnp.ndarray>self.memory), &BLAS)
            else:
                rc = fr_stream_set_weights(&self.s, layers)
            if rc:
                raise ValueError("source: the layers' weights do not stack into a stream")
            self.weights = weights
        finally:
            PyMem_Free(layers)
        return 0

    cdef int _enter(self, str what) except -1:
        """Take the owner flag, and the current weights if they changed."""
        if self.memory is None:
            raise RuntimeError(f"Stream.{what}: the stream was never initialised")
        if not stream_try_enter(&self.busy):
            raise RuntimeError(
                f"Stream.{what}: this stream is in use by another thread. A stream holds "
                "one session's state and serves one thread at a time: give each thread "
                "its own stream (layer.stream()), or serialise the calls with a lock")
        if self.version != NULL and self.version[0] != self.seen:
            try:
                seen = self.version[0]
                self._set_weights(self.source(), False)
                self.seen = seen
            except BaseException:
                stream_leave(&self.busy)
                raise
        return 0

    cdef tuple _frame(self, x_t):
        """x_t converted once (the slow path): (array, whether it was 1-D)."""
        x = as_real_array(x_t, "x_t", self.dtype)
        B, I = self.batch_size, self.input_size
        if x.shape == (B, I):
            return x, False
        if B == 1 and x.shape == (I,):
            return x, True
        raise ValueError(f"x_t: expected one frame of shape {(B, I)}"
                         + (f" or {(I,)}" if B == 1 else "") + f", got shape {x.shape}")

    cdef cnp.ndarray _out(self, out, tuple shape, str also=""):
        """out= checked: a writeable, C-contiguous array of the stream's dtype."""
        if not isinstance(out, np.ndarray):
            raise TypeError(f"out: expected a numpy array, got {type(out).__name__}")
        if out.dtype != self.dtype:
            raise TypeError(f"out: expected dtype {self.dtype}, got {out.dtype}")
        if out.shape != shape and not (also and out.shape == (self.output_size,)):
            raise ValueError(f"out: expected shape {shape}{also}, got {out.shape}")
        if not cnp.PyArray_ISCARRAY(<cnp.ndarray>out):
            raise ValueError("out: must be C-contiguous, aligned and writeable")
        return <cnp.ndarray>out

    cdef int _fast_rank(self, object a, Py_ssize_t n, bint writeable):
        """The step's fast path: 2 when `a` is exactly an ndarray of the
        stream's dtype, aligned and C-contiguous (and writeable if asked), of
        shape (B, n); 1 for shape (n,) when B == 1; else 0, and the slow path
        converts or explains. The rank is read before any dimension."""
        if not cnp.PyArray_CheckExact(a):
            return 0
        cdef cnp.ndarray arr = <cnp.ndarray>a
        if <void *>cnp.PyArray_DESCR(arr) != self.descr:
            return 0
        if not (cnp.PyArray_ISCARRAY(arr) if writeable else cnp.PyArray_ISCARRAY_RO(arr)):
            return 0
        cdef int nd = cnp.PyArray_NDIM(arr)
        cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(arr)
        if nd == 2 and dims[0] == self.batch_size and dims[1] == n:
            return 2
        if nd == 1 and self.batch_size == 1 and dims[0] == n:
            return 1
        return 0

    def step(self, x_t, out=None):
        """One time step of every layer: x_t (B, I), or (I,) when B == 1, in;
        the top layer's new h, (B, R) or (R,), out (R = output_size: H, or
        proj_size for a projected LSTM).

        Returns the stream's own output buffer, a read-only array that the
        next step overwrites (copy it to keep it), or `out` when given: a
        writeable C-contiguous array of the stream's dtype, shape (B, R) or,
        when B == 1, (R,)."""
        cdef cnp.ndarray x, y
        cdef bint flat
        cdef int rank = self._fast_rank(x_t, self.input_size, False)
        if rank:
            x, flat = <cnp.ndarray>x_t, rank == 1
        else:
            x, flat = self._frame(x_t)
        if out is None:
            y = self.out1 if flat else self.out2
        elif self._fast_rank(out, self.output_size, True):
            y = <cnp.ndarray>out
        else:
            y = self._out(out, (self.batch_size, self.output_size),
                          f" or {(self.output_size,)}" if self.batch_size == 1 else "")
        cdef const void *xp = cnp.PyArray_DATA(x)
        cdef void *yp = cnp.PyArray_DATA(y)
        self._enter("step")
        with nogil:
            fr_stream_step(&self.s, xp, yp)
        stream_leave(&self.busy)
        return y

    def run(self, x, out=None):
        """T time steps: x (T, B, I), or (T, I) when B == 1, in; the top
        layer's h at every step, (T, B, R) or (T, R), out (a new array, or
        `out`). Exactly T calls of step, in one call into C."""
        B, I, R = self.batch_size, self.input_size, self.output_size
        x = as_real_array(x, "x", self.dtype)
        if x.ndim == 3 and x.shape[1:] == (B, I):
            shape = (x.shape[0], B, R)
        elif x.ndim == 2 and B == 1 and x.shape[1] == I:
            shape = (x.shape[0], R)
        else:
            raise ValueError(f"x: expected a chunk of frames of shape (T, {B}, {I})"
                             + (f" or (T, {I})" if B == 1 else "") + f", got shape {x.shape}")
        if x.shape[0] > INT_MAX:
            raise ValueError(f"x: {x.shape[0]} time steps exceed {INT_MAX}")
        cdef int T = x.shape[0]
        cdef cnp.ndarray y = np.empty(shape, self.dtype) if out is None else self._out(out, shape)
        cdef const void *xp = cnp.PyArray_DATA(<cnp.ndarray>x)
        cdef void *yp = cnp.PyArray_DATA(y)
        self._enter("run")
        with nogil:
            fr_stream_run(&self.s, T, xp, yp)
        stream_leave(&self.busy)
        return y

    @property
    def state(self):
        """Every layer's state, shaped as the layer's final state: h (L, B, R),
        for LSTM (h, c) with c (L, B, H); copies. Set it with arrays of the
        same shapes (or (L, R), (L, H) when B == 1)."""
        self._enter("state")
        try:
            h = self.h_view.copy()
            c = None if self.c_view is None else self.c_view.copy()
        finally:
            stream_leave(&self.busy)
        return h if c is None else (h, c)

    @state.setter
    def state(self, value):
        R, H = self.output_size, self.hidden_size
        if self.c_view is not None:
            if not isinstance(value, (tuple, list)) or len(value) != 2:
                raise TypeError(f"state: expected a tuple (h, c), got {type(value).__name__}")
            h = self._state_part(value[0], "state[0] (h)", R)
            c = self._state_part(value[1], "state[1] (c)", H)
        else:
            try:
                h, c = self._state_part(value, "state (h)", R), None
            except (TypeError, ValueError):
                if is_pair(value):
                    raise TypeError("state: expected one array h, got a pair") from None
                raise
        self._enter("state")
        try:
            self.h_view[...] = h
            if c is not None:
                self.c_view[...] = c
        finally:
            stream_leave(&self.busy)

    cdef object _state_part(self, a, str name, int H):
        L, B = self.num_layers, self.batch_size
        arr = as_real_array(a, name, self.dtype)
        if arr.shape == (L, B, H) or (B == 1 and arr.shape == (L, H)):
            return arr.reshape(L, B, H)
        raise ValueError(f"{name}: expected shape {(L, B, H)}"
                         + (f" or {(L, H)}" if B == 1 else "") + f", got {arr.shape}")

    def reset(self, rows=None):
        """Zero the state of every layer: all of it, or of the batch rows
        `rows` (an int, a sequence of ints, or a boolean mask of length B),
        e.g. a slot that starts a new utterance."""
        cdef int B = self.batch_size, r
        if rows is None:
            picked = [-1]
        else:
            idx = np.asarray(rows)
            if idx.dtype == np.bool_:
                if idx.shape != (B,):
                    raise ValueError(f"rows: expected a boolean mask of shape {(B,)}, got {idx.shape}")
                picked = np.flatnonzero(idx).tolist()
            elif idx.dtype.kind in "iu" and idx.ndim <= 1:
                picked = idx.reshape(-1).tolist()
                bad = [k for k in picked if not -B <= k < B]
                if bad:
                    raise ValueError(f"rows: expected row numbers in [0, {B}), got {bad}")
                picked = [k % B for k in picked]
            else:
                raise TypeError(f"rows: expected an int, a sequence of ints or a boolean mask, "
                                f"got {rows!r}")
        self._enter("reset")
        for r in picked:
            fr_stream_reset(&self.s, r)
        stream_leave(&self.busy)

    def __repr__(self):
        names = {FR_RNN_TANH: "RNN(tanh)", FR_RNN_RELU: "RNN(relu)", FR_LSTM: "LSTM", FR_GRU: "GRU"}
        return (f"<fastrnn Stream {names[self.cell]} {self.num_layers} layer(s), batch "
                f"{self.batch_size}, {self.input_size} -> {self.hidden_size}"
                + (f" -> proj {self.proj_size}" if self.proj_size else "") + f", {self.dtype}>")


cdef double _now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


def time_stream_steps(Stream s, x_t, int reps):
    """Seconds per fr_stream_step of `s` on the frame x_t (B, I), timed in C
    over `reps` steps (benchmarks: the step without Python)."""
    _check(x_t, "x_t", (s.batch_size, s.input_size), s.dtype)
    cdef const void *xp = cnp.PyArray_DATA(<cnp.ndarray>x_t)
    cdef double t0, t1
    s._enter("step")
    with nogil:
        t0 = _now()
        for _ in range(reps):
            fr_stream_step(&s.s, xp, NULL)
        t1 = _now()
    stream_leave(&s.busy)
    return (t1 - t0) / max(reps, 1)


def time_product(w, packed, int M, int reps):
    """Seconds per float32 product C (M, N) = A W^T, w (N, K), timed in C over
    `reps` calls: with the packed SIMD kernel on `packed` (= pack(w)), or with
    BLAS sgemm (SciPy's) when packed is None (benchmarks)."""
    if not isinstance(w, np.ndarray) or w.ndim != 2:
        raise ValueError("w: expected a 2-D numpy array (N, K)")
    _check(w, "w", w.shape, np.float32)
    cdef int N = w.shape[0], K = w.shape[1]
    cdef const float *W = <const float *>cnp.PyArray_DATA(<cnp.ndarray>w)
    cdef const float *P = <const float *>_in(packed, "packed", (fr_packed_size(N, K),), np.float32)
    A = np.random.default_rng(0).standard_normal((M, K)).astype(np.float32)
    C = np.zeros((M, N), np.float32)
    cdef float *a = <float *>cnp.PyArray_DATA(<cnp.ndarray>A)
    cdef float *c = <float *>cnp.PyArray_DATA(<cnp.ndarray>C)
    cdef float one = 1, zero = 0
    cdef char tr = b'T', nt = b'N'
    cdef double t0, t1
    with nogil:
        t0 = _now()
        for _ in range(reps):
            if P != NULL:
                fr_matmul_packed_f32(M, 0, N, K, a, K, P, 0, c, N)
            else:
                sgemm(&tr, &nt, &N, &M, &K, &one, <float *>W, &K, a, &K, &zero, c, &N)
        t1 = _now()
    return (t1 - t0) / max(reps, 1)


def fma_peak(double seconds=0.2):
    """FLOP/s of float32 multiply-adds on one core (the calling thread) in the
    SIMD code of simd_level(): the best of a few runs of a register-only loop,
    about `seconds` in all (fma_peak.h; benchmarks: what a kernel's GFLOP/s
    is a fraction of)."""
    if not 0 < seconds < float("inf"):
        raise ValueError(f"seconds: expected a positive finite number, got {seconds!r}")
    cdef double flops
    with nogil:
        flops = fr_fma_peak(seconds)
    return flops
