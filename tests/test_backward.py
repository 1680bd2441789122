"""Backward (BPTT) against PyTorch's autograd on the same weights, and the
training API: forward / backward / grads / zero_grad, inter-layer dropout.

Parity: the loss sum(y * Wy) + sum(h_n * Wh) (+ sum(c_n * Wc)) through
torch (lengths via pack_padded_sequence(enforce_sorted=False)) gives dx, dh0,
dc0 and every parameter gradient; fastrnn's backward must agree to a relative
error max|a - b| / max|b| < 1e-4 in float32 and < 1e-10 in float64. The
peephole LSTM and GRU's original form are checked by finite differences in
test_gradcheck.py (torch has neither).
"""

import zlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import fastrnn as fr
from helpers import DTYPE_IDS, DTYPES, KINDS, TORCH_KINDS, rel_err

torch.set_num_threads(1)

TORCH_KIND_IDS = [k.name for k in TORCH_KINDS]
TORCH_DTYPE = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
GRAD_PARITY = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}

# layer options x (lengths, initial state, dstate)
LAYER_OPTIONS = [
    dict(num_layers=1, bias=True, batch_first=False, bidirectional=False),
    dict(num_layers=1, bias=False, batch_first=True, bidirectional=False),
    dict(num_layers=2, bias=True, batch_first=False, bidirectional=True),
    dict(num_layers=2, bias=False, batch_first=True, bidirectional=True),
    dict(num_layers=3, bias=True, batch_first=True, bidirectional=False),
]
OPTION_IDS = ["L1", "L1_nobias_bf", "L2_bidir", "L2_bidir_nobias_bf", "L3_bf"]
INPUTS = [(False, False, False), (True, True, True), (True, False, True)]
INPUT_IDS = ["plain", "lengths_states_dstate", "lengths_dstate"]


def torch_module(kind, I, H, options, dtype):
    common = dict(options, dtype=TORCH_DTYPE[np.dtype(dtype)])
    if kind.mode == "rnn":
        return torch.nn.RNN(I, H, nonlinearity=kind.nonlinearity, **common)
    return {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind.mode](I, H, **common)


def torch_gradients(tm, x, state, lengths, wy, wfinal, batch_first):
    """dx, [dh0, dc0], {name: grad} of the test loss through torch."""
    T = x.shape[1] if batch_first else x.shape[0]
    xt = torch.tensor(x, requires_grad=True)
    st = [torch.tensor(s, requires_grad=True) for s in state] if state is not None else None
    tstate = None if st is None else (tuple(st) if len(st) == 2 else st[0])
    if lengths is not None:
        packed = pack_padded_sequence(
            xt, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False
        )
        yp, finals = tm(packed, tstate)
        yt, _ = pad_packed_sequence(yp, batch_first=batch_first, total_length=T)
    else:
        yt, finals = tm(xt, tstate)
    finals = list(finals) if isinstance(finals, tuple) else [finals]
    loss = (yt * torch.tensor(wy)).sum()
    for f, w in zip(finals, wfinal):
        loss = loss + (f * torch.tensor(w)).sum()
    loss.backward()
    dstate0 = None if st is None else [s.grad.numpy() for s in st]
    return (
        yt.detach().numpy(),
        xt.grad.numpy(),
        dstate0,
        {n: p.grad.numpy() for n, p in tm.named_parameters()},
    )


def assert_grad(actual, expected, dtype, what):
    actual = np.asarray(actual)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == np.dtype(dtype), f"{what}: dtype {actual.dtype}"
    assert np.all(np.isfinite(actual)), f"{what}: non-finite values"
    err = rel_err(actual, expected)
    assert err < GRAD_PARITY[np.dtype(dtype)], f"{what}: relative error {err:.3g}"


@pytest.mark.parametrize("inputs", INPUTS, ids=INPUT_IDS)
@pytest.mark.parametrize("options", LAYER_OPTIONS, ids=OPTION_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", TORCH_KINDS, ids=TORCH_KIND_IDS)
def test_torch_parity(kind, dtype, options, inputs):
    with_lengths, with_state, with_dstate = inputs
    seed = zlib.crc32(f"{kind.name}/{options}/{inputs}".encode())
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed % 2**31)
    T, B, I, H = 7, 5, 4, 6
    tm = torch_module(kind, I, H, options, dtype)
    layer = kind.layer(I, H, dtype=dtype, **options)
    layer.load_state_dict(tm.state_dict())
    LD = options["num_layers"] * (2 if options["bidirectional"] else 1)
    bf = options["batch_first"]
    x = rng.standard_normal((B, T, I) if bf else (T, B, I)).astype(dtype)
    lstm = kind.mode == "lstm"
    state = None
    if with_state:
        state = [rng.standard_normal((LD, B, H)).astype(dtype) for _ in range(2 if lstm else 1)]
    lengths = rng.permutation([T, 1, 3, T - 1, 2]) if with_lengths else None  # unsorted
    y, _, cache = layer.forward(
        x, None if state is None else (tuple(state) if lstm else state[0]), lengths
    )
    wy = rng.standard_normal(y.shape).astype(dtype)
    n_final = 2 if lstm else 1
    wfinal = [
        rng.standard_normal((LD, B, H)).astype(dtype)
        if with_dstate
        else np.zeros((LD, B, H), dtype)
        for _ in range(n_final)
    ]
    dstate = (tuple(wfinal) if lstm else wfinal[0]) if with_dstate else None
    dx, dstate0 = layer.backward(wy, cache, dstate)

    y_t, dx_t, dstate0_t, grads_t = torch_gradients(tm, x, state, lengths, wy, wfinal, bf)
    assert rel_err(y, y_t) < GRAD_PARITY[np.dtype(dtype)]
    assert_grad(dx, dx_t, dtype, "dx")
    if state is not None:
        for i, (a, b) in enumerate(zip(dstate0 if lstm else [dstate0], dstate0_t)):
            assert_grad(a, b, dtype, f"dstate0[{i}]")
    assert set(layer.grads) == set(grads_t)
    for name, g in grads_t.items():
        assert_grad(layer.grads[name], g, dtype, name)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kind", TORCH_KINDS, ids=TORCH_KIND_IDS)
def test_torch_parity_past_the_streaming_size(kind, threads):
    """Kept gate gradients of 4 MB and more (here 4 MB: T*B = 4096 rows of
    G*H = 256, GRU's 192 plus its 64 of dxn) go by non-temporal stores in
    float32 (matmul.h): gradients as torch's on 1 and 2 threads, with
    lengths, both directions."""
    rng = np.random.default_rng(11)
    torch.manual_seed(11)
    T, B, I, H = 128, 32, 16, 256 if kind.mode == "rnn" else 64
    options = dict(num_layers=1, bias=True, batch_first=False, bidirectional=True)
    tm = torch_module(kind, I, H, options, np.float32)
    layer = kind.layer(I, H, **options)
    layer.load_state_dict(tm.state_dict())
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    lengths = rng.integers(1, T + 1, size=B)
    lengths[0] = T
    try:
        fr.set_num_threads(threads)
        y, _, cache = layer.forward(x, lengths=lengths)
        wy = rng.standard_normal(y.shape).astype(np.float32)
        dx, _ = layer.backward(wy, cache)
    finally:
        fr.set_num_threads(None)
    zeros = [np.zeros((2, B, H), np.float32)] * (2 if kind.mode == "lstm" else 1)
    _, dx_t, _, grads_t = torch_gradients(tm, x, None, lengths, wy, zeros, False)
    assert_grad(dx, dx_t, np.float32, "dx")
    for name, g in grads_t.items():
        assert_grad(layer.grads[name], g, np.float32, name)


@pytest.mark.parametrize("kind", TORCH_KINDS, ids=TORCH_KIND_IDS)
def test_torch_parity_unbatched(kind):
    rng = np.random.default_rng(3)
    torch.manual_seed(3)
    options = dict(num_layers=2, bias=True, batch_first=True, bidirectional=True)
    tm = torch_module(kind, 3, 4, options, np.float64)
    layer = kind.layer(3, 4, dtype=np.float64, **options)
    layer.load_state_dict(tm.state_dict())
    x = rng.standard_normal((5, 3))
    y, _, cache = layer.forward(x)
    wy = rng.standard_normal(y.shape)
    dx, dstate0 = layer.backward(wy, cache)
    _, dx_t, _, grads_t = torch_gradients(tm, x, None, None, wy, [], False)
    assert_grad(dx, dx_t, np.float64, "dx")
    assert (dstate0[0] if kind.mode == "lstm" else dstate0).shape == (4, 4)
    for name, g in grads_t.items():
        assert_grad(layer.grads[name], g, np.float64, name)


# --------------------------------------------------------------------------
# the training API
# --------------------------------------------------------------------------


def small(kind, **kw):
    return kind.layer(3, 4, dtype=np.float64, seed=0, **kw)


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_forward_matches_inference_and_grads_accumulate(kind):
    rng = np.random.default_rng(0)
    layer = small(kind, num_layers=2, bidirectional=True)
    x = rng.standard_normal((5, 2, 3))
    lengths = [5, 2]
    y, state_n, cache = layer.forward(x, lengths=lengths)
    y_inf, state_inf = layer(x, lengths=lengths)
    np.testing.assert_array_equal(y, y_inf)
    for a, b in zip(
        np.atleast_1d(state_n) if kind.mode != "lstm" else state_n,
        np.atleast_1d(state_inf) if kind.mode != "lstm" else state_inf,
    ):
        np.testing.assert_array_equal(a, b)

    assert list(layer.grads) == list(layer.state_dict())
    assert all(not g.any() for g in layer.grads.values())
    dy = rng.standard_normal(y.shape)
    dx1, s1 = layer.backward(dy, cache)
    first = {k: v.copy() for k, v in layer.grads.items()}
    dx2, s2 = layer.backward(dy, cache)  # the cache can be used again
    np.testing.assert_array_equal(dx1, dx2)
    for k, g in layer.grads.items():
        assert g.shape == layer.state_dict()[k].shape and g.dtype == np.float64
        np.testing.assert_allclose(g, 2 * first[k], rtol=1e-14, atol=1e-300)
    layer.zero_grad()
    assert all(not g.any() for g in layer.grads.values())


@pytest.mark.parametrize("B", [24, 26], ids=["rows", "units"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_backward_threads_bitwise(kind, dtype, B):
    """Two threads share the time loops: B = 24 splits the rows (blocks of 8
    and 16; the peephole LSTM's backward still splits the units), B = 26 the
    units (H = 80: blocks of 32 and 48; sizes past the threshold for a second
    thread). dx, dstate0 and every gradient bitwise those of one thread, with
    lengths (one of them zero), both directions, two layers and a final-state
    gradient."""
    rng = np.random.default_rng(7)
    T, I, H = 9, 16, 80
    layer = kind.layer(I, H, num_layers=2, bidirectional=True, dtype=dtype, seed=3)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    lengths = rng.integers(0, T + 1, size=B)
    lengths[:2] = T, 0
    shape = (4, B, H)
    dstate = rng.standard_normal(shape).astype(dtype)
    if kind.mode == "lstm":
        dstate = (dstate, rng.standard_normal(shape).astype(dtype))
    dy = rng.standard_normal((T, B, 2 * H)).astype(dtype)
    results = []
    try:
        for n in (1, 2):
            fr.set_num_threads(n)
            layer.zero_grad()
            _, _, cache = layer.forward(x, lengths=lengths)
            dx, dstate0 = layer.backward(dy, cache, dstate)
            results.append((dx, dstate0, {k: g.copy() for k, g in layer.grads.items()}))
    finally:
        fr.set_num_threads(None)
    (dx1, s1, g1), (dx2, s2, g2) = results
    np.testing.assert_array_equal(dx2, dx1)
    for a, b in zip(
        np.atleast_1d(s2) if kind.mode != "lstm" else s2,
        np.atleast_1d(s1) if kind.mode != "lstm" else s1,
    ):
        np.testing.assert_array_equal(a, b)
    for k in g1:
        np.testing.assert_array_equal(g2[k], g1[k], err_msg=k)


def test_dy_past_lengths_is_ignored_and_dstate_none_is_zeros():
    rng = np.random.default_rng(1)
    layer = small(KINDS[2], num_layers=2, bidirectional=True)
    x = rng.standard_normal((6, 3, 3))
    lengths = np.array([6, 0, 2])
    y, _, cache = layer.forward(x, lengths=lengths)
    dy = rng.standard_normal(y.shape)
    dx, (dh0, dc0) = layer.backward(dy, cache)
    grads = {k: v.copy() for k, v in layer.grads.items()}
    noisy = dy.copy()
    for b, n in enumerate(lengths):
        noisy[n:, b] = 1e3 * rng.standard_normal(noisy[n:, b].shape)
    layer.zero_grad()
    zeros = np.zeros((4, 3, 4))
    dx2, (dh02, dc02) = layer.backward(noisy, cache, (zeros, None))
    np.testing.assert_array_equal(dx, dx2)
    np.testing.assert_array_equal(dh0, dh02)
    np.testing.assert_array_equal(dc0, dc02)
    for k, g in layer.grads.items():
        np.testing.assert_array_equal(g, grads[k])
    assert not dx[:, 1].any()  # a zero-length sequence: no gradient
    assert not dx[2:, 2].any()


def test_zero_length_sequence_passes_dstate_through():
    rng = np.random.default_rng(2)
    for kind in KINDS:
        layer = small(kind, bidirectional=True)
        x = rng.standard_normal((4, 2, 3))
        y, _, cache = layer.forward(x, lengths=[0, 4])
        dh_n = rng.standard_normal((2, 2, 4))
        dstate = (dh_n, 2 * dh_n) if kind.mode == "lstm" else dh_n
        _, dstate0 = layer.backward(np.zeros_like(y), cache, dstate)
        if kind.mode == "lstm":
            np.testing.assert_array_equal(dstate0[0][:, 0], dh_n[:, 0])
            np.testing.assert_array_equal(dstate0[1][:, 0], 2 * dh_n[:, 0])
        else:
            np.testing.assert_array_equal(dstate0[:, 0], dh_n[:, 0])


def test_float32_backward_close_to_float64():
    rng = np.random.default_rng(4)
    for kind in KINDS:
        l64 = kind.layer(8, 16, num_layers=2, bidirectional=True, dtype=np.float64, seed=1)
        l32 = kind.layer(8, 16, num_layers=2, bidirectional=True, dtype=np.float32, seed=1)
        l32.load_state_dict(l64.state_dict())
        x = rng.standard_normal((20, 4, 8))
        lengths = [20, 3, 11, 0]
        outs = []
        for layer in (l64, l32):
            y, _, cache = layer.forward(x, lengths=lengths)
            dx, _ = layer.backward(np.ones(y.shape), cache)
            outs.append((dx, layer.grads))
        assert rel_err(outs[1][0], outs[0][0]) < 1e-4, kind
        for k in outs[0][1]:
            assert rel_err(outs[1][1][k], outs[0][1][k]) < 1e-4, (kind, k)


def test_backward_errors():
    rng = np.random.default_rng(5)
    lstm = small(KINDS[2])
    other = small(KINDS[2])
    x = rng.standard_normal((4, 2, 3))
    y, _, cache = lstm.forward(x)
    with pytest.raises(TypeError, match="cache"):
        other.backward(np.zeros_like(y), cache)
    with pytest.raises(TypeError, match="cache"):
        lstm.backward(np.zeros_like(y), None)
    with pytest.raises(ValueError, match="dy"):
        lstm.backward(np.zeros((4, 2, 5)), cache)
    with pytest.raises(TypeError, match="dstate"):
        lstm.backward(np.zeros_like(y), cache, np.zeros((1, 2, 4)))
    with pytest.raises(ValueError, match="dstate"):
        lstm.backward(np.zeros_like(y), cache, (np.zeros((1, 3, 4)), None))
    gru = small(KINDS[4])
    y, _, cache = gru.forward(x)
    with pytest.raises(TypeError, match="dstate"):
        gru.backward(np.zeros_like(y), cache, (np.zeros((1, 2, 4)), np.zeros((1, 2, 4))))


# --------------------------------------------------------------------------
# inter-layer dropout
# --------------------------------------------------------------------------


def test_dropout_constructor_and_config():
    for cls in (fr.RNN, fr.LSTM, fr.GRU):
        layer = cls(3, 4, num_layers=2, dropout=0.25)
        assert layer.dropout == 0.25 and layer.config()["dropout"] == 0.25
        assert cls(3, 4).config()["dropout"] == 0.0
        with pytest.raises(ValueError, match="dropout"):
            cls(3, 4, num_layers=2, dropout=1.5)
        with pytest.raises(TypeError, match="dropout"):
            cls(3, 4, num_layers=2, dropout="0.1")
        with pytest.warns(UserWarning, match="dropout"):
            cls(3, 4, num_layers=1, dropout=0.5)
    # positional arguments keep their places
    lstm = fr.LSTM(3, 4, 2, True, False, False, True, 0, np.float64, 7, 0.5)
    assert lstm.peephole and lstm.dropout == 0.5 and lstm.dtype == np.float64


def test_dropout_save_load(tmp_path):
    gru = fr.GRU(3, 4, num_layers=2, dropout=0.3, seed=0)
    gru.save(tmp_path / "m.npz")
    assert fr.load(tmp_path / "m.npz").dropout == 0.3


def test_dropout_masks():
    rng = np.random.default_rng(6)
    p = 0.3
    layer = fr.GRU(8, 64, num_layers=3, dropout=p, dtype=np.float64, seed=1)
    x = rng.standard_normal((50, 8, 8))
    y_inf, _ = layer(x)
    y, _, cache = layer.forward(x)
    assert len(cache.masks) == 2
    for mask in cache.masks:
        kept = mask != 0
        assert abs(kept.mean() - (1 - p)) < 0.02
        np.testing.assert_allclose(mask[kept], 1 / (1 - p))
    assert not np.allclose(y, y_inf)  # dropout acted on the hidden layers
    y_again, _ = layer(x)  # inference never drops
    np.testing.assert_array_equal(y_again, y_inf)
    # the same seed gives the same masks; the constructor seed seeds them too
    layer.seed_dropout(9)
    y1, _, _ = layer.forward(x)
    layer.seed_dropout(9)
    y2, _, _ = layer.forward(x)
    np.testing.assert_array_equal(y1, y2)
    a = fr.GRU(8, 64, num_layers=3, dropout=p, dtype=np.float64, seed=5)
    b = fr.GRU(8, 64, num_layers=3, dropout=p, dtype=np.float64, seed=5)
    np.testing.assert_array_equal(a.forward(x)[0], b.forward(x)[0])
    a.seed_dropout(5)  # back to the constructor's stream
    c = fr.GRU(8, 64, num_layers=3, dropout=p, dtype=np.float64, seed=5)
    np.testing.assert_array_equal(a.forward(x)[0], c.forward(x)[0])
    # p = 1 drops everything: the last layer sees zeros
    full = fr.RNN(8, 4, num_layers=2, dropout=1.0, dtype=np.float64, bias=False)
    y, _, cache = full.forward(x)
    assert not y.any()
    dx, _ = full.backward(np.ones_like(y), cache)
    assert not dx.any()


def test_dropout_zero_matches_torch_training_mode():
    """dropout=0 in a multi-layer stack: backward equals torch's (train mode)."""
    rng = np.random.default_rng(7)
    torch.manual_seed(7)
    tm = torch.nn.LSTM(3, 5, num_layers=2, dropout=0.0, dtype=torch.float64)
    layer = fr.LSTM(3, 5, num_layers=2, dropout=0.0, dtype=np.float64)
    layer.load_state_dict(tm.state_dict())
    x = rng.standard_normal((6, 2, 3))
    y, _, cache = layer.forward(x)
    wy = rng.standard_normal(y.shape)
    dx, _ = layer.backward(wy, cache)
    _, dx_t, _, grads_t = torch_gradients(tm, x, None, None, wy, [], False)
    assert_grad(dx, dx_t, np.float64, "dx")
    for name, g in grads_t.items():
        assert_grad(layer.grads[name], g, np.float64, name)


# --------------------------------------------------------------------------
# cells
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", TORCH_KINDS, ids=TORCH_KIND_IDS)
def test_cell_torch_parity(kind, dtype):
    rng = np.random.default_rng(8)
    torch.manual_seed(8)
    tdtype = TORCH_DTYPE[np.dtype(dtype)]
    if kind.mode == "rnn":
        tc = torch.nn.RNNCell(3, 5, nonlinearity=kind.nonlinearity, dtype=tdtype)
    else:
        tc = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}[kind.mode](3, 5, dtype=tdtype)
    cell = kind.cell(3, 5, dtype=dtype)
    cell.load_state_dict(tc.state_dict())
    lstm = kind.mode == "lstm"
    x = rng.standard_normal((4, 3)).astype(dtype)
    states = [rng.standard_normal((4, 5)).astype(dtype) for _ in range(2 if lstm else 1)]
    weights = [rng.standard_normal((4, 5)).astype(dtype) for _ in states]
    _, cache = cell.forward(x, tuple(states) if lstm else states[0])
    dx, dstate0 = cell.backward(tuple(weights) if lstm else weights[0], cache)

    xt = torch.tensor(x, requires_grad=True)
    st = [torch.tensor(s, requires_grad=True) for s in states]
    new = tc(xt, tuple(st) if lstm else st[0])
    loss = sum((n * torch.tensor(w)).sum() for n, w in zip(new if lstm else [new], weights))
    loss.backward()
    assert_grad(dx, xt.grad.numpy(), dtype, "dx")
    for i, (a, s) in enumerate(zip(dstate0 if lstm else [dstate0], st)):
        assert_grad(a, s.grad.numpy(), dtype, f"dstate0[{i}]")
    for name, p in tc.named_parameters():
        assert_grad(cell.grads[name], p.grad.numpy(), dtype, name)


def test_cell_backward_errors_and_accumulation():
    rng = np.random.default_rng(9)
    cell = fr.LSTMCell(3, 4, dtype=np.float64, seed=0)
    x = rng.standard_normal((2, 3))
    (h, c), cache = cell.forward(x)
    dx1, _ = cell.backward((np.ones((2, 4)), None), cache)
    g1 = {k: v.copy() for k, v in cell.grads.items()}
    dx2, _ = cell.backward((np.ones((2, 4)), np.zeros((2, 4))), cache)
    np.testing.assert_array_equal(dx1, dx2)
    for k, g in cell.grads.items():
        np.testing.assert_allclose(g, 2 * g1[k], rtol=1e-14)
    cell.zero_grad()
    assert all(not g.any() for g in cell.grads.values())
    with pytest.raises(TypeError, match="cache"):
        fr.LSTMCell(3, 4).backward((np.ones((2, 4)), None), cache)
    with pytest.raises(TypeError, match="dstate"):
        cell.backward(np.ones((2, 4)), cache)
    with pytest.raises(ValueError, match="dstate"):
        cell.backward((np.ones((3, 4)), None), cache)
    gru = fr.GRUCell(3, 4, dtype=np.float64)
    _, cache = gru.forward(x)
    with pytest.raises(TypeError, match="dstate"):
        gru.backward((np.ones((2, 4)), np.ones((2, 4))), cache)


def test_input_grad_false_skips_dx_only():
    rng = np.random.default_rng(10)
    for kind in KINDS:
        layer = kind.layer(
            3, 4, num_layers=2, bidirectional=True, batch_first=True, dtype=np.float64, seed=0
        )
        x = rng.standard_normal((2, 5, 3))
        y, _, cache = layer.forward(x, lengths=[5, 3])
        dy = rng.standard_normal(y.shape)
        _, s_full = layer.backward(dy, cache)
        g_full = {k: v.copy() for k, v in layer.grads.items()}
        layer.zero_grad()
        dx, s_skip = layer.backward(dy, cache, input_grad=False)
        assert dx is None
        for a, b in zip(
            s_full if kind.mode == "lstm" else [s_full], s_skip if kind.mode == "lstm" else [s_skip]
        ):
            np.testing.assert_array_equal(a, b)
        for k, g in layer.grads.items():
            np.testing.assert_array_equal(g, g_full[k])


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_bias_gradients_without_weight_gradients(kind):
    """The C backward may skip either weight gradient or both (None): the
    bias gradients, then summed over the packed dG on their own rather than
    after the weight products, are bitwise those of a call that computes
    everything, and the weight gradients asked for are unchanged."""
    from fastrnn import _core

    rng = np.random.default_rng(11)
    T, B, I, H = 70, 5, 6, 40  # 350 rows: blocks of 64 and a partial one
    layer = kind.layer(I, H, dtype=np.float64, seed=2)
    x = rng.standard_normal((T, B, I))
    lengths = rng.integers(0, T + 1, size=B)
    _, _, cache = layer.forward(x, lengths=lengths)
    p = layer.state_dict()
    dy = rng.standard_normal((T, B, H))
    peep = p.get("weight_peep_l0")
    lbr = getattr(layer, "linear_before_reset", True)
    runs = {}
    for weights in (("ih", "hh"), ("ih",), ("hh",), ()):
        g = {k: np.zeros_like(v) for k, v in p.items()}
        _core.layer_backward(
            layer._cell,
            peep is not None,
            lbr,
            p["weight_ih_l0"],
            p["weight_hh_l0"],
            peep,
            x,
            cache.lengths,
            False,
            cache.arrays[0],
            dy,
            None,
            None,
            None,
            False,
            None,
            None,
            g["weight_ih_l0"] if "ih" in weights else None,
            g["weight_hh_l0"] if "hh" in weights else None,
            g["bias_ih_l0"],
            g["bias_hh_l0"],
            None,
        )
        runs[weights] = g
    full = runs[("ih", "hh")]
    assert full["bias_ih_l0"].any() and full["bias_hh_l0"].any()
    for weights, g in runs.items():
        for name in ("bias_ih_l0", "bias_hh_l0"):
            np.testing.assert_array_equal(g[name], full[name])
        for w in ("ih", "hh"):
            name = f"weight_{w}_l0"
            if w in weights:
                np.testing.assert_array_equal(g[name], full[name])
            else:
                assert not g[name].any()


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    dtype=st.sampled_from(DTYPES),
    B=st.sampled_from([16, 24, 26, 32, 40]),
    H=st.sampled_from([64, 96, 100]),
    T=st.integers(1, 5),
    layers=st.integers(1, 2),
    bidirectional=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_thread_count_never_changes_a_bit(kind, dtype, B, H, T, layers, bidirectional, seed):
    """Random layers, batches that split by rows (multiples of 8) or by units,
    lengths (zeros included): inference and training outputs, final states,
    dx, dstate0 and every gradient of 2 threads bitwise those of 1 thread."""
    rng = np.random.default_rng(seed)
    layer = kind.layer(
        12, H, num_layers=layers, bidirectional=bidirectional, dtype=dtype, seed=seed % 1000
    )
    x = rng.standard_normal((T, B, 12)).astype(dtype)
    lengths = rng.integers(0, T + 1, size=B)
    dy = rng.standard_normal((T, B, (2 if bidirectional else 1) * H)).astype(dtype)
    runs = []
    try:
        for n in (1, 2):
            fr.set_num_threads(n)
            layer.zero_grad()
            y_inference, _ = layer(x, lengths=lengths)
            y, state, cache = layer.forward(x, lengths=lengths)
            dx, dstate0 = layer.backward(dy, cache, state)
            flat = [y_inference, y, dx] + [
                np.asarray(a) for a in (state if isinstance(state, tuple) else (state,))
            ]
            flat += [np.asarray(a) for a in (dstate0 if isinstance(dstate0, tuple) else (dstate0,))]
            runs.append(flat + [g.copy() for g in layer.grads.values()])
    finally:
        fr.set_num_threads(None)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(b, a)
