"""fr.Linear: y = x W^T + b, PyTorch's nn.Linear (names weight (out, in) and
bias (out,); both initialised U(-1/sqrt(in), 1/sqrt(in)))."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ._validate import as_dtype, as_real_array, positive_int
from .module import Module, Trainable

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, DTypeLike


class Linear(Trainable, Module):
    """y = x W^T + b, PyTorch's nn.Linear: parameters weight
    (out_features, in_features) and, with bias, bias (out_features,), both
    initialised U(-1/sqrt(in_features), 1/sqrt(in_features)).

    dtype: float32 or float64, of the parameters and results (inputs are
    converted to it). seed: of the initialisation (None: fresh entropy).
    `bias` is the parameter (as in torch); whether there is one is `has_bias`.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        dtype: DTypeLike = np.float32,
        seed: int | None = None,
    ) -> None:
        self._configure(in_features=in_features, out_features=out_features, bias=bias, dtype=dtype)
        self._init_params(seed)

    def _configure(self, in_features, out_features, bias=True, dtype="float32"):
        self.in_features = positive_int(in_features, "in_features")
        self.out_features = positive_int(out_features, "out_features")
        self.has_bias = bool(bias)  # `bias` itself is the parameter, as in torch
        self.dtype = as_dtype(dtype)

    def _param_shapes(self):
        shapes = {"weight": (self.out_features, self.in_features)}
        if self.has_bias:
            shapes["bias"] = (self.out_features,)
        return shapes

    def _init_params(self, seed):
        """nn.Linear's init: kaiming_uniform(a=sqrt(5)) is U(-1/sqrt(in), 1/sqrt(in))."""
        rng = np.random.default_rng(seed)
        bound = 1.0 / np.sqrt(self.in_features)
        self._params = {
            name: rng.uniform(-bound, bound, size=shape).astype(self.dtype)
            for name, shape in self._param_shapes().items()
        }
        self._params_changed()

    def config(self) -> dict[str, Any]:
        return dict(
            in_features=self.in_features,
            out_features=self.out_features,
            bias=self.has_bias,
            dtype=self.dtype.name,
        )

    def __repr__(self):
        return (
            f"Linear({self.in_features}, {self.out_features}, bias={self.has_bias}, "
            f"dtype={self.dtype.name})"
        )

    def _input(self, x: ArrayLike) -> np.ndarray:
        x = as_real_array(x, "x", self.dtype)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"x: expected shape (..., {self.in_features}), got {x.shape}")
        return x

    def __call__(self, x: ArrayLike) -> np.ndarray:
        """x (..., in_features) -> y (..., out_features), e.g. the logits of
        an LSTM's output (T, B, H) -> (T, B, V)."""
        return self.forward(x)[0]

    def forward(self, x: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Training forward, y = x W^T + b: returns (y, cache), y as from
        calling the layer, `cache` (x as rows) for backward."""
        x = self._input(x)
        x2 = x.reshape(-1, self.in_features)
        y = x2 @ self._params["weight"].T
        if self.has_bias:
            y += self._params["bias"]
        return y.reshape(x.shape[:-1] + (self.out_features,)), x2

    def backward(self, dy: ArrayLike, cache: np.ndarray) -> np.ndarray:
        """dy (..., out_features) -> dx (..., in_features); accumulates
        grads['weight'] += dy^T x and grads['bias'] += sum of dy over rows."""
        x2 = cache
        dy = as_real_array(dy, "dy", self.dtype)
        if dy.shape[-1:] != (self.out_features,) or dy.size // self.out_features != x2.shape[0]:
            raise ValueError(
                f"dy: expected {x2.shape[0]} rows of {self.out_features} "
                f"(the forward's output shape), got shape {dy.shape}"
            )
        dy2 = dy.reshape(-1, self.out_features)
        grads = self.grads
        grads["weight"] += dy2.T @ x2
        if self.has_bias:
            grads["bias"] += dy2.sum(axis=0)
        return (dy2 @ self._params["weight"]).reshape(dy.shape[:-1] + (self.in_features,))
