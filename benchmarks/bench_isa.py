"""Every SIMD path this CPU has, interleaved in one process: sequence inference
(T = 100, I = H = 256, B in 1, 16, 64) and one training step (T = 64, B = 32,
H in 64, 128, 256; forward + backward with dx) for LSTM, GRU and RNN, float32.

    python benchmarks/bench_isa.py [ROUNDS] [FILTER ...]

The paths run round by round, alternating their order (fr._core.set_simd_level
switches between calls), so that both see the machine's fast and slow states
alike; each round takes the best of 3 calls, and the table shows the median
over rounds, GFLOP/s and the share of each path's own FMA peak. Use it to
compare paths, and the peers with `fastrnn bench`. Threads: OMP_NUM_THREADS
(default here 1)."""

import os
import statistics
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import fastrnn as fr  # noqa: E402
from fastrnn import _core  # noqa: E402

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def cases(filters):
    rng = np.random.default_rng(0)
    out = []
    for kind, G in GATES.items():
        for B in (1, 16, 64):
            m = getattr(fr, kind)(256, 256, seed=0)
            x = rng.standard_normal((100, B, 256)).astype(np.float32)
            out.append(
                (f"sequence {kind} B={B}", lambda m=m, x=x: m(x), 2 * 100 * B * G * 256 * 512)
            )
        for H in (64, 128, 256):
            m = getattr(fr, kind)(H, H, seed=0)
            x = rng.standard_normal((64, 32, H)).astype(np.float32)
            dy = rng.standard_normal((64, 32, H)).astype(np.float32)

            def step(m=m, x=x, dy=dy):
                _, _, cache = m.forward(x)
                m.backward(dy, cache)

            out.append((f"train {kind} H={H}", step, 3 * 2 * 64 * 32 * G * H * 2 * H))
    return [c for c in out if not filters or any(f in c[0] for f in filters)]


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    levels = [lv for lv in ("avx512", "avx2", "generic") if _core.set_simd_level(lv)]
    peaks = {}
    for lv in levels:
        _core.set_simd_level(lv)
        peaks[lv] = max(_core.fma_peak(0.1) for _ in range(3))
    todo = cases(sys.argv[2:])
    times = {name: {lv: [] for lv in levels} for name, _, _ in todo}
    for r in range(rounds):
        for name, fn, _ in todo:
            for lv in levels if r % 2 == 0 else levels[::-1]:
                _core.set_simd_level(lv)
                fn()
                best = float("inf")
                for _ in range(3):
                    t = time.perf_counter()
                    fn()
                    best = min(best, time.perf_counter() - t)
                times[name][lv].append(best)
    print(
        f"# SIMD paths, {rounds} rounds, {os.environ['OMP_NUM_THREADS']} thread(s); "
        + ", ".join(f"{lv} peak {peaks[lv] / 1e9:.0f} GFLOP/s" for lv in levels)
    )
    print("| case | " + " | ".join(f"{lv} ms (GFLOP/s, of peak)" for lv in levels) + " |")
    print("|---|" + "--:|" * len(levels))
    for name, _, flops in todo:
        cells = []
        for lv in levels:
            t = statistics.median(times[name][lv])
            cells.append(f"{t * 1e3:.2f} ({flops / t / 1e9:.0f}, {flops / t / peaks[lv]:.0%})")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
