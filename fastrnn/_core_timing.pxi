# Part of fastrnn/_core.pyx (included there): timers for the benchmarks,
# each loop timed in C so that no Python overhead is in what it measures.

from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC


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
