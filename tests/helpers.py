"""Shared helpers for the fastrnn tests: parameter names, random weights,
error measures and the tolerances the suite uses."""

import os
import subprocess
import sys

import numpy as np

from reference import num_gates

# Relative error bounds (max|a - b| / max|b|) and elementwise allclose
# tolerances, per dtype of the computation under test.
REL_TOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}
ALLCLOSE = {
    np.dtype(np.float32): dict(rtol=1e-4, atol=1e-5),
    np.dtype(np.float64): dict(rtol=1e-10, atol=1e-12),
}


def rel_err(actual, expected):
    """max|actual - expected| / max(max|expected|, tiny)."""
    a = np.asarray(actual, dtype=np.float64)
    b = np.asarray(expected, dtype=np.float64)
    assert a.shape == b.shape, f"shape {a.shape} != expected {b.shape}"
    if a.size == 0:
        return 0.0
    scale = max(float(np.max(np.abs(b))), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(a - b))) / scale


def numeric_grad(f, a, eps=1e-6):
    """Central differences of the scalar f() w.r.t. the array a (perturbed in
    place, restored; C-contiguous, so the flat view writes through)."""
    assert a.flags.c_contiguous
    g = np.zeros_like(a)
    flat, gflat = a.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        v = flat[i]
        flat[i] = v + eps
        fp = f()
        flat[i] = v - eps
        fm = f()
        flat[i] = v
        gflat[i] = (fp - fm) / (2 * eps)
    return g


def assert_close(actual, expected, dtype, what="", rel=None):
    """Shape, finiteness, relative error and elementwise allclose."""
    dtype = np.dtype(dtype)
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, (
        f"{what}: shape {actual.shape} != expected {expected.shape}"
    )
    assert np.all(np.isfinite(actual)), f"{what}: non-finite values"
    bound = REL_TOL[dtype] if rel is None else rel
    err = rel_err(actual, expected)
    assert err < bound, f"{what}: relative error {err:.3g} >= {bound:.1g}"
    tol = dict(ALLCLOSE[dtype])
    if rel is not None:
        tol = dict(rtol=max(tol["rtol"], 10 * rel), atol=max(tol["atol"], rel))
    np.testing.assert_allclose(
        np.asarray(actual, np.float64), np.asarray(expected, np.float64), err_msg=what, **tol
    )


def layer_param_shapes(
    mode, input_size, hidden_size, num_layers=1, bidirectional=False, bias=True, peephole=False
):
    """Ordered {name: shape} of a layer's state dict (PyTorch's order, with
    weight_peep_l{k}[_reverse] after the four PyTorch parameters of its
    layer-direction)."""
    G, H = num_gates(mode), hidden_size
    D = 2 if bidirectional else 1
    shapes = {}
    for k in range(num_layers):
        in_k = input_size if k == 0 else D * H
        for d in range(D):
            sfx = f"_l{k}" + ("_reverse" if d == 1 else "")
            shapes["weight_ih" + sfx] = (G * H, in_k)
            shapes["weight_hh" + sfx] = (G * H, H)
            if bias:
                shapes["bias_ih" + sfx] = (G * H,)
                shapes["bias_hh" + sfx] = (G * H,)
            if peephole:
                shapes["weight_peep" + sfx] = (3 * H,)
    return shapes


def cell_param_shapes(mode, input_size, hidden_size, bias=True, peephole=False):
    G, H = num_gates(mode), hidden_size
    shapes = {"weight_ih": (G * H, input_size), "weight_hh": (G * H, H)}
    if bias:
        shapes["bias_ih"] = (G * H,)
        shapes["bias_hh"] = (G * H,)
    if peephole:
        shapes["weight_peep"] = (3 * H,)
    return shapes


def random_params(shapes, rng, scale, dtype=np.float64):
    """Uniform(-scale, scale) arrays for an ordered {name: shape}."""
    return {
        name: rng.uniform(-scale, scale, size=shape).astype(dtype) for name, shape in shapes.items()
    }


def random_lengths(rng, B, T, allow_zero=True):
    """B lengths in [0 or 1, T], unsorted, with at least one full length when
    B > 1 (so the output keeps T steps in PyTorch's pad_packed too)."""
    low = 0 if allow_zero else 1
    lengths = rng.integers(low, T + 1, size=B)
    if B > 1:
        lengths[rng.integers(B)] = T
    return lengths.astype(np.int64)


# --------------------------------------------------------------------------
# the six cell kinds fastrnn offers, and how to build them
# --------------------------------------------------------------------------


class Kind:
    """One kind of recurrence: the reference's mode plus the option that
    selects it (nonlinearity, peephole, linear_before_reset)."""

    def __init__(self, name, mode, nonlinearity="tanh", peephole=False, linear_before_reset=True):
        self.name = name
        self.mode = mode
        self.nonlinearity = nonlinearity
        self.peephole = peephole
        self.linear_before_reset = linear_before_reset

    def __repr__(self):
        return self.name

    @property
    def ref_kwargs(self):
        """Keyword arguments for reference.layer_forward / cell_forward."""
        return dict(nonlinearity=self.nonlinearity, linear_before_reset=self.linear_before_reset)

    def option_kwargs(self):
        """Constructor keyword arguments that select this kind in fastrnn."""
        if self.mode == "rnn":
            return dict(nonlinearity=self.nonlinearity)
        if self.mode == "lstm":
            return dict(peephole=self.peephole)
        return dict(linear_before_reset=self.linear_before_reset)

    def layer(self, input_size, hidden_size, **kw):
        import fastrnn as fr

        cls = {"rnn": fr.RNN, "lstm": fr.LSTM, "gru": fr.GRU}[self.mode]
        return cls(input_size, hidden_size, **self.option_kwargs(), **kw)

    def cell(self, input_size, hidden_size, **kw):
        import fastrnn as fr

        cls = {"rnn": fr.RNNCell, "lstm": fr.LSTMCell, "gru": fr.GRUCell}[self.mode]
        return cls(input_size, hidden_size, **self.option_kwargs(), **kw)

    def layer_shapes(self, input_size, hidden_size, num_layers=1, bidirectional=False, bias=True):
        return layer_param_shapes(
            self.mode, input_size, hidden_size, num_layers, bidirectional, bias, self.peephole
        )

    def cell_shapes(self, input_size, hidden_size, bias=True):
        return cell_param_shapes(self.mode, input_size, hidden_size, bias, self.peephole)


KINDS = [
    Kind("rnn_tanh", "rnn", nonlinearity="tanh"),
    Kind("rnn_relu", "rnn", nonlinearity="relu"),
    Kind("lstm", "lstm"),
    Kind("lstm_peephole", "lstm", peephole=True),
    Kind("gru", "gru", linear_before_reset=True),
    Kind("gru_original", "gru", linear_before_reset=False),
]
KIND_IDS = [k.name for k in KINDS]
# the kinds PyTorch has
TORCH_KINDS = [k for k in KINDS if k.name in ("rnn_tanh", "rnn_relu", "lstm", "gru")]
DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]


def random_state(rng, mode, shape, dtype=np.float64):
    """An initial state of the given shape: h, or (h, c) for the LSTM."""
    h = rng.standard_normal(shape).astype(dtype)
    if mode == "lstm":
        return h, rng.standard_normal(shape).astype(dtype)
    return h


def split_state(mode, state):
    """[h] or [h, c] from a layer's or cell's returned state."""
    if mode == "lstm":
        h, c = state
        return [h, c]
    return [state]


def run_fastrnn(isa, code, *args, env=()):
    """Run `code` in a child Python after `import fastrnn as fr` with
    FASTRNN_ISA=isa (None: unset) and the variables `env`, the import's
    RuntimeWarnings recorded in `caught`; returns its stdout."""
    env = {**os.environ, **dict(env)}
    env.pop("FASTRNN_ISA", None)
    if isa is not None:
        env["FASTRNN_ISA"] = isa
    prelude = (
        "import warnings\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always', RuntimeWarning)\n"
        "    import fastrnn as fr\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", prelude + code, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout
