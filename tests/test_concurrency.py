"""Threads: fastrnn releases the GIL in C, so Python threads run its kernels
at once. What they share must not change what they compute:
- many threads running inference on ONE layer object (shared weights and
  packed-weight cache), and on one cell, for thousands of steps: every
  result bitwise identical to the single-threaded one;
- one training thread (forward, backward and weight updates on its own
  copy) beside inference threads on copies of their own: the training run
  ends with the single-threaded run's weights, bit for bit, and the
  inference results are unchanged;
- fr.set_num_threads(2) / (1) / (None) called inside threads while others
  run the threaded time loop: results bitwise identical (the kernels'
  results never depend on the number of OpenMP threads).
Streams of one layer in parallel threads are tested in test_stream.py.
"""

import threading

import numpy as np
import pytest

import fastrnn as fr
from helpers import KIND_IDS, KINDS

N_THREADS = 8


def run_threads(target, n):
    """Run target(k) in n threads started together; re-raise the first error."""
    errors = []
    start = threading.Barrier(n)

    def wrap(k):
        try:
            start.wait()
            target(k)
        except BaseException as e:  # reported after join
            errors.append(e)

    threads = [threading.Thread(target=wrap, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
        assert not t.is_alive(), "a thread hangs"
    if errors:
        raise errors[0]


def outputs(out):
    y, s = out
    return [y] + split_state_any(s)


def split_state_any(s):
    return list(s) if isinstance(s, tuple) else [s]


def assert_bitwise(got, want, what):
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a, b), (
            f"{what}: differs from the single-threaded result (max diff {np.abs(a - b).max():.3g})"
        )


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_threads_share_one_layer(kind):
    """8 threads x 40 calls x 20 steps on one layer object (a fresh one,
    so the threads also race to build its packed-weight cache): every y,
    h_n (c_n) bitwise the single-threaded one."""
    rng = np.random.default_rng(0)
    I, H, T, B = 12, 40, 20, 3
    xs = [rng.standard_normal((T, B, I)).astype(np.float32) for _ in range(N_THREADS)]
    lengths = [
        np.array([T, rng.integers(0, T + 1), rng.integers(1, T + 1)]) for _ in range(N_THREADS)
    ]
    reference = kind.layer(I, H, num_layers=2, bidirectional=True, seed=3)
    want = [outputs(reference(x, lengths=n)) for x, n in zip(xs, lengths)]
    shared = kind.layer(I, H, num_layers=2, bidirectional=True, seed=3)

    def work(k):
        for i in range(40):
            j = (k + i) % N_THREADS  # every thread sees every input
            assert_bitwise(
                outputs(shared(xs[j], lengths=lengths[j])), want[j], f"thread {k}, call {i}"
            )

    run_threads(work, N_THREADS)


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_threads_share_one_cell(kind):
    """8 threads each run 500 steps of one shared cell on their own inputs."""
    rng = np.random.default_rng(1)
    cell = kind.cell(6, 24, seed=2)
    xs = rng.standard_normal((N_THREADS, 500, 2, 6)).astype(np.float32)

    def unroll(x):
        state, hs = None, []
        for t in range(len(x)):
            state = cell(x[t], state)
            hs.append(split_state_any(state)[0])
        return np.stack(hs), split_state_any(state)

    want = [unroll(x) for x in xs]

    def work(k):
        hs, last = unroll(xs[k])
        assert_bitwise([hs] + last, [want[k][0]] + want[k][1], f"cell thread {k}")

    run_threads(work, N_THREADS)


def train_copy(kind, steps, x, target, lengths, lr=0.1):
    """A layer trained `steps` times towards `target` (squared error) with
    plain SGD written out here (forward, backward, p -= lr g through
    load_state_dict)."""
    layer = kind.layer(x.shape[-1], 32, num_layers=2, seed=7, dtype=np.float64)
    for _ in range(steps):
        layer.zero_grad()
        y, _, cache = layer.forward(x, lengths=lengths)
        layer.backward((y - target) / y.size, cache)
        layer.load_state_dict({k: p - lr * layer.grads[k] for k, p in layer.state_dict().items()})
    return layer.state_dict()


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_training_beside_inference(kind):
    """Thread 0 trains its own copy for 60 steps; threads 1-3 run inference
    on copies of their own meanwhile. All results bitwise single-threaded."""
    rng = np.random.default_rng(2)
    I, H, T, B = 10, 32, 15, 4
    x = rng.standard_normal((T, B, I))
    target = 0.5 * np.tanh(rng.standard_normal((T, B, 32)))
    lengths = np.array([T, 4, 0, 9])
    want_weights = train_copy(kind, 60, x, target, lengths)
    assert all(np.isfinite(w).all() for w in want_weights.values())
    models = [kind.layer(I, H, num_layers=2, seed=10 + k) for k in range(3)]
    inputs = [rng.standard_normal((T, B, I)).astype(np.float32) for _ in range(3)]
    want = [outputs(m(xi)) for m, xi in zip(models, inputs)]
    copies = [kind.layer(I, H, num_layers=2, seed=10 + k) for k in range(3)]

    def work(k):
        if k == 0:
            got = train_copy(kind, 60, x, target, lengths)
            for name, w in want_weights.items():
                assert np.array_equal(got[name], w), f"trained {name} differs"
        else:
            for i in range(150):
                assert_bitwise(
                    outputs(copies[k - 1](inputs[k - 1])),
                    want[k - 1],
                    f"inference thread {k}, call {i}",
                )

    run_threads(work, 4)


@pytest.mark.parametrize(
    "kind",
    [k for k in KINDS if k.name in ("lstm", "gru_original", "rnn_tanh")],
    ids=["lstm", "gru_original", "rnn_tanh"],
)
def test_set_num_threads_inside_threads(kind):
    """Sizes that run the time loop on two OpenMP threads. Four Python
    threads call fr.set_num_threads(2), (1) and (None) between their calls
    (a process-wide setting, so each call may run with 1 or 2 threads):
    every result is bitwise the one-thread result."""
    rng = np.random.default_rng(3)
    layer = kind.layer(32, 128, seed=5)
    xs = [rng.standard_normal((12, 12, 32)).astype(np.float32) for _ in range(4)]
    fr.set_num_threads(1)
    try:
        want = [outputs(layer(x)) for x in xs]
        fr.set_num_threads(2)
        assert all(
            np.array_equal(a, b) for x, w in zip(xs, want) for a, b in zip(outputs(layer(x)), w)
        ), "2 threads differ from 1"

        def work(k):
            settings = [2, 1, None, 2]
            for i in range(30):
                fr.set_num_threads(settings[(k + i) % 4])
                assert_bitwise(outputs(layer(xs[k])), want[k], f"thread {k}, call {i}")
                if i % 10 == 0:  # and training, threaded too
                    y, _, cache = layer.forward(xs[k])
                    assert np.array_equal(y, want[k][0])

        run_threads(work, 4)
    finally:
        fr.set_num_threads(None)
