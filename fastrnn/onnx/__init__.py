"""ONNX import and export (needs the `onnx` package: pip install fastrnn[onnx]).

    import fastrnn as fr
    model = fr.onnx.load("model.onnx")              # a path, bytes or an onnx.ModelProto
    y, h_n = model.run(None, {"x": x})              # onnxruntime's InferenceSession.run
    y, = model.run(["y"], {"x": x})                 # only the outputs named
    model.layer                                     # the fastrnn layer, when there is one
    fr.onnx.save(lstm, "lstm.onnx")                 # any fastrnn RNN/LSTM/GRU layer or cell

Import. `load` reads a graph of ONNX operators and evaluates it in
topological order. RNN, LSTM and GRU nodes support every attribute of their
definitions (direction, layout, linear_before_reset, peepholes P,
sequence_lens, initial_h / initial_c, any of Y / Y_h / Y_c omitted, clip,
input_forget, activations with activation_alpha / activation_beta). A node
fastrnn's layers can express (default activations, or Tanh / Relu for RNN;
no clip; no input_forget; float32 or float64) runs on fastrnn's C engine;
any other runs on a plain NumPy fallback (fastrnn.onnx.recurrent.numpy_node),
written from the operator definitions, float64 inside: correct, not fast.
Around them the glue exporters emit and small heads are evaluated in NumPy
(the list is fastrnn.onnx.ops.OPS: Shape, Gather, Slice, Concat, Squeeze,
Unsqueeze, Reshape, Transpose, ConstantOfShape, Expand, Cast, Identity,
MatMul, Gemm, Add, Relu, Sigmoid, Tanh, Softmax, ...). Anything else is a
ValueError naming the operator, raised by `load`.

Semantics where the ONNX text leaves a choice follow onnxruntime: a sequence
of length 0 gives zero Y_h / Y_c; activation_alpha / activation_beta are
consumed in order only by the activations that take them. Missing alpha /
beta take the ONNX operators' defaults (Affine 1, 0; ThresholdedRelu 1;
ScaledTanh 1, 1; LeakyRelu 0.01; HardSigmoid 0.2, 0.5; Elu 1), where
onnxruntime uses 0 for Affine, ThresholdedRelu and ScaledTanh.

Safety. Loading never executes anything from the file and never follows
external-data references (models with external data are refused). Every
tensor's declared size is checked against the bytes it carries, and against
MAX_TENSOR_BYTES (16 GiB) before anything is allocated; a graph with a
cycle, an unknown operator, an input nobody produces or mismatched dtypes
is a ValueError.

`model.layer` is the fastrnn layer equal to the graph's recurrent nodes
when they form one stack: nodes of one kind run by the engine, constant
weights, each fed the previous one's Y (through the Squeeze or
Transpose+Reshape that exporters put between layers), forward or
bidirectional. It is batch_first when the nodes have layout=1 or the first
node reads a Transpose (perm 1, 0, 2) of its input, as PyTorch exports
batch_first modules; the rest of the graph (heads, softmax) is not part of
it. Otherwise `model.layer` is None.

Export. `save(model, path)` / `to_onnx(model)` write an opset-14 graph of
ONNX RNN / LSTM / GRU nodes that onnxruntime runs with fastrnn's results:
input X (T, B, I), or (B, T, I) for batch_first, with dynamic T and B;
with initial_state=True also h0 (and c0), (L*D, B, H); outputs Y (T, B, D*H)
or (B, T, D*H), Y_h (and Y_c) (L*D, B, H): PyTorch's shapes. Cells export
to X (B, I) [, h (B, H) [, c (B, H)]] -> Y_h [, Y_c] (B, H). float64 layers
export as double tensors (valid ONNX; onnxruntime has no double kernels for
these operators).
"""

from .export import save, to_onnx
from .model import Model, load

__all__ = ["load", "save", "to_onnx", "Model"]
