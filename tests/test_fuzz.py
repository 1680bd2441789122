"""Hypothesis over the whole Python surface: layers (inference and training
forward/backward), cells, streams and the constructors.

Every call gets random shapes (T = 0 and B = 0 included), dtypes (float16,
float32, float64, signed and unsigned ints, bool, complex, object, str,
big-endian), layouts (C, Fortran, strided, negative strides, read-only,
unbatched 2-D), lengths, states and options. The test decides on its own,
from the documented API (the rules tests/test_errors.py encodes), whether
the call is valid:
- valid: the result matches the float64 NumPy reference (tests/reference.py)
  to the suite's tolerances, is of the layer's dtype, and the caller's arrays
  are unchanged; training gradients (float64) match a central difference of
  the reference along a random direction of x, the state and every weight,
  and float32 gradients match float64 ones;
- invalid: ValueError or TypeError with a message. No other exception may
  escape, ever.
Examples are bounded (the derandomized "ci" profile of conftest.py), so the
file runs in well under a minute.
"""

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import fastrnn as fr
from helpers import KINDS, assert_close, split_state
from reference import cell_forward, layer_forward

BAD = (ValueError, TypeError)
FLOATS = (np.float32, np.float64)
SETTINGS = dict(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# what an x or a state may be handed as: (dtype, valid)
X_DTYPES = [
    ("float64", True),
    ("float32", True),
    ("float16", True),
    (">f4", True),
    ("int8", True),
    ("int64", True),
    ("uint8", True),
    ("bool", False),
    ("complex64", False),
    ("object", False),
    ("str", False),
]
LAYOUTS = ["C", "F", "strided", "negative", "readonly", "list"]


# --------------------------------------------------------------------------
# making the arrays a user might hand in
# --------------------------------------------------------------------------


def values(rng, shape, dtype):
    """Numbers of `shape` as a user hands them in `dtype` (float64 for object
    and str): small ints for integer and bool dtypes, normals otherwise."""
    if dtype in ("object", "str"):
        return rng.standard_normal(shape)
    kind = np.dtype(dtype).kind
    if kind in "iub":
        return rng.integers(0 if kind in "ub" else -2, 2 if kind == "b" else 3, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def variant(a, dtype, layout):
    """`a`'s values as `dtype` in `layout` (a numpy array, or nested lists)."""
    if dtype == "str":
        return a.astype(str)
    if dtype == "object":
        return a.astype(object)  # Python numbers in an object array
    a = a.astype(dtype)
    if layout == "F":
        return np.asarray(a, order="F")  # (asfortranarray makes 0-d 1-D)
    if layout == "strided":
        big = np.zeros(tuple(2 * n + 1 for n in a.shape), a.dtype)
        view = big[tuple(slice(1, 1 + 2 * n, 2) for n in a.shape) + (...,)]  # 0-d: an array
        view[...] = a
        return view
    if layout == "negative" and a.ndim:
        return np.ascontiguousarray(a[::-1])[::-1]
    if layout == "readonly":
        a = a.copy()
        a.flags.writeable = False
        return a
    if layout == "list":
        return a.tolist()
    return np.asarray(a, order="C")


def as_used(a, dtype):
    """What the layer computes with: the values converted to its dtype."""
    return np.asarray(np.asarray(a, dtype=np.float64), dtype=dtype).astype(np.float64)


def snapshot(*arrays):
    return [np.array(a, copy=True) if isinstance(a, np.ndarray) else None for a in arrays]


def assert_unchanged(before, *arrays):
    for b, a in zip(before, arrays):
        if b is not None:
            np.testing.assert_array_equal(a, b, err_msg="an input array was written to")


def clean_error(excinfo_value):
    assert isinstance(excinfo_value, BAD), repr(excinfo_value)
    assert str(excinfo_value).strip(), f"{type(excinfo_value).__name__} without a message"


def call(fn, *args, valid, **kw):
    """fn(*args) when `valid` (None: either way is fine); else it must raise
    ValueError or TypeError with a message. Returns the result or None."""
    try:
        out = fn(*args, **kw)
    except BAD as e:
        clean_error(e)
        assert valid is not True, f"a valid call raised {type(e).__name__}: {e}"
        return None
    assert valid is not False, "an invalid call was accepted"
    return out


# --------------------------------------------------------------------------
# layers
# --------------------------------------------------------------------------

# hidden sizes: mostly tiny, sometimes across the kernels' 32-unit panels
SIZES_H = st.one_of(st.integers(1, 5), st.sampled_from([31, 33]))

# one thing wrong with a call, or nothing (about half the time; training
# calls are mostly valid, as their gradients are the point)
FAULTS = [
    "xdtype",
    "features",
    "rank1",
    "rank4",
    "too_long",
    "negative",
    "count",
    "float",
    "bool",
    "state_shape",
    "state_pair",
    "state_complex",
]


@st.composite
def layer_cases(draw, training=False):
    kind = draw(st.sampled_from(KINDS))
    dtype = draw(st.sampled_from(FLOATS))
    cfg = dict(
        num_layers=draw(st.integers(1, 2)),
        bidirectional=draw(st.booleans()),
        bias=draw(st.booleans()),
        batch_first=draw(st.booleans()),
    )
    I, H = draw(st.integers(1, 4)), draw(SIZES_H)
    T, B = draw(st.integers(0, 6)), draw(st.integers(0, 3))
    unbatched = draw(st.integers(0, 4)) == 0
    fault = draw(st.sampled_from([None] * (4 if training else 1) * len(FAULTS) + FAULTS))
    xdtype, xvalid = draw(st.sampled_from([d for d in X_DTYPES if d[1] != (fault == "xdtype")]))
    layout = draw(st.sampled_from(LAYOUTS))
    xshape_err = fault if fault in ("features", "rank1", "rank4") else None
    lengths_mode = (
        fault
        if fault in ("too_long", "negative", "count", "float", "bool")
        else draw(st.sampled_from(["none", "none", "list", "int32", "uint8", "int64"]))
    )
    state_mode = (
        fault[6:]
        if fault and fault.startswith("state_")
        else draw(st.sampled_from(["none", "ok", "f16"]))
    )
    seed = draw(st.integers(0, 2**32 - 1))
    return (
        kind,
        dtype,
        cfg,
        I,
        H,
        T,
        B,
        unbatched,
        xdtype,
        xvalid,
        layout,
        xshape_err,
        lengths_mode,
        state_mode,
        seed,
    )


def build_layer_call(case):
    """(layer, x, state, lengths, valid, the reference's x, state and lengths)."""
    (
        kind,
        dtype,
        cfg,
        I,
        H,
        T,
        B,
        unbatched,
        xdtype,
        xvalid,
        layout,
        xshape_err,
        lengths_mode,
        state_mode,
        seed,
    ) = case
    rng = np.random.default_rng(seed)
    layer = kind.layer(I, H, dtype=dtype, seed=seed % 1000, **cfg)
    valid = xvalid
    LD = cfg["num_layers"] * (2 if cfg["bidirectional"] else 1)
    if unbatched:
        B = 1
        shape = (T, I)
    else:
        shape = (B, T, I) if cfg["batch_first"] else (T, B, I)
    if xshape_err == "features":
        shape, valid = shape[:-1] + (I + 1,), False
    elif xshape_err == "rank1":
        shape, valid = (I,), False
    elif xshape_err == "rank4":
        shape, valid = (1,) + shape if len(shape) == 3 else (1, 1) + shape, False
    raw = values(rng, shape, xdtype)
    x = variant(raw, xdtype, layout)
    if layout == "list" and 0 in shape and valid:
        valid = None  # nested lists lose empty dimensions: [] is 1-D

    lengths = ref_lengths = None
    if lengths_mode != "none":
        good = rng.integers(0, T + 1, B)
        lengths, ok = {
            "list": (good.tolist(), True),
            "int32": (good.astype(np.int32), True),
            "uint8": (good.astype(np.uint8), True),
            "int64": (good.astype(np.int64), True),
            "too_long": (good + T + 1, B == 0),  # B = 0: an empty array is fine
            "negative": (good - T - 1, B == 0),
            "count": (np.append(good, 0), False),
            # an empty float array is an empty list: B = 0 may take it
            "float": (good.astype(float), None if B == 0 else False),
            "bool": (good > 0, False),
        }[lengths_mode]
        if ok is False:
            valid = False
        elif ok is None and valid:
            valid = None
        ref_lengths = good

    state = ref_state = None
    sshape = (LD, H) if unbatched else (LD, B, H)
    lstm = kind.mode == "lstm"
    if state_mode != "none":
        h, c = rng.standard_normal(sshape), rng.standard_normal(sshape)
        ref_state = (h, c) if lstm else h
        if state_mode == "ok":
            lay = layout if layout != "list" else "F"
            state = (
                (variant(h, "float64", lay), variant(c, "float32", "C"))
                if lstm
                else variant(h, "float32", lay)
            )
            ref_state = (h, as_used(c, np.float32)) if lstm else as_used(h, np.float32)
        elif state_mode == "f16":
            state = (h.astype(np.float16), c.astype(np.float16)) if lstm else h.astype(np.float16)
            ref_state = (
                tuple(as_used(a, np.float16) for a in (h, c)) if lstm else as_used(h, np.float16)
            )
        elif state_mode == "shape":
            bad = np.zeros(sshape[:-1] + (H + 1,))
            state, valid = ((bad, c) if lstm else bad), False
        elif state_mode == "pair":
            state, valid = (h if lstm else (h, c)), False
        elif state_mode == "complex":
            state, valid = ((h.astype(complex), c) if lstm else h.astype(complex)), False
        if ref_state is not None:
            ref_state = (
                tuple(as_used(a, dtype) for a in ref_state) if lstm else as_used(ref_state, dtype)
            )
    ref_x = as_used(raw, dtype) if valid is not False else None
    return layer, x, state, lengths, valid, ref_x, ref_state, ref_lengths


def reference(layer, kind, x, state, lengths, params=None):
    params = layer.state_dict() if params is None else params
    return layer_forward(
        kind.mode, params, x, state, lengths, batch_first=layer.batch_first, **kind.ref_kwargs
    )


def check_outputs(kind, dtype, got, want):
    y, s = got
    wy, ws = want
    assert y.dtype == dtype
    assert_close(y, wy, dtype, "y")
    for a, b, name in zip(split_state(kind.mode, s), split_state(kind.mode, ws), ("h_n", "c_n")):
        assert a.dtype == dtype
        assert_close(a, b, dtype, name)


@settings(max_examples=800, **SETTINGS)
@given(layer_cases())
def test_layer_call(case):
    kind, dtype = case[0], np.dtype(case[1])
    layer, x, state, lengths, valid, ref_x, ref_state, ref_lengths = build_layer_call(case)
    before = snapshot(x, lengths, *(state if isinstance(state, tuple) else (state,)))
    out = call(layer, x, state, lengths=lengths, valid=valid)
    event(f"valid={valid}")
    assert_unchanged(before, x, lengths, *(state if isinstance(state, tuple) else (state,)))
    if out is None or valid is None:
        return
    check_outputs(kind, dtype, out, reference(layer, kind, ref_x, ref_state, ref_lengths))


def _dot(a, b):
    return float(np.sum(np.asarray(a, np.float64) * np.asarray(b, np.float64)))


@settings(max_examples=400, **SETTINGS)
@given(layer_cases(training=True), st.booleans(), st.booleans())
def test_layer_training(case, with_dstate, input_grad):
    """forward gives what calling the layer gives; backward's gradients are
    those of the reference (float64: a central difference along one random
    direction of x, h0 (c0) and every weight; float32: the float64 layer's)."""
    kind, dtype = case[0], np.dtype(case[1])
    layer, x, state, lengths, valid, ref_x, ref_state, ref_lengths = build_layer_call(case)
    fwd = call(layer.forward, x, state, lengths=lengths, valid=valid)
    if fwd is None:
        return
    y, s, cache = fwd
    np.testing.assert_array_equal(y, layer(x, state, lengths=lengths)[0])
    if valid is None:
        return
    rng = np.random.default_rng(case[-1] + 1)
    dy = rng.standard_normal(y.shape)
    parts = split_state(kind.mode, s)
    dstate = None
    if with_dstate:
        ds = [rng.standard_normal(p.shape) for p in parts]
        dstate = tuple(ds) if kind.mode == "lstm" else ds[0]
    # a wrong dy first: a clean error, and no gradient added
    call(layer.backward, np.zeros(y.shape[:-1] + (y.shape[-1] + 1,)), cache, valid=False)
    call(layer.backward, dy.astype(complex), cache, valid=False)
    assert all(not g.any() for g in layer.grads.values())
    dx, dstate0 = layer.backward(dy, cache, dstate, input_grad=input_grad)
    if input_grad:
        assert dx.dtype == dtype and dx.shape == np.shape(x)
    else:
        assert dx is None
    d0 = split_state(kind.mode, dstate0)
    for p, g in zip(parts, d0):
        assert g.shape == p.shape and g.dtype == dtype
    grads = {k: g.copy() for k, g in layer.grads.items()}

    if dtype == np.float32:  # against the same layer in float64
        twin = type(layer)(**{**layer.config(), "dtype": "float64"})
        twin.load_state_dict(layer.state_dict())
        _, _, c64 = twin.forward(ref_x, ref_state, lengths=ref_lengths)
        dx64, ds64 = twin.backward(dy, c64, dstate, input_grad=input_grad)
        pairs = [(g, twin.grads[k]) for k, g in grads.items()]
        pairs += list(zip(d0, split_state(kind.mode, ds64)))
        if input_grad:
            pairs.append((dx, dx64))
        # each gradient is a sum of terms that may cancel: measure the error
        # against the size of all of them, not of the one result
        scale = max([1e-3] + [float(np.abs(b).max()) for _, b in pairs if np.size(b)])
        for a, b in pairs:
            assert a.dtype == np.float32 and np.isfinite(a).all()
            err = float(np.abs(a - b).max()) if np.size(b) else 0.0
            assert err <= 2e-5 * scale, f"float32 gradient off by {err:.3g} (scale {scale:.3g})"
        event("float32 gradients checked")
        return

    # float64: a central difference of the reference along one direction.
    # Not across relu's kink: integer x or no bias can put a pre-activation
    # exactly at 0 (e.g. x = 0 with h0 = 0), where relu has no derivative.
    if kind.nonlinearity == "relu" and (not layer.bias or np.dtype(case[8]).kind != "f"):
        return
    params = layer.state_dict()
    vx = rng.standard_normal(np.shape(ref_x)) * input_grad  # without dx: x stays put
    vw = {k: rng.standard_normal(p.shape) for k, p in params.items()}
    sshape = parts[0].shape
    vs = [rng.standard_normal(sshape) for _ in parts]
    base_state = (
        ref_state
        if ref_state is not None
        else ((np.zeros(sshape), np.zeros(sshape)) if kind.mode == "lstm" else np.zeros(sshape))
    )
    dsl = [np.zeros(sshape)] * len(parts) if dstate is None else split_state(kind.mode, dstate)

    def loss(eps):
        st_ = split_state(kind.mode, base_state)
        st_ = [a + eps * v for a, v in zip(st_, vs)]
        st_ = tuple(st_) if kind.mode == "lstm" else st_[0]
        p = {k: params[k] + eps * vw[k] for k in params}
        yy, ss = reference(layer, kind, ref_x + eps * vx, st_, ref_lengths, p)
        return _dot(yy, dy) + sum(_dot(a, b) for a, b in zip(split_state(kind.mode, ss), dsl))

    eps = 1e-6
    numeric = (loss(eps) - loss(-eps)) / (2 * eps)
    terms = [_dot(grads[k], vw[k]) for k in params]
    terms += [_dot(g, v) for g, v in zip(d0, vs)]
    if input_grad:
        terms.append(_dot(dx, vx))
    analytic = sum(terms)
    scale = max(sum(abs(t) for t in terms), 1e-3)
    assert abs(analytic - numeric) <= 1e-6 * scale + 1e-8, (analytic, numeric, terms)
    event("float64 gradients checked")


# --------------------------------------------------------------------------
# cells
# --------------------------------------------------------------------------


@st.composite
def cell_cases(draw):
    return (
        draw(st.sampled_from(KINDS)),
        draw(st.sampled_from(FLOATS)),
        draw(st.booleans()),
        draw(st.integers(1, 4)),
        draw(SIZES_H),
        draw(st.integers(0, 3)),
        draw(st.booleans()),
        draw(st.sampled_from(X_DTYPES)),
        draw(st.sampled_from(LAYOUTS)),
        draw(st.sampled_from(["none", "ok", "shape", "pair", "bool"])),
        draw(st.booleans()),
        draw(st.integers(0, 2**32 - 1)),
    )


@settings(max_examples=400, **SETTINGS)
@given(cell_cases())
def test_cell_call_and_training(case):
    (
        kind,
        dtype,
        bias,
        I,
        H,
        B,
        unbatched,
        (xdtype, valid),
        layout,
        state_mode,
        bad_features,
        seed,
    ) = case
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    cell = kind.cell(I, H, bias=bias, dtype=dtype, seed=seed % 1000)
    lstm = kind.mode == "lstm"
    shape = (I,) if unbatched else (B, I)
    if bad_features and seed % 4 == 0:
        shape, valid = shape[:-1] + (I + 2,), False
    raw = values(rng, shape, xdtype)
    x = variant(raw, xdtype, layout)
    if layout == "list" and 0 in shape and valid:
        valid = None  # [] is 1-D: nested lists lose empty dimensions
    sshape = (H,) if unbatched else (B, H)
    state = ref_state = None
    if state_mode != "none":
        h, c = rng.standard_normal(sshape), rng.standard_normal(sshape)
        state = (h, c) if lstm else h
        ref_state = (as_used(h, dtype), as_used(c, dtype)) if lstm else as_used(h, dtype)
        if state_mode == "shape":
            bad = np.zeros(sshape[:-1] + (H + 1,))
            state, valid = ((bad, c) if lstm else bad), False
        elif state_mode == "pair":
            state, valid = (h if lstm else (h, c)), False
        elif state_mode == "bool":
            state, valid = ((h > 0, c) if lstm else h > 0), False
    out = call(cell, x, state, valid=valid)
    fwd = call(cell.forward, x, state, valid=valid)
    event(f"valid={valid}")
    if out is None or not valid:
        return
    params = cell.state_dict()
    want = cell_forward(kind.mode, params, as_used(raw, dtype), ref_state, **kind.ref_kwargs)
    for a, b, p in zip(
        split_state(kind.mode, out), split_state(kind.mode, want), split_state(kind.mode, fwd[0])
    ):
        assert a.dtype == dtype
        assert_close(a, b, dtype, "cell")
        np.testing.assert_array_equal(a, p)

    # backward of the one step
    parts = split_state(kind.mode, fwd[0])
    ds = [rng.standard_normal(p.shape) for p in parts]
    call(cell.backward, fwd[0] if not lstm else fwd[0][0], object(), valid=False)
    dx, d0 = cell.backward(tuple(ds) if lstm else ds[0], fwd[1])
    assert np.shape(dx) == np.shape(raw) and dx.dtype == dtype
    if dtype != np.float64 or (
        kind.nonlinearity == "relu"
        and not (bias and xdtype in ("float64", "float32", "float16", ">f4"))
    ):
        return  # float32, or relu's kink (see test_layer_training)
    vx = rng.standard_normal(np.shape(raw))
    vw = {k: rng.standard_normal(p.shape) for k, p in params.items()}
    base = (
        split_state(kind.mode, ref_state)
        if ref_state is not None
        else [np.zeros(sshape)] * len(parts)
    )
    vs = [rng.standard_normal(sshape) for _ in parts]

    def loss(eps):
        s_ = [a + eps * v for a, v in zip(base, vs)]
        out_ = cell_forward(
            kind.mode,
            {k: params[k] + eps * vw[k] for k in params},
            as_used(raw, dtype) + eps * vx,
            tuple(s_) if lstm else s_[0],
            **kind.ref_kwargs,
        )
        return sum(_dot(a, d) for a, d in zip(split_state(kind.mode, out_), ds))

    eps = 1e-6
    numeric = (loss(eps) - loss(-eps)) / (2 * eps)
    terms = [_dot(cell.grads[k], vw[k]) for k in params] + [_dot(dx, vx)]
    terms += [_dot(g, v) for g, v in zip(split_state(kind.mode, d0), vs)]
    assert abs(sum(terms) - numeric) <= 1e-6 * max(sum(abs(t) for t in terms), 1e-3) + 1e-8


# --------------------------------------------------------------------------
# streams
# --------------------------------------------------------------------------


@settings(max_examples=200, **SETTINGS)
@given(
    st.sampled_from(KINDS),
    st.sampled_from(FLOATS),
    st.integers(1, 2),
    st.integers(1, 4),
    SIZES_H,
    st.integers(1, 3),
    st.integers(0, 5),
    st.sampled_from(X_DTYPES),
    st.sampled_from(LAYOUTS),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
def test_stream(kind, dtype, L, I, H, B, T, xdt, layout, with_state, seed):
    """step after step (and run) gives the reference over the whole
    sequence; bad frames, out= buffers, states and rows are clean errors."""
    xdtype, valid = xdt
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    layer = kind.layer(I, H, num_layers=L, dtype=dtype, seed=seed % 1000)
    call(kind.layer(I, H, bidirectional=True).stream, B, valid=False)
    call(layer.stream, 0, valid=False)
    call(layer.stream, "2", valid=False)
    s = layer.stream(B)
    lstm = kind.mode == "lstm"
    ref_state = None
    if with_state:
        h, c = rng.standard_normal((L, B, H)), rng.standard_normal((L, B, H))
        call(setattr, s, "state", (h[..., :-1], c) if lstm else h[:, :, :-1], valid=False)
        call(setattr, s, "state", h if lstm else (h, c), valid=False)
        s.state = (h, c) if lstm else h
        ref_state = (as_used(h, dtype), as_used(c, dtype)) if lstm else as_used(h, dtype)
    raw = values(rng, (T, B, I), xdtype)
    want = None
    event(f"valid={valid}, T={T}")
    if valid:
        want, _ = layer_forward(
            kind.mode, layer.state_dict(), as_used(raw, dtype), ref_state, **kind.ref_kwargs
        )
    start = s.state
    for t in range(T):
        frame = raw[t, 0] if B == 1 and t % 2 else raw[t]
        y = call(s.step, variant(frame, xdtype, layout), valid=valid)
        if y is None:
            break
        assert y.dtype == dtype and y.shape == frame.shape[:-1] + (H,)
        assert_close(y.reshape(B, H), want[t], dtype, f"step {t}")
    # wrong frames never reach C and never change the state
    before = s.state
    call(s.step, np.zeros((B, I + 1)), valid=False)
    call(s.step, np.zeros((B + 1, I)), valid=False)
    call(s.step, np.zeros((B, I), complex), valid=False)
    call(s.step, np.zeros((B, I)), out=np.zeros((B, H), np.float16), valid=False)
    call(s.step, np.zeros((B, I)), out=np.zeros((B, H + 1), dtype), valid=False)
    if B * H > 1:  # (a one-element view is contiguous whatever its strides)
        call(s.step, np.zeros((B, I)), out=np.zeros((B, H, 2), dtype)[..., 0], valid=False)
    call(s.run, np.zeros((T, B, I + 1)), valid=False)
    for a, b in zip(split_state(kind.mode, before), split_state(kind.mode, s.state)):
        np.testing.assert_array_equal(a, b)
    call(s.reset, B, valid=False)
    call(s.reset, [0.5], valid=False)
    call(s.reset, np.ones(B + 1, bool), valid=False)
    # run from the same start is the same as the steps
    if valid and T:
        s.state = start
        out = np.empty((T, B, H), dtype)
        got = s.run(variant(raw, xdtype, layout), out=out)
        assert got is out
        assert_close(out, want, dtype, "run")
        row = int(seed % B)
        s.reset(row)
        parts = split_state(kind.mode, s.state)
        for p in parts:
            assert not p[:, row].any()


# --------------------------------------------------------------------------
# constructors and options
# --------------------------------------------------------------------------

SIZES = st.one_of(
    st.integers(-2, 4), st.sampled_from([2.0, 2.5, "3", None, True, np.int64(3), np.uint8(2), [3]])
)


@settings(max_examples=200, **SETTINGS)
@given(
    st.sampled_from(["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"]),
    SIZES,
    SIZES,
    SIZES,
    st.sampled_from(
        ["float32", np.float64, "f8", ">f4", "float16", int, complex, None, "nonsense", object]
    ),
    st.sampled_from([0.0, 0.5, 1.0, -0.1, 1.5, float("nan"), "0.1", None, True]),
    st.sampled_from(["tanh", "relu", "sigmoid", None, 1]),
)
def test_constructors(name, input_size, hidden_size, num_layers, dtype, dropout, nonlin):
    cls = getattr(fr, name)
    kw = dict(dtype=dtype)
    if not name.endswith("Cell"):
        kw.update(num_layers=num_layers, dropout=dropout)
    if name.startswith("RNN"):
        kw["nonlinearity"] = nonlin
    with _quiet():
        layer = call(cls, input_size, hidden_size, valid=None, **kw)
    if layer is None:
        return
    I = layer.input_size
    x = np.random.default_rng(0).standard_normal((2, I) if name.endswith("Cell") else (3, 2, I))
    out = layer(x)
    parts = list(out) if name == "LSTMCell" else [out] if name.endswith("Cell") else [out[0]]
    for part in parts:
        assert part.dtype == layer.dtype and np.isfinite(part).all()
    assert type(layer)(**layer.config()).config() == layer.config()


class _quiet:
    """Silences the dropout-with-one-layer warning."""

    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)


@settings(max_examples=120, **SETTINGS)
@given(
    st.sampled_from(KINDS),
    st.integers(0, 2**32 - 1),
    st.sampled_from(
        [
            "transposed",
            "strided",
            "f16",
            "int",
            "list",
            "wrong_shape",
            "complex",
            "bool",
            "object",
            "unknown",
            "missing",
        ]
    ),
)
def test_load_state_dict(kind, seed, how):
    """load_state_dict takes any real array of the right shape, refuses the
    rest with a clean error and then leaves the layer unchanged."""
    rng = np.random.default_rng(seed)
    layer = kind.layer(3, 4, num_layers=2, bidirectional=True, dtype=np.float64, seed=1)
    old = layer.state_dict()
    name = sorted(old)[seed % len(old)]
    new = {k: rng.uniform(-0.5, 0.5, v.shape) for k, v in old.items()}
    w, valid = new[name], True
    if how == "transposed" and w.ndim == 2:
        w = np.ascontiguousarray(w.T).T
    elif how == "strided":
        big = np.zeros(w.shape + (2,))
        big[..., 0] = w
        w = big[..., 0]
    elif how == "f16":
        w = w.astype(np.float16)
    elif how == "int":
        w = np.round(w * 4).astype(np.int16)
    elif how == "list":
        w = w.tolist()
    elif how == "wrong_shape":
        w, valid = w.reshape(-1)[:-1], False
    elif how in ("complex", "bool"):
        w, valid = w.astype(how), False
    elif how == "object":
        w, valid = w.astype(object), False
    new[name] = w
    if how == "unknown":
        new["weight_ih_l9"], valid = np.zeros((2, 2)), False
    if how == "missing":
        del new[name]
        valid = False
    call(layer.load_state_dict, new, valid=valid)
    sd = layer.state_dict()
    x = rng.standard_normal((3, 2, 3))
    if not valid:
        for k in old:
            np.testing.assert_array_equal(sd[k], old[k])
    else:
        np.testing.assert_array_equal(sd[name], np.asarray(w, np.float64))
    y, _ = layer(x)
    want, _ = layer_forward(kind.mode, sd, x, **kind.ref_kwargs)
    assert_close(y, want, np.float64, "after load_state_dict")
