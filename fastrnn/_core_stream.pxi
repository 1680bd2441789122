# Part of fastrnn/_core.pyx (included there): a stack of layers run one time
# step per call (csrc/stream.inc). fastrnn/stream.py makes Stream objects
# from a layer and documents what users see. The step path is kept to a few
# checks: an exact ndarray of the stream's dtype, shape and layout goes
# straight to C with the GIL released; anything else is converted once
# (errors name 'x_t', as the layers' do).

from cpython.mem cimport PyMem_Malloc, PyMem_Free
from libc.stdint cimport int64_t

from ._validate import as_real_array, is_pair

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
