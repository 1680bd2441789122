"""Every array argument of the public surface at every rank from 0 to 4.

Each example takes one valid call (a layer, its training forward/backward, a
cell, a stream's step, run, out= and state, load_state_dict, an optimizer
step and its load_state_dict) and replaces ONE of its array arguments by an
array of rank 0 to 4 whose dimensions, aligned from the last, are each one of
{0, 1, the expected size, the expected size + 1}, in the dtypes and layouts
of test_fuzz.py. A 0-d `out=` once killed the interpreter: a fast path read
the last dimension of an array that has none.

The test decides from the documented API whether the call is valid:
- an input is converted (any real dtype, any layout): the call is valid
  exactly when the converted array has a shape the API documents;
- an `out=` buffer, a parameter updated in place or its gradient is used as it
  is: valid exactly when it is an ndarray of the right dtype and shape,
  C-contiguous and (where written) writeable.
A valid call gives the documented result: the float64 reference's for layers,
cells and streams, and otherwise the same call's with the argument given in
its canonical form. An invalid one raises ValueError or TypeError with a
message and changes nothing. No other outcome.
"""

import numpy as np
from hypothesis import event, given, settings
from hypothesis import strategies as st
from test_fuzz import LAYOUTS, SETTINGS, X_DTYPES, as_used, call, values, variant

import fastrnn as fr
from helpers import ALLCLOSE, KINDS, split_state
from reference import cell_forward, layer_forward

FLOATS = (np.float32, np.float64)


# --------------------------------------------------------------------------
# drawing one array argument
# --------------------------------------------------------------------------


@st.composite
def shapes_near(draw, expected):
    """A shape of rank 0..4 (a quarter of the time exactly `expected`): each
    dimension, counted from the last, one of {0, 1, e, e + 1} where e is the
    expected size there (past the expected rank: one of the expected sizes)."""
    if draw(st.integers(0, 3)) == 0:
        return tuple(expected)
    sizes = sorted(set(expected)) or [2]
    dims = []
    for j in range(draw(st.integers(0, 4))):
        e = expected[-1 - j] if j < len(expected) else draw(st.sampled_from(sizes))
        dims.append(draw(st.sampled_from(sorted({0, 1, e, e + 1}))))
    return tuple(reversed(dims))


@st.composite
def arrays_near(draw, expected, dtypes=X_DTYPES, layouts=LAYOUTS, ints=None):
    """(what the user hands in, its values as float64 or None, dtype_ok):
    values of a shape near `expected` in one of `dtypes` and `layouts`; with
    `ints` = n, integers in [0, n] (lengths)."""
    shape = draw(shapes_near(expected))
    dtype, dtype_ok = draw(st.sampled_from(dtypes))
    layout = draw(st.sampled_from(layouts))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    raw = (
        rng.integers(0, ints + 1, shape).astype(dtype)
        if ints is not None
        else values(rng, shape, dtype)
    )
    return variant(raw, dtype, layout), raw, dtype_ok


def assert_close(actual, expected, dtype, what):
    """Elementwise, to the suite's tolerances (not relative to the largest
    value: with H = 1 one output may be a difference of larger terms)."""
    assert np.shape(actual) == np.shape(expected), what
    np.testing.assert_allclose(
        np.asarray(actual, np.float64), expected, err_msg=what, **ALLCLOSE[np.dtype(dtype)]
    )


def seen_shape(a):
    """The shape the API sees once it has converted `a` (nested lists lose
    the dimensions after an empty one)."""
    return np.shape(a) if isinstance(a, np.ndarray) else np.asarray(a).shape


def expect(valid, fn, *args, **kw):
    """call() that also records which way the example went."""
    event(f"valid={valid}")
    return call(fn, *args, valid=valid, **kw)


def done(fn, *args, **kw):
    """fn(*args) for a call that returns None: True once it has run."""
    fn(*args, **kw)
    return True


def input_ok(a, dtype_ok, shapes):
    """An input's call is valid when its values are real and, converted, of
    one of `shapes`."""
    return dtype_ok and seen_shape(a) in shapes


def state_with(lstm, first, new, h=None, c=None):
    """A state with one part `new`: (new, c) or (h, new) for an LSTM (first:
    new is h), `new` itself for the kinds with one state array."""
    if not lstm:
        return new
    return (new, c) if first else (h, new)


def buffer_ok(a, dtype, shapes, writeable=True):
    """An array used in place: exactly `dtype`, one of `shapes`, C-contiguous
    (and writeable)."""
    return (
        isinstance(a, np.ndarray)
        and a.dtype == dtype
        and a.shape in shapes
        and a.flags.c_contiguous
        and a.flags.aligned
        and (a.flags.writeable or not writeable)
    )


# --------------------------------------------------------------------------
# layers: inference and training
# --------------------------------------------------------------------------

LAYER_ARGS = ["x", "h0", "c0", "lengths", "dy", "dh_n", "dc_n", "weight"]


@st.composite
def small_layers(draw):
    """A kind, dtype and small layer: H (or proj_size) of 1 and 2 included."""
    kind = draw(st.sampled_from(KINDS))
    dtype = draw(st.sampled_from(FLOATS))
    H = draw(st.integers(1, 3))
    kw = dict(bidirectional=draw(st.booleans()))
    if kind.name == "lstm" and H > 1 and draw(st.booleans()):
        kw["proj_size"] = draw(st.integers(1, H - 1))
    layer = kind.layer(draw(st.integers(1, 2)), H, dtype=dtype, seed=draw(st.integers(0, 99)), **kw)
    return kind, np.dtype(dtype), layer


def ref_forward(kind, layer, x, state=None, lengths=None):
    """The float64 reference's (y, state). It has no projection: a projected
    LSTM (test_projection.py checks it) is held to its own call with the
    arguments in canonical form."""
    if layer.proj_size:
        st_ = None if state is None else tuple(np.asarray(a, layer.dtype) for a in state)
        return layer(np.asarray(x, layer.dtype), st_, lengths=lengths)
    return layer_forward(kind.mode, layer.state_dict(), x, state, lengths, **kind.ref_kwargs)


@settings(max_examples=700, **SETTINGS)
@given(small_layers(), st.sampled_from(LAYER_ARGS), st.integers(1, 3), st.integers(1, 2), st.data())
def test_layer_arguments(made, arg, T, B, data):
    kind, dtype, layer = made
    lstm = kind.mode == "lstm"
    if not lstm:
        arg = {"c0": "h0", "dc_n": "dh_n"}.get(arg, arg)
    I, H, R = layer.input_size, layer.hidden_size, layer.output_size
    LD = layer.num_directions  # one layer
    rng = np.random.default_rng(T * 10 + B)
    x = rng.standard_normal((T, B, I))
    h0, c0 = rng.standard_normal((LD, B, R)), rng.standard_normal((LD, B, H))

    if arg == "x":
        a, raw, ok = data.draw(arrays_near((T, B, I)))
        shape = seen_shape(a)
        valid = ok and len(shape) in (2, 3) and shape[-1] == I
        got = expect(valid, layer, a)
        if got is None:
            return
        x64 = as_used(raw, dtype)
        want = ref_forward(kind, layer, x64 if x64.ndim == 3 else x64[:, None])
        assert_close(got[0].reshape(want[0].shape), want[0], dtype, "y")
        return

    if arg in ("h0", "c0"):
        a, raw, ok = data.draw(arrays_near((LD, B, R) if arg == "h0" else (LD, B, H)))
        valid = input_ok(a, ok, [(LD, B, R) if arg == "h0" else (LD, B, H)])
        got = expect(valid, layer, x, state_with(lstm, arg == "h0", a, h0, c0))
        if got is None:
            return
        ref_state = state_with(
            lstm, arg == "h0", as_used(raw, dtype), as_used(h0, dtype), as_used(c0, dtype)
        )
        want = ref_forward(kind, layer, as_used(x, dtype), ref_state)
        assert_close(got[0], want[0], dtype, "y")
        return

    if arg == "lengths":
        a, raw, ok = data.draw(arrays_near((B,), ints=T))
        seen = np.asarray(a)
        valid = seen.dtype.kind in "iu" and seen.shape == (B,)
        if seen.dtype.kind == "f" and seen.size == 0:
            valid = None  # an empty float array is an empty list
        got = expect(valid, layer, x, None, lengths=a)
        if got is None or valid is None:
            return
        want = ref_forward(kind, layer, as_used(x, dtype), None, np.asarray(raw, np.int64))
        assert_close(got[0], want[0], dtype, "y")
        return

    if arg == "weight":
        name = data.draw(st.sampled_from(sorted(layer.state_dict())))
        old = layer.state_dict()
        a, raw, ok = data.draw(arrays_near(old[name].shape))
        valid = input_ok(a, ok, [old[name].shape])
        expect(valid, layer.load_state_dict, {**old, name: a})
        new = layer.state_dict()
        for k in old:
            if valid and k == name:
                np.testing.assert_array_equal(new[k], as_used(raw, dtype))
            else:
                np.testing.assert_array_equal(new[k], old[k])
        return

    # the backward's arguments
    y, s, cache = layer.forward(x)
    if arg == "dy":
        a, raw, ok = data.draw(arrays_near(y.shape))
        valid = input_ok(a, ok, [y.shape])
        dy, dstate = a, None
    else:
        parts = split_state(kind.mode, s)
        part = parts[0] if arg == "dh_n" else parts[1]
        a, raw, ok = data.draw(arrays_near(part.shape))
        valid = input_ok(a, ok, [part.shape])
        dy, dstate = np.zeros(y.shape), state_with(lstm, arg == "dh_n", a)
    got = expect(valid, layer.backward, dy, cache, dstate)
    grads = {k: g.copy() for k, g in layer.grads.items()}
    if got is None:
        assert all(not g.any() for g in grads.values()), "a refused backward added gradients"
        return
    # the same backward with the argument in its canonical form
    layer.zero_grad()
    canon = as_used(raw, dtype).astype(dtype)
    if arg == "dy":
        want = layer.backward(canon, cache)
    else:
        want = layer.backward(dy, cache, state_with(lstm, arg == "dh_n", canon))
    np.testing.assert_array_equal(got[0], want[0])
    for k, g in layer.grads.items():
        np.testing.assert_array_equal(grads[k], g)


# --------------------------------------------------------------------------
# cells
# --------------------------------------------------------------------------


@settings(max_examples=400, **SETTINGS)
@given(
    st.sampled_from(KINDS),
    st.sampled_from(FLOATS),
    st.integers(1, 2),
    st.integers(1, 3),
    st.integers(1, 2),
    st.sampled_from(["x", "h", "c", "dh", "dc"]),
    st.data(),
)
def test_cell_arguments(kind, dtype, I, H, B, arg, data):
    dtype = np.dtype(dtype)
    lstm = kind.mode == "lstm"
    if not lstm and arg in ("c", "dc"):
        arg = arg[:-1] + "h"
    cell = kind.cell(I, H, dtype=dtype, seed=I + H)
    rng = np.random.default_rng(B)
    x, h, c = rng.standard_normal((B, I)), rng.standard_normal((B, H)), rng.standard_normal((B, H))

    if arg == "x":
        a, raw, ok = data.draw(arrays_near((B, I)))
        shape = seen_shape(a)
        valid = ok and len(shape) in (1, 2) and shape[-1] == I
        got = expect(valid, cell, a)
        if got is None:
            return
        x64 = as_used(raw, dtype).reshape(-1, I)
        want = cell_forward(kind.mode, cell.state_dict(), x64, None, **kind.ref_kwargs)
        for p, w in zip(split_state(kind.mode, got), split_state(kind.mode, want)):
            assert_close(p.reshape(w.shape), w, dtype, "cell")
        return

    if arg in ("h", "c"):
        a, raw, ok = data.draw(arrays_near((B, H)))
        valid = input_ok(a, ok, [(B, H)])
        got = expect(valid, cell, x, state_with(lstm, arg == "h", a, h, c))
        if got is None:
            return
        ref_state = state_with(
            lstm, arg == "h", as_used(raw, dtype), as_used(h, dtype), as_used(c, dtype)
        )
        want = cell_forward(
            kind.mode, cell.state_dict(), as_used(x, dtype), ref_state, **kind.ref_kwargs
        )
        for p, w in zip(split_state(kind.mode, got), split_state(kind.mode, want)):
            assert_close(p, w, dtype, "cell")
        return

    new, cache = cell.forward(x)
    a, raw, ok = data.draw(arrays_near((B, H)))
    valid = input_ok(a, ok, [(B, H)])
    got = expect(valid, cell.backward, state_with(lstm, arg == "dh", a), cache)
    grads = {k: g.copy() for k, g in cell.grads.items()}
    if got is None:
        assert all(not g.any() for g in grads.values()), "a refused backward added gradients"
        return
    cell.zero_grad()
    canon = as_used(raw, dtype).astype(dtype)
    want = cell.backward(state_with(lstm, arg == "dh", canon), cache)
    np.testing.assert_array_equal(got[0], want[0])
    for k, g in cell.grads.items():
        np.testing.assert_array_equal(grads[k], g)


# --------------------------------------------------------------------------
# streams: step, step(out=), run, run(out=), state
# --------------------------------------------------------------------------

# what an out= buffer may be: the stream's dtype and others
OUT_DTYPES = [
    ("float32", True),
    ("float64", True),
    ("float16", False),
    (">f4", False),
    ("int32", False),
    ("bool", False),
    ("complex64", False),
]


@settings(max_examples=600, **SETTINGS)
@given(
    small_layers(),
    st.integers(1, 2),
    st.integers(1, 2),
    st.integers(1, 3),
    st.sampled_from(["step", "step_out", "run", "run_out", "state_h", "state_c"]),
    st.data(),
)
def test_stream_arguments(made, L, B, T, arg, data):
    kind, dtype, one = made
    if one.bidirectional:
        one = type(one)(**{**one.config(), "bidirectional": False})
    layer = type(one)(**{**one.config(), "num_layers": L})
    lstm = kind.mode == "lstm"
    if arg == "state_c" and not lstm:
        arg = "state_h"
    I, H, R = layer.input_size, layer.hidden_size, layer.output_size
    s = layer.stream(B)
    rng = np.random.default_rng(B * 10 + T)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    start = [p.copy() for p in split_state(kind.mode, s.state)]

    def unchanged():
        for p, q in zip(split_state(kind.mode, s.state), start):
            np.testing.assert_array_equal(p, q)

    def want_steps(xs):
        return ref_forward(kind, layer, as_used(xs, dtype))[0]

    if arg == "step":
        a, raw, ok = data.draw(arrays_near((B, I)))
        valid = input_ok(a, ok, [(B, I)] + ([(I,)] if B == 1 else []))
        got = expect(valid, s.step, a)
        if got is None:
            return unchanged()
        want = want_steps(np.asarray(raw, np.float64).reshape(1, B, I))
        assert_close(np.reshape(got, (B, R)), want[0], dtype, "step")
        return

    if arg == "step_out":
        a, raw, ok = data.draw(arrays_near((B, R), dtypes=OUT_DTYPES))
        valid = buffer_ok(a, dtype, [(B, R)] + ([(R,)] if B == 1 else []))
        got = expect(valid, s.step, x[0], out=a)
        if got is None:
            return unchanged()
        assert got is a
        assert_close(np.reshape(got, (B, R)), want_steps(x[:1])[0], dtype, "step(out=)")
        return

    if arg == "run":
        a, raw, ok = data.draw(arrays_near((T, B, I)))
        shape = seen_shape(a)
        valid = ok and (
            len(shape) == 3 and shape[1:] == (B, I) or B == 1 and len(shape) == 2 and shape[1] == I
        )
        got = expect(valid, s.run, a)
        if got is None:
            return unchanged()
        x64 = np.asarray(raw, np.float64).reshape(-1, B, I)
        assert_close(np.reshape(got, (-1, B, R)), want_steps(x64), dtype, "run")
        return

    if arg == "run_out":
        a, raw, ok = data.draw(arrays_near((T, B, R), dtypes=OUT_DTYPES))
        valid = buffer_ok(a, dtype, [(T, B, R)])
        got = expect(valid, s.run, x, out=a)
        if got is None:
            return unchanged()
        assert got is a
        assert_close(got, want_steps(x), dtype, "run(out=)")
        return

    # the state setter
    n = R if arg == "state_h" else H
    a, raw, ok = data.draw(arrays_near((L, B, n)))
    valid = input_ok(a, ok, [(L, B, n)] + ([(L, n)] if B == 1 else []))
    value = state_with(lstm, arg == "state_h", a, np.zeros((L, B, R)), np.zeros((L, B, H)))
    if not expect(valid, done, setattr, s, "state", value):
        return unchanged()
    got = split_state(kind.mode, s.state)[0 if arg == "state_h" else 1]
    np.testing.assert_array_equal(got, as_used(raw, dtype).reshape(L, B, n).astype(dtype))


# --------------------------------------------------------------------------
# optimizers: the parameter, its gradient, and the saved buffers
# --------------------------------------------------------------------------

OPTIMIZERS = {
    "SGD": lambda items: fr.SGD(items, lr=0.1, momentum=0.9),
    "Adam": lambda items: fr.Adam(items, lr=0.1),
    "Adagrad": lambda items: fr.Adagrad(items, lr=0.1),
}
BUFFERS = {"SGD": "momentum_buffer", "Adam": "exp_avg", "Adagrad": "sum"}


@settings(max_examples=400, **SETTINGS)
@given(
    st.sampled_from(sorted(OPTIMIZERS)),
    st.sampled_from(FLOATS),
    st.sampled_from([(3,), (2, 3), (1, 2, 2)]),
    st.sampled_from(["param", "grad", "buffer"]),
    st.data(),
)
def test_optimizer_arguments(name, dtype, shape, arg, data):
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(len(shape))
    p, g = rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)
    p_dtypes = [("float32", True), ("float64", True), ("float16", False), ("int64", False)]

    if arg in ("param", "grad"):
        a, raw, ok = data.draw(arrays_near(shape, dtypes=p_dtypes))
        if arg == "param":
            valid, param, grad = buffer_ok(a, dtype, [shape]), a, g
        else:
            valid, param, grad = buffer_ok(a, dtype, [shape], writeable=False), p, a
        before = np.array(param, copy=True) if isinstance(param, np.ndarray) else None
        if not expect(valid, done, OPTIMIZERS[name]([(param, grad)]).step):
            if before is not None:
                np.testing.assert_array_equal(param, before)
            return
        twin = before.astype(dtype)  # the same update on canonical arrays
        OPTIMIZERS[name]([(twin, np.ascontiguousarray(grad))]).step()
        np.testing.assert_array_equal(param, twin)
        return

    # a saved optimizer state with one buffer drawn
    opt = OPTIMIZERS[name]([(p, g)])
    opt.step()
    saved = opt.state_dict()
    key = f"0.{BUFFERS[name]}"
    a, raw, ok = data.draw(arrays_near(shape))
    valid = input_ok(a, ok, [shape])
    fresh = OPTIMIZERS[name]([(p.copy(), g)])
    expect(valid, done, fresh.load_state_dict, {**saved, key: a})
    if valid:
        np.testing.assert_array_equal(fresh.state_dict()[key], as_used(raw, dtype).astype(dtype))
    else:
        assert fresh.state == {} and fresh.step_count == 0
