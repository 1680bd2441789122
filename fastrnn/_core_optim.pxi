# Part of fastrnn/_core.pyx (included there): the optimizer updates of
# csrc/optim.c, fused, in place, GIL released. Used by fastrnn/optim.py; each
# function checks that every buffer is a C-contiguous array of the
# parameter's shape and dtype before C sees it.


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
