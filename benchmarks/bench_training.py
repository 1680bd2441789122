"""One training step (forward + backward, no optimizer) of fastrnn against
PyTorch autograd on the same weights: T=64, B=32, I=H in {64, 128, 256}.

    python benchmarks/bench_training.py [THREADS]

Engines alternate in 3 rounds of 7 calls after a warm-up; the table shows the
best round's median per engine, GFLOP/s counted as 3x the forward's FLOPs.
`fastrnn bench --only train` times the H = 256 rows with an Adam step added, with
JSON, plots and the fraction of the SGEMM rate."""

import sys
import time

import numpy as np
import scipy.linalg  # noqa: F401  (loads SciPy's BLAS so threadpoolctl sees it)
import torch
from threadpoolctl import threadpool_limits

import fastrnn as fr

T, B = 64, 32


def median_ms(f, n=7):
    f()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return np.median(times) * 1e3


def main():
    nt = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    threadpool_limits(nt)
    torch.set_num_threads(nt)
    fr.set_num_threads(nt)
    print(
        f"T={T} B={B} float32, {nt} thread(s), torch {torch.__version__}, fastrnn {fr.__version__}"
    )
    for kind, gates in (("LSTM", 4), ("GRU", 3), ("RNN", 1)):
        for H in (64, 128, 256):
            tm = getattr(torch.nn, kind)(H, H)
            m = getattr(fr, kind)(H, H)
            m.load_state_dict(tm.state_dict())
            x = np.random.randn(T, B, H).astype(np.float32)
            dy = np.random.randn(T, B, H).astype(np.float32)
            tx, tdy = torch.from_numpy(x).requires_grad_(), torch.from_numpy(dy)

            def step_fr():
                y, _, cache = m.forward(x)
                m.backward(dy, cache)

            def step_torch():
                y, _ = tm(tx)
                y.backward(tdy)

            rounds = [(median_ms(step_fr), median_ms(step_torch)) for _ in range(3)]
            a = min(r[0] for r in rounds)
            b = min(r[1] for r in rounds)
            flops = 3 * 2 * T * B * gates * H * (2 * H)
            print(
                f"{kind:4s} H={H:3d}: fastrnn {a:7.2f} ms ({flops / a / 1e6:4.0f} GFLOP/s)  "
                f"torch {b:7.2f} ms ({flops / b / 1e6:4.0f})  torch/fastrnn {b / a:.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
