"""Batches of mixed lengths: with `lengths=`, the C engine runs the rows
sorted by length and each step computes only the rows still running
(csrc/sequence.inc). Every kind, both directions, one and two threads
(which split the rows or the hidden units), unsorted lengths with zeros and
full-length rows: the outputs and final states match the float64 reference,
the training forward gives the inference results bit for bit, two threads
give one thread's results bit for bit (outputs and every gradient), and the
gradients match the same layer in float64."""

import numpy as np
import pytest

import fastrnn as fr
from helpers import KIND_IDS, KINDS, assert_close, split_state
from reference import layer_forward

T, I = 13, 24


def run(layer, mode, x, state, lengths, dy, threads):
    """(outputs, final states, dx, the initial states' gradients, every
    parameter gradient) of an inference call, a training forward and a
    backward at `threads` threads, checking that the two forwards agree."""
    old = fr.get_num_threads()
    fr.set_num_threads(threads)
    try:
        y_call, state_call = layer(x, state, lengths=lengths)
        layer.zero_grad()
        y, state_n, cache = layer.forward(x, state, lengths=lengths)
        dx, dstate = layer.backward(dy, cache)
    finally:
        fr.set_num_threads(old)
    np.testing.assert_array_equal(y, y_call)
    for a, b in zip(split_state(mode, state_n), split_state(mode, state_call)):
        np.testing.assert_array_equal(a, b)
    grads = [g.copy() for g in layer.grads.values()]
    return [y, *split_state(mode, state_n), dx, *split_state(mode, dstate), *grads]


@pytest.mark.parametrize("B, H", [(48, 64), (50, 96)], ids=["rows", "units"])
@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_mixed_lengths(kind, B, H):
    """B = 48 rows split between two threads in whole row blocks of every
    SIMD path (4, 6 or 8 rows: the threads take 24 each), the rows running
    at a step passing through counts that leave one row past a block (1, 7,
    13, 25); B = 50 is not a multiple of them, so the threads split the
    units."""
    rng = np.random.default_rng(B + H)
    layer = kind.layer(I, H, bidirectional=True, seed=5)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    if B == 48:  # rows running at t = 0 .. T-1, one row of length 0
        running = np.array([47, 43, 37, 31, 25, 24, 19, 13, 7, 6, 2, 1, 1])
        lengths = np.repeat(np.arange(T + 1), -np.diff(np.r_[B, running, 0]))
    else:
        lengths = rng.integers(0, T + 1, B)
        lengths[:3] = [T, 0, 1]
    rng.shuffle(lengths)
    h0 = 0.5 * rng.standard_normal((2, B, H)).astype(np.float32)
    state = (
        (h0, 0.5 * rng.standard_normal((2, B, H)).astype(np.float32)) if kind.mode == "lstm" else h0
    )
    dy = rng.standard_normal((T, B, 2 * H)).astype(np.float32)

    one = run(layer, kind.mode, x, state, lengths, dy, 1)
    two = run(layer, kind.mode, x, state, lengths, dy, 2)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)

    params = {k: v.astype(np.float64) for k, v in layer.state_dict().items()}
    y_ref, state_ref = layer_forward(kind.mode, params, x, state, lengths, **kind.ref_kwargs)
    assert_close(one[0], y_ref, np.float32, "y")
    refs = state_ref if kind.mode == "lstm" else (state_ref,)
    for got, want in zip(one[1:], refs):
        assert_close(got, want, np.float32, "final state")

    wide = kind.layer(I, H, bidirectional=True, dtype=np.float64)
    wide.load_state_dict(params)
    state64 = tuple(np.float64(s) for s in state) if kind.mode == "lstm" else np.float64(state)
    ref = run(wide, kind.mode, x.astype(np.float64), state64, lengths, dy.astype(np.float64), 1)
    n_state = 2 if kind.mode == "lstm" else 1
    for got, want in zip(one[1 + n_state :], ref[1 + n_state :]):
        assert_close(got, want, np.float32, "gradient", rel=1e-4)
