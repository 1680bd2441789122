"""The ONNX operators fastrnn evaluates besides RNN, LSTM and GRU, in NumPy:
the shape glue exporters put around recurrent layers (what torch.onnx.export
emits: Shape, Gather, Unsqueeze, Concat, ConstantOfShape, Slice, Transpose,
Reshape, Squeeze, ...) and small heads (MatMul, Gemm, Add, Relu, Softmax, ...).

Each operator is `fn(node, inputs) -> list of outputs`; `inputs` holds None
for an omitted optional input; `node` carries `attrs`, `opset` and `where`
(a name for error messages). Every output whose size is not bounded by the
inputs' is checked against `limits.MAX_TENSOR_BYTES` before it is allocated.
"""

import math

import numpy as np

from . import limits
from .proto import DTYPES


def _ints(a, where, what):
    """A 0-D or 1-D integer tensor as a list of Python ints."""
    a = np.asarray(a)
    if a.dtype.kind not in "iu" or a.ndim > 1:
        raise ValueError(
            f"{where}: {what}: expected a 1-D integer tensor, got {a.dtype} of shape {a.shape}"
        )
    return [int(v) for v in a.reshape(-1)]


def _axis(axis, ndim, where):
    if not -ndim <= axis < max(ndim, 1):
        raise ValueError(f"{where}: axis {axis} out of range for a {ndim}-D tensor")
    return axis % max(ndim, 1)


def _same_dtype(node, *arrays):
    dts = {a.dtype for a in arrays if a is not None}
    if len(dts) > 1:
        raise ValueError(
            f"{node.where}: inputs of one type expected, got "
            f"{', '.join(sorted(str(d) for d in dts))}"
        )


def _require(node, inputs, n):
    if len(inputs) < n or any(a is None for a in inputs[:n]):
        raise ValueError(
            f"{node.where}: expected {n} input(s), got {sum(a is not None for a in inputs)}"
        )


def _float(node, x):
    if x.dtype.kind != "f":
        raise ValueError(f"{node.where}: expected a float tensor, got {x.dtype}")


# ------------------------------------------------------------------ shapes


def identity(node, inputs):
    _require(node, inputs, 1)
    return [inputs[0]]


def dropout(node, inputs):  # inference: the input, and a mask of ones
    _require(node, inputs, 1)
    x = inputs[0]
    return [x, np.ones(x.shape, np.bool_)]


def shape(node, inputs):
    _require(node, inputs, 1)
    s = inputs[0].shape
    start, end = node.attrs.get("start", 0), node.attrs.get("end", len(s))
    return [np.array(s[slice(start, end)], np.int64)]


def size(node, inputs):
    _require(node, inputs, 1)
    return [np.array(inputs[0].size, np.int64)]


def cast(node, inputs):
    _require(node, inputs, 1)
    to = node.attrs.get("to")
    if to not in DTYPES:
        raise ValueError(f"{node.where}: Cast to ONNX data type {to!r} is not supported")
    return [inputs[0].astype(DTYPES[to])]


def cast_like(node, inputs):
    _require(node, inputs, 2)
    return [inputs[0].astype(inputs[1].dtype)]


def constant_of_shape(node, inputs):
    _require(node, inputs, 1)
    dims = _ints(inputs[0], node.where, "shape")
    if any(d < 0 for d in dims):
        raise ValueError(f"{node.where}: shape {dims} has a negative dimension")
    value = node.attrs.get("value")
    value = np.zeros(1, np.float32) if value is None else np.asarray(value)
    if value.size != 1:
        raise ValueError(f"{node.where}: value must hold one element, got shape {value.shape}")
    limits.check_alloc(dims, value.dtype, node.where)
    return [np.full(dims, value.reshape(()), value.dtype)]


def _broadcast_shape(node, *shapes):
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(
            f"{node.where}: shapes {' and '.join(map(str, shapes))} do not broadcast"
        ) from None


def expand(node, inputs):
    _require(node, inputs, 2)
    x = inputs[0]
    out = _broadcast_shape(node, x.shape, tuple(_ints(inputs[1], node.where, "shape")))
    limits.check_alloc(out, x.dtype, node.where)
    return [np.array(np.broadcast_to(x, out))]


def _axes_input_or_attr(node, inputs):
    if len(inputs) > 1 and inputs[1] is not None:
        return _ints(inputs[1], node.where, "axes")
    return node.attrs.get("axes")


def unsqueeze(node, inputs):
    _require(node, inputs, 1)
    x, axes = inputs[0], _axes_input_or_attr(node, inputs)
    if not axes:
        raise ValueError(f"{node.where}: Unsqueeze needs axes")
    n = x.ndim + len(axes)
    axes = sorted(_axis(a, n, node.where) for a in axes)
    if len(set(axes)) != len(axes):
        raise ValueError(f"{node.where}: repeated axes {axes}")
    return [np.expand_dims(x, tuple(axes))]


def squeeze(node, inputs):
    _require(node, inputs, 1)
    x, axes = inputs[0], _axes_input_or_attr(node, inputs)
    if axes is None:
        return [np.squeeze(x)]
    axes = tuple(_axis(a, x.ndim, node.where) for a in axes)
    for a in axes:
        if x.shape[a] != 1:
            raise ValueError(
                f"{node.where}: cannot squeeze axis {a} of size {x.shape[a]} (shape {x.shape})"
            )
    return [np.squeeze(x, axes)]


def concat(node, inputs):
    xs = [a for a in inputs if a is not None]
    if not xs:
        raise ValueError(f"{node.where}: Concat needs inputs")
    _same_dtype(node, *xs)
    axis = _axis(node.attrs.get("axis", 0), xs[0].ndim, node.where)
    try:
        return [np.concatenate(xs, axis=axis)]
    except ValueError as e:
        raise ValueError(f"{node.where}: {e}") from None


def split(node, inputs):
    _require(node, inputs, 1)
    x = inputs[0]
    axis = _axis(node.attrs.get("axis", 0), x.ndim, node.where)
    sizes = (
        _ints(inputs[1], node.where, "split")
        if len(inputs) > 1 and inputs[1] is not None
        else node.attrs.get("split")
    )
    n = node.n_outputs
    if sizes is None:
        n = node.attrs.get("num_outputs", n)
        k = -(-x.shape[axis] // n)  # ceil: the last part may be smaller
        sizes = [min(k, x.shape[axis] - i * k) for i in range(n)]
    if sum(sizes) != x.shape[axis] or any(s < 0 for s in sizes):
        raise ValueError(f"{node.where}: split sizes {sizes} do not add up to {x.shape[axis]}")
    return np.split(x, np.cumsum(sizes)[:-1], axis=axis)


def gather(node, inputs):
    _require(node, inputs, 2)
    x, idx = inputs
    if idx.dtype.kind not in "iu":
        raise ValueError(f"{node.where}: indices must be integers, got {idx.dtype}")
    axis = _axis(node.attrs.get("axis", 0), x.ndim, node.where)
    n = x.shape[axis]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise ValueError(f"{node.where}: indices out of range [-{n}, {n})")
    limits.check_alloc(x.shape[:axis] + idx.shape + x.shape[axis + 1 :], x.dtype, node.where)
    return [np.take(x, np.where(idx < 0, idx + n, idx), axis=axis)]


def slice_(node, inputs):
    _require(node, inputs, 1)
    x = inputs[0]
    if "starts" in node.attrs:  # opset < 10
        starts, ends = node.attrs["starts"], node.attrs["ends"]
        axes, steps = node.attrs.get("axes"), None
    else:
        _require(node, inputs, 3)
        starts = _ints(inputs[1], node.where, "starts")
        ends = _ints(inputs[2], node.where, "ends")
        axes = (
            _ints(inputs[3], node.where, "axes")
            if len(inputs) > 3 and inputs[3] is not None
            else None
        )
        steps = (
            _ints(inputs[4], node.where, "steps")
            if len(inputs) > 4 and inputs[4] is not None
            else None
        )
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ValueError(f"{node.where}: starts, ends, axes and steps differ in length")
    index = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        if st == 0:
            raise ValueError(f"{node.where}: a step of 0")
        # ONNX's negative indices and clamping (INT64_MAX / MIN for "to the
        # end") are Python's slice semantics
        index[_axis(a, x.ndim, node.where)] = slice(s, e, st)
    return [x[tuple(index)].copy()]


def reshape(node, inputs):
    _require(node, inputs, 1)
    x = inputs[0]
    dims = (
        _ints(inputs[1], node.where, "shape")
        if len(inputs) > 1 and inputs[1] is not None
        else node.attrs.get("shape")
    )
    if dims is None:
        raise ValueError(f"{node.where}: Reshape needs a shape")
    if not node.attrs.get("allowzero", 0):
        for i, d in enumerate(dims):
            if d == 0:
                if i >= x.ndim:
                    raise ValueError(
                        f"{node.where}: shape {dims}: 0 at axis {i} copies a "
                        f"dimension x (shape {x.shape}) lacks"
                    )
                dims[i] = x.shape[i]
    try:
        return [x.reshape(dims)]
    except ValueError:
        raise ValueError(f"{node.where}: cannot reshape {x.shape} to {dims}") from None


def flatten(node, inputs):
    _require(node, inputs, 1)
    x = inputs[0]
    axis = node.attrs.get("axis", 1)
    axis = axis + x.ndim if axis < 0 else axis
    if not 0 <= axis <= x.ndim:
        raise ValueError(f"{node.where}: axis {node.attrs.get('axis')} out of range")
    return [x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))]


def transpose(node, inputs):
    _require(node, inputs, 1)
    x = inputs[0]
    perm = node.attrs.get("perm", list(range(x.ndim))[::-1])
    if sorted(perm) != list(range(x.ndim)):
        raise ValueError(f"{node.where}: perm {perm} is not a permutation of {x.ndim} axes")
    return [np.ascontiguousarray(x.transpose(perm))]


# ------------------------------------------------------------------ arithmetic


def _binary(fn):
    def op(node, inputs):
        _require(node, inputs, 2)
        a, b = inputs
        _same_dtype(node, a, b)
        limits.check_alloc(_broadcast_shape(node, a.shape, b.shape), a.dtype, node.where)
        return [np.asarray(fn(a, b)).astype(a.dtype, copy=False)]

    return op


def _divide(a, b):
    if a.dtype.kind in "iu":  # ONNX integer division truncates toward zero
        if np.any(b == 0):
            raise ValueError("integer division by zero")
        q = np.abs(a) // np.abs(b)
        return np.where((a < 0) != (b < 0), -q, q)
    return a / b


def divide(node, inputs):
    try:
        return _binary(_divide)(node, inputs)
    except ValueError as e:
        if str(e).startswith(node.where):
            raise
        raise ValueError(f"{node.where}: {e}") from None


def matmul(node, inputs):
    _require(node, inputs, 2)
    a, b = inputs
    _same_dtype(node, a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"{node.where}: MatMul of a scalar")
    ka = a.shape[-1]
    kb = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if ka != kb:
        raise ValueError(f"{node.where}: cannot multiply shapes {a.shape} and {b.shape}")
    batch = _broadcast_shape(node, a.shape[:-2], b.shape[:-2])
    out = batch + (a.shape[-2:-1] if a.ndim > 1 else ()) + (b.shape[-1:] if b.ndim > 1 else ())
    limits.check_alloc(out, a.dtype, node.where)
    return [np.matmul(a, b)]


def gemm(node, inputs):
    _require(node, inputs, 2)
    a, b = inputs[0], inputs[1]
    c = inputs[2] if len(inputs) > 2 else None
    _same_dtype(node, a, b, c)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"{node.where}: Gemm needs 2-D A and B, got {a.shape} and {b.shape}")
    if node.attrs.get("transA", 0):
        a = a.T
    if node.attrs.get("transB", 0):
        b = b.T
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"{node.where}: cannot multiply shapes {a.shape} and {b.shape}")
    limits.check_alloc((a.shape[0], b.shape[1]), a.dtype, node.where)
    alpha, beta = node.attrs.get("alpha", 1.0), node.attrs.get("beta", 1.0)
    y = (a @ b) * a.dtype.type(alpha) if alpha != 1.0 else a @ b
    if c is not None:
        _broadcast_shape(node, y.shape, c.shape)
        if c.ndim > 2 or np.broadcast_shapes(y.shape, c.shape) != y.shape:
            raise ValueError(f"{node.where}: C of shape {c.shape} does not broadcast to {y.shape}")
        y = y + (c * c.dtype.type(beta) if beta != 1.0 else c)
    return [y.astype(a.dtype, copy=False)]


def _unary_float(fn):
    def op(node, inputs):
        _require(node, inputs, 1)
        _float(node, inputs[0])
        return [np.asarray(fn(inputs[0])).astype(inputs[0].dtype, copy=False)]

    return op


def _unary(fn):
    def op(node, inputs):
        _require(node, inputs, 1)
        return [np.asarray(fn(inputs[0])).astype(inputs[0].dtype, copy=False)]

    return op


def _softmax_axis(node, x):
    """(axes reduced over, shape to compute in): opset >= 13 one axis (default
    -1); earlier, the input flattened to 2-D at `axis` (default 1)."""
    if node.opset >= 13:
        return x, _axis(node.attrs.get("axis", -1), x.ndim, node.where)
    axis = _axis(node.attrs.get("axis", 1), x.ndim, node.where)
    return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:])), 1


def softmax(node, inputs, log=False):
    _require(node, inputs, 1)
    x = inputs[0]
    _float(node, x)
    x2, axis = _softmax_axis(node, x)
    z = x2 - np.max(x2, axis=axis, keepdims=True) if x2.size else x2
    if log:
        y = z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))
    else:
        e = np.exp(z)
        y = e / np.sum(e, axis=axis, keepdims=True)
    return [y.reshape(x.shape).astype(x.dtype, copy=False)]


def log_softmax(node, inputs):
    return softmax(node, inputs, log=True)


def _sigmoid(x):
    return 0.5 * (1 + np.tanh(0.5 * x))


def leaky_relu(node, inputs):
    _require(node, inputs, 1)
    x = inputs[0]
    _float(node, x)
    a = x.dtype.type(node.attrs.get("alpha", 0.01))
    return [np.where(x >= 0, x, a * x).astype(x.dtype)]


OPS = {
    "Identity": identity,
    "Dropout": dropout,
    "Shape": shape,
    "Size": size,
    "Cast": cast,
    "CastLike": cast_like,
    "ConstantOfShape": constant_of_shape,
    "Expand": expand,
    "Unsqueeze": unsqueeze,
    "Squeeze": squeeze,
    "Concat": concat,
    "Split": split,
    "Gather": gather,
    "Slice": slice_,
    "Reshape": reshape,
    "Flatten": flatten,
    "Transpose": transpose,
    "Add": _binary(np.add),
    "Sub": _binary(np.subtract),
    "Mul": _binary(np.multiply),
    "Div": divide,
    "MatMul": matmul,
    "Gemm": gemm,
    "Neg": _unary(np.negative),
    "Abs": _unary(np.abs),
    "Relu": _unary(lambda x: np.maximum(x, 0)),
    "Sigmoid": _unary_float(_sigmoid),
    "Tanh": _unary_float(np.tanh),
    "Exp": _unary_float(np.exp),
    "Log": _unary_float(np.log),
    "Sqrt": _unary_float(np.sqrt),
    "LeakyRelu": leaky_relu,
    "Softmax": softmax,
    "LogSoftmax": log_softmax,
}
