"""LSTM with a projection (proj_size, PyTorch's nn.LSTM(proj_size=P)):

    i, f, g, o from W_ih x + b_ih + W_hh h(t-1) + b_hh     (W_hh is (4H, P))
    c(t) = f * c(t-1) + i * g
    h(t) = W_hr (o * tanh(c(t)))                           (W_hr is (P, H))

h0, h_n and y carry P features, c0 and c_n H. Checked against a float64
NumPy reference written here, PyTorch (outputs and gradients), central
finite differences, and the stream against the layer's own forward."""

import warnings
import zlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_gradcheck import check_gradients

import fastrnn as fr
from helpers import assert_close, rel_err
from reference import lstm_cell

warnings.filterwarnings("ignore", message="LSTM with projections is not supported with oneDNN")


def projected_lstm(params, x, h0, c0, lengths, num_layers, D, peephole=False):
    """Float64 reference, time-major x (T, B, I); a sequence past its length
    outputs zeros and keeps its state; the reverse direction of sequence b
    starts at its own last step."""
    T, B, _ = x.shape
    h_n, c_n = [], []
    inp = x
    for k in range(num_layers):
        outs = []
        for d in range(D):
            sfx = f"_l{k}" + ("_reverse" if d else "")
            w_ih, w_hh, w_hr = (params[n + sfx] for n in ("weight_ih", "weight_hh", "weight_hr"))
            b_ih, b_hh = params.get("bias_ih" + sfx), params.get("bias_hh" + sfx)
            p = params.get("weight_peep" + sfx)
            y = np.zeros((T, B, w_hr.shape[0]))
            hs, cs = h0[k * D + d].copy(), c0[k * D + d].copy()
            for bi in range(B):
                h, c = hs[bi], cs[bi]
                steps = range(lengths[bi])
                for t in reversed(steps) if d else steps:
                    hraw, c = lstm_cell(inp[t, bi], h, c, w_ih, w_hh, b_ih, b_hh, p)
                    h = w_hr @ hraw
                    y[t, bi] = h
                hs[bi], cs[bi] = h, c
            outs.append(y)
            h_n.append(hs)
            c_n.append(cs)
        inp = np.concatenate(outs, axis=2)
    return inp, np.stack(h_n), np.stack(c_n)


def random_inputs(rng, model, T, B, dtype):
    LD = model.num_layers * model.num_directions
    x = rng.standard_normal((T, B, model.input_size)).astype(dtype)
    h0 = rng.standard_normal((LD, B, model.proj_size)).astype(dtype)
    c0 = rng.standard_normal((LD, B, model.hidden_size)).astype(dtype)
    return x, h0, c0


CASES = [
    dict(),
    dict(num_layers=2, bidirectional=True),
    dict(num_layers=3, bias=False),
    dict(bidirectional=True, peephole=True),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("options", CASES, ids=lambda o: "-".join(map(str, o.items())) or "plain")
def test_forward_equals_the_reference(options, dtype):
    rng = np.random.default_rng(zlib.crc32(repr(options).encode()))
    model = fr.LSTM(5, 9, proj_size=4, dtype=dtype, seed=2, **options)
    if model.peephole:
        model.load_state_dict(
            {k: rng.uniform(-1, 1, v.shape) for k, v in model.state_dict().items() if "peep" in k},
            strict=False,
        )
    x, h0, c0 = random_inputs(rng, model, 7, 3, dtype)
    lengths = np.array([7, 2, 5])
    y, (h_n, c_n) = model(x, (h0, c0), lengths)
    want = projected_lstm(
        model.state_dict(),
        x.astype(np.float64),
        h0.astype(np.float64),
        c0.astype(np.float64),
        lengths,
        model.num_layers,
        model.num_directions,
        model.peephole,
    )
    assert y.shape == (7, 3, model.num_directions * 4) and h_n.shape[-1] == 4
    assert c_n.shape[-1] == 9
    for got, ref, what in zip((y, h_n, c_n), want, ("y", "h_n", "c_n")):
        assert_close(got, ref, dtype, what)


TORCH_CASES = [
    dict(num_layers=2, bidirectional=True),
    dict(batch_first=True, bias=False),
    dict(num_layers=2),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("options", TORCH_CASES, ids=lambda o: "-".join(map(str, o.items())))
def test_outputs_and_gradients_equal_pytorch(options, dtype):
    """from_torch, then forward with unsorted lengths and initial states, and
    backward against autograd on the packed sequence."""
    torch.manual_seed(3)
    tdt = getattr(torch, np.dtype(dtype).name)
    module = torch.nn.LSTM(6, 8, proj_size=3, **options).to(tdt)
    model = fr.from_torch(module)
    assert (model.hidden_size, model.proj_size) == (8, 3)
    rng = np.random.default_rng(4)
    T, B = 6, 4
    x, h0, c0 = random_inputs(rng, model, T, B, dtype)
    lengths = np.array([3, 6, 1, 4])
    if model.batch_first:
        x = np.ascontiguousarray(x.transpose(1, 0, 2))
    y, (h_n, c_n), cache = model.forward(x, (h0, c0), lengths)

    xt, h0t, c0t = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        xt, torch.tensor(lengths), batch_first=model.batch_first, enforce_sorted=False
    )
    yp, (ht, ct) = module(packed, (h0t, c0t))
    yt, _ = torch.nn.utils.rnn.pad_packed_sequence(
        yp, batch_first=model.batch_first, total_length=T
    )
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for got, want in ((y, yt), (h_n, ht), (c_n, ct)):
        assert rel_err(got, want.detach().numpy()) < tol

    dy, dh, dc = (rng.standard_normal(a.shape).astype(dtype) for a in (y, h_n, c_n))
    model.zero_grad()
    dx, (dh0, dc0) = model.backward(dy, cache, (dh, dc))
    loss = (
        (yt * torch.tensor(dy)).sum()
        + (ht * torch.tensor(dh)).sum()
        + (ct * torch.tensor(dc)).sum()
    )
    loss.backward()
    gtol = 1e-4 if dtype == np.float32 else 1e-10
    for got, want, what in ((dx, xt.grad, "dx"), (dh0, h0t.grad, "dh0"), (dc0, c0t.grad, "dc0")):
        assert rel_err(got, want.numpy()) < gtol, what
    for name, p in module.named_parameters():
        assert rel_err(model.grads[name], p.grad.numpy()) < gtol, name


@pytest.mark.parametrize(
    "options",
    [dict(), dict(num_layers=2, bidirectional=True), dict(peephole=True, batch_first=True)],
    ids=["plain", "2layers-bidir", "peephole-bf"],
)
def test_gradients_equal_finite_differences(options):
    rng = np.random.default_rng(zlib.crc32(repr(options).encode()))
    model = fr.LSTM(3, 4, proj_size=2, dtype=np.float64, seed=5, **options)
    if model.peephole:
        model.load_state_dict(
            {k: rng.uniform(-1, 1, v.shape) for k, v in model.state_dict().items() if "peep" in k},
            strict=False,
        )
    x, h0, c0 = random_inputs(rng, model, 4, 3, np.float64)
    if model.batch_first:
        x = np.ascontiguousarray(x.transpose(1, 0, 2))
    check_gradients(model, x, (0.5 * h0, 0.5 * c0), np.array([4, 1, 3]), True, rng)


@pytest.mark.parametrize("B", [24, 26], ids=["rows", "units"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("P", [16, 40], ids=["P16", "P40"])
def test_threads_give_bitwise_the_same_results(P, dtype, B):
    """Two threads split the rows (B = 24: 8 and 16) or the units and the P
    columns of h (B = 26; P = 40: panels of 32 and 8; P = 16: the second
    thread has no columns): outputs and every gradient bitwise those of one
    thread, with lengths, both directions."""
    model = fr.LSTM(16, 96, proj_size=P, num_layers=2, bidirectional=True, dtype=dtype, seed=1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((9, B, 16)).astype(dtype)
    lengths = np.array([9, 0] + list(rng.integers(0, 10, size=B - 2)))
    dy = rng.standard_normal((9, B, 2 * P)).astype(dtype)
    runs = []
    old = fr.get_num_threads()
    try:
        for n in (1, 2):
            fr.set_num_threads(n)
            model.zero_grad()
            y, (h, c), cache = model.forward(x, lengths=lengths)
            dx, (dh0, dc0) = model.backward(dy, cache, (h, c))
            runs.append([y, h, c, dx, dh0, dc0] + [g.copy() for g in model.grads.values()])
    finally:
        fr.set_num_threads(old)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_stream_equals_the_forward(dtype):
    model = fr.LSTM(5, 12, proj_size=3, num_layers=2, dtype=dtype, seed=7)
    rng = np.random.default_rng(8)
    x, h0, c0 = random_inputs(rng, model, 9, 2, dtype)
    y, (h_n, c_n) = model(x, (h0, c0))
    s = model.stream(batch_size=2)
    s.state = (h0, c0)
    got = np.stack([s.step(x[t]).copy() for t in range(5)] + list(s.run(x[5:])))
    tol = 1e-6 if dtype == np.float32 else 1e-13
    assert got.shape == y.shape and rel_err(got, y) < tol
    h, c = s.state
    assert h.shape == h_n.shape and c.shape == c_n.shape
    assert rel_err(h, h_n) < tol and rel_err(c, c_n) < tol
    s.reset(rows=[1])
    h, c = s.state
    assert not h[:, 1].any() and not c[:, 1].any() and h[:, 0].any()
    one = model.stream(batch_size=1)
    assert one.step(x[0, 0]).shape == (3,)


def test_save_load_and_torch_round_trip(tmp_path):
    model = fr.LSTM(4, 6, proj_size=2, num_layers=2, bidirectional=True, seed=9)
    model.save(tmp_path / "m.npz")
    back = fr.load(tmp_path / "m.npz")
    assert back.proj_size == 2 and back.config() == model.config()
    for k, v in model.state_dict().items():
        assert np.array_equal(back.state_dict()[k], v)
    module = fr.interop.to_torch(model)
    assert module.proj_size == 2
    sd = model.state_dict()
    assert list(module.state_dict()) == list(sd)
    assert all(np.array_equal(module.state_dict()[k].numpy(), v) for k, v in sd.items())


def test_bad_configurations_and_states():
    with pytest.raises(ValueError, match="proj_size.*below hidden_size 4"):
        fr.LSTM(3, 4, proj_size=4)
    with pytest.raises(ValueError, match="proj_size"):
        fr.LSTM(3, 4, proj_size=-1)
    model = fr.LSTM(3, 4, proj_size=2)
    x = np.zeros((2, 1, 3), np.float32)
    with pytest.raises(ValueError, match=r"h0.*\(1, 1, 2\).*\(1, 1, 4\)"):
        model(x, (np.zeros((1, 1, 4)), np.zeros((1, 1, 4))))
    with pytest.raises(ValueError, match=r"c0.*\(1, 1, 4\).*\(1, 1, 2\)"):
        model(x, (np.zeros((1, 1, 2)), np.zeros((1, 1, 2))))
    with pytest.raises(ValueError, match="weight_hr_l0.*expected shape"):
        model.load_state_dict({"weight_hr_l0": np.zeros((4, 2))}, strict=False)
    with pytest.raises(ValueError, match="proj_size: ONNX's LSTM operator has no"):
        fr.onnx.to_onnx(model)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.integers(1, 4),
    st.integers(2, 40),
    st.data(),
    st.integers(1, 2),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.integers(0, 5),
    st.integers(0, 3),
    st.booleans(),
    st.booleans(),
    st.sampled_from([np.float32, np.float64]),
    st.integers(1, 2),
    st.integers(0, 2**32 - 1),
)
def test_random_configurations(
    I, H, data, L, bidir, bias, batch_first, T, B, with_lengths, with_state, dtype, threads, seed
):
    """Random sizes (T = 0 and B = 0 included), options, lengths, states and
    thread counts: the forward equals the reference, and the backward equals
    PyTorch's autograd on the same packed sequence."""
    P = data.draw(st.integers(1, H - 1))
    rng = np.random.default_rng(seed)
    model = fr.LSTM(
        I,
        H,
        proj_size=P,
        num_layers=L,
        bidirectional=bidir,
        bias=bias,
        batch_first=batch_first,
        dtype=dtype,
        seed=seed % 1000,
    )
    D = model.num_directions
    x, h0, c0 = random_inputs(rng, model, T, B, dtype)
    lengths = rng.integers(0, T + 1, size=B) if with_lengths else None
    state = (h0, c0) if with_state else None
    old = fr.get_num_threads()
    try:
        fr.set_num_threads(threads)
        xin = np.ascontiguousarray(x.transpose(1, 0, 2)) if batch_first else x
        y, (h_n, c_n), cache = model.forward(xin, state, lengths)
        if batch_first:
            y = y.transpose(1, 0, 2)
        zeros = (np.zeros_like(h0), np.zeros_like(c0))
        want = projected_lstm(
            model.state_dict(),
            x.astype(np.float64),
            *(s.astype(np.float64) for s in (state or zeros)),
            [T] * B if lengths is None else lengths,
            L,
            D,
        )
        for got, ref, what in zip((y, h_n, c_n), want, ("y", "h_n", "c_n")):
            assert got.shape == ref.shape, what
            if got.size:
                assert_close(got, ref, dtype, what)
        if T == 0 or B == 0:
            return
        dy = rng.standard_normal(y.shape).astype(dtype)
        model.zero_grad()
        dx, (dh0, dc0) = model.backward(dy.transpose(1, 0, 2) if batch_first else dy, cache)
    finally:
        fr.set_num_threads(old)
    module = fr.interop.to_torch(model)
    xt, h0t, c0t = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    if lengths is not None and lengths.max() == 0:
        return  # PyTorch cannot pack all-empty sequences
    lens = torch.tensor(lengths if lengths is not None else [T] * B)
    if lengths is not None and (lengths == 0).any():
        return  # ... nor one empty sequence among others
    packed = torch.nn.utils.rnn.pack_padded_sequence(xt, lens, enforce_sorted=False)
    module.batch_first = False
    yp, _ = module(packed, (h0t, c0t) if with_state else None)
    yt, _ = torch.nn.utils.rnn.pad_packed_sequence(yp, total_length=T)
    (yt * torch.tensor(dy)).sum().backward()
    tol = 1e-4 if dtype == np.float32 else 1e-10
    if batch_first:
        dx = dx.transpose(1, 0, 2)
    assert rel_err(dx, xt.grad.numpy()) < tol
    if with_state:
        assert rel_err(dh0, h0t.grad.numpy()) < tol and rel_err(dc0, c0t.grad.numpy()) < tol
    for name, p in module.named_parameters():
        if p.grad is not None:
            assert rel_err(model.grads[name], p.grad.numpy()) < tol, name
