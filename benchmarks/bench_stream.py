"""Streaming inference, one time step per call: fastrnn's Stream against
PyTorch, ONNX Runtime and NumPy, batch 1, I = H, one thread.

    python benchmarks/bench_stream.py                        # the full run (~2-4 min)
    python benchmarks/bench_stream.py --cells lstm --sizes 64 128 --steps 1000
    python benchmarks/bench_stream.py --products             # only packed kernel vs BLAS

Engines (same weights: a torch module's state_dict), each stepping with its
state fed back:
  fastrnn        s = layer.stream(); s.step(x_t, out=y)
  torch cell     nn.LSTMCell / GRUCell / RNNCell, under torch.inference_mode
  torch layer    nn.LSTM / GRU / RNN called on one step (T = 1), state fed back
  ORT            a one-step ONNX model (one LSTM / GRU / RNN node built with
                 onnx.helper: LSTM gates i,o,f,c vs PyTorch's i,f,g,o; GRU
                 z,r,h vs r,z,n with linear_before_reset=1), sess.run() with
                 the state fed back
  NumPy          a plain NumPy step (W_ih @ x + W_hh @ h + b, the gate math)
One thread everywhere: threadpoolctl limits BLAS to 1, torch.set_num_threads(1),
ORT intra_op_num_threads=1 (sequential, inter_op 1).

Method. Before timing, every engine runs 30 steps from zero state on the
same frames and must match fastrnn's outputs (max rel. error < 1e-4), else
it is reported FAILED. Then --rounds rounds; in each, every engine in turn
(order rotated) takes --steps steps, each timed alone with perf_counter_ns
(the timer's own cost, calibrated, is subtracted). We report the median and
p99 over all steps (>= 10,000 by default), ratios peer / fastrnn (> 1:
fastrnn is faster), the weights read per step over fastrnn's step time
(GB/s: 4 G H (I + H) bytes), and where fastrnn's step goes: the C step alone
(timed in C, fastrnn._core.time_stream_steps), the products alone (the packed
kernel on the same W_ih and W_hh, timed in C), so that
    Python share = (step - C step) / step
    fixed share  = (step - products) / step   (everything but the arithmetic
                                               of the weight products)
The machine drifts between fast and slow states: interleaving keeps the
ratios fair; compare ratios from the same run. --products compares the
packed kernel with BLAS sgemm at M = 1 (both timed in C) for H = 64..1024:
the choice fastrnn/stream.py makes (USE_PACKED).
"""

import argparse
import functools
import os
import platform
import sys
import threading
import time

import numpy as np
import onnx
import onnxruntime as ort
import scipy
import scipy.linalg  # load SciPy's OpenBLAS before threadpoolctl looks for it
import torch
from threadpoolctl import threadpool_info, threadpool_limits

import fastrnn as fr
from fastrnn import _core, bench

MODS = {"onnx": onnx, "ort": ort}  # what fastrnn.bench's ONNX helpers use

GATES = {"lstm": 4, "gru": 3, "rnn": 1}
ENGINES = ("fastrnn", "torch cell", "torch layer", "ORT", "NumPy")
# (H, x faster than the torch cell, x faster than ORT): issue 4's goals, medians
GOALS = {64: (10, 3), 128: (8, 3), 256: (3, 1.3), 512: (2, 1.1)}
MAX_REL_ERR = 1e-4


# ---------------------------------------------------------------- engines


def torch_modules(cell, H, seed=0):
    torch.manual_seed(seed)
    layer = {
        "lstm": lambda: torch.nn.LSTM(H, H),
        "gru": lambda: torch.nn.GRU(H, H),
        "rnn": lambda: torch.nn.RNN(H, H, nonlinearity="tanh"),
    }[cell]().eval()
    one = {
        "lstm": torch.nn.LSTMCell,
        "gru": torch.nn.GRUCell,
        "rnn": lambda i, h: torch.nn.RNNCell(i, h, nonlinearity="tanh"),
    }[cell](H, H).eval()
    one.load_state_dict({k[:-3]: v for k, v in layer.state_dict().items()})
    return layer, one


def fastrnn_runner(cell, layer_t, H, x):
    layer = {"lstm": fr.LSTM, "gru": fr.GRU, "rnn": fr.RNN}[cell](H, H)
    layer.load_state_dict(layer_t.state_dict())
    s = layer.stream()
    out = np.empty(H, np.float32)
    return functools.partial(s.step, x, out), s, layer


def torch_cell_runner(cell, one, H, x):
    xt = torch.from_numpy(x[None])
    state = [torch.zeros(1, H), torch.zeros(1, H)]
    if cell == "lstm":

        def run():
            state[0], state[1] = one(xt, (state[0], state[1]))
            return state[0]
    else:

        def run():
            state[0] = one(xt, state[0])
            return state[0]

    return run


def torch_layer_runner(cell, layer, H, x):
    xt = torch.from_numpy(x[None, None])
    state = [torch.zeros(1, 1, H), torch.zeros(1, 1, H)]
    if cell == "lstm":

        def run():
            y, (state[0], state[1]) = layer(xt, (state[0], state[1]))
            return y
    else:

        def run():
            y, state[0] = layer(xt, state[0])
            return y

    return run


def ort_runner(cell, layer, H, x):
    """ONNX Runtime on a one-step node with the state fed back (the model
    fastrnn.bench builds for `fastrnn bench`)."""
    sd = {k: v.detach().numpy() for k, v in layer.state_dict().items()}
    sess = bench.ort_session(MODS, bench.onnx_model(MODS, cell, sd, 1, 1, H, state_io=True), 1)
    x3 = x[None, None]
    zero = np.zeros((1, 1, H), np.float32)
    if cell == "lstm":
        feed = {"X": x3, "h0": zero, "c0": zero}
        names = ["h1", "c1"]

        def run():
            feed["h0"], feed["c0"] = sess.run(names, feed)
            return feed["h0"]
    else:
        feed = {"X": x3, "h0": zero}
        names = ["h1"]

        def run():
            (feed["h0"],) = sess.run(names, feed)
            return feed["h0"]

    return run


def numpy_runner(cell, layer, H, x):
    sd = {k: v.detach().numpy().copy() for k, v in layer.state_dict().items()}
    W, R = sd["weight_ih_l0"], sd["weight_hh_l0"]
    bi, bh = sd["bias_ih_l0"], sd["bias_hh_l0"]
    b = bi + bh
    st = [np.zeros(H, np.float32), np.zeros(H, np.float32)]

    def sigmoid(v):
        return 1 / (1 + np.exp(-v))

    if cell == "lstm":

        def run():
            h, c = st
            g = W @ x + R @ h + b
            i, f, o = sigmoid(g[:H]), sigmoid(g[H : 2 * H]), sigmoid(g[3 * H :])
            c = f * c + i * np.tanh(g[2 * H : 3 * H])
            st[0], st[1] = o * np.tanh(c), c
            return st[0]
    elif cell == "gru":

        def run():
            h = st[0]
            gx, gh = W @ x + bi, R @ h + bh
            r, z = sigmoid(gx[:H] + gh[:H]), sigmoid(gx[H : 2 * H] + gh[H : 2 * H])
            n = np.tanh(gx[2 * H :] + r * gh[2 * H :])
            st[0] = n + z * (h - n)
            return st[0]
    else:

        def run():
            st[0] = np.tanh(W @ x + R @ st[0] + b)
            return st[0]

    return run


def check(runners, n=30):
    """Each engine's outputs over n steps from zero state vs fastrnn's:
    name -> max relative error. (Runners start from zero; run after this,
    they continue from the state reached, which is fine for timing.)"""
    outs = {}
    for name, run in runners.items():
        outs[name] = np.stack([np.asarray(run()).reshape(-1).copy() for _ in range(n)])
    ref = outs["fastrnn"]
    return {name: float(np.abs(o - ref).max() / np.abs(ref).max()) for name, o in outs.items()}


# ---------------------------------------------------------------- timing


def timer_overhead(n=20000):
    """Median ns between two back-to-back perf_counter_ns calls in the timing
    loop: what every per-step sample carries on top of the step."""
    pc, ts = time.perf_counter_ns, np.empty(n)
    for k in range(n):
        t0 = pc()
        ts[k] = pc() - t0
    return float(np.median(ts))


def time_steps(run, n):
    pc, ts = time.perf_counter_ns, np.empty(n)
    for k in range(n):
        t0 = pc()
        run()
        ts[k] = pc() - t0
    return ts


def measure(runners, steps, rounds, calib_ns, c_timed):
    """Interleaved rounds, the engines' order rotated each round. Right after
    fastrnn's turn in a round, each of `c_timed` (name -> f(n): seconds per
    call over n calls, timed in C) runs too, so that fastrnn's breakdown
    compares times taken moments apart. Returns (name -> all per-step us,
    name -> per-round us: the median step, or the C-timed mean)."""
    names = list(runners)
    for name in names:  # warm-up
        for _ in range(min(steps, 300)):
            runners[name]()
    samples = {name: [] for name in names}
    per_round = {name: [] for name in names + list(c_timed)}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            ts = (time_steps(runners[name], steps) - calib_ns) * 1e-3
            samples[name].append(ts)
            per_round[name].append(float(np.median(ts)))
            if name == "fastrnn":
                for aux, f in c_timed.items():
                    per_round[aux].append(f(steps) * 1e6)
    return (
        {name: np.concatenate(v) for name, v in samples.items()},
        {name: np.array(v) for name, v in per_round.items()},
    )


# ---------------------------------------------------------------- sections


def bench_products(sizes, reps_bytes=4e8, rounds=5):
    """Packed kernel vs BLAS sgemm, C (1, G*H) = x (1, H) W^T, timed in C."""
    print("\n## Products at batch 1: packed SIMD kernel vs BLAS sgemm (us per call, C-timed)\n")
    print("| G | H | W bytes | packed | sgemm | sgemm / packed | packed GB/s |")
    print("|--:|--:|--:|--:|--:|--:|--:|")
    rng = np.random.default_rng(0)
    for G in (1, 3, 4):
        for H in sizes:
            w = rng.standard_normal((G * H, H)).astype(np.float32)
            p = _core.pack(w)
            reps = max(20, int(reps_bytes / w.nbytes / rounds))
            tp, tb = [], []
            for _ in range(rounds):
                tp.append(_core.time_product(w, p, 1, reps))
                tb.append(_core.time_product(w, None, 1, reps))
            tp, tb = min(tp) * 1e6, min(tb) * 1e6
            print(
                f"| {G} | {H} | {w.nbytes / 1024:.0f} KB | {tp:.3f} | {tb:.3f} | "
                f"{tb / tp:.2f} | {w.nbytes / tp / 1e3:.1f} |",
                flush=True,
            )


def c_timed(s, layer, H, batch=25):
    """fastrnn's step timed in C, and the packed products alone (W_ih, W_hh):
    f(n) -> the median over batches of `batch` calls (each batch timed in C),
    robust to the preemptions a busy machine brings."""
    x2 = np.ones((1, H), np.float32)
    names = ("weight_ih_l0", "weight_hh_l0")

    def step(n):
        return float(
            np.median([_core.time_stream_steps(s, x2, batch) for _ in range(max(n // batch, 1))])
        )

    def products(n):
        return sum(
            float(
                np.median(
                    [
                        _core.time_product(layer._params[k], layer._packed(k), 1, batch)
                        for _ in range(max(n // batch, 1))
                    ]
                )
            )
            for k in names
        )

    return {"C step": step, "products": products}


def bench_steps(cells, sizes, steps, rounds, quiet_wait=0.0):
    calib = timer_overhead()
    print(
        f"\n## Streaming step, batch 1, I = H, 1 thread (us per step; timer cost "
        f"{calib:.0f} ns subtracted)\n"
    )
    rows = []
    for cell in cells:
        for H in sizes:
            G = GATES[cell]
            layer_t, one = torch_modules(cell, H)
            x = np.random.default_rng(1).standard_normal(H).astype(np.float32)
            fr_run, s, layer = fastrnn_runner(cell, layer_t, H, x)
            runners = {
                "fastrnn": fr_run,
                "torch cell": torch_cell_runner(cell, one, H, x),
                "torch layer": torch_layer_runner(cell, layer_t, H, x),
                "ORT": ort_runner(cell, layer_t, H, x),
                "NumPy": numpy_runner(cell, layer_t, H, x),
            }
            errs = check(runners)
            failed = [n for n, e in errs.items() if not e < MAX_REL_ERR]
            for n in failed:
                print(f"{cell} H={H}: {n} FAILED the check (rel. error {errs[n]:.2e})")
                del runners[n]
            if quiet_wait > 0:
                bench.wait_until_quiet(quiet_wait)
            start, t0 = bench.cpu_seconds(), time.perf_counter()
            t, rounds_t = measure(runners, steps, rounds, calib, c_timed(s, layer, H))
            load = bench.others_load(start, time.perf_counter() - t0)
            py, cs, pr = rounds_t["fastrnn"], rounds_t["C step"], rounds_t["products"]
            split = (
                np.median(cs),
                np.median(pr),
                np.median((py - cs) / py),
                np.median(np.maximum(py - pr, 0) / py),
            )
            rows.append(
                (
                    cell,
                    H,
                    G,
                    {n: (np.median(v), np.percentile(v, 99), v.size) for n, v in t.items()},
                    split,
                    load,
                )
            )
            print_row(rows[-1])
    return rows


HEADER_PRINTED = []


def print_row(row):
    cell, H, G, t, (c_step, prods, py_share, fixed_share), load = row
    if not HEADER_PRINTED:
        HEADER_PRINTED.append(1)
        print(
            "| cell | H | fastrnn med / p99 | torch cell | torch layer | ORT | NumPy "
            "| x cell | x layer | x ORT | x NumPy | GB/s | C step | products | Python % "
            "| fixed % | goal | load |"
        )
        print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|")
    f = t["fastrnn"][0]

    def cellv(n):
        return f"{t[n][0]:.2f} / {t[n][1]:.2f}" if n in t else "FAILED"

    def ratio(n):
        return f"{t[n][0] / f:.1f}" if n in t else "-"

    gbs = 4 * G * H * 2 * H / (f * 1e-6) / 1e9
    goal = ""
    if H in GOALS and "torch cell" in t and "ORT" in t:
        gc, go = GOALS[H]
        rc, ro = t["torch cell"][0] / f, t["ORT"][0] / f
        goal = f"{'met' if rc >= gc and ro >= go else 'MISSED'} ({gc}x, {go}x)"
    print(
        f"| {cell} | {H} | {cellv('fastrnn')} | {cellv('torch cell')} | {cellv('torch layer')} "
        f"| {cellv('ORT')} | {cellv('NumPy')} | {ratio('torch cell')} | {ratio('torch layer')} "
        f"| {ratio('ORT')} | {ratio('NumPy')} | {gbs:.0f} | {c_step:.2f} | {prods:.2f} "
        f"| {100 * py_share:.0f} | {100 * fixed_share:.0f} | {goal} "
        f"| {load:.2f} |",
        flush=True,
    )


def bench_parallel(H=128, steps=20000, quiet_wait=0.0):
    """Streams of one layer in 1 and 2 threads: steps per second in all."""
    layer = fr.LSTM(H, H, seed=0)
    x = np.ones(H, np.float32)

    def work(s, n):
        out = np.empty(H, np.float32)
        for _ in range(n):
            s.step(x, out)

    print(f"\n## Streams of one LSTM (H = {H}) in parallel threads (each its own stream)\n")
    print("| threads | steps/s in all | speed-up | load |")
    print("|--:|--:|--:|--:|")
    base = None
    for n_threads in (1, 2):
        streams = [layer.stream() for _ in range(n_threads)]
        for s in streams:
            work(s, 200)
        threads = [threading.Thread(target=work, args=(s, steps)) for s in streams]
        if quiet_wait > 0:
            bench.wait_until_quiet(quiet_wait)
        start, t0 = bench.cpu_seconds(), time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        rate, load = n_threads * steps / wall, bench.others_load(start, wall)
        base = base or rate
        print(f"| {n_threads} | {rate:,.0f} | {rate / base:.2f} | {load:.2f} |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cells", nargs="+", default=["lstm", "gru", "rnn"], choices=list(GATES))
    p.add_argument("--sizes", nargs="+", type=int, default=[64, 128, 256, 512])
    p.add_argument("--steps", type=int, default=2000, help="timed steps per engine per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--products", action="store_true", help="only the packed vs BLAS table")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        help="before each row, wait up to this many seconds for other processes "
        "to leave the CPUs idle (< 0.25 cores busy)",
    )
    p.add_argument("--product-sizes", nargs="+", type=int, default=[64, 128, 256, 512, 1024])
    a = p.parse_args(argv)

    torch.set_num_threads(1)
    with threadpool_limits(1):
        blas = [
            f"{i['internal_api']} {i.get('version')}"
            for i in threadpool_info()
            if i["user_api"] == "blas"
        ]
        print(
            f"# fastrnn streaming benchmark\n\n{platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} CPUs; python {platform.python_version()}, numpy "
            f"{np.__version__}, scipy {scipy.__version__} ({', '.join(blas)}), torch "
            f"{torch.__version__}, onnxruntime {ort.__version__}; fastrnn kernel "
            f"ISA auto; 1 thread"
        )
        if a.quiet_wait > 0:
            bench.wait_until_quiet(a.quiet_wait)
        bench_products(a.product_sizes)
        if a.products:
            return
        with torch.inference_mode():
            bench_steps(a.cells, a.sizes, a.steps, a.rounds, a.quiet_wait)
        bench_parallel(quiet_wait=a.quiet_wait)
        print(
            "\nratios: peer median / fastrnn median (> 1: fastrnn faster); GB/s: fp32 "
            "weights per step / fastrnn step; Python %: share of the step outside C; "
            "fixed %: share outside the packed products; load: cores other "
            "processes used meanwhile"
        )


if __name__ == "__main__":
    sys.exit(main())
