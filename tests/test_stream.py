"""Streaming inference (fastrnn/stream.py, csrc/stream.inc): layer.stream(B).

Decisions this file encodes:
- step / run give the layer's own forward over the whole sequence (float32
  to ~1e-6 relative, float64 to ~1e-12); run is bitwise T calls of step.
- step returns the stream's own READ-ONLY output buffer (the same array every
  step, overwritten by the next) unless given out=; it allocates nothing.
- state is (L, B, H) like h_n (LSTM: (h, c)), read as copies, settable;
  reset() zeroes all rows, reset(rows) only those rows.
- one stream used by two threads at once raises RuntimeError (never corrupts
  or waits); streams of one layer run in parallel threads with the results
  each gives alone.
- weights changed after the stream was made (load_state_dict, setattr, an
  optimizer's _params_changed) are seen in full from the next step on.
- bidirectional layers refuse to stream (ValueError).
"""

import http.client
import importlib.util
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
import tracemalloc

import numpy as np
import pytest

import fastrnn as fr
from fastrnn import _core
from helpers import KIND_IDS, KINDS

REL = {np.dtype(np.float32): 2e-6, np.dtype(np.float64): 1e-12}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def make(kind, I=7, H=37, L=2, dtype=np.float32, seed=0):
    return kind.layer(I, H, num_layers=L, dtype=dtype, seed=seed)


def frames(T, B, I, dtype, seed=1):
    return np.random.default_rng(seed).standard_normal((T, B, I)).astype(dtype)


def final_states(layer, out):
    """The layer's (h_n, c_n or None)."""
    state = out[1]
    return state if isinstance(state, tuple) else (state, None)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_step_and_run_equal_the_layer_forward(kind, L, dtype):
    T, I, H = 9, 7, 37  # H not a multiple of the 32-row panels
    layer = make(kind, I, H, L, dtype)
    for B in (1, 3):
        x = frames(T, B, I, dtype)
        out = layer(x)
        h_n, c_n = final_states(layer, out)
        s = layer.stream(batch_size=B)
        ys = np.stack([s.step(x[t]).copy() for t in range(T)])
        assert ys.dtype == dtype and ys.shape == (T, B, H)
        assert rel_err(ys, out[0]) < REL[np.dtype(dtype)], (B, rel_err(ys, out[0]))
        state = s.state
        h, c = state if c_n is not None else (state, None)
        assert h.shape == (L, B, H) and rel_err(h, h_n) < REL[np.dtype(dtype)]
        if c_n is not None:
            assert rel_err(c, c_n) < REL[np.dtype(dtype)]
        r = layer.stream(batch_size=B)
        yr = r.run(x)
        np.testing.assert_array_equal(yr, ys)  # run == T steps, bitwise
        if B == 1:  # unbatched frames
            u = layer.stream()
            y1 = np.stack([u.step(x[t, 0]).copy() for t in range(T)])
            np.testing.assert_array_equal(y1, ys[:, 0])
            np.testing.assert_array_equal(layer.stream().run(x[:, 0]), ys[:, 0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_blas_products_equal_packed(kind, dtype):
    """The C stream runs its products on BLAS when a layer has no packed
    weights (the C API's option): same results."""
    from fastrnn import stream as st

    layer = make(kind, dtype=dtype)
    x = frames(6, 2, 7, dtype)
    packed = layer.stream(2).run(x)
    plain = [w[:5] + (None,) * 4 for w in st._weights(layer)]
    s = _core.Stream(
        layer._cell,
        getattr(layer, "peephole", False),
        getattr(layer, "linear_before_reset", True),
        layer.num_layers,
        2,
        7,
        37,
        dtype,
        lambda: plain,
    )
    assert rel_err(s.run(x), packed) < REL[np.dtype(dtype)]


def test_chunks_continue_and_state_round_trips():
    layer = fr.LSTM(5, 33, num_layers=2, seed=3)
    x = frames(12, 2, 5, np.float32)
    y_full, _ = layer(x)
    s = layer.stream(2)
    y = np.concatenate([s.run(x[:4]), s.run(x[4:5]), np.stack([s.step(x[5])]), s.run(x[6:])])
    assert rel_err(y, y_full) < 2e-6

    s = layer.stream(2)
    s.run(x[:6])
    saved = s.state
    tail = s.run(x[6:])
    t = layer.stream(2)
    t.state = saved  # set, then continue: same results
    np.testing.assert_array_equal(t.run(x[6:]), tail)
    h, c = t.state
    y_ref, (h_ref, c_ref) = layer(x[6:], saved)  # the layer from the same state
    assert rel_err(tail, y_ref) < 2e-6 and rel_err(h, h_ref) < 2e-6 and rel_err(c, c_ref) < 2e-6
    saved[0][...] = 7  # state hands out copies
    assert not np.any(t.state[0] == 7)


def test_state_shapes_and_errors():
    gru = fr.GRU(4, 8, num_layers=3)
    s = gru.stream(1)
    assert s.state.shape == (3, 1, 8)
    s.state = np.ones((3, 8))  # (L, H) when B == 1
    assert np.all(s.state == 1)
    with pytest.raises(ValueError, match=r"state \(h\).*\(3, 1, 8\)"):
        s.state = np.ones((2, 1, 8))
    with pytest.raises(TypeError, match="one array h"):
        s.state = (np.ones((3, 1, 8)), np.ones((3, 1, 8)))
    lstm = fr.LSTM(4, 8).stream(2)
    with pytest.raises(TypeError, match=r"tuple \(h, c\)"):
        lstm.state = np.zeros((1, 2, 8))
    with pytest.raises(ValueError, match=r"state\[1\] \(c\)"):
        lstm.state = (np.zeros((1, 2, 8)), np.zeros((1, 3, 8)))


def test_reset_all_and_one_row():
    layer = fr.GRU(6, 40, num_layers=2, seed=4)
    x = frames(10, 3, 6, np.float32)
    s = layer.stream(3)
    s.run(x[:5])
    s.reset(1)  # row 1 starts a new utterance
    y = s.run(x[5:])
    y_ref, _ = layer(x[5:], None)  # from zeros: row 1 only
    _, h5 = layer(x[:5])
    y_cont, _ = layer(x[5:], h5)  # continuing: rows 0 and 2
    assert rel_err(y[:, 1], y_ref[:, 1]) < 2e-6
    assert rel_err(y[:, [0, 2]], y_cont[:, [0, 2]]) < 2e-6
    s.reset([True, False, True])
    assert np.all(s.state[:, [0, 2]] == 0) and np.any(s.state[:, 1] != 0)
    s.reset()
    assert np.all(s.state == 0)
    with pytest.raises(ValueError, match="rows"):
        s.reset(3)
    with pytest.raises(TypeError, match="rows"):
        s.reset(1.5)


def test_output_buffer_and_out():
    layer = fr.RNN(3, 16, seed=0)
    s = layer.stream()
    x = frames(2, 1, 3, np.float32)
    y0 = s.step(x[0])
    first = y0.copy()
    y1 = s.step(x[1])
    assert y1 is y0 and not np.array_equal(y1, first)  # the stream's buffer, overwritten
    assert not y1.flags.writeable
    with pytest.raises(ValueError):
        y1 += 1
    t = layer.stream()
    out = np.empty(16, np.float32)
    assert t.step(x[0, 0], out=out) is out
    np.testing.assert_array_equal(out, first[0])
    out2 = np.empty((1, 16), np.float32)
    assert t.step(x[1], out=out2) is out2
    np.testing.assert_array_equal(out2, y1)
    with pytest.raises(TypeError, match="out: expected dtype float32"):
        t.step(x[0], out=np.empty(16))
    with pytest.raises(ValueError, match=r"out: expected shape \(1, 16\)"):
        t.step(x[0], out=np.empty(15, np.float32))
    with pytest.raises(ValueError, match="out: must be C-contiguous"):
        t.step(x[0], out=np.empty((16, 2), np.float32)[:, 0])
    yr = np.empty((2, 1, 16), np.float32)
    assert layer.stream().run(x, out=yr) is yr


OUT_CASES = [(k, size, False) for k in KINDS for size in (1, 2)] + [
    (k, size, True) for k in KINDS if k.name == "lstm" for size in (1, 2)
]


@pytest.mark.parametrize(
    "kind,size,proj",
    OUT_CASES,
    ids=[f"{k.name}-{'proj' if p else 'H'}{n}" for k, n, p in OUT_CASES],
)
def test_out_of_any_rank_is_refused(kind, size, proj):
    """A 0-d out= (and one whose last dimension fits at another rank) is a
    ValueError, never a read of a dimension it lacks (it once crashed the
    interpreter when the hidden or projection size was 1)."""
    layer = kind.layer(4, size + 1, proj_size=size) if proj else kind.layer(4, size)
    s = layer.stream()
    R = layer.output_size
    bad = {
        s.step: ((1, 4), [(), (1, 1, R), (0, R), (2, R), (R + 1,), (1, R, 1)]),
        s.run: ((1, 1, 4), [(), (R,), (1, R), (1, 1, R, 1), (0, 1, R), (1, 1, R + 1)]),
    }
    for method, (xshape, shapes) in bad.items():
        for shape in shapes:
            with pytest.raises(ValueError, match="out: expected shape"):
                method(np.ones(xshape, np.float32), out=np.zeros(shape, np.float32))
    state = s.state
    assert not any(p.any() for p in (state if isinstance(state, tuple) else (state,)))


def test_frame_checks_name_x_t():
    s = fr.LSTM(4, 8, dtype=np.float64).stream(2)
    ref = s.step(np.ones((2, 4))).copy()
    s.reset()
    np.testing.assert_array_equal(s.step([[1, 1, 1, 1]] * 2), ref)  # lists, ints: converted
    s.reset()
    np.testing.assert_array_equal(s.step(np.ones((4, 2)).T), ref)  # non-contiguous
    with pytest.raises(
        ValueError, match=r"x_t: expected one frame of shape \(2, 4\), got shape \(4,\)"
    ):
        s.step(np.ones(4))  # (I,) only when B == 1
    with pytest.raises(ValueError, match="x_t"):
        s.step(np.ones((2, 5)))
    with pytest.raises(TypeError, match="x_t"):
        s.step(np.ones((2, 4), complex))
    with pytest.raises(TypeError, match="x_t"):
        s.step("frame")
    with pytest.raises(ValueError, match=r"x: expected a chunk of frames of shape \(T, 2, 4\)"):
        s.run(np.ones((3, 4)))


def test_bidirectional_and_bad_batch_refuse():
    with pytest.raises(ValueError, match="bidirectional"):
        fr.GRU(4, 8, bidirectional=True).stream()
    with pytest.raises(ValueError, match="batch_size"):
        fr.GRU(4, 8).stream(0)
    with pytest.raises(TypeError, match="batch_size"):
        fr.GRU(4, 8).stream(1.5)


def test_weights_changed_are_seen_from_the_next_step():
    a = fr.LSTM(5, 24, num_layers=2, seed=1)
    b = fr.LSTM(5, 24, num_layers=2, seed=2)
    x = frames(8, 1, 5, np.float32)
    s = a.stream()
    s.run(x[:4])
    state = s.state
    a.load_state_dict(b.state_dict())  # the whole set changes at once
    y = s.run(x[4:])
    y_ref, _ = b(x[4:], state)  # new weights, the stream's state
    assert rel_err(y, y_ref) < 2e-6
    a.weight_hh_l1 = np.zeros_like(a.weight_hh_l1)  # setattr: one parameter
    y = s.step(x[0, 0]).copy()
    h, c = s.state
    s.state = (h, c)
    ref = b.state_dict()
    ref["weight_hh_l1"][...] = 0
    b.load_state_dict(ref)
    t = b.stream()
    t.state = (h, c)
    np.testing.assert_array_equal(t.step(x[1, 0]), s.step(x[1, 0]))
    # an optimizer changes parameters in place, then calls _params_changed
    a._params["bias_ih_l0"] += 1
    a._params_changed()
    s.reset()
    y_ref, _ = a(x)
    assert rel_err(s.run(x), y_ref) < 2e-6


def test_streams_of_one_layer_run_in_parallel_threads():
    layer = fr.GRU(16, 96, num_layers=2, seed=5)
    xs = [frames(300, 1, 16, np.float32, seed=k) for k in range(4)]
    alone = [layer.stream().run(x) for x in xs]
    streams = [layer.stream() for _ in xs]
    results = [None] * len(xs)
    start = threading.Barrier(len(xs))

    def work(k):
        start.wait()
        s, ys = streams[k], []
        for t in range(len(xs[k])):
            ys.append(s.step(xs[k][t]).copy())
        results[k] = np.stack(ys)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, alone):
        np.testing.assert_array_equal(got, want)


def test_one_stream_from_two_threads_raises():
    layer = fr.LSTM(64, 256, seed=6)
    s = layer.stream()
    x = frames(4000, 1, 64, np.float32)
    want = layer.stream().run(x)
    got, busy = {}, []

    def long_run():
        got["y"] = s.run(x)

    t = threading.Thread(target=long_run)
    t.start()
    while t.is_alive() and not busy:
        try:
            s.step(x[0])  # only succeeds before or after the run
        except RuntimeError as e:
            busy.append(str(e))
    t.join()
    assert busy, "the second thread never met the running stream (the run was too short)"
    assert "in use by another thread" in busy[0]
    # The run was not disturbed (steps that got in before it only change the
    # starting state, so compare from a known state).
    s.reset()
    np.testing.assert_array_equal(s.run(x), want)


def test_step_allocates_nothing_tracemalloc():
    layer = fr.LSTM(16, 32, num_layers=2, seed=0)
    s = layer.stream()
    x = np.ones(16, np.float32)
    out = np.empty(32, np.float32)
    for _ in range(10):
        s.step(x, out=out)
        s.step(x)
    loop = itertools.repeat(None, 10_000)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in loop:
            s.step(x, out=out)
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after == before, f"net allocation of {after - before} bytes over 10,000 steps"
    assert peak - before < 64, f"a step allocated (peak {peak - before} bytes)"


SHIM = r"""
#include <stddef.h>
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
static long count;
static int active;
void shim_start(void) { count = 0; __atomic_store_n(&active, 1, __ATOMIC_SEQ_CST); }
long shim_stop(void) { __atomic_store_n(&active, 0, __ATOMIC_SEQ_CST); return count; }
#define COUNT() \
    if (__atomic_load_n(&active, __ATOMIC_RELAXED)) __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED)
void *malloc(size_t n) { COUNT(); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { COUNT(); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { COUNT(); return __libc_realloc(p, n); }
"""

PROBE = r"""
import ctypes, numpy as np, fastrnn as fr
from fastrnn import _core
lib = ctypes.CDLL(None)
lib.shim_stop.restype = ctypes.c_long
counts = {}
for dtype in (np.float32, np.float64):
    for cls in (fr.LSTM, fr.GRU, fr.RNN):
        s = cls(16, 48, num_layers=2, dtype=dtype).stream(2)
        x = np.ones((2, 16), dtype)
        X, Y = np.ones((2000, 2, 16), dtype), np.empty((2000, 2, 48), dtype)
        _core.time_stream_steps(s, x, 10)
        s.run(X, out=Y)
        lib.shim_start(); _core.time_stream_steps(s, x, 5000); n = lib.shim_stop()
        lib.shim_start(); s.run(X, out=Y); m = lib.shim_stop()
        counts[f"{cls.__name__}-{np.dtype(dtype).name}"] = (n, m)
lib.shim_start(); np.empty(1 << 20); counts["control"] = lib.shim_stop()
print(counts)
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or shutil.which("gcc") is None,
    reason="needs Linux (glibc) and gcc for the malloc-counting shim",
)
def test_c_step_allocates_nothing(tmp_path):
    """Every malloc/calloc/realloc of the process is counted (an LD_PRELOAD
    shim) while the C stream takes 5,000 steps (and a 2,000-step run): zero."""
    src = tmp_path / "shim.c"
    src.write_text(SHIM)
    lib = tmp_path / "shim.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", str(src), "-o", str(lib)], check=True)
    env = dict(os.environ, LD_PRELOAD=str(lib))
    r = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    counts = eval(r.stdout.strip().splitlines()[-1])
    assert counts.pop("control") >= 1  # the shim does count
    assert all(v == (0, 0) for v in counts.values()), counts


def load_example(name):
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(ROOT, "examples", name + ".py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_http_service_answers_two_sessions():
    service = load_example("stream_service")
    layer = fr.LSTM(6, 20, num_layers=2, seed=7)
    server = service.make_server(layer, "127.0.0.1", 0)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        xa, xb = frames(5, 1, 6, np.float32, seed=1), frames(5, 1, 6, np.float32, seed=2)
        conns = {
            "a": http.client.HTTPConnection("127.0.0.1", port, timeout=10),
            "b": http.client.HTTPConnection("127.0.0.1", port, timeout=10),
        }

        def post(conn, path, body):
            conns[conn].request("POST", path, json.dumps(body))
            r = conns[conn].getresponse()
            return r.status, json.loads(r.read())

        ya, yb = [], []
        for t in range(4):  # the sessions interleaved
            for sid, x, ys in (("a", xa, ya), ("b", xb, yb)):
                status, body = post(sid, "/step", {"session": sid, "frame": x[t, 0].tolist()})
                assert status == 200 and body["session"] == sid
                ys.append(body["output"])
        status, body = post("a", "/step", {"session": "a", "frames": xa[4:, 0].tolist()})
        assert status == 200
        ya += body["outputs"]
        want_a, _ = layer(xa)
        want_b, _ = layer(xb[:4])
        assert rel_err(np.array(ya, np.float32), want_a[:, 0]) < 2e-6
        assert rel_err(np.array(yb, np.float32), want_b[:, 0]) < 2e-6
        status, body = post("b", "/step", {"session": "b", "frame": [1.0] * 5})
        assert status == 400 and "x_t" in body["error"]
        status, body = post(
            "b", "/step", {"session": "b", "frame": xb[0, 0].tolist(), "reset": True}
        )
        assert status == 200 and rel_err(np.array(body["output"]), want_b[0, 0]) < 2e-6
        conns["a"].request("GET", "/health")
        assert json.loads(conns["a"].getresponse().read())["sessions"] == 2
        assert post("a", "/end", {"session": "a"})[1]["ended"] is True
        for c in conns.values():
            c.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
