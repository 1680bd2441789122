"""The one size limit of ONNX import: no tensor that a model describes
(an initializer, a Constant, a ConstantOfShape, Expand or broadcast result,
a recurrent node's output) may exceed MAX_TENSOR_BYTES. It is checked from
the declared sizes, before anything is allocated, so a hostile file cannot
make fastrnn allocate petabytes."""

import math

import numpy as np

MAX_TENSOR_BYTES = 1 << 34  # 16 GiB


def check_alloc(dims, dtype, where):
    """ValueError if a tensor of `dims` and `dtype` would exceed the limit."""
    dims = [int(d) for d in dims]
    if any(d < 0 for d in dims):
        raise ValueError(f"{where}: negative dimension in {dims}")
    nbytes = math.prod(dims) * np.dtype(dtype).itemsize
    if nbytes > MAX_TENSOR_BYTES:
        raise ValueError(
            f"{where}: a tensor of shape {dims} ({np.dtype(dtype)}) needs "
            f"{nbytes:.3g} bytes, over fastrnn's limit of {MAX_TENSOR_BYTES} "
            f"(fastrnn.onnx.limits.MAX_TENSOR_BYTES)"
        )
