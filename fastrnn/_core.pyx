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
    int fr_gates(fr_cell cell)
    size_t fr_work_size(const fr_layer *L, int T, int B)
    size_t fr_cache_size(const fr_layer *L, int T, int B)
    void fr_forward(const fr_layer *L, const fr_sequence *seq, const fr_blas *blas)

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


cdef _check(object a, str name, tuple shape, object dtype):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {np.dtype(dtype)}, got {a.dtype}")
    if a.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {a.shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name}: must be C-contiguous")


cdef void *_rows(object a, str name, int T, int B, int n, object dtype, ptrdiff_t *stride) except NULL:
    """A writeable (T, B, n) array whose rows (t, b) lie at (t*B + b) * stride
    elements: e.g. one direction's half of a bidirectional output."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {np.dtype(dtype)}, got {a.dtype}")
    if a.shape != (T, B, n):
        raise ValueError(f"{name}: expected shape {(T, B, n)}, got {a.shape}")
    if not (<cnp.ndarray>a).flags.writeable:
        raise ValueError(f"{name}: must be writeable")
    cdef Py_ssize_t item = a.itemsize
    s0, s1, s2 = a.strides
    r = s1 if B > 1 else (s0 if T > 1 else n * item)
    if (r % item or r < n * item or (n > 1 and s2 != item)
            or (B > 1 and T > 1 and s0 != B * s1)):
        raise ValueError(f"{name}: rows must be evenly spaced with unit inner stride")
    stride[0] = r // item
    return cnp.PyArray_DATA(<cnp.ndarray>a)


cdef fr_layer _layer(int cell, int I, int H, bint peephole, bint lbr, w_ih, w_hh, b_ih, b_hh,
                     w_peep, dtype) except *:
    cdef fr_layer L
    if cell not in (FR_RNN_TANH, FR_RNN_RELU, FR_LSTM, FR_GRU):
        raise ValueError(f"cell: unknown cell type {cell}")
    if I < 1 or H < 1:
        raise ValueError(f"input_size and hidden_size must be >= 1, got {I} and {H}")
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
    L.w_ih = _in(w_ih, "w_ih", (GH, I), dtype)
    L.w_hh = _in(w_hh, "w_hh", (GH, H), dtype)
    if L.w_ih == NULL or L.w_hh == NULL:
        raise ValueError("w_ih and w_hh are required")
    L.b_ih = _in(b_ih, "b_ih", (GH,), dtype)
    L.b_hh = _in(b_hh, "b_hh", (GH,), dtype)
    L.w_peep = _in(w_peep, "w_peep", (3 * H,), dtype) if L.peephole else NULL
    if L.peephole and L.w_peep == NULL:
        raise ValueError("w_peep is required for a peephole LSTM")
    return L


def cache_size(int cell, int H, int T, int B):
    """Elements a training forward keeps for backward (see fastrnn.h)."""
    cdef fr_layer L
    L.cell = <fr_cell>cell
    L.hidden_size = H
    return fr_cache_size(&L, T, B)


def layer_forward(int cell, bint peephole, bint linear_before_reset,
                  w_ih, w_hh, b_ih, b_hh, w_peep,
                  x, h0, c0, lengths, bint reverse, y, h_n, c_n, cache=None):
    """One layer in one direction over x (T, B, I): writes y (T, B, H) (rows
    may be spaced, e.g. one half of a bidirectional output), h_n and c_n
    (B, H); fills `cache` (1-D, cache_size elements) when given."""
    if not isinstance(x, np.ndarray) or x.ndim != 3:
        raise ValueError("x: expected a 3-D numpy array (T, B, I)")
    dtype = x.dtype
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2]
    if <Py_ssize_t>T * B > INT_MAX:
        raise ValueError(f"x: T * B = {T * B} rows exceed {INT_MAX}")
    cdef int H = w_hh.shape[1] if isinstance(w_hh, np.ndarray) and w_hh.ndim == 2 else 0
    cdef fr_layer L = _layer(cell, I, H, peephole, linear_before_reset,
                             w_ih, w_hh, b_ih, b_hh, w_peep, dtype)
    cdef fr_sequence S
    S.T, S.B, S.reverse = T, B, reverse
    S.x = _in(x, "x", (T, B, I), dtype)
    S.x_stride = I
    S.h0 = _in(h0, "h0", (B, H), dtype)
    S.c0 = _in(c0, "c0", (B, H), dtype) if cell == FR_LSTM else NULL
    S.lengths = NULL
    if lengths is not None:
        _check(lengths, "lengths", (B,), np.int32)
        if B and (lengths.min() < 0 or lengths.max() > T):
            raise ValueError(f"lengths: expected values in [0, {T}]")
        S.lengths = <const int *>cnp.PyArray_DATA(<cnp.ndarray>lengths)
    S.y = _rows(y, "y", T, B, H, dtype, &S.y_stride)
    S.h_n = _out(h_n, "h_n", (B, H), dtype)
    S.c_n = _out(c_n, "c_n", (B, H), dtype) if cell == FR_LSTM else NULL
    S.cache = NULL
    if cache is not None:
        S.cache = _out(cache, "cache", (fr_cache_size(&L, T, B),), dtype)
    work = np.empty(fr_work_size(&L, T, B), dtype)
    S.work = cnp.PyArray_DATA(<cnp.ndarray>work)
    with nogil:
        fr_forward(&L, &S, &BLAS)
