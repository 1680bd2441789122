# Part of fastrnn/_core.pyx (included there): one layer in one direction over
# a sequence, forward and backward, and the weight packing its products use.


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


cdef const int *_lengths(object lengths, int B, int T) except? NULL:
    """Pointer to int32 lengths (B,), each in [0, T], or NULL for None."""
    if lengths is None:
        return NULL
    _check(lengths, "lengths", (B,), np.int32)
    if B and (lengths.min() < 0 or lengths.max() > T):
        raise ValueError(f"lengths: expected values in [0, {T}]")
    return <const int *>cnp.PyArray_DATA(<cnp.ndarray>lengths)


cdef void *_grad(object a, str name, tuple shape, object dtype) except? NULL:
    """Pointer to a writeable gradient accumulator, or NULL for None."""
    if a is None:
        return NULL
    return _out(a, name, shape, dtype)


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
