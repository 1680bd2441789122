"""Reading ONNX protobuf messages into Python values, with the checks that
make loading safe: a model from a path, bytes or a ModelProto; a tensor as
a NumPy array (external data refused, declared size checked against the
bytes it carries and against limits.MAX_TENSOR_BYTES before allocating);
a node's attributes as a dict. The onnx package is imported inside the
functions that use it, so that `import fastrnn` does not need it."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from . import limits

# ONNX TensorProto.DataType -> numpy dtype (what fastrnn reads and computes)
DTYPES: dict[int, Any] = {
    1: np.float32,
    2: np.uint8,
    3: np.int8,
    4: np.uint16,
    5: np.int16,
    6: np.int32,
    7: np.int64,
    9: np.bool_,
    10: np.float16,
    11: np.float64,
    12: np.uint32,
    13: np.uint64,
}
DTYPES = {k: np.dtype(v) for k, v in DTYPES.items()}


def parse(src):
    """The onnx.ModelProto that `src` (a path, bytes or a ModelProto) holds."""
    import onnx

    if isinstance(src, onnx.ModelProto):
        return src
    if isinstance(src, (bytes, bytearray, memoryview)):
        data, what = bytes(src), "bytes"
    elif isinstance(src, (str, os.PathLike)):
        what = repr(os.fspath(src))
        try:
            with open(src, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ValueError(f"model: cannot read {what}: {e}") from None
    else:
        raise TypeError(
            f"model: expected a path, bytes or an onnx.ModelProto, got {type(src).__name__}"
        )
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except Exception as e:  # protobuf's DecodeError and kin
        raise ValueError(f"model: {what} is not a valid ONNX model (protobuf: {e})") from None
    return proto


def tensor_to_array(t, where):
    """A TensorProto as a NumPy array, after checking that its declared
    dims match the data it carries (no allocation from dims alone)."""
    from onnx import numpy_helper

    if t.data_location == 1:  # TensorProto.EXTERNAL
        raise ValueError(f"{where}: external data is not supported (tensor {t.name!r})")
    if t.data_type not in DTYPES:
        raise ValueError(
            f"{where}: tensor data type {t.data_type} ({type_name(t.data_type)}) is not supported"
        )
    dtype = DTYPES[t.data_type]
    dims = list(t.dims)
    limits.check_alloc(dims, dtype, where)
    n = math.prod(dims)
    if t.raw_data:
        have, need = len(t.raw_data), n * dtype.itemsize
    else:
        field = {
            1: "float_data",
            11: "double_data",
            7: "int64_data",
            12: "uint64_data",
            13: "uint64_data",
        }.get(t.data_type, "int32_data")
        have, need = len(getattr(t, field)), n
    if have != need:
        raise ValueError(
            f"{where}: tensor {t.name!r} declares shape {dims} ({n} elements of "
            f"{dtype}) but holds {have} {'bytes' if t.raw_data else 'values'}, "
            f"not {need}"
        )
    try:
        arr = numpy_helper.to_array(t)
    except Exception as e:
        raise ValueError(f"{where}: cannot read tensor {t.name!r}: {e}") from None
    return np.array(arr, dtype=dtype).reshape(dims)


def type_name(code):
    import onnx

    try:
        return onnx.TensorProto.DataType.Name(code)
    except ValueError:
        return "unknown"


def attributes(node, where):
    """A NodeProto's attributes as Python values."""
    from onnx import AttributeProto as A

    out = {}
    for a in node.attribute:
        if a.ref_attr_name:
            raise ValueError(f"{where}: attribute {a.name!r} refers to a function attribute")
        if a.type == A.FLOAT:
            v = float(a.f)
        elif a.type == A.INT:
            v = int(a.i)
        elif a.type == A.STRING:
            v = _text(a.s, where)
        elif a.type == A.FLOATS:
            v = [float(x) for x in a.floats]
        elif a.type == A.INTS:
            v = [int(x) for x in a.ints]
        elif a.type == A.STRINGS:
            v = [_text(s, where) for s in a.strings]
        elif a.type == A.TENSOR:
            v = tensor_to_array(a.t, f"{where} attribute {a.name!r}")
        else:
            raise ValueError(
                f"{where}: attribute {a.name!r} of type "
                f"{A.AttributeType.Name(a.type)} is not supported"
            )
        out[a.name] = v
    return out


def _text(b, where):
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{where}: a string attribute is not UTF-8") from None


def constant_value(attrs, where):
    """The value of a Constant node."""
    if len(attrs) != 1:
        raise ValueError(
            f"{where}: Constant needs exactly one value attribute, got {sorted(attrs)}"
        )
    ((key, v),) = attrs.items()
    if key == "value":
        return v
    if key in ("value_float", "value_floats"):
        return np.array(v, np.float32)
    if key in ("value_int", "value_ints"):
        return np.array(v, np.int64)
    raise ValueError(f"{where}: Constant {key} is not supported")
