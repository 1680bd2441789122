"""Batches of mixed lengths: fastrnn with `lengths=` against the same batch at
equal lengths and against PyTorch's packed sequences, on the same weights.

    python benchmarks/bench_lengths.py [ROUNDS]

Inference: T = 100, B = 64, I = H = 256; training step (forward + backward
with dx): T = 64, B = 32, I = H = 128; LSTM, GRU, RNN, float32. The lengths
are drawn uniformly from 1..T (seed 0), the same for both engines; PyTorch
runs pack_padded_sequence(enforce_sorted=False) (and, training, pads its
output back for the same dy). The three calls of a scenario alternate round
by round; medians over rounds. "of the token share" is the mixed time over
(tokens / (T*B)) x the equal-length time: 1.00 is a cost proportional to the
tokens. Threads: OMP_NUM_THREADS (default here 1), the same for both."""

import os
import statistics
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

import fastrnn as fr  # noqa: E402


def scenario(kind, training, rng):
    """(token share, {engine: call}) of one scenario."""
    T, B, H = (64, 32, 128) if training else (100, 64, 256)
    lengths = rng.integers(1, T + 1, B)
    x = rng.standard_normal((T, B, H)).astype(np.float32)
    dy = rng.standard_normal((T, B, H)).astype(np.float32)
    theirs = getattr(torch.nn, kind)(H, H)
    ours = getattr(fr, kind)(H, H)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    tx, tdy, tl = torch.from_numpy(x), torch.from_numpy(dy), torch.from_numpy(lengths)

    if training:
        tx.requires_grad_()

        def ours_equal():
            _, _, cache = ours.forward(x)
            ours.backward(dy, cache)

        def ours_mixed():
            _, _, cache = ours.forward(x, lengths=lengths)
            ours.backward(dy, cache)

        def torch_packed():
            y, _ = theirs(pack_padded_sequence(tx, tl, enforce_sorted=False))
            pad_packed_sequence(y, total_length=T)[0].backward(tdy)

    else:

        def ours_equal():
            ours(x)

        def ours_mixed():
            ours(x, lengths=lengths)

        def torch_packed():
            with torch.no_grad():
                theirs(pack_padded_sequence(tx, tl, enforce_sorted=False))

    calls = {"equal": ours_equal, "mixed": ours_mixed, "torch": torch_packed}
    return lengths.sum() / (T * B), calls


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    threads = int(os.environ["OMP_NUM_THREADS"])
    fr.set_num_threads(threads)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    print(
        f"fastrnn {fr.__version__} ({fr.simd_level()}), torch {torch.__version__}, "
        f"{threads} thread(s), {rounds} rounds"
    )
    print(
        "| scenario | tokens | equal | mixed | of the token share | PyTorch packed "
        "| PyTorch / fastrnn |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|")
    for training in (False, True):
        for kind in ("LSTM", "GRU", "RNN"):
            share, calls = scenario(kind, training, rng)
            for call in calls.values():
                call()
            times = {name: [] for name in calls}
            for r in range(rounds):
                for name, call in list(calls.items())[:: 1 if r % 2 == 0 else -1]:
                    start = time.perf_counter()
                    call()
                    times[name].append(time.perf_counter() - start)
            m = {name: statistics.median(v) * 1e3 for name, v in times.items()}
            proportional = m["mixed"] / (share * m["equal"])
            print(
                f"| {'training' if training else 'inference'} {kind} | {share:.0%} "
                f"| {m['equal']:.2f} ms | {m['mixed']:.2f} ms | {proportional:.2f}x "
                f"| {m['torch']:.2f} ms | {m['torch'] / m['mixed']:.2f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
