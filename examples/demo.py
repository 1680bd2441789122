"""A short demo: runs each layer once over a batch of sequences and prints a
latency and throughput line. `python examples/demo.py [--threads N]`."""

import argparse
import time

import numpy as np
import scipy.linalg  # noqa: F401  (loads SciPy's BLAS so threadpoolctl can see it)

import fastrnn as fr


def flops(gates, T, B, I, H):
    return 2.0 * T * B * gates * H * (I + H)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("-T", type=int, default=100)
    ap.add_argument("-B", type=int, default=16)
    ap.add_argument("-H", type=int, default=256)
    args = ap.parse_args()
    T, B, H = args.T, args.B, args.H
    try:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(args.threads)
    except ImportError:
        limits = None
    x = np.random.default_rng(0).standard_normal((T, B, H)).astype(np.float32)
    print(f"fastrnn {fr.__version__}: T={T} B={B} I=H={H} float32, {args.threads} thread(s)")
    for name, layer, gates in [
        ("LSTM", fr.LSTM(H, H, seed=0), 4),
        ("GRU", fr.GRU(H, H, seed=0), 3),
        ("RNN", fr.RNN(H, H, seed=0), 1),
    ]:
        layer(x)  # warm-up
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            layer(x)
            times.append(time.perf_counter() - t0)
        t = float(np.median(times))
        print(
            f"{name:5s} {t * 1e3:8.3f} ms per sequence batch  "
            f"{T * B / t / 1e6:7.2f} M steps/s  {flops(gates, T, B, H, H) / t / 1e9:6.1f} GFLOP/s"
        )
    if limits is not None:
        limits.restore_original_limits()


if __name__ == "__main__":
    main()
