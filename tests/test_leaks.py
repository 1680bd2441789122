"""Memory stays flat over long runs.

Resident memory (/proc/self/statm) is measured after a warm-up and again
after 2,000 more iterations of: inference forward, training forward +
backward, stream steps (and runs), cell steps, and making / using /
dropping whole models (layers, cells, streams, save + load). Each iteration
moves tens of kilobytes (work buffers, caches, outputs, weights), so a leak
of any of them per call would grow memory by tens of megabytes; the bound
is 4 MB, the slack allocator caches need.
"""

import gc
import os

import numpy as np
import pytest

import fastrnn as fr
from helpers import KIND_IDS, KINDS

pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/self/statm"), reason="needs Linux /proc/self/statm"
)

PAGE = os.sysconf("SC_PAGE_SIZE")
ITERATIONS = 2000
WARMUP = 200
SLACK = 4 * 2**20
# one kind per layer class with its option on: the C kernels allocate nothing,
# so what differs between kinds is Python's side, which these cover
SOME_KINDS = [k for k in KINDS if k.name in ("rnn_relu", "lstm_peephole", "gru_original")]
SOME_IDS = [k.name for k in SOME_KINDS]


def rss():
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def assert_flat(step, iterations=ITERATIONS, warmup=WARMUP, what=""):
    for i in range(warmup):
        step(i)
    before = rss()
    for i in range(iterations):
        step(warmup + i)
    grown = rss() - before
    assert grown < SLACK, (
        f"{what}: resident memory grew {grown / 2**20:.1f} MB over {iterations} iterations"
    )


@pytest.mark.parametrize("kind", SOME_KINDS, ids=SOME_IDS)
def test_forward_and_backward(kind):
    """Inference forward (with lengths and a state), then training forward +
    backward, 2,000 times each."""
    rng = np.random.default_rng(0)
    layer = kind.layer(8, 32, num_layers=2, bidirectional=True, seed=0)
    x = rng.standard_normal((20, 4, 8)).astype(np.float32)
    lengths = np.array([20, 3, 0, 11])
    LD = 4
    h0 = rng.standard_normal((LD, 4, 32)).astype(np.float32)
    state = (h0, h0.copy()) if kind.mode == "lstm" else h0

    def infer(i):
        layer(x, state if i % 2 else None, lengths=lengths if i % 3 else None)

    assert_flat(infer, what="inference")
    dy = np.ones((20, 4, 64), np.float32)

    def train(i):
        y, s, cache = layer.forward(x, state, lengths=lengths if i % 2 else None)
        layer.backward(dy, cache, s if i % 3 == 0 else None)
        if i % 50 == 0:
            layer.zero_grad()

    assert_flat(train, what="training")


@pytest.mark.parametrize("kind", SOME_KINDS, ids=SOME_IDS)
def test_cells(kind):
    rng = np.random.default_rng(1)
    cell = kind.cell(16, 64, seed=0)
    x = rng.standard_normal((8, 16)).astype(np.float32)
    lstm = kind.mode == "lstm"

    def step(i):
        s = cell(x)
        s2, cache = cell.forward(x, s)
        d = (s2[0], s2[1]) if lstm else s2
        cell.backward(d, cache)

    assert_flat(step, what="cell")


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_stream_steps(kind):
    """20,000 single steps (fast path and converted frames, out=), and runs,
    state reads and writes, resets."""
    rng = np.random.default_rng(2)
    layer = kind.layer(16, 64, num_layers=2, seed=0)
    s = layer.stream(batch_size=3)
    frames = rng.standard_normal((10, 3, 16)).astype(np.float32)
    f64 = frames.astype(np.float64)
    out = np.empty((3, 64), np.float32)

    def step(i):
        for t in range(10):
            s.step(frames[t] if t % 2 else f64[t], out=out if t % 3 == 0 else None)
        s.run(frames)
        st = s.state
        s.state = st
        s.reset(i % 3)

    assert_flat(step, what="stream")


@pytest.mark.parametrize("kind", SOME_KINDS, ids=SOME_IDS)
def test_model_lifecycle(kind, tmp_path):
    """Models, cells and streams made, used and dropped 2,000 times; every
    tenth also saved and loaded back."""
    x = np.random.default_rng(3).standard_normal((5, 2, 16)).astype(np.float32)
    path = str(tmp_path / "m.npz")

    def cycle(i):
        layer = kind.layer(16, 64, num_layers=2, seed=i)
        layer(x)
        s = layer.stream(2)
        s.step(x[0])
        cell = kind.cell(16, 64, seed=i)
        cell(x[0])
        if i % 10 == 0:
            layer.save(path)
            fr.load(path)(x)

    assert_flat(cycle, what="model lifecycle")
