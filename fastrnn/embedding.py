"""fr.Embedding: row lookup in a table, PyTorch's nn.Embedding (parameter
`weight` (num_embeddings, embedding_dim), initialised N(0, 1))."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ._validate import as_dtype, positive_int
from .module import Module, Trainable

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, DTypeLike


class Embedding(Trainable, Module):
    """Row lookup in a table, PyTorch's nn.Embedding: integer indices of
    any shape -> their rows of the parameter `weight`
    (num_embeddings, embedding_dim), initialised N(0, 1).

    dtype: float32 or float64, of the table. seed: of the initialisation
    (None: fresh entropy).
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        dtype: DTypeLike = np.float32,
        seed: int | None = None,
    ) -> None:
        self._configure(num_embeddings=num_embeddings, embedding_dim=embedding_dim, dtype=dtype)
        self._init_params(seed)

    def _configure(self, num_embeddings, embedding_dim, dtype="float32"):
        self.num_embeddings = positive_int(num_embeddings, "num_embeddings")
        self.embedding_dim = positive_int(embedding_dim, "embedding_dim")
        self.dtype = as_dtype(dtype)

    def _param_shapes(self):
        return {"weight": (self.num_embeddings, self.embedding_dim)}

    def _init_params(self, seed):
        rng = np.random.default_rng(seed)
        shape = self._param_shapes()["weight"]
        self._params = {"weight": rng.standard_normal(shape).astype(self.dtype)}
        self._params_changed()

    def config(self) -> dict[str, Any]:
        return dict(
            num_embeddings=self.num_embeddings,
            embedding_dim=self.embedding_dim,
            dtype=self.dtype.name,
        )

    def __repr__(self):
        return f"Embedding({self.num_embeddings}, {self.embedding_dim}, dtype={self.dtype.name})"

    def _indices(self, x):
        try:
            idx = np.asarray(x)
        except Exception as e:
            raise TypeError(f"x: expected integer indices, got {type(x).__name__} ({e})") from None
        if idx.dtype.kind not in "iu":
            raise TypeError(f"x: expected integer indices, got dtype {idx.dtype}")
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_embeddings):
            raise ValueError(
                f"x: indices must be in [0, {self.num_embeddings}), got min "
                f"{idx.min()} max {idx.max()}"
            )
        return idx.astype(np.intp, copy=False)

    def __call__(self, x: ArrayLike) -> np.ndarray:
        """Integer indices of any shape, each in [0, num_embeddings) ->
        their rows, shape x.shape + (embedding_dim,). Raises TypeError for
        indices that are not integers, ValueError for one out of range."""
        return self.forward(x)[0]

    def forward(self, x: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Training forward: returns (rows, cache), the rows as from calling
        the embedding, `cache` (the indices) for backward."""
        idx = self._indices(x)
        return self._params["weight"][idx], idx

    def backward(self, dy: ArrayLike, cache: np.ndarray) -> None:
        """Accumulates dy's rows (dy shaped as the forward's rows) into
        grads['weight'] at their indices (repeats add up); returns None, as
        indices have no gradient."""
        idx = cache
        dy = np.asarray(dy, dtype=self.dtype)
        if dy.shape != idx.shape + (self.embedding_dim,):
            raise ValueError(
                f"dy: expected shape {idx.shape + (self.embedding_dim,)}, got {dy.shape}"
            )
        np.add.at(self.grads["weight"], idx.ravel(), dy.reshape(-1, self.embedding_dim))
        return None
