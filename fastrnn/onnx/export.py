"""fastrnn layers and cells as ONNX graphs (opset 14): one ONNX RNN / LSTM /
GRU node per layer, joined by the glue PyTorch's exporter uses
(Transpose + Reshape to merge the directions; Squeeze for one direction).

  layer: X (T, B, I) or batch_first (B, T, I) [, h0 (L*D, B, H) [, c0]]
         -> Y (T, B, D*H) or (B, T, D*H), Y_h (L*D, B, H) [, Y_c]
  cell:  X (B, I) [, h (B, H) [, c (B, H)]] -> Y_h (B, H) [, Y_c]

T and B are dynamic. Weights are initializers in ONNX's gate order
(LSTM i, o, f, c; GRU z, r, h; P i, o, f). batch_first uses Transpose,
not layout=1, which onnxruntime does not run. The onnx package is imported
inside the functions that use it, so that `import fastrnn` does not need it."""

from __future__ import annotations

import os
import tempfile
from typing import TYPE_CHECKING

import numpy as np

from .recurrent import FASTRNN_TO_ONNX, PEEP_ORDER, reorder

if TYPE_CHECKING:
    import onnx

    from ..cells import GRUCell, LSTMCell, RNNCell
    from ..layers import GRU, LSTM, RNN

OPSET = 14
IR_VERSION = 8  # what opset 14 needs; read by every onnxruntime since 1.10
# fastrnn class -> the ONNX operator it exports as
ONNX_OP = {
    "RNN": "RNN",
    "LSTM": "LSTM",
    "GRU": "GRU",
    "RNNCell": "RNN",
    "LSTMCell": "LSTM",
    "GRUCell": "GRU",
}


class _Graph:
    def __init__(self):
        self.nodes, self.initializers = [], []

    def const(self, name, array):
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op, inputs, outputs, **attrs):
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, outputs, name=outputs[0] + "_node", **attrs))
        return outputs


def _weights(g, model, op, sfx, prefix):
    """Initializers W, R, B, P (each with a leading direction axis) for the
    directions whose fastrnn suffixes are `sfx`; names start with prefix."""
    p = model.state_dict()
    order = FASTRNN_TO_ONNX[op]
    W = np.stack([reorder(p["weight_ih" + s], order) for s in sfx])
    R = np.stack([reorder(p["weight_hh" + s], order) for s in sfx])
    names = [g.const(prefix + "W", W), g.const(prefix + "R", R)]
    B = P = ""
    if model.bias:
        B = g.const(
            prefix + "B",
            np.stack(
                [
                    np.concatenate(
                        [reorder(p["bias_ih" + s], order), reorder(p["bias_hh" + s], order)]
                    )
                    for s in sfx
                ]
            ),
        )
    if getattr(model, "peephole", False):
        P = g.const(
            prefix + "P", np.stack([reorder(p["weight_peep" + s], PEEP_ORDER) for s in sfx])
        )
    return names + [B], P


def _attrs(model, op, D, H):
    attrs = dict(hidden_size=H, direction="bidirectional" if D == 2 else "forward")
    if op == "GRU":
        attrs["linear_before_reset"] = int(model.linear_before_reset)
    if op == "RNN" and model.nonlinearity == "relu":
        attrs["activations"] = ["Relu"] * D
    return attrs


def _layer_graph(g, model, op, initial_state):
    L, D, H = model.num_layers, model.num_directions, model.hidden_size
    lstm = op == "LSTM"
    x = "X"
    if model.batch_first:
        (x,) = g.node("Transpose", [x], ["X_time_major"], perm=[1, 0, 2])
    hs, cs = [], []
    for k in range(L):
        sfx = [f"_l{k}"] + ([f"_l{k}_reverse"] if D == 2 else [])
        (W, R, B), P = _weights(g, model, op, sfx, f"l{k}_")
        h0 = c0 = ""
        if initial_state:
            if L == 1:
                h0, c0 = "h0", ("c0" if lstm else "")
            else:
                starts = g.const(f"l{k}_start", np.array([k * D], np.int64))
                ends = g.const(f"l{k}_end", np.array([(k + 1) * D], np.int64))
                axes = g.const("axis0", np.array([0], np.int64)) if k == 0 else "axis0"
                (h0,) = g.node("Slice", ["h0", starts, ends, axes], [f"l{k}_h0"])
                if lstm:
                    (c0,) = g.node("Slice", ["c0", starts, ends, axes], [f"l{k}_c0"])
        inputs = [x, W, R, B, "", h0, c0, P] if lstm else [x, W, R, B, "", h0]
        while inputs[-1] == "":
            inputs.pop()
        outs = [f"l{k}_Y", f"l{k}_Y_h"] + ([f"l{k}_Y_c"] if lstm else [])
        if L == 1:
            outs[1:] = ["Y_h"] + (["Y_c"] if lstm else [])
        g.node(op, inputs, outs, **_attrs(model, op, D, H))
        hs.append(outs[1])
        if lstm:
            cs.append(outs[2])
        # Y (T, D, B, H) -> (T, B, D*H)
        last = k == L - 1 and not model.batch_first
        y_name = "Y" if last else f"l{k}_out"
        if D == 1:
            axes1 = g.const("axis1", np.array([1], np.int64)) if k == 0 else "axis1"
            (x,) = g.node("Squeeze", [outs[0], axes1], [y_name])
        else:
            (t,) = g.node("Transpose", [outs[0]], [f"l{k}_Y_tbdh"], perm=[0, 2, 1, 3])
            shape = (
                g.const("merge_shape", np.array([0, 0, -1], np.int64)) if k == 0 else "merge_shape"
            )
            (x,) = g.node("Reshape", [t, shape], [y_name])
    if model.batch_first:
        g.node("Transpose", [x], ["Y"], perm=[1, 0, 2])
    if L > 1:
        g.node("Concat", hs, ["Y_h"], axis=0)
        if lstm:
            g.node("Concat", cs, ["Y_c"], axis=0)


def _cell_graph(g, model, op, initial_state):
    lstm = op == "LSTM"
    axes = g.const("axis0", np.array([0], np.int64))
    (x,) = g.node("Unsqueeze", ["X", axes], ["X_1bi"])
    (W, R, B), P = _weights(g, model, op, [""], "")
    h0 = c0 = ""
    if initial_state:
        (h0,) = g.node("Unsqueeze", ["h", axes], ["h_1bh"])
        if lstm:
            (c0,) = g.node("Unsqueeze", ["c", axes], ["c_1bh"])
    inputs = [x, W, R, B, "", h0, c0, P] if lstm else [x, W, R, B, "", h0]
    while inputs[-1] == "":
        inputs.pop()
    outs = ["", "Y_h_1bh"] + (["Y_c_1bh"] if lstm else [])
    g.node(op, inputs, outs, **_attrs(model, op, 1, model.hidden_size))
    g.node("Squeeze", ["Y_h_1bh", axes], ["Y_h"])
    if lstm:
        g.node("Squeeze", ["Y_c_1bh", axes], ["Y_c"])


def save(
    model: RNN | LSTM | GRU | RNNCell | LSTMCell | GRUCell,
    path: str | os.PathLike[str],
    initial_state: bool = False,
) -> None:
    """Write a fastrnn layer or cell as an ONNX model file (see to_onnx),
    through a temporary file and an atomic rename."""
    data = to_onnx(model, initial_state=initial_state).SerializeToString()
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(
        prefix=".fastrnn-", suffix=".tmp", dir=os.path.dirname(os.path.abspath(path))
    )
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def to_onnx(
    model: RNN | LSTM | GRU | RNNCell | LSTMCell | GRUCell, initial_state: bool = False
) -> onnx.ModelProto:
    """A fastrnn RNN / LSTM / GRU layer or cell as an onnx.ModelProto (opset 14).

    Layers: input X (T, B, I), or (B, T, I) for batch_first, with dynamic
    T and B; with initial_state=True also h0 (and c0 for LSTM), (L*D, B, H);
    outputs Y (T, B, D*H) or (B, T, D*H), Y_h (and Y_c) (L*D, B, H).
    Cells: X (B, I) [, h (B, H) [, c (B, H)]] -> Y_h [, Y_c] (B, H).
    Imports onnx and checks the graph with onnx.checker. Raises TypeError
    for another kind of model, ValueError for an LSTM with proj_size (ONNX's
    LSTM has no projection)."""
    import onnx
    from onnx import helper

    kind = type(model).__name__
    if kind not in ONNX_OP:
        raise TypeError(f"model: expected a fastrnn RNN, LSTM, GRU layer or cell, got {kind}")
    if getattr(model, "proj_size", 0):
        raise ValueError(
            f"proj_size: ONNX's LSTM operator has no output projection, so an LSTM "
            f"with proj_size={model.proj_size} has no ONNX equivalent (PyTorch's "
            "exporter refuses it too)"
        )
    op = ONNX_OP[kind]
    g = _Graph()
    elem = helper.np_dtype_to_tensor_dtype(model.dtype)
    I, H = model.input_size, model.hidden_size
    lstm = op == "LSTM"

    def value(name, shape):
        return helper.make_tensor_value_info(name, elem, shape)

    if kind.endswith("Cell"):
        _cell_graph(g, model, op, initial_state)
        inputs = [value("X", ["batch", I])]
        if initial_state:
            inputs += [value("h", ["batch", H])] + ([value("c", ["batch", H])] if lstm else [])
        outputs = [value("Y_h", ["batch", H])] + ([value("Y_c", ["batch", H])] if lstm else [])
    else:
        _layer_graph(g, model, op, initial_state)
        LD, DH = model.num_layers * model.num_directions, model.num_directions * H
        tb = ["batch", "seq_len"] if model.batch_first else ["seq_len", "batch"]
        inputs = [value("X", tb + [I])]
        if initial_state:
            inputs += [value("h0", [LD, "batch", H])] + (
                [value("c0", [LD, "batch", H])] if lstm else []
            )
        outputs = [value("Y", tb + [DH]), value("Y_h", [LD, "batch", H])] + (
            [value("Y_c", [LD, "batch", H])] if lstm else []
        )
    graph = helper.make_graph(g.nodes, f"fastrnn_{kind}", inputs, outputs, g.initializers)
    proto = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="fastrnn",
        doc_string=repr(model),
    )
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto)
    return proto
