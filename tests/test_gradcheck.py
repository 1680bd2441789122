"""Backward (BPTT) against central finite differences, in float64.

For every cell kind (also the ones PyTorch lacks: peephole LSTM, GRU's
original form) and layer option, the loss
    sum(y * Wy) + sum(h_n * Wh) (+ sum(c_n * Wc))
is differentiated numerically w.r.t. every element of x, the initial states
and every parameter, and compared with layer.backward(Wy, cache, (Wh, Wc)):
relative error max|analytic - numeric| / max|numeric| < 1e-6.
"""

import zlib

import numpy as np
import pytest

import fastrnn as fr
from helpers import KIND_IDS, KINDS, numeric_grad, rel_err

FD_REL = 1e-6

# (name, layer options, sizes T B I H, lengths, initial state given, dstate given)
CASES = [
    ("plain", dict(), (4, 2, 3, 3), None, False, False),
    ("nobias_states", dict(bias=False), (4, 3, 2, 3), None, True, True),
    ("lengths_batch_first", dict(batch_first=True), (5, 4, 3, 3), [2, 5, 0, 3], True, True),
    (
        "two_layers_bidir_lengths",
        dict(num_layers=2, bidirectional=True),
        (4, 3, 2, 3),
        [4, 0, 2],
        True,
        True,
    ),
    (
        "two_layers_bidir_nobias_bf",
        dict(num_layers=2, bidirectional=True, bias=False, batch_first=True),
        (3, 2, 3, 2),
        None,
        False,
        True,
    ),
]
CASE_IDS = [c[0] for c in CASES]


def check_param_gradients(module, loss):
    """module.grads (from a backward of loss) against finite differences of
    loss() in every parameter."""
    for name, p in module.state_dict().items():

        def loss_p():
            module.load_state_dict({name: p}, strict=False)
            return loss()

        numeric = numeric_grad(loss_p, p)
        module.load_state_dict({name: p}, strict=False)
        err = rel_err(module.grads[name], numeric)
        assert err < FD_REL, f"{name}: relative error {err:.3g}"


def check_gradients(layer, x, state, lengths, dstate_given, rng, dropout_seed=None):
    """Compare layer.backward with finite differences for x, state and every parameter."""
    lstm = isinstance(layer, fr.LSTM)

    def forward():
        if dropout_seed is not None:
            layer.seed_dropout(dropout_seed)
        return layer.forward(x, state, lengths)

    y, state_n, cache = forward()
    finals = list(state_n) if lstm else [state_n]
    wy = rng.standard_normal(y.shape)
    wfinal = [rng.standard_normal(s.shape) if dstate_given else np.zeros(s.shape) for s in finals]

    def loss():
        y, state_n, _ = forward()
        finals = list(state_n) if lstm else [state_n]
        return float(np.sum(y * wy) + sum(np.sum(s * w) for s, w in zip(finals, wfinal)))

    layer.zero_grad()
    dstate = (tuple(wfinal) if lstm else wfinal[0]) if dstate_given else None
    dx, dstate0 = layer.backward(wy, cache, dstate)

    checks = [("x", dx, x)]
    if state is not None:
        states = list(state) if lstm else [state]
        grads0 = list(dstate0) if lstm else [dstate0]
        checks += [(f"state[{i}]", g, s) for i, (g, s) in enumerate(zip(grads0, states))]
    for what, analytic, arr in checks:
        numeric = numeric_grad(loss, arr)
        err = rel_err(analytic, numeric)
        assert err < FD_REL, f"d{what}: relative error {err:.3g}"
    check_param_gradients(layer, loss)


def make_inputs(layer, T, B, I, H, lengths, state_given, rng):
    L = layer.num_layers * layer.num_directions
    x = rng.standard_normal((B, T, I) if layer.batch_first else (T, B, I))
    state = None
    if state_given:
        h0 = 0.5 * rng.standard_normal((L, B, H))
        state = (h0, 0.5 * rng.standard_normal((L, B, H))) if isinstance(layer, fr.LSTM) else h0
    return x, state, (None if lengths is None else np.array(lengths))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_layer_gradients(kind, case):
    name, options, (T, B, I, H), lengths, state_given, dstate_given = case
    rng = np.random.default_rng(zlib.crc32(f"{kind.name}/{name}".encode()))
    layer = kind.layer(I, H, dtype=np.float64, seed=1, **options)
    if kind.peephole:  # larger peepholes than the default init, to make them count
        layer.load_state_dict(
            {
                k: rng.uniform(-1, 1, v.shape)
                for k, v in layer.state_dict().items()
                if k.startswith("weight_peep")
            },
            strict=False,
        )
    x, state, lengths = make_inputs(layer, T, B, I, H, lengths, state_given, rng)
    check_gradients(layer, x, state, lengths, dstate_given, rng)


def test_unbatched_gradients():
    rng = np.random.default_rng(5)
    layer = fr.LSTM(2, 3, num_layers=2, bidirectional=True, peephole=True, dtype=np.float64, seed=2)
    x = rng.standard_normal((4, 2))
    state = (rng.standard_normal((4, 3)), rng.standard_normal((4, 3)))
    check_gradients(layer, x, state, None, True, rng)


@pytest.mark.parametrize("kind", [KINDS[2], KINDS[5]], ids=["lstm", "gru_original"])
def test_dropout_gradients(kind):
    """Inter-layer dropout: the masks of the forward are applied in backward."""
    rng = np.random.default_rng(11)
    layer = kind.layer(
        3, 3, num_layers=3, bidirectional=True, dropout=0.4, dtype=np.float64, seed=3
    )
    x, state, lengths = make_inputs(layer, 4, 3, 3, 3, [4, 1, 3], True, rng)
    check_gradients(layer, x, state, lengths, True, rng, dropout_seed=123)


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_cell_gradients(kind, batched):
    """One cell step: forward (state', cache), backward(dstate', cache)."""
    rng = np.random.default_rng(zlib.crc32(f"cell/{kind.name}/{batched}".encode()))
    cell = kind.cell(3, 4, dtype=np.float64, seed=2)
    if kind.peephole:
        cell.load_state_dict({"weight_peep": rng.uniform(-1, 1, 12)}, strict=False)
    lead = (2,) if batched else ()
    x = rng.standard_normal(lead + (3,))
    lstm = kind.mode == "lstm"
    states = [rng.standard_normal(lead + (4,)) for _ in range(2 if lstm else 1)]
    weights = [rng.standard_normal(lead + (4,)) for _ in states]

    def loss():
        new, _ = cell.forward(x, tuple(states) if lstm else states[0])
        return float(sum(np.sum(s * w) for s, w in zip(new if lstm else [new], weights)))

    _, cache = cell.forward(x, tuple(states) if lstm else states[0])
    cell.zero_grad()
    dx, dstate0 = cell.backward(tuple(weights) if lstm else weights[0], cache)
    for what, analytic, arr in [("x", dx, x)] + [
        (f"state[{i}]", g, s)
        for i, (g, s) in enumerate(zip(dstate0 if lstm else [dstate0], states))
    ]:
        assert analytic.shape == arr.shape
        err = rel_err(analytic, numeric_grad(loss, arr))
        assert err < FD_REL, f"d{what}: relative error {err:.3g}"
    check_param_gradients(cell, loss)
