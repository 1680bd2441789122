"""Sequence inference: fastrnn vs PyTorch vs ONNX Runtime on the same weights.

Forward over one batch of sequences, T = 100, I = H = 256, B in {1, 16, 64},
for LSTM, GRU and RNN (tanh), with 1 and with 2 threads:

    python benchmarks/bench_sequence.py                       # the full run
    python benchmarks/bench_sequence.py --cells lstm --batches 16 --threads 1
    python benchmarks/bench_sequence.py --profile             # where fastrnn's time goes

Engines
  fastrnn       fr.LSTM / fr.GRU / fr.RNN, weights from the torch module's state_dict
  PyTorch       nn.LSTM / nn.GRU / nn.RNN under torch.inference_mode
  ONNX Runtime  one ONNX LSTM / GRU / RNN node built from the same weights

Threads: N applies to every engine -- threadpoolctl.threadpool_limits(N) (the
BLAS libraries and the OpenMP runtimes, fastrnn's included), plus
fr.set_num_threads(N), torch.set_num_threads(N), and ORT's
intra_op_num_threads=N (sequential executor, inter_op_num_threads=1).

Method. Before any timing, every engine's output y is checked against
fastrnn's on the same input (max|y - y_fr| / max|y_fr| < 1e-4, else the row is
reported as FAILED and not timed). This machine drifts between a fast and a
slow state for seconds at a time, so the engines are interleaved: after a
warm-up, each of --rounds rounds times every engine in turn (the order rotated
each round) for at least --min-time seconds, keeping every per-call time;
before each turn the process idles --settle seconds so that the previous
engine's spinning worker threads park and do not steal a core. The machine may
also be shared: each row first waits (up to --quiet-wait s) for other
processes to go idle, and the table shows the load they put on it while the
row ran (cores, from /proc/stat). We report the best round's median (the
headline), the median and p90 over all samples, ratios peer / fastrnn (> 1:
fastrnn is faster) and GFLOP/s with FLOPs = 2 T B G H (I + H), G the number
of gates (LSTM 4, GRU 3, RNN 1).

--profile splits fastrnn's time for the same rows against the machine's SGEMM
rate: the input GEMM (T*B x I times I x GH) once and the recurrent GEMMs
(B x H times H x GH) T times, timed with scipy.linalg.blas.sgemm (SciPy's
OpenBLAS) on the same shapes and transposes into preallocated outputs; the
Python cost of T sgemm calls (a 1x1x1 sgemm) is subtracted. What is left of
fastrnn's time is the gate passes plus allocation and bookkeeping. When the
build has it (fastrnn._core.time_product), the same two products are also
timed on fastrnn's own packed kernel, in C, on one thread.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
import scipy
import scipy.linalg  # load SciPy's OpenBLAS before threadpoolctl looks for it
import scipy.linalg.blas
import torch
from threadpoolctl import threadpool_info, threadpool_limits

import fastrnn as fr
from fastrnn import bench

MODS = {"onnx": onnx, "ort": ort}  # what fastrnn.bench's ONNX helpers use

T, I, H = 100, 256, 256
GATES = {"lstm": 4, "gru": 3, "rnn": 1}
ENGINES = ("fastrnn", "PyTorch", "ORT")
MAX_REL_ERR = 1e-4


# ---------------------------------------------------------------- engines
# Each builder returns a callable running one forward over x and returning y.


def build_torch(cell, seed=0):
    """The reference module; its weights feed the other two engines."""
    torch.manual_seed(seed)
    module = {
        "lstm": lambda: torch.nn.LSTM(I, H),
        "gru": lambda: torch.nn.GRU(I, H),
        "rnn": lambda: torch.nn.RNN(I, H, nonlinearity="tanh"),
    }[cell]()
    return module.eval()


def torch_runner(module, x):
    xt = torch.from_numpy(x)

    def run():
        with torch.inference_mode():
            return module(xt)[0]

    return run


def fastrnn_runner(cell, module, x):
    layer = {
        "lstm": lambda: fr.LSTM(I, H),
        "gru": lambda: fr.GRU(I, H),
        "rnn": lambda: fr.RNN(I, H, nonlinearity="tanh"),
    }[cell]()
    layer.load_state_dict(module.state_dict())
    return lambda: layer(x)[0]


def ort_runner(cell, module, x, threads):
    """ONNX Runtime on one LSTM / GRU / RNN node with the module's weights
    (fastrnn.bench builds it, as `fastrnn bench` does)."""
    sd = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    model = bench.onnx_model(MODS, cell, sd, T, x.shape[1], H, state_io=False)
    sess = bench.ort_session(MODS, model, threads)
    feed = {"X": x}
    return lambda: sess.run(None, feed)[0][:, 0]


def set_threads(n):
    """Threads for the engines that take a number (BLAS and OpenMP through
    threadpoolctl, by the caller); None restores fastrnn's default."""
    if hasattr(fr, "set_num_threads"):
        fr.set_num_threads(n)
    if n is not None:
        torch.set_num_threads(n)


# ---------------------------------------------------------------- timing


def wall_clock(fn):
    """A timer: calls fn once, returns the seconds it took."""

    def timer():
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    return timer


def measure(timers, min_time, rounds, settle, warmup=0.2):
    """The one timing loop. timers: name -> callable returning the seconds of
    one call. Every timer runs in interleaved rounds, the order rotated each
    round. Before each turn: `settle` seconds idle, so that the previous
    engine's worker threads stop spinning (OpenBLAS workers spin ~0.1 s after
    their last job), then one untimed call to wake this engine's threads.
    Returns name -> list of rounds, each a list of per-call seconds."""
    names = list(timers)
    for name in names:  # warm-up: caches, thread pools, lazy init
        end = time.perf_counter() + warmup
        while time.perf_counter() < end:
            timers[name]()
    samples = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            timer = timers[name]
            time.sleep(settle)
            timer()
            times = []
            end = time.perf_counter() + min_time
            while len(times) < 3 or time.perf_counter() < end:
                times.append(timer())
            samples[name].append(times)
    return samples


def summarize(rounds):
    """best round's median, median and p90 over all samples (seconds)."""
    every = np.concatenate(rounds)
    return {
        "best": min(float(np.median(r)) for r in rounds),
        "median": float(np.median(every)),
        "p90": float(np.percentile(every, 90)),
    }


def measure_row(timers, args):
    """measure() on a machine as quiet as we can get; also returns the load
    other processes put on it meanwhile."""
    bench.wait_until_quiet(args.quiet_wait, probe=1.0)
    start, t0 = bench.cpu_seconds(), time.perf_counter()
    samples = measure(timers, args.min_time, args.rounds, args.settle)
    return samples, bench.others_load(start, time.perf_counter() - t0)


def flops(cell, batch, inputs=I + H):
    return 2.0 * T * batch * GATES[cell] * H * inputs


def rel_err(a, ref):
    a, ref = np.asarray(a, np.float64), np.asarray(ref, np.float64)
    return float(np.abs(a - ref).max() / max(np.abs(ref).max(), 1e-30))


# ---------------------------------------------------------------- benchmark


def make_input(batch):
    return np.random.default_rng(1).standard_normal((T, batch, I)).astype(np.float32)


def bench_row(cell, batch, threads, args):
    """Build the three engines, check them against fastrnn, time them."""
    module = build_torch(cell)
    x = make_input(batch)
    runners = {
        "fastrnn": fastrnn_runner(cell, module, x),
        "PyTorch": torch_runner(module, x),
        "ORT": ort_runner(cell, module, x, threads),
    }
    y_fr = np.asarray(runners["fastrnn"]())
    errors = {
        name: rel_err(np.asarray(run()), y_fr) for name, run in runners.items() if name != "fastrnn"
    }
    row = {"cell": cell, "B": batch, "threads": threads, "rel_err": errors}
    bad = {n: e for n, e in errors.items() if not e < MAX_REL_ERR}
    if bad:
        print(
            f"\n!!! {cell.upper()} B={batch} {threads}T: output differs from fastrnn's "
            f"{bad} (limit {MAX_REL_ERR:g}) -- row NOT timed !!!\n",
            file=sys.stderr,
        )
        row["failed"] = True
        return row
    timers = {name: wall_clock(run) for name, run in runners.items()}
    row["samples"], row["others_load"] = measure_row(timers, args)
    row["stats"] = {name: summarize(s) for name, s in row["samples"].items()}
    return row


def profile_row(cell, batch, threads, args):
    """fastrnn's total against the two products it computes, on OpenBLAS
    (scipy.linalg.blas.sgemm) and, if available, on fastrnn's packed kernel."""
    sgemm = scipy.linalg.blas.sgemm
    GH = GATES[cell] * H
    module = build_torch(cell)
    x = make_input(batch)
    sd = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    w_ih, w_hh = sd["weight_ih_l0"], sd["weight_hh_l0"]
    # Row-major C = A W^T is, to column-major BLAS, C^T = (W^T)^T A^T: pass the
    # transposed views (Fortran-ordered, no copies).
    x2 = x.reshape(T * batch, I)
    xg = np.zeros((T, batch, GH), np.float32)
    hg = np.zeros((batch, GH), np.float32)
    h = (0.1 * np.random.default_rng(2).standard_normal((batch, H))).astype(np.float32)
    one = np.ones((1, 1), np.float32, order="F")
    tiny = np.zeros((1, 1), np.float32, order="F")
    beta = 0.0 if cell == "gru" else 1.0  # GRU keeps h W_hh^T apart, the others add

    def input_gemm():
        sgemm(1.0, w_ih.T, x2.T, trans_a=1, beta=0.0, c=xg.reshape(T * batch, GH).T, overwrite_c=1)

    def recurrent_gemms():
        for t in range(T):
            out = hg if cell == "gru" else xg[t]
            sgemm(1.0, w_hh.T, h.T, trans_a=1, beta=beta, c=out.T, overwrite_c=1)

    def call_overhead():
        for _ in range(T):
            sgemm(1.0, one, one, beta=0.0, c=tiny, overwrite_c=1)

    timers = {
        "fastrnn": wall_clock(fastrnn_runner(cell, module, x)),
        "input GEMM": wall_clock(input_gemm),
        "recurrent GEMMs": wall_clock(recurrent_gemms),
        "call overhead": wall_clock(call_overhead),
    }
    time_product = getattr(fr._core, "time_product", None)
    if time_product is not None:  # fastrnn's packed kernel, timed in C
        p_ih, p_hh = fr._core.pack(w_ih), fr._core.pack(w_hh)
        # the loop's shape: blocks of ~256/B steps, in calls of at most 192 rows
        m = min(192, max(1, min(T, 256 // batch)) * batch)
        timers["kernel input"] = lambda: T * batch / m * time_product(w_ih, p_ih, m, 10)
        timers["kernel recurrent"] = lambda: T * time_product(w_hh, p_hh, batch, 10 * T)
    samples, load = measure_row(timers, args)
    best = {name: summarize(s)["best"] for name, s in samples.items()}
    best["recurrent GEMMs"] = max(best["recurrent GEMMs"] - best.pop("call overhead"), 1e-12)
    return {
        "cell": cell,
        "B": batch,
        "threads": threads,
        "samples": samples,
        "best": best,
        "others_load": load,
    }


# ---------------------------------------------------------------- report


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def onednn_version():
    for line in torch.__config__.show().splitlines():
        if "MKL-DNN" in line or "oneDNN" in line:
            return line.split(" v", 1)[-1].split()[0]
    return "?"


def blas_entries():
    return [
        {
            k: d.get(k)
            for k in ("internal_api", "version", "architecture", "num_threads", "filepath")
        }
        for d in threadpool_info()
        if d.get("user_api") == "blas"
    ]


def git_commit(path):
    """The commit (and + if dirty) of the checkout holding `path`, or '?'."""

    def git(*cmd):
        return subprocess.run(
            ["git", "-C", os.path.dirname(path), *cmd], capture_output=True, text=True, timeout=10
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        return commit + ("+" if git("status", "--porcelain", "--untracked-files=no") else "") or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def print_blas():
    for d in blas_entries():
        print(
            f"- BLAS: {d['internal_api']} {d['version']} {d['architecture']}, "
            f"num_threads={d['num_threads']} ({os.path.basename(d['filepath'] or '')})"
        )


def print_header():
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    core = fr._core.__file__
    built = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(core)))
    print("# fastrnn sequence inference benchmark\n")
    print(f"- CPU: {cpu_model()}, {cores} logical cores ({usable} usable)")
    print(
        f"- python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"torch {torch.__version__} (oneDNN {onednn_version()}), onnxruntime {ort.__version__}, "
        f"onnx {onnx.__version__}, fastrnn {fr.__version__}"
    )
    print(f"- fastrnn core: {core} (built {built}, commit {git_commit(core)})")
    print(f"- OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    print_blas()
    print(f"- T={T}, I=H={I}, float32; times in ms per sequence")


def fmt_ms(s):
    return f"{s * 1e3:.3f}" if s < 0.01 else f"{s * 1e3:.2f}"


def print_table(rows, threads, stat):
    title = {"best": "best round's median", "median": "median (p90) over all samples"}[stat]
    print(f"\n### {threads} thread{'s' if threads > 1 else ''}: {title}\n")
    print(
        "| cell | B | threads | fastrnn ms | PyTorch ms | ORT ms | PyTorch/fastrnn | ORT/fastrnn "
        "| fastrnn GFLOP/s | PyTorch GFLOP/s | ORT GFLOP/s | other load |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for row in rows:
        head = f"| {row['cell'].upper()} | {row['B']} | {row['threads']} "
        if row.get("failed"):
            print(
                head
                + "| FAILED correctness gate: "
                + ", ".join(f"{n} rel err {e:.2g}" for n, e in row["rel_err"].items())
                + " |"
            )
            continue
        s = {n: row["stats"][n][stat] for n in ENGINES}
        if stat == "median":
            ms = [f"{fmt_ms(s[n])} ({fmt_ms(row['stats'][n]['p90'])})" for n in ENGINES]
        else:
            ms = [fmt_ms(s[n]) for n in ENGINES]
        ratios = [f"{s[n] / s['fastrnn']:.2f}" for n in ENGINES[1:]]
        rates = [f"{flops(row['cell'], row['B']) / s[n] / 1e9:.0f}" for n in ENGINES]
        print(head + "| " + " | ".join(ms + ratios + rates + [f"{row['others_load']:.2f}"]) + " |")


def print_profile(rows):
    kernel = any("kernel input" in p["best"] for p in rows)
    print(
        "\n### fastrnn profile: its total vs the same products on OpenBLAS "
        "(best round's medians; ms, GFLOP/s)\n"
    )
    print(
        "| cell | B | threads | fastrnn | OpenBLAS input GEMM | OpenBLAS recurrent GEMMs "
        "| fastrnn - OpenBLAS GEMMs |"
        + (" kernel input (1T) | kernel recurrent (1T) | fastrnn - kernels |" if kernel else "")
        + " other load |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|" + ("--:|--:|--:|" if kernel else "") + "--:|")
    for p in rows:
        b, cell, batch = p["best"], p["cell"], p["B"]
        f_in, f_rec = flops(cell, batch, I), flops(cell, batch, H)

        def rest(*parts):
            left = b["fastrnn"] - sum(b[k] for k in parts)
            return f"{fmt_ms(left)} ({100 * left / b['fastrnn']:.0f}%)"

        cols = [
            f"{fmt_ms(b['fastrnn'])} ({flops(cell, batch) / b['fastrnn'] / 1e9:.0f})",
            f"{fmt_ms(b['input GEMM'])} ({f_in / b['input GEMM'] / 1e9:.0f})",
            f"{fmt_ms(b['recurrent GEMMs'])} ({f_rec / b['recurrent GEMMs'] / 1e9:.0f})",
            rest("input GEMM", "recurrent GEMMs"),
        ]
        if kernel:
            cols += [
                f"{fmt_ms(b['kernel input'])} ({f_in / b['kernel input'] / 1e9:.0f})",
                f"{fmt_ms(b['kernel recurrent'])} ({f_rec / b['kernel recurrent'] / 1e9:.0f})",
                rest("kernel input", "kernel recurrent") if p["threads"] == 1 else "-",
            ]
        print(
            f"| {cell.upper()} | {batch} | {p['threads']} | "
            + " | ".join(cols)
            + f" | {p['others_load']:.2f} |"
        )
    print(
        f"\nOpenBLAS: scipy.linalg.blas.sgemm at the row's thread count; the recurrent column "
        f"is {T} calls minus their Python cost (1x1x1 sgemm). 'fastrnn - ...' is what is left "
        f"for the gate passes and bookkeeping if the products ran at that speed (negative: "
        f"fastrnn's products beat OpenBLAS's)."
        + (
            " kernel: fastrnn's own packed product (_core.time_product), timed in C on one "
            "thread, so 'fastrnn - kernels' is shown for 1-thread rows only."
            if kernel
            else ""
        )
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", nargs="+", default=["lstm", "gru", "rnn"], choices=list(GATES))
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 16, 64])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--min-time", type=float, default=0.2, help="seconds per engine per round")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument(
        "--settle",
        type=float,
        default=0.15,
        metavar="SECONDS",
        help="idle time before each engine's turn (lets thread pools park)",
    )
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="before each row, wait up to this long for other processes to go idle",
    )
    ap.add_argument("--json", metavar="PATH", help="write raw per-call samples here")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="also split fastrnn's time against OpenBLAS SGEMMs of the same shapes",
    )
    args = ap.parse_args(argv)

    print_header()
    results, profiles = [], []
    for threads in args.threads:
        with threadpool_limits(limits=threads):
            set_threads(threads)
            fr_threads = fr.get_num_threads() if hasattr(fr, "get_num_threads") else "?"
            print(
                f"\n## {threads} thread{'s' if threads > 1 else ''}: fastrnn {fr_threads}, "
                f"torch {torch.get_num_threads()}, ORT intra_op {threads}\n"
            )
            print_blas()
            rows = []
            for cell in args.cells:
                for batch in args.batches:
                    t0 = time.perf_counter()
                    rows.append(bench_row(cell, batch, threads, args))
                    if args.profile:
                        profiles.append(profile_row(cell, batch, threads, args))
                    print(
                        f"  {cell} B={batch} {threads}T: {time.perf_counter() - t0:.1f} s",
                        file=sys.stderr,
                    )
            results += rows
            print_table(rows, threads, "best")
            print_table(rows, threads, "median")
            sys.stdout.flush()
        set_threads(None)
    if args.profile:
        print_profile(profiles)
    print(
        "\n'other load': cores that other processes kept busy while the row ran "
        "(/proc/stat); rows well above 0 are not to be trusted."
    )

    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "T": T,
                    "I": I,
                    "H": H,
                    "blas": blas_entries(),
                    "args": vars(args),
                    "versions": {
                        "numpy": np.__version__,
                        "scipy": scipy.__version__,
                        "torch": torch.__version__,
                        "onnxruntime": ort.__version__,
                        "fastrnn": fr.__version__,
                    },
                    "rows": results,
                    "profile": profiles,
                },
                f,
                indent=1,
            )
    return 1 if any(r.get("failed") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
