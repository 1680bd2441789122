# cython: language_level=3, boundscheck=False, wraparound=False
"""The one binding between Python and csrc/: checks what it is handed, takes
raw pointers, releases the GIL and calls C. No math here.

The public layers validate user input with friendly messages first; the
checks of this binding are the last line that keeps C inside its buffers
whoever calls it.

Layout: this file holds what every part shares (the C API cimported from
cfastrnn.pxd, BLAS, the argument checks) and includes one file per job:

    _core_runtime.pxi   the SIMD level and the OpenMP thread limit
    _core_layers.pxi    a layer-direction over a sequence: pack, cache_size,
                        layer_forward, layer_backward
    _core_optim.pxi     the fused optimizer updates and sum_squares
    _core_stream.pxi    class Stream: a stack of layers, one time step a call
    _core_timing.pxi    timers for the benchmarks, run in C

The parts are included, not built as extension modules of their own, because
each extension module links its own copy of the C core, and the C core keeps
process-wide state (the SIMD level that FASTRNN_ISA or set_simd_level
chooses, the cache sizes read once): with two copies, a level set through one
module would not apply to the code of the other."""

import numpy as np
cimport numpy as cnp
from scipy.linalg.cython_blas cimport sgemm, dgemm

from .cfastrnn cimport *

cnp.import_array()

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


def aligned_empty(Py_ssize_t n, dtype):
    """An uninitialised 1-D array of n elements starting on a 64-byte boundary."""
    itemsize = np.dtype(dtype).itemsize
    cdef cnp.ndarray raw = np.empty(n + 64 // itemsize, dtype)
    skip = (-<size_t>cnp.PyArray_DATA(raw) % 64) // itemsize
    return raw[skip:skip + n]


include "_core_runtime.pxi"
include "_core_layers.pxi"
include "_core_optim.pxi"
include "_core_stream.pxi"
include "_core_timing.pxi"
