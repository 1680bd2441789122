"""fastrnn against PyTorch on the same weights, both ways.

torch module state_dict() -> fastrnn.load_state_dict (as tensors and as numpy
arrays), and fastrnn.state_dict() -> torch load_state_dict(strict=True).
Lengths go through pack_padded_sequence(enforce_sorted=False) and
pad_packed_sequence(total_length=T) on the torch side. Also checks that the
NumPy reference (tests/reference.py) agrees with torch, so the oracle of the
other test files is itself validated.
"""

import itertools
import zlib

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import fastrnn as fr
from helpers import (
    DTYPE_IDS,
    DTYPES,
    TORCH_KINDS,
    random_lengths,
    random_state,
    rel_err,
    split_state,
)
from reference import cell_forward, layer_forward

torch.set_num_threads(1)

TORCH_KIND_IDS = [k.name for k in TORCH_KINDS]
TORCH_DTYPE = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
# max relative error max|a - b| / max|b| between fastrnn and torch
PARITY = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


def assert_parity(actual, expected, dtype, what):
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: {actual.shape} != {expected.shape}"
    assert actual.dtype == np.dtype(dtype), f"{what}: dtype {actual.dtype}"
    err = rel_err(actual, expected)
    assert err < PARITY[np.dtype(dtype)], f"{what}: relative error {err:.3g}"
    atol = 1e-6 if np.dtype(dtype) == np.float32 else 1e-12
    rtol = 1e-4 if np.dtype(dtype) == np.float32 else 1e-10
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


def torch_layer(kind, I, H, num_layers, bias, batch_first, bidirectional, dtype, seed):
    torch.manual_seed(seed)
    common = dict(
        num_layers=num_layers,
        bias=bias,
        batch_first=batch_first,
        bidirectional=bidirectional,
        dtype=TORCH_DTYPE[np.dtype(dtype)],
    )
    if kind.mode == "rnn":
        return torch.nn.RNN(I, H, nonlinearity=kind.nonlinearity, **common)
    if kind.mode == "lstm":
        return torch.nn.LSTM(I, H, **common)
    return torch.nn.GRU(I, H, **common)


def torch_cell(kind, I, H, bias, dtype, seed):
    torch.manual_seed(seed)
    tdtype = TORCH_DTYPE[np.dtype(dtype)]
    if kind.mode == "rnn":
        return torch.nn.RNNCell(I, H, bias=bias, nonlinearity=kind.nonlinearity, dtype=tdtype)
    if kind.mode == "lstm":
        return torch.nn.LSTMCell(I, H, bias=bias, dtype=tdtype)
    return torch.nn.GRUCell(I, H, bias=bias, dtype=tdtype)


def to_torch_state(kind, state):
    if state is None:
        return None
    if kind.mode == "lstm":
        return tuple(torch.from_numpy(np.ascontiguousarray(s)) for s in state)
    return torch.from_numpy(np.ascontiguousarray(state))


def run_torch(module, kind, x, state, lengths, batch_first):
    """torch forward with PyTorch's packed-sequence semantics for lengths."""
    T = x.shape[1] if (batch_first and x.ndim == 3) else x.shape[0]
    inp = torch.from_numpy(x)
    if lengths is not None:
        inp = pack_padded_sequence(
            inp,
            torch.as_tensor(lengths, dtype=torch.int64),
            batch_first=batch_first,
            enforce_sorted=False,
        )
    with torch.no_grad():
        out, state_n = module(inp, to_torch_state(kind, state))
    if lengths is not None:
        out, _ = pad_packed_sequence(out, batch_first=batch_first, total_length=T)
    if kind.mode == "lstm":
        return out.numpy(), (state_n[0].numpy(), state_n[1].numpy())
    return out.numpy(), state_n.numpy()


def torch_state_dict_numpy(module):
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


# --------------------------------------------------------------------------
# layers
# --------------------------------------------------------------------------

LAYER_GRID = list(itertools.product([1, 2, 3], [False, True], [False, True], [True, False]))
LAYER_GRID_IDS = [
    f"L{L}-{'bi' if bi else 'uni'}-{'bf' if bf else 'tf'}-{'bias' if b else 'nobias'}"
    for L, bi, bf, b in LAYER_GRID
]


@pytest.mark.parametrize("extras", ["plain", "lengths_state"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("grid", LAYER_GRID, ids=LAYER_GRID_IDS)
@pytest.mark.parametrize("kind", TORCH_KINDS, ids=TORCH_KIND_IDS)
def test_layer_torch_to_fastrnn(kind, grid, dtype, extras):
    """Weights from a torch module (loaded as torch tensors) give torch's
    outputs and final states."""
    L, bi, bf, bias = grid
    I, H, T, B = 5, 8, 9, 6
    D = 2 if bi else 1
    seed = zlib.crc32(f"{kind.name}/{grid}/{extras}".encode()) % 2**31
    rng = np.random.default_rng(seed)
    tm = torch_layer(kind, I, H, L, bias, bf, bi, dtype, seed)
    layer = kind.layer(
        I, H, num_layers=L, bias=bias, batch_first=bf, bidirectional=bi, dtype=dtype, seed=1
    )
    layer.load_state_dict(tm.state_dict())  # torch tensors accepted

    x = rng.standard_normal((B, T, I) if bf else (T, B, I)).astype(dtype)
    state = lengths = None
    if extras == "lengths_state":
        state = random_state(rng, kind.mode, (L * D, B, H), dtype)
        lengths = random_lengths(rng, B, T, allow_zero=False)  # torch needs >= 1
        lengths[0], lengths[1] = 1, T
    y_t, s_t = run_torch(tm, kind, x, state, lengths, bf)
    y, s = layer(x, state, lengths=lengths)
    assert_parity(y, y_t, dtype, "y")
    for a, b, name in zip(split_state(kind.mode, s), split_state(kind.mode, s_t), ("h_n", "c_n")):
        assert_parity(a, b, dtype, name)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", TORCH_KINDS, ids=TORCH_KIND_IDS)
def test_layer_fastrnn_to_torch(kind, dtype):
    """fastrnn's seeded weights loaded into torch (strict) give the same
    results; the state dict has torch's names, order, shapes and dtype."""
    rng = np.random.default_rng(21)
    for L, bi, bf, bias in [
        (1, False, False, True),
        (2, True, True, True),
        (3, True, False, False),
    ]:
        I, H, T, B = 4, 6, 7, 5
        D = 2 if bi else 1
        layer = kind.layer(
            I, H, num_layers=L, bias=bias, batch_first=bf, bidirectional=bi, dtype=dtype, seed=123
        )
        tm = torch_layer(kind, I, H, L, bias, bf, bi, dtype, 0)
        sd = layer.state_dict()
        tsd = tm.state_dict()
        assert list(sd) == list(tsd)
        for k in sd:
            assert sd[k].shape == tuple(tsd[k].shape), k
            assert sd[k].dtype == np.dtype(dtype), k
        tm.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)

        x = rng.standard_normal((B, T, I) if bf else (T, B, I)).astype(dtype)
        state = random_state(rng, kind.mode, (L * D, B, H), dtype)
        lengths = random_lengths(rng, B, T, allow_zero=False)
        for st, ln in [(None, None), (state, lengths)]:
            y_t, s_t = run_torch(tm, kind, x, st, ln, bf)
            y, s = layer(x, st, lengths=ln)
            assert_parity(y, y_t, dtype, "y")
            for a, b in zip(split_state(kind.mode, s), split_state(kind.mode, s_t)):
                assert_parity(a, b, dtype, "state")


@pytest.mark.parametrize("kind", TORCH_KINDS, ids=TORCH_KIND_IDS)
def test_layer_numpy_state_dict_from_torch(kind):
    """The torch state dict as numpy arrays, and as float64 arrays loaded into a
    float32 layer (cast on load)."""
    rng = np.random.default_rng(22)
    tm = torch_layer(kind, 3, 5, 2, True, False, True, np.float32, 3)
    x = rng.standard_normal((6, 4, 3)).astype(np.float32)
    y_t, s_t = run_torch(tm, kind, x, None, None, False)
    layer = kind.layer(3, 5, num_layers=2, bidirectional=True, seed=0)
    layer.load_state_dict(torch_state_dict_numpy(tm))
    y, _ = layer(x)
    assert_parity(y, y_t, np.float32, "y")
    layer2 = kind.layer(3, 5, num_layers=2, bidirectional=True, seed=0)
    layer2.load_state_dict({k: v.astype(np.float64) for k, v in torch_state_dict_numpy(tm).items()})
    y2, _ = layer2(x)
    np.testing.assert_array_equal(y2, y)
    for k, v in layer2.state_dict().items():
        assert v.dtype == np.float32, k


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", TORCH_KINDS, ids=TORCH_KIND_IDS)
def test_layer_unbatched(kind, dtype):
    rng = np.random.default_rng(23)
    for bf in (False, True):
        tm = torch_layer(kind, 3, 4, 2, True, bf, True, dtype, 4)
        layer = kind.layer(
            3, 4, num_layers=2, bidirectional=True, batch_first=bf, dtype=dtype, seed=0
        )
        layer.load_state_dict(tm.state_dict())
        x = rng.standard_normal((7, 3)).astype(dtype)
        state = random_state(rng, kind.mode, (4, 4), dtype)
        for st in (None, state):
            y_t, s_t = run_torch(tm, kind, x, st, None, bf)
            y, s = layer(x, st)
            assert_parity(y, y_t, dtype, "y")
            for a, b in zip(split_state(kind.mode, s), split_state(kind.mode, s_t)):
                assert_parity(a, b, dtype, "state")


@pytest.mark.parametrize("kind", TORCH_KINDS, ids=TORCH_KIND_IDS)
def test_layer_bigger(kind):
    """A larger float32 problem: long sequences, wide hidden state."""
    rng = np.random.default_rng(24)
    I, H, T, B = 40, 64, 50, 16
    tm = torch_layer(kind, I, H, 2, True, True, True, np.float32, 5)
    layer = kind.layer(I, H, num_layers=2, bidirectional=True, batch_first=True, seed=0)
    layer.load_state_dict(tm.state_dict())
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    lengths = random_lengths(rng, B, T, allow_zero=False)
    state = random_state(rng, kind.mode, (4, B, H), np.float32)
    y_t, s_t = run_torch(tm, kind, x, state, lengths, True)
    y, s = layer(x, state, lengths=lengths)
    assert_parity(y, y_t, np.float32, "y")
    for a, b in zip(split_state(kind.mode, s), split_state(kind.mode, s_t)):
        assert_parity(a, b, np.float32, "state")


# --------------------------------------------------------------------------
# cells
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("kind", TORCH_KINDS, ids=TORCH_KIND_IDS)
def test_cell(kind, bias, dtype):
    rng = np.random.default_rng(25)
    I, H = 6, 9
    tc = torch_cell(kind, I, H, bias, dtype, 6)
    cell = kind.cell(I, H, bias=bias, dtype=dtype, seed=0)
    cell.load_state_dict(tc.state_dict())
    for lead in [(), (1,), (5,)]:
        x = rng.standard_normal(lead + (I,)).astype(dtype)
        state = random_state(rng, kind.mode, lead + (H,), dtype)
        for st in (None, state):
            with torch.no_grad():
                out_t = tc(torch.from_numpy(x), to_torch_state(kind, st))
            out = cell(x, st)
            if kind.mode == "lstm":
                out_t = tuple(o.numpy() for o in out_t)
            else:
                out_t = out_t.numpy()
            for a, b, name in zip(split_state(kind.mode, out), split_state(kind.mode, out_t), "hc"):
                assert_parity(a, b, dtype, name)


@pytest.mark.parametrize("kind", TORCH_KINDS, ids=TORCH_KIND_IDS)
def test_cell_state_dict_to_torch(kind):
    cell = kind.cell(4, 3, dtype=np.float64, seed=9)
    tc = torch_cell(kind, 4, 3, True, np.float64, 0)
    sd = cell.state_dict()
    assert list(sd) == list(tc.state_dict())
    tc.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
    x = np.random.default_rng(26).standard_normal((2, 4))
    with torch.no_grad():
        out_t = tc(torch.from_numpy(x))
    out = cell(x)
    out_t = tuple(o.numpy() for o in out_t) if kind.mode == "lstm" else out_t.numpy()
    for a, b in zip(split_state(kind.mode, out), split_state(kind.mode, out_t)):
        assert_parity(a, b, np.float64, "cell")


# --------------------------------------------------------------------------
# the reference itself (no fastrnn involved)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", TORCH_KINDS, ids=TORCH_KIND_IDS)
def test_reference_matches_torch(kind):
    rng = np.random.default_rng(27)
    for L, bi, bf, bias, use_extras in itertools.product(
        [1, 3], [False, True], [False, True], [True, False], [False, True]
    ):
        I, H, T, B = 3, 5, 6, 4
        D = 2 if bi else 1
        tm = torch_layer(kind, I, H, L, bias, bf, bi, np.float64, L)
        sd = torch_state_dict_numpy(tm)
        x = rng.standard_normal((B, T, I) if bf else (T, B, I))
        state = lengths = None
        if use_extras:
            state = random_state(rng, kind.mode, (L * D, B, H))
            lengths = random_lengths(rng, B, T, allow_zero=False)
        y_t, s_t = run_torch(tm, kind, x, state, lengths, bf)
        y_r, s_r = layer_forward(
            kind.mode, sd, x, state, lengths, batch_first=bf, **kind.ref_kwargs
        )
        assert rel_err(y_r, y_t) < 1e-13
        for a, b in zip(split_state(kind.mode, s_r), split_state(kind.mode, s_t)):
            assert rel_err(a, b) < 1e-13
    # unbatched
    tm = torch_layer(kind, 3, 4, 2, True, False, True, np.float64, 0)
    x = rng.standard_normal((5, 3))
    state = random_state(rng, kind.mode, (4, 4))
    y_t, s_t = run_torch(tm, kind, x, state, None, False)
    y_r, s_r = layer_forward(kind.mode, torch_state_dict_numpy(tm), x, state, **kind.ref_kwargs)
    assert rel_err(y_r, y_t) < 1e-13
    for a, b in zip(split_state(kind.mode, s_r), split_state(kind.mode, s_t)):
        assert rel_err(a, b) < 1e-13
    # cells
    for bias in (True, False):
        tc = torch_cell(kind, 3, 4, bias, np.float64, 1)
        for lead in [(), (3,)]:
            x = rng.standard_normal(lead + (3,))
            state = random_state(rng, kind.mode, lead + (4,))
            with torch.no_grad():
                out_t = tc(torch.from_numpy(x), to_torch_state(kind, state))
            out_t = tuple(o.numpy() for o in out_t) if kind.mode == "lstm" else out_t.numpy()
            out_r = cell_forward(kind.mode, torch_state_dict_numpy(tc), x, state, **kind.ref_kwargs)
            for a, b in zip(split_state(kind.mode, out_r), split_state(kind.mode, out_t)):
                assert rel_err(a, b) < 1e-13


def test_fastrnn_module_names():
    """The public names this file relies on exist."""
    for name in ("RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "load"):
        assert hasattr(fr, name), name
