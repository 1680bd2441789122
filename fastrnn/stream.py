"""Streaming inference: a layer run one time step per call, for services.

    s = lstm.stream(batch_size=1)      # fr.RNN, fr.LSTM, fr.GRU; any num_layers
    y_t = s.step(x_t)                  # x_t (B, I) or (I,) -> y_t (B, H) or (H,)
    y = s.run(x_chunk)                 # (T, B, I) -> (T, B, H): T steps, one call
    (an LSTM with proj_size P outputs and carries h of P features instead of H)
    s.state; s.state = (h, c)          # every layer's state, shaped like h_n
    s.reset(); s.reset(rows=[2])       # zero all, or the rows that start anew

A stream holds the state of every layer, an output buffer and its scratch,
all laid out once (one C struct, csrc/stream.inc); a step is one call into C
for all layers with the GIL released, and allocates nothing. Its results are
those of the layer's own forward over the whole sequence (float32 to ~1e-6
relative, float64 to ~1e-12). A stream is time-major whatever `batch_first`
says, and runs on the calling thread only.

Attributes (read-only, from the layer): dtype (float32 or float64),
num_layers, batch_size, input_size, hidden_size, proj_size (0: none) and
output_size (the features of y_t and h: proj_size, else hidden_size).

What step returns: the stream's own output buffer, a READ-ONLY array that the
next step overwrites (the same object every time: copy it to keep it), or
the array passed as `out=` (writeable, C-contiguous, the stream's dtype).
`run` returns a new array unless given `out=`.

Threads: streams made from one layer share its packed weights (no copy per
stream) and run in parallel, one per thread, with the results each gives
alone. One stream used by two threads at once raises RuntimeError (it never
waits): a stream is one session's state, and two threads stepping it at once
would interleave frames in an undefined order. Serialise such calls with a
lock of your own if you need to share one.

Weights changed after the stream was made (load_state_dict, an optimizer
step, setting a parameter attribute): the stream SEES them, in full, from its
next step or run on: every change bumps the layer's weights version
(Module._params_changed), and a stream whose version is stale takes the new
packed weights before it computes anything. A step already running finishes
with the weights it started with; the state carries over. load_state_dict
swaps in fresh arrays all at once, so a stream never sees half of a load.

Products: both W_ih and W_hh run on packed weights, the layer's own packed
cache (shared with its forward). float32 uses the SIMD kernel of matmul.c,
which beats BLAS sgemm at M = 1 for every H from 64 to 1024 (run
benchmarks/bench_stream.py --products); float64 runs the packed panels on
BLAS, faster than one plain dgemm at M = 1 from H = 256 on and never far
behind below. (The C API also takes unpacked layers: BLAS on w_ih, w_hh.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import _core
from ._validate import positive_int

if TYPE_CHECKING:
    from .layers import _RNNBase

Stream = _core.Stream


def _version(layer):
    """The layer's weights version: a 1-element int64 array that
    Module._params_changed bumps."""
    return layer.__dict__.setdefault("_weights_version", np.zeros(1, np.int64))


def _weights(layer):
    """Per layer the arrays a Stream takes: (w_ih, w_hh, b_ih, b_hh, w_peep,
    packed_ih, packed_hh, w_hr, packed_hr). The packed weights are the layer's own cache
    (Module._packed): made once per set of weights, shared with its forward
    and with every other stream, never written. Biases and peepholes are
    copied into each stream when it takes them, so a step reads nothing that
    load_state_dict writes."""
    params, out = layer._params, []
    for k in range(layer.num_layers):
        ih, hh, hr = f"weight_ih_l{k}", f"weight_hh_l{k}", f"weight_hr_l{k}"
        out.append(
            (
                params[ih],
                params[hh],
                params.get(f"bias_ih_l{k}"),
                params.get(f"bias_hh_l{k}"),
                params.get(f"weight_peep_l{k}"),
                layer._packed(ih),
                layer._packed(hh),
                params.get(hr),
                layer._packed(hr) if hr in params else None,
            )
        )
    return out


def make_stream(layer: _RNNBase, batch_size: int = 1) -> Stream:
    """A Stream running `layer` (fr.RNN, fr.LSTM or fr.GRU, unidirectional)
    one time step per call over `batch_size` rows, from zero state."""
    if layer.bidirectional:
        raise ValueError(
            f"stream: {type(layer).__name__} is bidirectional; its reverse direction starts "
            "from the end of the sequence, which a stream never sees. Stream a "
            "unidirectional layer, or run the whole sequence through the layer"
        )
    batch_size = positive_int(batch_size, "batch_size")
    return Stream(
        cell=layer._cell,
        peephole=layer.peephole,
        linear_before_reset=layer.linear_before_reset,
        num_layers=layer.num_layers,
        batch_size=batch_size,
        input_size=layer.input_size,
        hidden_size=layer.hidden_size,
        proj_size=layer.proj_size,
        dtype=layer.dtype,
        source=lambda: _weights(layer),
        version=_version(layer),
    )
