"""`fastrnn bench`: fastrnn against the peers installed next to it, on this machine.

    fastrnn bench                          # the whole suite (about 5 minutes)
    fastrnn bench --quick                  # fewer sizes and rounds: under a minute
    fastrnn bench --threads 1 --only sequence/lstm --json out.json --plot out.png
    fastrnn bench --list                   # the row names --only matches

Markdown tables go to stdout, a progress bar to stderr. --json writes
{"meta": {machine, versions, thread pools, config, SGEMM references, FMA peak},
 "results": [{"scenario", "cell", "name", "params", "engine", "status"
 ('ok' | 'skipped' | 'mismatch' | 'error'), "reason", "samples_s" (every timed
 call), "median_s", "p99_s", "round_medians_s", "spread_s", "iqr_s", "gflops",
 "sgemm_fraction", "peak_fraction", "ratio_vs_fastrnn", "rel_err", "others_load",
 ...}]}.
Exit status 1 when an engine mismatched or failed, 2 for a usage error.

Scenarios, each for LSTM, GRU and RNN (tanh), I = H, float32:
  stream    one time step at batch 1, state fed back (H in 64, 128, 256, 512):
            fastrnn's layer.stream(1).step(x_t, out), PyTorch's nn.LSTMCell /
            GRUCell / RNNCell, ONNX Runtime's run() of a one-step model, NumPy
  sequence  inference over T = 100 steps, B in 1, 16, 64, H in 128, 256, 512:
            layer(x), nn.LSTM / GRU / RNN, one ONNX LSTM / GRU / RNN node, NumPy
  train     one training step, T = 64, B = 32, H = 256: forward, backward of
            sum(y * dy) for a fixed dy (no input gradient), and an Adam step
            (lr 1e-3): fastrnn's forward / backward / fr.Adam against PyTorch
            autograd and torch.optim.Adam (defaults)
  mixed     sequence inference, T = 100, B = 64, H = 256, lengths uniform in
            1..T: layer(x, lengths=...), PyTorch on pack_padded_sequence
            (enforce_sorted=False; output padded back), the ONNX node with
            sequence_lens
  train-mixed  the training step at T = 64, B = 32, H = 128 with such lengths
            (PyTorch: packed, the output padded back before the loss)

Every engine that is installed runs in the same process and the same run.
NumPy is always there (a plain reference step / sequence written here: the
input projection as one GEMM, then a loop over time); PyTorch and ONNX Runtime
(with onnx, which builds the model) are optional: an engine that is not
installed is listed as skipped, with the reason, never faked.

Method.
- Same weights and inputs everywhere: the PyTorch module's state_dict (its own
  initialisation, seed 0; drawn the same way with NumPy when torch is missing)
  goes into fastrnn by load_state_dict; the ONNX node gets the same arrays with
  its gate order (LSTM i,o,f,c vs PyTorch's i,f,g,o; GRU z,r,h vs r,z,n),
  B = [Wb, Rb] and, for GRU, linear_before_reset=1.
- Correctness gate: before timing, each engine's result is compared with
  fastrnn's on the same weights and input (stream: the outputs of 16 steps from
  zero state; sequence: y; train: y and every parameter gradient), relative
  error max|a - b| / max|b| < 1e-4. An engine that fails is marked 'mismatch',
  a loud message goes to stderr, it is not timed for that row, and the command
  exits with status 1.
- Threads: --threads N (default: the usable cores) for every engine at once:
  threadpoolctl.threadpool_limits(N) (BLAS and OpenMP), fr.set_num_threads(N),
  torch.set_num_threads(N), ORT intra_op_num_threads=N with inter_op 1 and the
  sequential executor. OPENBLAS_CORETYPE is reported, never changed.
- Timing: a warm-up per engine, then rounds; in each, every engine in turn
  (the order rotated each round) runs one untimed call and then timed calls,
  each timed alone with perf_counter_ns (the timer's own cost subtracted),
  until a minimum time and 3 calls are spent (0.2 s, 5 rounds; --quick: 0.03
  s, 3 rounds, H in 64, 256 for streaming, B in 1, 64 and H = 256 for
  sequences; at most 2,000 calls per turn, which bounds the JSON). The garbage
  collector is off during a turn; with more than one thread the process idles
  a moment before each turn so that the previous engine's spinning worker
  threads park. Reported: the median and p99 over all calls, the spread (the
  range of the round medians), peer / fastrnn ratios of the medians (> 1:
  fastrnn is faster), GFLOP/s, and the fraction of the machine's own SGEMM
  rate: the same products (same M, K, N, as many calls) run by
  scipy.linalg.blas.sgemm at the run's thread count, timed once per shape with
  SciPy's Python call cost (a 1x1x1 sgemm) subtracted; and the fraction of the
  FMA peak (below). "load" is the number of cores other processes kept busy
  while the row ran (/proc/stat): rows well above 0 are not to be trusted.
- FMA peak: measured once per run, before the rows, at the SIMD path that
  runs (fr.simd_level()): float32 multiply-adds in a register-only loop on one
  core (fastrnn._core.fma_peak: AVX-512 or AVX2 FMAs; for the generic path the
  code the compiler makes of plain C, on x86-64 SSE2 multiplies and adds), the
  best of 10 runs of 20 ms. With N threads the peak is N times the one-core
  figure (N: the physical cores the threads can run on, at most the thread
  count): kernels are tuned and compared per core, one core is measured
  undisturbed by whatever runs on the others, and N x one core is an upper
  bound (all cores busy may clock lower), so the fraction never flatters.
- FLOPs: 2 G H (I + H) per row and step (G = 4, 3, 1 gates); training adds
  the backward products dh (2 G H H), dW_hh (2 G H H) and dW_ih (2 G H I).

Test-only hooks (not for measurements): --tiny runs a few tiny sizes with
minimal rounds; --test-faulty ENGINE (or run_suite(faulty=...)) hands ENGINE
slightly wrong weights, so that the correctness gate must catch it.
"""

import argparse
import contextlib
import fnmatch
import gc
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

import fastrnn  # the engine under test, measured through its public API as users call it

from . import _core
from . import threads as fr_threads

GATES = {"lstm": 4, "gru": 3, "rnn": 1}
CELL_NAMES = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}
FASTRNN, TORCH, ORT, NUMPY = "fastrnn", "PyTorch", "ONNX Runtime", "NumPy"
ENGINES = (FASTRNN, TORCH, ORT, NUMPY)
SCENARIOS = {  # name -> (title, engines, time unit)
    "stream": ("Streaming step, batch 1", (FASTRNN, TORCH, ORT, NUMPY), "us"),
    "sequence": ("Sequence inference", (FASTRNN, TORCH, ORT, NUMPY), "ms"),
    "train": ("Training step: forward + backward + Adam", (FASTRNN, TORCH), "ms"),
    "mixed": ("Sequence inference, mixed lengths", (FASTRNN, TORCH, ORT), "ms"),
    "train-mixed": ("Training step, mixed lengths", (FASTRNN, TORCH), "ms"),
}
MIXED = ("mixed", "train-mixed")  # rows whose batch has lengths (Row.lengths)
MAX_REL_ERR = 1e-4
GATE_STEPS = 16
LR = 1e-3


# ---------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Config:
    stream_sizes: tuple  # H (= I) of the streaming rows
    seq_len: int  # T of the sequence rows
    seq_batches: tuple  # B of the sequence rows
    seq_sizes: tuple  # H (= I) of the sequence rows
    train_shape: tuple  # (T, B, H) of the training rows
    rounds: int  # interleaved rounds
    min_time: float  # seconds per engine per round (at least)
    warmup: float  # seconds of untimed calls per engine before the rounds
    min_calls: int = 3
    max_calls: int = 2000  # per engine per round
    settle: float = 0.1  # idle seconds before each turn, with > 1 thread
    sgemm_time: float = 0.2  # seconds of SGEMM timing per shape
    peak_time: float = 0.2  # seconds of the FMA peak's measurement
    mixed_shape: tuple = (100, 64, 256)  # (T, B, H) of the mixed-length inference rows
    train_mixed_shape: tuple = (64, 32, 128)  # (T, B, H) of the mixed-length training rows


FULL = Config(
    stream_sizes=(64, 128, 256, 512),
    seq_len=100,
    seq_batches=(1, 16, 64),
    seq_sizes=(128, 256, 512),
    train_shape=(64, 32, 256),
    rounds=5,
    min_time=0.2,
    warmup=0.2,
)
QUICK = Config(
    stream_sizes=(64, 256),
    seq_len=100,
    seq_batches=(1, 64),
    seq_sizes=(256,),
    train_shape=(64, 32, 256),
    rounds=3,
    min_time=0.03,
    warmup=0.03,
    max_calls=1000,
    settle=0.03,
    sgemm_time=0.05,
)
TINY = Config(
    stream_sizes=(16,),
    seq_len=5,
    seq_batches=(2,),
    seq_sizes=(16,),  # tests only
    train_shape=(4, 2, 16),
    rounds=2,
    min_time=0.0,
    warmup=0.0,
    min_calls=2,
    max_calls=20,
    settle=0.0,
    sgemm_time=0.0,
    peak_time=0.01,
    mixed_shape=(5, 4, 16),
    train_mixed_shape=(4, 4, 16),
)


@dataclass(frozen=True)
class Row:
    """One line of a table: a scenario, a cell and a size."""

    scenario: str
    cell: str
    T: int
    B: int
    H: int

    @property
    def I(self):  # noqa: E743 (the input size, as in the docs)
        return self.H

    @property
    def name(self):
        size = {
            "stream": f"H{self.H}",
            "sequence": f"B{self.B}-H{self.H}",
            "train": f"T{self.T}-B{self.B}-H{self.H}",
            "mixed": f"B{self.B}-H{self.H}",
            "train-mixed": f"T{self.T}-B{self.B}-H{self.H}",
        }[self.scenario]
        return f"{self.scenario}/{self.cell}/{size}"

    @property
    def size(self):
        return self.name.split("/", 2)[2]

    def params(self):
        p = {"T": self.T, "B": self.B, "I": self.I, "H": self.H}
        if self.scenario in MIXED:
            p["tokens"] = int(self.lengths().sum())
        return p

    def lengths(self):
        """The mixed rows' lengths, uniform in 1..T (the same for every
        engine and run); None for the others."""
        if self.scenario not in MIXED:
            return None
        return np.random.default_rng(7).integers(1, self.T + 1, self.B)

    def products(self):
        """The matrix products (M, K, N, calls) the row computes; mixed rows
        count their tokens' share of rows and steps."""
        T, B, I, H, GH = self.T, self.B, self.I, self.H, GATES[self.cell] * self.H
        rows, steps = T * B, T
        if self.scenario in MIXED:
            rows = int(self.lengths().sum())
            steps = max(1, round(rows / B))
        forward = [(rows, I, GH, 1), (B, H, GH, steps)]
        if not self.scenario.startswith("train"):
            return forward
        # backward: dh(t-1) = dg(t) W_hh per step; dW_hh = dg^T h, dW_ih = dg^T x once
        return forward + [(B, GH, H, steps), (GH, rows, H, 1), (GH, rows, I, 1)]

    def flops(self):
        return float(sum(2 * M * K * N * calls for M, K, N, calls in self.products()))


def rows_for(config, only=None):
    """Every row of the suite, filtered by the --only patterns: a row is kept
    when a pattern is a substring of its name ('sequence/lstm', 'H256') or
    matches it as a glob ('*/gru/B1-*'), case-insensitively."""
    rows = []
    for cell in GATES:
        rows += [Row("stream", cell, 1, 1, H) for H in config.stream_sizes]
    for cell in GATES:
        rows += [
            Row("sequence", cell, config.seq_len, B, H)
            for H in config.seq_sizes
            for B in config.seq_batches
        ]
    T, B, H = config.train_shape
    rows += [Row("train", cell, T, B, H) for cell in GATES]
    T, B, H = config.mixed_shape
    rows += [Row("mixed", cell, T, B, H) for cell in GATES]
    T, B, H = config.train_mixed_shape
    rows += [Row("train-mixed", cell, T, B, H) for cell in GATES]
    if only:
        pats = [p.lower() for p in only]
        rows = [
            r
            for r in rows
            if any(p in r.name.lower() or fnmatch.fnmatch(r.name.lower(), p) for p in pats)
        ]
    return rows


# ---------------------------------------------------------------- the peers


def probe_engines():
    """name -> (modules, None) for an engine that can run, or (None, reason)."""
    found = {FASTRNN: ({"fr": fastrnn}, None), NUMPY: ({}, None)}
    try:
        import torch

        found[TORCH] = ({"torch": torch}, None)
    except ImportError as e:
        found[TORCH] = (None, f"torch is not installed ({e}); pip install torch")
    try:
        import onnxruntime
    except ImportError as e:
        found[ORT] = (None, f"onnxruntime is not installed ({e}); pip install onnxruntime")
    else:
        try:
            import onnx
            from onnx import helper, numpy_helper  # noqa: F401

            found[ORT] = ({"ort": onnxruntime, "onnx": onnx}, None)
        except ImportError as e:
            found[ORT] = (
                None,
                f"onnx (which builds the model) is not installed ({e}); pip install onnx",
            )
    return found


def make_weights(cell, I, H, torch=None, seed=0):
    """PyTorch's parameters of a one-layer cell (its names, shapes, gate order
    and initialisation), as float32 NumPy arrays: from a torch module when
    torch is there, else drawn the same way (uniform in +-1/sqrt(H))."""
    if torch is not None:
        torch.manual_seed(seed)
        module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell](I, H)
        return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}
    rng, k, GH = np.random.default_rng(seed), 1 / math.sqrt(H), GATES[cell] * H
    shapes = {
        "weight_ih_l0": (GH, I),
        "weight_hh_l0": (GH, H),
        "bias_ih_l0": (GH,),
        "bias_hh_l0": (GH,),
    }
    return {n: rng.uniform(-k, k, s).astype(np.float32) for n, s in shapes.items()}


def faulty_weights(sd):
    """Test-only: the weights with a recurrent-weight error of ~1%, the size
    of a real bug (a gate out of order, a bias dropped) made small."""
    sd = {k: v.copy() for k, v in sd.items()}
    sd["weight_hh_l0"] *= 1.01
    return sd


def torch_state(sd, torch, strip=False):
    return {(k[:-3] if strip else k): torch.from_numpy(v.copy()) for k, v in sd.items()}


def onnx_model(mods, cell, sd, T, B, H, state_io, lengths=False):
    """One ONNX LSTM / GRU / RNN node over (T, B, H) inputs with the weights as
    initializers; state_io: initial states in, final states out (streaming);
    lengths: a sequence_lens input (B int32)."""
    onnx, helper = mods["onnx"], mods["onnx"].helper
    order = {"lstm": [0, 3, 1, 2], "gru": [1, 0, 2], "rnn": [0]}[cell]

    def reorder(a):
        return np.concatenate([a[g * H : (g + 1) * H] for g in order])[None]

    W, R = reorder(sd["weight_ih_l0"]), reorder(sd["weight_hh_l0"])
    Bias = np.concatenate([reorder(sd["bias_ih_l0"]), reorder(sd["bias_hh_l0"])], axis=1)
    op, attrs = {
        "lstm": ("LSTM", {}),
        "gru": ("GRU", {"linear_before_reset": 1}),
        "rnn": ("RNN", {"activations": ["Tanh"]}),
    }[cell]
    lstm, f32 = cell == "lstm", onnx.TensorProto.FLOAT
    states_in = (["h0", "c0"] if lstm else ["h0"]) if state_io else []
    inputs = ["X", "W", "R", "B"] + (["", *states_in] if state_io else [])
    if lengths:
        inputs.append("sequence_lens")
    outputs = ["", "h1"] + (["c1"] if lstm else []) if state_io else ["Y"]
    node = helper.make_node(op, inputs, outputs, hidden_size=H, direction="forward", **attrs)
    out_info = (
        [helper.make_tensor_value_info(n, f32, [1, B, H]) for n in outputs[1:]]
        if state_io
        else [helper.make_tensor_value_info("Y", f32, [T, 1, B, H])]
    )
    graph = helper.make_graph(
        [node],
        f"{cell}_T{T}_B{B}_H{H}",
        [helper.make_tensor_value_info("X", f32, [T, B, H])]
        + [helper.make_tensor_value_info(n, f32, [1, B, H]) for n in states_in]
        + (
            [helper.make_tensor_value_info("sequence_lens", onnx.TensorProto.INT32, [B])]
            if lengths
            else []
        ),
        out_info,
        initializer=[
            onnx.numpy_helper.from_array(a.astype(np.float32), n)
            for n, a in (("W", W), ("R", R), ("B", Bias))
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def ort_session(mods, model, threads):
    ort = mods["ort"]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def numpy_gates(cell, H, gx, gh, h, c):
    """The gate math of one step, PyTorch's conventions: gx = x W_ih^T + b_ih
    (+ b_hh for LSTM / RNN), gh = h W_hh^T (+ b_hh for GRU). Returns (h, c)."""
    if cell == "lstm":
        g = gx + gh
        i, f, o = _sigmoid(g[:, :H]), _sigmoid(g[:, H : 2 * H]), _sigmoid(g[:, 3 * H :])
        c = f * c + i * np.tanh(g[:, 2 * H : 3 * H])
        return o * np.tanh(c), c
    if cell == "gru":
        r = _sigmoid(gx[:, :H] + gh[:, :H])
        z = _sigmoid(gx[:, H : 2 * H] + gh[:, H : 2 * H])
        n = np.tanh(gx[:, 2 * H :] + r * gh[:, 2 * H :])
        return n + z * (h - n), c
    return np.tanh(gx + gh), c


def numpy_biases(cell, sd):
    """(bias added to the input projection, bias added to h W_hh^T)."""
    if cell == "gru":
        return sd["bias_ih_l0"], sd["bias_hh_l0"]
    return sd["bias_ih_l0"] + sd["bias_hh_l0"], 0


# Builders. Each returns (check, call): check() -> {name: array} compared with
# fastrnn's; call() is what is timed. An engine starts from zero state.


def build_stream(engine, mods, row, sd, frames, threads):
    cell, H = row.cell, row.H
    x0 = frames[0]
    if engine == FASTRNN:
        fr = mods["fr"]
        layer = {"lstm": fr.LSTM, "gru": fr.GRU, "rnn": fr.RNN}[cell](H, H)
        layer.load_state_dict(sd)
        s, out = layer.stream(batch_size=1), np.empty(H, np.float32)

        def step(x):
            return s.step(x, out)
    elif engine == TORCH:
        torch = mods["torch"]
        one = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell, "rnn": torch.nn.RNNCell}[cell](
            H, H
        ).eval()
        one.load_state_dict(torch_state(sd, torch, strip=True))
        st = [torch.zeros(1, H), torch.zeros(1, H)]
        if cell == "lstm":

            def step(x):
                st[0], st[1] = one(torch.from_numpy(x)[None], (st[0], st[1]))
                return st[0]
        else:

            def step(x):
                st[0] = one(torch.from_numpy(x)[None], st[0])
                return st[0]
    elif engine == ORT:
        sess = ort_session(mods, onnx_model(mods, cell, sd, 1, 1, H, True), threads)
        names = ["h1", "c1"] if cell == "lstm" else ["h1"]
        feed = {
            n: np.zeros((1, 1, H), np.float32) for n in (["h0", "c0"] if cell == "lstm" else ["h0"])
        }

        def step(x):
            feed["X"] = x[None, None]
            outs = sess.run(names, feed)
            feed["h0"] = outs[0]
            if len(outs) > 1:
                feed["c0"] = outs[1]
            return outs[0]
    else:
        W, R = sd["weight_ih_l0"], sd["weight_hh_l0"]
        bx, bh = numpy_biases(cell, sd)
        st = [np.zeros((1, H), np.float32), np.zeros((1, H), np.float32)]

        def step(x):
            st[0], st[1] = numpy_gates(cell, H, x[None] @ W.T + bx, st[0] @ R.T + bh, *st)
            return st[0]

    def check():
        return {"y": np.stack([as_numpy(step(x)).reshape(-1) for x in frames])}

    return check, lambda: step(x0)


def torch_packed(torch, module, xt, lengths, T):
    """module over x (T, B, I) packed by lengths (pack_padded_sequence, unsorted
    allowed), its output padded back to T steps (zeros past each length)."""
    rnn = torch.nn.utils.rnn
    packed = rnn.pack_padded_sequence(xt, torch.from_numpy(lengths), enforce_sorted=False)
    return rnn.pad_packed_sequence(module(packed)[0], total_length=T)[0]


def build_sequence(engine, mods, row, sd, x, threads):
    cell, T, B, H, lengths = row.cell, row.T, row.B, row.H, row.lengths()
    if engine == FASTRNN:
        fr = mods["fr"]
        layer = {"lstm": fr.LSTM, "gru": fr.GRU, "rnn": fr.RNN}[cell](H, H)
        layer.load_state_dict(sd)

        def run():
            return layer(x, lengths=lengths)[0]
    elif engine == TORCH:
        torch = mods["torch"]
        module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell](H, H)
        module.load_state_dict(torch_state(sd, torch))
        module.eval()
        xt = torch.from_numpy(x)

        def run():
            if lengths is None:
                return module(xt)[0]
            return torch_packed(torch, module, xt, lengths, T)
    elif engine == ORT:
        model = onnx_model(mods, cell, sd, T, B, H, False, lengths is not None)
        sess = ort_session(mods, model, threads)
        feed = {"X": x}
        if lengths is not None:
            feed["sequence_lens"] = lengths.astype(np.int32)

        def run():
            return sess.run(None, feed)[0][:, 0]
    else:
        W, R = sd["weight_ih_l0"], sd["weight_hh_l0"]
        bx, bh = numpy_biases(cell, sd)

        def run():
            gx = (x.reshape(T * B, H) @ W.T + bx).reshape(T, B, -1)
            h, c = np.zeros((B, H), np.float32), np.zeros((B, H), np.float32)
            y = np.empty((T, B, H), np.float32)
            for t in range(T):
                h, c = numpy_gates(cell, H, gx[t], h @ R.T + bh, h, c)
                y[t] = h
            return y

    def check():
        return {"y": as_numpy(run())}

    return check, run


def build_train(engine, mods, row, sd, data, threads):
    """One training step on the loss sum(y * dy): forward, backward (parameter
    gradients only), an Adam step (lr 1e-3); check() runs forward and backward
    once and returns y and the gradients."""
    cell, H, lengths = row.cell, row.H, row.lengths()
    x, dy = data
    if engine == FASTRNN:
        fr = mods["fr"]
        layer = {"lstm": fr.LSTM, "gru": fr.GRU, "rnn": fr.RNN}[cell](H, H)
        layer.load_state_dict(sd)
        opt = fr.Adam([layer], lr=LR)

        def forward_backward():
            layer.zero_grad()
            y, _, cache = layer.forward(x, lengths=lengths)
            layer.backward(dy, cache, input_grad=False)
            return y

        def check():
            y = forward_backward()
            return {"y": y, **{k: g.copy() for k, g in layer.grads.items()}}

        def step():
            forward_backward()
            opt.step()
    else:
        torch = mods["torch"]
        module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell](H, H)
        module.load_state_dict(torch_state(sd, torch))
        module.train()
        opt = torch.optim.Adam(module.parameters(), lr=LR)
        xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)

        def forward_backward():
            opt.zero_grad(set_to_none=True)
            y = (
                module(xt)[0]
                if lengths is None
                else torch_packed(torch, module, xt, lengths, row.T)
            )
            (y * dyt).sum().backward()
            return y

        def check():
            y = forward_backward().detach().numpy()
            return {"y": y, **{k: p.grad.numpy().copy() for k, p in module.named_parameters()}}

        def step():
            forward_backward()
            opt.step()

    return check, step


BUILDERS = {
    "stream": build_stream,
    "sequence": build_sequence,
    "train": build_train,
    "mixed": build_sequence,
    "train-mixed": build_train,
}


def row_data(row, rng_seed=1):
    rng = np.random.default_rng(rng_seed)
    if row.scenario == "stream":
        return rng.standard_normal((GATE_STEPS, row.H)).astype(np.float32)
    x = rng.standard_normal((row.T, row.B, row.H)).astype(np.float32)
    if not row.scenario.startswith("train"):
        return x
    return x, rng.standard_normal((row.T, row.B, row.H)).astype(np.float32)


def as_numpy(v):
    """A copy of an engine's output as a float32 NumPy array (torch tensors too)."""
    if hasattr(v, "detach"):
        v = v.detach().numpy()
    return np.array(v, np.float32)


def rel_err(a, ref):
    """max |a - ref| / max |ref| over each compared array, the worst of them."""
    worst = 0.0
    for k, r in ref.items():
        if k not in a or np.shape(a[k]) != np.shape(r):
            return float("inf")
        r64, a64 = np.asarray(r, np.float64), np.asarray(a[k], np.float64)
        err = float(np.abs(a64 - r64).max() / max(np.abs(r64).max(), 1e-30))
        worst = max(worst, err if np.isfinite(err) else float("inf"))
    return worst


# ---------------------------------------------------------------- timing


def timer_cost(n=20000):
    """The median ns that two back-to-back perf_counter_ns calls report."""
    pc, ts = time.perf_counter_ns, np.empty(n)
    for k in range(n):
        t0 = pc()
        ts[k] = pc() - t0
    return float(np.median(ts))


def timed_calls(fn, min_time, min_calls, max_calls):
    """Call fn until min_time seconds and min_calls calls are spent (or
    max_calls calls), each call timed alone: the ns of each."""
    pc, out = time.perf_counter_ns, []
    end = pc() + int(min_time * 1e9)
    while True:
        t0 = pc()
        fn()
        t1 = pc()
        out.append(t1 - t0)
        if (t1 >= end and len(out) >= min_calls) or len(out) >= max_calls:
            return out


def interleave(calls, config, threads, timer_ns):
    """Warm-up, then config.rounds rounds of every engine in turn, the order
    rotated each round. Returns name -> list of rounds of per-call seconds."""
    names = list(calls)
    for name in names:
        fn, end = calls[name], time.perf_counter() + config.warmup
        fn()
        while time.perf_counter() < end:
            fn()
    rounds = {name: [] for name in names}
    for r in range(config.rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            if threads > 1 and config.settle:
                time.sleep(config.settle)
            fn = calls[name]
            fn()
            gc_was = gc.isenabled()
            gc.disable()
            try:
                ns = timed_calls(fn, config.min_time, config.min_calls, config.max_calls)
            finally:
                if gc_was:
                    gc.enable()
            rounds[name].append([max(t - timer_ns, 1.0) * 1e-9 for t in ns])
    return rounds


def sgemm_seconds(products, min_time):
    """Seconds that scipy.linalg.blas.sgemm takes for the products (M, K, N,
    calls), into preallocated outputs, minus SciPy's Python cost per call (a
    1x1x1 sgemm): the median over repetitions spread over min_time."""
    from scipy.linalg.blas import sgemm

    rng = np.random.default_rng(3)
    jobs = []
    for M, K, N, calls in products:
        a = np.asfortranarray(rng.standard_normal((M, K), np.float32))
        b = np.asfortranarray(rng.standard_normal((K, N), np.float32))
        jobs.append((a, b, np.zeros((M, N), np.float32, order="F"), calls))
    one, tiny = np.ones((1, 1), np.float32, order="F"), np.zeros((1, 1), np.float32, order="F")

    def run(jobs):
        t0 = time.perf_counter()
        for a, b, c, calls in jobs:
            for _ in range(calls):
                sgemm(1.0, a, b, beta=0.0, c=c, overwrite_c=1)
        return time.perf_counter() - t0

    def median_time(jobs):
        run(jobs)
        ts, end = [], time.perf_counter() + min_time
        while len(ts) < 3 or time.perf_counter() < end:
            ts.append(run(jobs))
        return float(np.median(ts))

    n_calls = sum(calls for *_, calls in products)
    call_cost = median_time([(one, one, tiny, 1)] * 50) / 50
    total = median_time(jobs)
    return max(total - n_calls * call_cost, 0.05 * total)


def cpu_seconds():
    """(CPU seconds the machine was busy, CPU seconds of this process), or None."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    own = os.times()
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK"), own.user + own.system


def others_load(start, wall):
    """Cores other processes kept busy on average since `start`."""
    now = cpu_seconds()
    if start is None or now is None or wall <= 0:
        return None
    return round(max(now[0] - start[0] - (now[1] - start[1]), 0.0) / wall, 2)


def wait_until_quiet(max_wait, probe=0.5, threshold=0.25):
    """Wait up to max_wait seconds until other processes keep fewer than
    `threshold` cores busy over a probe interval."""
    end = time.perf_counter() + max_wait
    while time.perf_counter() < end:
        start, t0 = cpu_seconds(), time.perf_counter()
        time.sleep(probe)
        load = others_load(start, time.perf_counter() - t0)
        if load is None or load < threshold:
            return


# ---------------------------------------------------------------- the suite


@contextlib.contextmanager
def engine_threads(n, found):
    """n threads for every engine: BLAS and OpenMP (threadpoolctl), fastrnn,
    torch (ORT takes n in its session options). Restored afterwards."""
    fr = found[FASTRNN][0]["fr"]
    torch = (found[TORCH][0] or {}).get("torch")
    before_fr, before_torch = fr_threads._num_threads, torch and torch.get_num_threads()
    try:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(limits=n)
    except ImportError:
        limits = contextlib.nullcontext()
    try:
        with limits:
            fr.set_num_threads(n)
            if torch is not None:
                torch.set_num_threads(n)
            yield
    finally:
        fr.set_num_threads(before_fr)
        if torch is not None:
            torch.set_num_threads(before_torch)


def _summary(rounds):
    every = np.concatenate([np.asarray(r) for r in rounds])
    medians = [float(np.median(r)) for r in rounds]
    q1, q3 = np.percentile(every, [25, 75])
    return {
        "median_s": float(np.median(every)),
        "p99_s": float(np.percentile(every, 99)),
        "iqr_s": [float(q1), float(q3)],
        "round_medians_s": medians,
        "spread_s": [min(medians), max(medians)],
        "n_samples": int(every.size),
    }


def bench_row(
    row, found, config, threads, timer_ns, sgemm_cache, faulty=(), log=None, peak_gflops=None
):
    """Gate and time every engine of one row: a list of result dicts.
    peak_gflops: the FMA peak at the run's thread count (fma_peak's "gflops")."""
    log = log or (lambda text: print(text, file=sys.stderr))
    engines = SCENARIOS[row.scenario][1]
    torch = (found[TORCH][0] or {}).get("torch")
    sd = make_weights(row.cell, row.I, row.H, torch)
    data = row_data(row)
    base = {
        "scenario": row.scenario,
        "cell": row.cell,
        "name": row.name,
        "params": row.params(),
        "threads": threads,
    }
    empty = {
        "samples_s": [],
        "median_s": None,
        "p99_s": None,
        "gflops": None,
        "sgemm_fraction": None,
        "peak_fraction": None,
        "ratio_vs_fastrnn": None,
    }
    results = {e: dict(base, engine=e, status="ok", reason=None, **empty) for e in engines}

    def fail(engine, status, reason):
        results[engine].update(status=status, reason=reason)
        if status != "skipped":
            log(f"\n!!! {row.name}: {engine} {status.upper()}: {reason} -- NOT timed !!!\n")

    inference = torch is not None and not row.scenario.startswith("train")
    with torch.inference_mode() if inference else contextlib.nullcontext():
        calls, ref = {}, None
        for engine in engines:
            mods, why = found[engine]
            if mods is None:
                fail(engine, "skipped", why)
                continue
            if engine != FASTRNN and ref is None:
                fail(engine, "error", "fastrnn failed on this row: nothing to compare with")
                continue
            try:
                check, call = BUILDERS[row.scenario](
                    engine, mods, row, faulty_weights(sd) if engine in faulty else sd, data, threads
                )
                out = check()
            except Exception as e:  # an engine that cannot run this row
                fail(engine, "error", f"{type(e).__name__}: {e}")
                continue
            if engine == FASTRNN:
                ref = out
            else:
                err = rel_err(out, ref)
                results[engine]["rel_err"] = err
                if not err < MAX_REL_ERR:
                    fail(
                        engine,
                        "mismatch",
                        f"output differs from fastrnn's on the same weights "
                        f"and input: rel err {err:.3g} (limit {MAX_REL_ERR:g})",
                    )
                    continue
            calls[engine] = call
        if FASTRNN not in calls:
            return list(results.values())
        start, t0 = cpu_seconds(), time.perf_counter()
        rounds = interleave(calls, config, threads, timer_ns)
        load = others_load(start, time.perf_counter() - t0)

    key = str(row.products())
    if key not in sgemm_cache:
        t = sgemm_seconds(row.products(), config.sgemm_time)
        sgemm_cache[key] = {
            "products_MKN_calls": row.products(),
            "seconds": t,
            "gflops": row.flops() / t / 1e9,
        }
    t_sgemm, flops = sgemm_cache[key]["seconds"], row.flops()
    for engine, r in rounds.items():
        res = results[engine]
        res.update(_summary(r))
        res["samples_s"] = [round(s, 9) for s in np.concatenate(r).tolist()]
        res["flops"] = flops
        res["gflops"] = flops / res["median_s"] / 1e9
        res["sgemm_gflops"] = flops / t_sgemm / 1e9
        res["sgemm_fraction"] = t_sgemm / res["median_s"]
        res["peak_fraction"] = res["gflops"] / peak_gflops if peak_gflops else None
        res["others_load"] = load
    fr_median = results[FASTRNN]["median_s"]
    for engine in rounds:
        results[engine]["ratio_vs_fastrnn"] = results[engine]["median_s"] / fr_median
    return list(results.values())


def run_suite(config, threads, only=None, faulty=(), progress=True, log=None, quiet_wait=0.0):
    """Run the rows of `config` matching `only` on `threads` threads. faulty:
    TEST-ONLY, engine names given wrong weights (the gate must catch them).
    quiet_wait: before each row, wait up to this many seconds for other
    processes to go idle. Returns (meta, results)."""
    import scipy.linalg  # noqa: F401  (SciPy's OpenBLAS loaded before threadpoolctl looks)

    found = probe_engines()  # every library loaded before the thread limits apply
    rows = rows_for(config, only)
    bar = _progress(len(rows), progress)
    log = log or (lambda text: bar.write(text, file=sys.stderr))
    results, sgemm_cache, t0 = [], {}, time.perf_counter()
    with engine_threads(threads, found):
        meta = machine_info(found, threads)
        meta["timer_cost_ns"] = timer_ns = timer_cost()
        meta["fma_peak"] = peak = fma_peak(threads, config.peak_time)
        for row in rows:
            bar.set_description(row.name)
            if quiet_wait > 0:
                wait_until_quiet(quiet_wait)
            results += bench_row(
                row,
                found,
                config,
                threads,
                timer_ns,
                sgemm_cache,
                faulty,
                log,
                peak_gflops=peak["gflops"],
            )
            bar.update()
    bar.close()
    meta.update(
        config=asdict(config),
        rows=[r.name for r in rows],
        only=only,
        sgemm=list(sgemm_cache.values()),
        wall_s=time.perf_counter() - t0,
        faulty=list(faulty),
        load_average_end=_loadavg(),
    )
    return meta, results


class _Log:
    """What tqdm offers, when tqdm is missing or not wanted."""

    def __init__(self, total, on):
        self.n, self.total, self.on = 0, total, on

    def set_description(self, text):
        if self.on:
            print(f"[{self.n + 1}/{self.total}] {text}", file=sys.stderr, flush=True)

    def update(self):
        self.n += 1

    def write(self, text, file=None):
        print(text, file=sys.stderr, flush=True)

    def close(self):
        pass


def _progress(total, on):
    if on:
        try:
            from tqdm import tqdm

            return tqdm(total=total, file=sys.stderr, unit="row", dynamic_ncols=True)
        except ImportError:
            pass
    return _Log(total, on)


# ---------------------------------------------------------------- the machine


def cpu_model():
    """The model name, with family / model and the widest SIMD when /proc/cpuinfo
    tells (virtual machines often report just 'AMD EPYC')."""
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = info.get("model name") or platform.processor() or platform.machine() or "unknown"
    extra = []
    if "cpu family" in info and "model" in info:
        extra.append(f"family {info['cpu family']} model {info['model']}")
    flags = set(info.get("flags", "").split())
    simd = next((f for f in ("avx512f", "avx2", "avx", "sse4_2") if f in flags), None)
    if simd:
        extra.append(simd.upper().replace("AVX512F", "AVX-512").replace("SSE4_2", "SSE4.2"))
    return f"{name} ({', '.join(extra)})" if extra else name


def l2_per_core():
    """One core's L2 cache, e.g. '1280 KB', as Linux's sysfs tells it for
    cpu0; None where it does not."""
    base = "/sys/devices/system/cpu/cpu0/cache"

    def read(index, name):
        with open(os.path.join(base, index, name)) as f:
            return f.read().strip()

    try:
        for index in sorted(os.listdir(base)):
            if read(index, "level") == "2" and read(index, "type") in ("Unified", "Data"):
                size = read(index, "size")
                return size[:-1] + " KB" if size.endswith("K") else size
    except OSError:
        pass
    return None


def physical_cores(cpus):
    """How many physical cores the logical CPUs `cpus` belong to (SMT
    siblings share one core's FMA units), as Linux's sysfs tells it; None
    where it does not."""
    cores = set()
    try:
        for cpu in cpus:
            with open(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list") as f:
                cores.add(f.read().strip())
    except OSError:
        return None
    return len(cores) or None


def fma_peak(threads, seconds):
    """The FMA peak of the SIMD path that runs, measured on one core (see the
    module's docstring), and at `threads` threads: that times the physical
    cores the threads can run on."""
    one = _core.fma_peak(seconds) / 1e9
    if hasattr(os, "sched_getaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        usable = physical_cores(cpus) or len(cpus)
    else:
        usable = os.cpu_count() or 1
    cores = min(threads, usable)
    return {
        "simd": fastrnn.simd_level(),
        "one_core_gflops": one,
        "cores": cores,
        "gflops": cores * one,
        "seconds": seconds,
        "method": "float32 multiply-adds in a register-only loop on one core, best of 10 "
        "runs; at N threads N cores times the one-core figure",
    }


def _loadavg():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def machine_info(found, threads):
    import scipy

    versions = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "fastrnn": fastrnn.__version__,
    }
    for engine, key, attr in (
        (TORCH, "torch", "torch"),
        (ORT, "onnxruntime", "ort"),
        (ORT, "onnx", "onnx"),
    ):
        mods = found[engine][0]
        versions[key] = mods[attr].__version__ if mods else None
    try:
        from threadpoolctl import __version__ as tpc
        from threadpoolctl import threadpool_info

        pools = [
            {
                k: d.get(k)
                for k in (
                    "user_api",
                    "internal_api",
                    "version",
                    "architecture",
                    "num_threads",
                    "filepath",
                )
            }
            for d in threadpool_info()
        ]
        versions["threadpoolctl"] = tpc
    except ImportError:
        pools, versions["threadpoolctl"] = None, None
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "l2_per_core": l2_per_core(),
        "simd": fastrnn.simd_level(),
        "FASTRNN_ISA": os.environ.get("FASTRNN_ISA"),
        "platform": platform.platform(),
        "threads": threads,
        "versions": versions,
        "threadpools": pools,
        "fastrnn_threads": fastrnn.get_num_threads(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "peer_isa": {k: os.environ.get(k) for k in PEER_ISA_VARIABLES},
        "engines": {e: found[e][1] or "ok" for e in ENGINES},
        "load_average_start": _loadavg(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


# What holds PyTorch to a lower instruction set, as FASTRNN_ISA holds fastrnn:
# oneDNN, ATen's own kernels, and MKL (torch's matrix products: without the
# last, they use AVX-512 where the CPU has it whatever the other two say).
# ONNX Runtime has no such switch.
PEER_ISA_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")


# ---------------------------------------------------------------- report


def format_header(meta):
    v = meta["versions"]
    lines = [
        f"# fastrnn bench ({meta['threads']} thread{'s' if meta['threads'] > 1 else ''})",
        "",
        f"- command: `{meta.get('command') or 'fastrnn bench'}`; started {meta['started']}",
        f"- CPU: {meta['cpu']}, {meta['logical_cores']} logical cores "
        f"({meta['usable_cores']} usable); load average {meta['load_average_start']}",
        f"- SIMD path: {meta['simd']} (FASTRNN_ISA={meta['FASTRNN_ISA'] or '(unset)'}); "
        f"L2 per core: {meta['l2_per_core'] or 'unknown'}",
        _peak_line(meta["fma_peak"]),
        "- peers' instruction sets: "
        + ", ".join(f"{k}={meta['peer_isa'][k] or '(unset)'}" for k in PEER_ISA_VARIABLES),
        "- "
        + ", ".join(
            f"{k} {v[k] or 'not installed'}"
            for k in (
                "python",
                "numpy",
                "scipy",
                "fastrnn",
                "torch",
                "onnxruntime",
                "onnx",
                "threadpoolctl",
            )
        ),
    ]
    for d in meta["threadpools"] or []:
        lib = " ".join(str(d[k]) for k in ("internal_api", "version", "architecture") if d[k])
        lines.append(
            f"- {d['user_api']}: {lib}, num_threads={d['num_threads']} "
            f"({os.path.basename(d['filepath'] or '')})"
        )
    if meta["threadpools"] is None:
        lines.append(
            "- threadpoolctl is not installed: the BLAS and OpenMP threads are NOT "
            "limited (pip install threadpoolctl)"
        )
    lines.append(
        f"- threads: fastrnn {meta['fastrnn_threads']}, torch, ORT intra_op and "
        f"BLAS/OpenMP {meta['threads']}; OPENBLAS_CORETYPE="
        f"{meta['OPENBLAS_CORETYPE'] or '(unset)'}"
    )
    for e, status in meta["engines"].items():
        if status != "ok":
            lines.append(f"- {e}: skipped -- {status}")
    load = (meta["load_average_start"] or [0])[0]
    if load > 0.5:
        lines.append(f"- WARNING: the machine is busy (load {load}): numbers are not to be trusted")
    return "\n".join(lines) + "\n"


def _peak_line(peak):
    if peak["cores"] == 1:
        return f"- FMA peak ({peak['simd']}, 1 core): {peak['gflops']:.0f} GFLOP/s"
    return (
        f"- FMA peak ({peak['simd']}, {peak['cores']} cores): {peak['gflops']:.0f} GFLOP/s "
        f"= {peak['cores']} x {peak['one_core_gflops']:.0f} measured on one core (all "
        f"cores busy may clock lower)"
    )


def _percent(fraction):
    return f"{100 * fraction:.0f}%" if fraction >= 0.1 else f"{100 * fraction:.1f}%"


def _t(seconds, unit):
    v = seconds * (1e6 if unit == "us" else 1e3)
    return (
        f"{v:.0f}"
        if v >= 1000
        else f"{v:.1f}"
        if v >= 100
        else f"{v:.2f}"
        if v >= 1
        else f"{v:.3f}"
    )


def _cell_text(res, unit, latency):
    if res is None:
        return "-"
    if res["status"] == "skipped":
        return "skipped"
    if res["status"] == "mismatch":
        return f"**MISMATCH** ({res['rel_err']:.1e})"
    if res["status"] != "ok":
        return "**error**"
    lo, hi = res["spread_s"]
    text = _t(res["median_s"], unit)
    if latency:
        text += f" / {_t(res['p99_s'], unit)}"
    spread = 50 * (hi - lo) / res["median_s"]
    text += f" ±{spread:.1f}%" if spread < 9.95 else f" ±{spread:.0f}%"
    if res["engine"] != FASTRNN:
        text += f" ({res['ratio_vs_fastrnn']:.3g}x)"
    return text


def format_tables(results):
    """One markdown table per scenario, a row per cell and size."""
    out = []
    for scenario, (title, engines, unit) in SCENARIOS.items():
        mine = [r for r in results if r["scenario"] == scenario]
        if not mine:
            continue
        latency = scenario == "stream"
        p = mine[0]["params"]
        what = {
            "stream": "I = H, state fed back; us per step: median / p99",
            "sequence": f"T = {p['T']}, I = H; ms per sequence: median",
            "train": f"T = {p['T']}, B = {p['B']}, I = H; ms per step: median",
            "mixed": f"T = {p['T']}, lengths uniform in 1..T, I = H; ms per sequence: median",
            "train-mixed": f"T = {p['T']}, B = {p['B']}, lengths uniform in 1..T, I = H; "
            "ms per step: median",
        }[scenario]
        out.append(f"\n### {title} ({what})\n")
        size_col = {"stream": "H", "train": "H"}.get(scenario, "B, H")
        out.append(
            f"| cell | {size_col} | "
            + " | ".join(engines)
            + " | fastrnn GFLOP/s | of SGEMM | of peak | load |"
        )
        out.append("|---|--:|" + "--:|" * len(engines) + "--:|--:|--:|--:|")
        names = list(dict.fromkeys(r["name"] for r in mine))
        notes = {}
        for name in names:
            by = {r["engine"]: r for r in mine if r["name"] == name}
            p, fr = by[FASTRNN]["params"], by[FASTRNN]
            size = f"{p['H']}" if scenario in ("stream", "train") else f"{p['B']}, {p['H']}"
            rate = (
                f"{fr['gflops']:.1f} | {100 * fr['sgemm_fraction']:.0f}% "
                f"({fr['sgemm_gflops']:.0f}) | "
                + (_percent(fr["peak_fraction"]) if fr["peak_fraction"] else "-")
                if fr["status"] == "ok"
                else "- | - | -"
            )
            load = fr.get("others_load")
            out.append(
                f"| {CELL_NAMES[by[FASTRNN]['cell']]} | {size} | "
                + " | ".join(_cell_text(by.get(e), unit, latency) for e in engines)
                + f" | {rate} | {'-' if load is None else f'{load:.2f}'} |"
            )
            for e, r in by.items():
                if r["status"] != "ok":
                    notes.setdefault((e, r["status"], r["reason"]), []).append(name)
        for (e, status, reason), where in notes.items():
            rows = "all rows" if len(where) == len(names) else ", ".join(where)
            out.append(f"\n- {e} {status} ({rows}): {reason}")
    out.append(
        "\n±: half the range of the round medians, relative to the median; (Nx): the "
        "peer's median / fastrnn's, above 1 fastrnn is faster; of SGEMM: fastrnn's "
        "GFLOP/s as a share of scipy's sgemm on the same products at the same thread "
        "count (its GFLOP/s in brackets); of peak: fastrnn's GFLOP/s as a share of the "
        "FMA peak in the header; load: cores other processes kept busy meanwhile."
    )
    return "\n".join(out) + "\n"


def write_plot(path, meta, results):
    """Bars of peer time / fastrnn time per row, one panel per scenario."""
    import matplotlib.ticker
    from matplotlib.figure import Figure  # no pyplot: no backend, no global state

    scenarios = [s for s in SCENARIOS if any(r["scenario"] == s for r in results)]
    most = max(len({r["name"] for r in results if r["scenario"] == s}) for s in scenarios)
    fig = Figure(figsize=(max(11, 0.5 * most + 2), 3.2 * len(scenarios) + 0.6))
    axes = fig.subplots(len(scenarios), 1, squeeze=False)
    for ax, scenario in zip(axes[:, 0], scenarios):
        title, engines, _ = SCENARIOS[scenario]
        mine = [r for r in results if r["scenario"] == scenario]
        names = list(dict.fromkeys(r["name"] for r in mine))
        peers = [e for e in engines if e != FASTRNN]
        width = 0.8 / max(len(peers), 1)
        for k, e in enumerate(peers):
            xs, ys = [], []
            for i, name in enumerate(names):
                r = next((r for r in mine if r["name"] == name and r["engine"] == e), None)
                if r is not None and r["status"] == "ok":
                    xs.append(i + (k - (len(peers) - 1) / 2) * width)
                    ys.append(r["ratio_vs_fastrnn"])
            # from 1 up (fastrnn faster) or down (slower), on a log scale
            bars = ax.bar(xs, [y - 1 for y in ys], width, bottom=1, label=e)
            ax.bar_label(bars, labels=[f"{y:.2g}" for y in ys], fontsize=6)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
        ax.tick_params(axis="y", which="both", labelsize=7)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels([n.split("/", 1)[1] for n in names], rotation=45, ha="right", fontsize=7)
        ax.set_ylabel("peer time / fastrnn")
        ax.set_title(f"{title}: above 1, fastrnn is faster", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(f"fastrnn bench, {meta['threads']} thread(s), {meta['cpu']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")


def write_json(path, meta, results):
    with open(path, "w") as f:
        json.dump({"meta": meta, "results": results}, f)
        f.write("\n")


# ---------------------------------------------------------------- the command


def _positive(value):
    v = int(value)
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return v


def add_bench_parser(sub):
    """The `bench` subcommand of the `fastrnn` command."""
    b = sub.add_parser(
        "bench",
        help="time fastrnn against the installed peers (PyTorch, "
        "ONNX Runtime, NumPy) on this machine",
        description="Streaming, sequence and training scenarios for LSTM, GRU "
        "and RNN; every installed peer in the same run on the same weights, "
        "checked against fastrnn before it is timed. Prints markdown tables.",
    )
    b.add_argument(
        "--quick",
        action="store_true",
        help="fewer sizes, rounds and a shorter minimum time: the whole suite in under a minute",
    )
    b.add_argument(
        "--threads",
        type=_positive,
        default=None,
        metavar="N",
        help="threads for every engine (default: the usable cores)",
    )
    b.add_argument(
        "--only",
        action="append",
        metavar="PATTERN",
        help="run the rows whose "
        "name (scenario/cell/size, e.g. stream/lstm/H64, sequence/gru/B16-H256) "
        "contains PATTERN or matches it as a glob; repeatable",
    )
    b.add_argument("--json", metavar="PATH", help="write the metadata and every raw sample")
    b.add_argument("--plot", metavar="PATH", help="write a PNG chart (needs matplotlib)")
    b.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each row, wait up to SECONDS for other processes to leave the "
        "CPUs idle (default 0: do not wait)",
    )
    b.add_argument("--list", action="store_true", help="list the row names and exit")
    b.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    b.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # test-only
    b.add_argument(
        "--test-faulty",
        action="append",
        default=[],
        metavar="ENGINE",
        choices=ENGINES,
        help=argparse.SUPPRESS,
    )  # test-only
    return b


def run_command(args):
    """`fastrnn bench` with parsed arguments; returns the exit status: 0, 1 when
    an engine mismatched or failed, 2 for a usage error."""
    config = TINY if args.tiny else QUICK if args.quick else FULL
    rows = rows_for(config, args.only)
    if args.list:
        print("\n".join(r.name for r in rows))
        return 0
    if not rows:
        print(
            f"fastrnn bench: error: --only {args.only} matches no row (see --list)", file=sys.stderr
        )
        return 2
    for path in (args.json, args.plot):
        if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            print(f"fastrnn bench: error: no directory for {path}", file=sys.stderr)
            return 2
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError as e:
            print(
                f"fastrnn bench: error: --plot needs matplotlib, which is not installed ({e});"
                f" pip install matplotlib (or fastrnn[plot]), or drop --plot",
                file=sys.stderr,
            )
            return 2
    threads = args.threads or (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )
    meta, results = run_suite(
        config,
        threads,
        args.only,
        tuple(args.test_faulty),
        progress=not args.no_progress,
        quiet_wait=args.quiet_wait,
    )
    meta["command"] = " ".join(["fastrnn", "bench"] + _argv(args))
    print(format_header(meta))
    print(format_tables(results))
    bad = [r for r in results if r["status"] in ("mismatch", "error")]
    for r in bad:
        print(f"!!! {r['name']}: {r['engine']} {r['status'].upper()}: {r['reason']}")
    print(f"\n{len(rows)} rows in {meta['wall_s']:.1f} s")
    sys.stdout.flush()
    if args.json:
        write_json(args.json, meta, results)
        print(f"raw samples: {args.json}", file=sys.stderr)
    if args.plot:
        write_plot(args.plot, meta, results)
        print(f"chart: {args.plot}", file=sys.stderr)
    return 1 if bad else 0


def _argv(args):
    out = ["--quick"] if args.quick else ["--tiny"] if args.tiny else []
    out += ["--threads", str(args.threads)] if args.threads else []
    out += ["--quiet-wait", f"{args.quiet_wait:g}"] if args.quiet_wait else []
    for p in args.only or []:
        out += ["--only", p]
    return out


def main(argv=None):
    """`fastrnn bench [options]`, as a function: main(['--quick', ...])."""
    p = argparse.ArgumentParser(prog="fastrnn")
    add_bench_parser(p.add_subparsers(dest="command", required=True))
    return run_command(p.parse_args(["bench"] + list(sys.argv[1:] if argv is None else argv)))
