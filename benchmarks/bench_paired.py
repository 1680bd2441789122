"""fastrnn against PyTorch in adjacent pairs: each round times one fastrnn call
and one PyTorch call back to back (their order alternating), and the ratio is
taken within the pair, so that both see the same state of a machine whose
speed drifts (a VM's fast and slow states last seconds; a median of each
engine's own times lets one engine's slow spell fall on the other's ratio).
Scenarios, float32, same weights: sequence inference (T = 100, I = H = 256,
B in 1, 16, 64) and one training step (T = 64, B = 32, I = H in 64, 128, 256;
forward + backward with dx) for LSTM, GRU and RNN.

    python benchmarks/bench_paired.py [ROUNDS] [FILTER ...]

Threads: OMP_NUM_THREADS (default here 1), the same for both engines. The
table shows fastrnn's median time, its GFLOP/s and share of the running SIMD
path's FMA peak, and the median of the pair ratios (PyTorch / fastrnn, above
1: fastrnn is faster) with their range. To hold PyTorch to AVX2 as
FASTRNN_ISA=avx2 holds fastrnn, set ONEDNN_MAX_CPU_ISA=AVX2
ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 (benchmarks/README.md)."""

import os
import statistics
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import fastrnn as fr  # noqa: E402
from fastrnn import _core  # noqa: E402

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def pair(kind, size, seed):
    """A fastrnn layer and a PyTorch one with the same weights."""
    torch.manual_seed(seed)
    theirs = getattr(torch.nn, kind)(size, size)
    ours = getattr(fr, kind)(size, size)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def cases(filters):
    """(name, fastrnn call, PyTorch call, FLOPs) of every scenario FILTER picks."""
    rng = np.random.default_rng(0)
    out = []
    for kind, G in GATES.items():
        for B in (1, 16, 64):
            ours, theirs = pair(kind, 256, B)
            x = rng.standard_normal((100, B, 256)).astype(np.float32)
            tx = torch.from_numpy(x)

            def infer_torch(theirs=theirs, tx=tx):
                with torch.no_grad():
                    theirs(tx)

            flops = 2 * 100 * B * G * 256 * 512
            out.append((f"sequence {kind} B={B}", lambda o=ours, x=x: o(x), infer_torch, flops))
        for H in (64, 128, 256):
            ours, theirs = pair(kind, H, H)
            x = rng.standard_normal((64, 32, H)).astype(np.float32)
            dy = rng.standard_normal((64, 32, H)).astype(np.float32)
            tx, tdy = torch.from_numpy(x).requires_grad_(), torch.from_numpy(dy)

            def train_ours(ours=ours, x=x, dy=dy):
                _, _, cache = ours.forward(x)
                ours.backward(dy, cache)

            def train_torch(theirs=theirs, tx=tx, tdy=tdy):
                y, _ = theirs(tx)
                y.backward(tdy)

            flops = 3 * 2 * 64 * 32 * G * H * 2 * H  # the backward counted as twice the forward
            out.append((f"train {kind} H={H}", train_ours, train_torch, flops))
    return [c for c in out if not filters or any(f in c[0] for f in filters)]


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 21
    threads = int(os.environ["OMP_NUM_THREADS"])
    fr.set_num_threads(threads)
    torch.set_num_threads(threads)
    peak = max(_core.fma_peak(0.1) for _ in range(3)) / 1e9 * threads
    todo = cases(sys.argv[2:])
    for _, ours, theirs, _ in todo:  # warm-up
        for _ in range(2):
            ours()
            theirs()
    times = {name: [] for name, *_ in todo}
    ratios = {name: [] for name, *_ in todo}
    for r in range(rounds):
        for name, ours, theirs, _ in todo:
            t = {}
            for who, fn in (("ours", ours), ("theirs", theirs))[:: 1 if r % 2 == 0 else -1]:
                start = time.perf_counter()
                fn()
                t[who] = time.perf_counter() - start
            times[name].append(t["ours"])
            ratios[name].append(t["theirs"] / t["ours"])
    print(
        f"fastrnn {fr.__version__} ({fr.simd_level()}), torch {torch.__version__}, "
        f"{threads} thread(s), {rounds} pairs; FMA peak {peak:.0f} GFLOP/s"
    )
    print("| scenario | fastrnn | GFLOP/s | of peak | PyTorch / fastrnn (range) |")
    print("|---|--:|--:|--:|--:|")
    for name, _, _, flops in todo:
        t, q = statistics.median(times[name]), ratios[name]
        gflops = flops / t / 1e9
        print(
            f"| {name} | {t * 1e3:.2f} ms | {gflops:.1f} | {gflops / peak:.0%} | "
            f"{statistics.median(q):.2f}x ({min(q):.2f}-{max(q):.2f}) |"
        )


if __name__ == "__main__":
    main()
