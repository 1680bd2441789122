"""Numerics: non-finite values, huge magnitudes and long sequences.

- NaN and +-inf in x, in the weights or in the initial state propagate as in
  PyTorch: on the same inputs the NaN (and inf) positions of y, h_n, c_n are
  PyTorch's and the finite values agree; nothing hangs or crashes, also on
  the threaded time loop, the stream and backward.
- Huge inputs (|x| ~ 1e30, 1e38, float64 1e300) saturate sigmoid and tanh
  instead of overflowing them: outputs are finite and equal the float64
  reference (the gates' saturated values).
- float32 stays within 1e-6 (max abs error of every h, measured ~3e-7) of
  float64 over 10,000 steps of every cell kind at the default (contractive)
  initialisation, through the layer and through the stream; no drift.
"""

import numpy as np
import pytest

import fastrnn as fr
from helpers import KIND_IDS, KINDS, TORCH_KINDS, split_state
from reference import layer_forward

torch = pytest.importorskip("torch")

NONFINITE = [np.nan, np.inf, -np.inf]
TORCH_CLS = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}


def torch_twin(kind, layer):
    """The PyTorch module with `layer`'s weights (same dtype)."""
    cls = getattr(torch.nn, TORCH_CLS[kind.mode])
    kw = {"nonlinearity": kind.nonlinearity} if kind.mode == "rnn" else {}
    m = cls(
        layer.input_size,
        layer.hidden_size,
        num_layers=layer.num_layers,
        bidirectional=layer.bidirectional,
        bias=layer.bias,
        dtype=getattr(torch, layer.dtype.name),
        **kw,
    )
    m.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in layer.state_dict().items()})
    return m


def torch_run(kind, m, x, state):
    with torch.no_grad():
        if state is None:
            y, s = m(torch.from_numpy(x))
        elif kind.mode == "lstm":
            y, s = m(torch.from_numpy(x), tuple(torch.from_numpy(a) for a in state))
        else:
            y, s = m(torch.from_numpy(x), torch.from_numpy(state))
    parts = s if isinstance(s, tuple) else (s,)
    return [y.numpy()] + [p.numpy() for p in parts]


def assert_same_pattern(got, want, dtype, what):
    """Same NaN and same +-inf positions; the finite values close."""
    for g, w, name in zip(got, want, ("y", "h_n", "c_n")):
        where = f"{what}, {name}"
        assert np.array_equal(np.isnan(g), np.isnan(w)), (
            f"{where}: NaN at {np.argwhere(np.isnan(g)).tolist()}, PyTorch has NaN at "
            f"{np.argwhere(np.isnan(w)).tolist()}"
        )
        assert np.array_equal(np.isposinf(g), np.isposinf(w)), f"{where}: +inf positions differ"
        assert np.array_equal(np.isneginf(g), np.isneginf(w)), f"{where}: -inf positions differ"
        fin = np.isfinite(w)
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(g[fin], w[fin], rtol=tol, atol=tol, err_msg=where)


def poke(rng, a, values=NONFINITE, count=None):
    """Put 1-2 non-finite values at random places of `a` (in place)."""
    flat = a.reshape(-1)
    if flat.size == 0:
        return
    for _ in range(count or rng.integers(1, 3)):
        flat[rng.integers(flat.size)] = values[rng.integers(len(values))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("kind", TORCH_KINDS, ids=[k.name for k in TORCH_KINDS])
def test_nonfinite_propagates_like_torch(kind, dtype):
    """60 random placements of NaN / +inf / -inf in x, a weight or the
    initial state of a 2-layer bidirectional layer: PyTorch's NaN and inf
    positions, PyTorch's finite values elsewhere."""
    rng = np.random.default_rng(7)
    T, B, I, H, L = 5, 3, 3, 4, 2
    for trial in range(60):
        layer = kind.layer(
            I, H, num_layers=L, bidirectional=True, dtype=dtype, seed=trial, bias=trial % 5 != 0
        )
        x = rng.standard_normal((T, B, I)).astype(dtype)
        state = None
        where = ["x", "weight", "state"][trial % 3]
        if where == "state" or trial % 4 == 0:
            shape = (2 * L, B, H)
            state = (
                tuple(rng.standard_normal(shape).astype(dtype) for _ in range(2))
                if kind.mode == "lstm"
                else rng.standard_normal(shape).astype(dtype)
            )
        if where == "x":
            poke(rng, x)
        elif where == "weight":
            sd = layer.state_dict()
            name = sorted(sd)[rng.integers(len(sd))]
            poke(rng, sd[name])
            layer.load_state_dict(sd)
        else:
            values = NONFINITE
            poke(
                rng, split_state(kind.mode, state)[trial % 2 if kind.mode == "lstm" else 0], values
            )
        with np.errstate(all="ignore"):
            y, s = layer(x, state)
        got = [y] + split_state(kind.mode, s)
        want = torch_run(kind, torch_twin(kind, layer), x, state)
        assert_same_pattern(got, want, dtype, f"trial {trial}, non-finite in {where}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_infinite_cell_state_without_peepholes(dtype):
    """c0 = inf with the forget gate open: PyTorch gives c = inf and a finite
    h = o * tanh(inf) = o. A plain LSTM must not turn that into NaN through
    its (zero) peephole terms, 0 * inf (fixed in csrc/lstm_cell.inc)."""
    layer = fr.LSTM(1, 1, bias=False, dtype=dtype)
    sd = {k: np.zeros_like(v) for k, v in layer.state_dict().items()}
    sd["weight_ih_l0"][:] = 1.0
    layer.load_state_dict(sd)
    x = np.ones((1, 1, 1), dtype)
    state = (np.zeros((1, 1, 1), dtype), np.full((1, 1, 1), np.inf, dtype))
    with np.errstate(all="ignore"):
        y, (h, c) = layer(x, state)
    want = torch_run(TORCH_KINDS[2], torch_twin(TORCH_KINDS[2], layer), x, state)
    assert np.isfinite(want[0]).all() and np.isposinf(want[2]).all()
    assert_same_pattern([y, h, c], want, dtype, "c0 = inf")
    s = layer.stream()
    s.state = (state[0][:, 0], state[1][:, 0])
    np.testing.assert_allclose(s.step(x[0]), want[0][0], rtol=1e-6)
    cell = fr.LSTMCell(1, 1, bias=False, dtype=dtype)
    cell.load_state_dict({k[:-3]: v for k, v in sd.items()})
    with np.errstate(all="ignore"):
        h1, c1 = cell(x[0], (state[0][0], state[1][0]))
    np.testing.assert_allclose(h1, want[0][0], rtol=1e-6)
    assert np.isposinf(c1).all()
    # and its gradients stay finite where PyTorch's do
    _, _, cache = layer.forward(x, state)
    _, (dh0, dc0) = layer.backward(np.ones((1, 1, 1), dtype), cache)
    m = torch_twin(TORCH_KINDS[2], layer)
    xt = torch.from_numpy(x)
    h0t, c0t = (torch.from_numpy(a).requires_grad_() for a in state)
    yt, _ = m(xt, (h0t, c0t))
    yt.sum().backward()
    assert np.array_equal(np.isnan(dc0), torch.isnan(c0t.grad).numpy())
    assert np.array_equal(np.isnan(dh0), torch.isnan(h0t.grad).numpy())


@pytest.mark.parametrize(
    "kind", [k for k in TORCH_KINDS if k.mode in ("lstm", "gru")], ids=["lstm", "gru"]
)
def test_float32_sigmoid_underflows_like_torch(kind):
    """A gate driven to sigmoid(-1e30) = 0 against an infinite state:
    PyTorch multiplies 0 * inf = NaN (forget gate of an LSTM with c0 = inf,
    update gate z of a GRU with h0 = inf)."""
    layer = kind.layer(1, 1, bias=False, dtype=np.float32)
    sd = {k: np.zeros_like(v) for k, v in layer.state_dict().items()}
    inf = np.full((1, 1, 1), np.inf, np.float32)
    if kind.mode == "lstm":  # i, g, o open; f = sigmoid(-1e30) against c0 = inf
        sd["weight_ih_l0"][:] = [[1.0], [-1.0], [1.0], [1.0]]
        state = (np.zeros_like(inf), inf)
    else:  # r = 1, n = 1, z = sigmoid(-inf) against h0 = inf
        sd["weight_hh_l0"][:] = [[1.0], [-1.0], [1.0]]
        state = inf
    layer.load_state_dict(sd)
    x = np.full((1, 1, 1), 1e30, np.float32)
    with np.errstate(all="ignore"):
        y, s = layer(x, state)
    want = torch_run(kind, torch_twin(kind, layer), x, state)
    assert_same_pattern([y] + split_state(kind.mode, s), want, np.float32, "gate = sigmoid(-1e30)")


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_nonfinite_padding_never_reaches_results(kind):
    """NaN and inf in x past a sequence's length (padding) change nothing:
    not the outputs, not the final states, not a gradient; in a batch and
    in a batch of one row."""
    rng = np.random.default_rng(3)
    T, I, H = 6, 2, 5
    layer = kind.layer(I, H, num_layers=2, bidirectional=True, dtype=np.float64, seed=0)
    full = rng.standard_normal((T, 3, I))
    for rows, lengths in (([0, 1, 2], np.array([6, 2, 0])), ([1], np.array([2]))):
        x = full[:, rows]
        dirty = x.copy()
        for b, n in enumerate(lengths):
            dirty[n:, b] = np.nan if b % 2 == 0 else np.inf
        want = layer(x, lengths=lengths)
        got = layer(dirty, lengths=lengths)
        for a, b in zip(
            [got[0]] + split_state(kind.mode, got[1]), [want[0]] + split_state(kind.mode, want[1])
        ):
            np.testing.assert_array_equal(a, b)
        layer.zero_grad()
        y, _, cache = layer.forward(dirty, lengths=lengths)
        dx, _ = layer.backward(np.ones_like(y), cache)
        assert np.isfinite(dx).all()
        assert all(np.isfinite(g).all() for g in layer.grads.values())


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_all_nan_never_hangs(kind):
    """NaN everywhere, on sizes that use the threaded time loop (two
    threads), the stream, cells and backward: results are NaN, calls return."""
    fr.set_num_threads(2)
    try:
        layer = kind.layer(16, 96, dtype=np.float32, seed=0)
        x = np.full((40, 8, 16), np.nan, np.float32)
        y, s = layer(x)
        assert np.isnan(y).all()
        y, s, cache = layer.forward(x)
        dx, _ = layer.backward(np.ones_like(y), cache)
        # (relu's derivative at NaN is 0 there, as PyTorch's threshold_backward)
        assert np.isnan(dx).all() or kind.nonlinearity == "relu"
        st = layer.stream(8)
        out = st.run(x)
        assert np.isnan(out).all()
        sd = layer.state_dict()
        sd["weight_hh_l0"][:] = np.nan
        layer.load_state_dict(sd)
        y, _ = layer(np.ones((40, 8, 16), np.float32))
        assert np.isnan(y).all()
    finally:
        fr.set_num_threads(None)


# --------------------------------------------------------------------------
# huge magnitudes
# --------------------------------------------------------------------------

SATURATING = [k for k in KINDS if k.nonlinearity != "relu"]  # relu does not saturate


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("kind", SATURATING, ids=[k.name for k in SATURATING])
def test_huge_inputs_saturate(kind, dtype):
    """|x| up to 1e38 (float64: 1e300) with one input feature, so that W x
    itself stays finite: every gate saturates, nothing overflows, and the
    outputs are the float64 reference's (saturated) values."""
    rng = np.random.default_rng(11)
    mags = [1e30, 1e38, 3e38] + ([1e300] if dtype == np.float64 else [])
    layer = kind.layer(1, 6, num_layers=2, bidirectional=True, dtype=dtype, seed=2)
    T, B = 5, 4
    signs = rng.choice([-1.0, 1.0], (T, B, 1))
    for mag in mags:
        x = (signs * mag).astype(dtype)
        x[2, 0] = 0.5  # an ordinary value amid the huge ones
        y, s = layer(x)
        got = [y] + split_state(kind.mode, s)
        assert all(np.isfinite(a).all() for a in got), f"|x| = {mag}: non-finite output"
        with np.errstate(over="ignore"):
            want_y, want_s = layer_forward(
                kind.mode, layer.state_dict(), x.astype(np.float64), **kind.ref_kwargs
            )
        for a, b in zip(got, [want_y] + split_state(kind.mode, want_s)):
            np.testing.assert_allclose(
                a, b, rtol=0, atol=1e-6 if dtype == np.float32 else 1e-12, err_msg=f"|x| = {mag}"
            )
        # the stream and backward alike
        st = kind.layer(1, 6, dtype=dtype, seed=2).stream(B).run(x)
        assert np.isfinite(st).all()
        yy, _, cache = layer.forward(x)
        dx, _ = layer.backward(np.ones_like(yy), cache)
        assert np.isfinite(dx).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("kind", SATURATING, ids=[k.name for k in SATURATING])
def test_huge_weights_saturate(kind, dtype):
    """Biases of +-1e30 and +-1e38 drive every gate into saturation: outputs
    finite and equal to the reference's."""
    rng = np.random.default_rng(12)
    for mag in (1e30, 1e38):
        layer = kind.layer(3, 5, dtype=dtype, seed=4)
        sd = layer.state_dict()
        sign = rng.choice([-1.0, 1.0], sd["bias_ih_l0"].shape)
        for name in ("bias_ih_l0", "bias_hh_l0"):  # one sign per unit: no cancellation
            sd[name] = (sign * mag / 2).astype(dtype)
        layer.load_state_dict(sd)
        x = rng.standard_normal((6, 2, 3)).astype(dtype)
        y, s = layer(x)
        with np.errstate(over="ignore"):
            want_y, want_s = layer_forward(kind.mode, layer.state_dict(), x, **kind.ref_kwargs)
        for a, b in zip([y] + split_state(kind.mode, s), [want_y] + split_state(kind.mode, want_s)):
            assert np.isfinite(a).all()
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6 if dtype == np.float32 else 1e-12)


# --------------------------------------------------------------------------
# float32 against float64 over long sequences
# --------------------------------------------------------------------------

LONG_T = 10_000
F32_BOUND = 1e-6  # max abs error of every h over 10,000 steps (measured <= 3.1e-7)


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_float32_tracks_float64_over_10000_steps(kind):
    """The same weights (float32 values) in float32 and float64 over 10,000
    steps of a contractive layer (PyTorch's default initialisation, H = 32):
    every h of float32 is within F32_BOUND of float64, the last 1,000 steps
    no worse than that (no drift), and the stream keeps the same bound."""
    rng = np.random.default_rng(5)
    l32 = kind.layer(8, 32, dtype=np.float32, seed=1)
    l64 = kind.layer(8, 32, dtype=np.float64, seed=1)
    l64.load_state_dict(l32.state_dict())
    x = rng.standard_normal((LONG_T, 2, 8)).astype(np.float32)
    y32, s32 = l32(x)
    y64, s64 = l64(x.astype(np.float64))
    err = np.abs(y32.astype(np.float64) - y64)
    assert err.max() < F32_BOUND, f"max |h32 - h64| over {LONG_T} steps = {err.max():.3g}"
    assert err[-1000:].max() < F32_BOUND
    for a, b in zip(split_state(kind.mode, s32), split_state(kind.mode, s64)):
        assert np.abs(a - b).max() < 10 * F32_BOUND  # c may be a few times larger
    ys = l32.stream(2).run(x)
    assert np.abs(ys - y64).max() < F32_BOUND
