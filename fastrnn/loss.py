"""Softmax cross-entropy fused with its gradient, as PyTorch's
F.cross_entropy(logits, targets, ignore_index=-100, reduction='mean')."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._validate import FLOAT_DTYPES

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


def cross_entropy(
    logits: ArrayLike, targets: ArrayLike, ignore_index: int = -100, reduction: str = "mean"
) -> tuple[float, np.ndarray]:
    """Softmax cross-entropy, as PyTorch's F.cross_entropy: the loss and
    d loss / d logits in one pass over logits.

    logits: (..., V) floats, e.g. (T, B, V) or (N, V); targets: integers of
    shape logits.shape[:-1], each in [0, V) or equal to ignore_index.
    loss_n = logsumexp(logits_n) - logits_n[target_n], with the max subtracted
    first so exp never overflows. reduction 'sum' adds the losses of the
    targets not ignored; 'mean' divides by their count (NaN if there are none,
    as in PyTorch). Returns (loss as a Python float, dlogits shaped and typed
    as logits; rows of ignored targets are zero). Raises TypeError for
    logits not float32 / float64 or targets not integers, ValueError for a
    shape mismatch or a target out of range."""
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction: expected 'mean' or 'sum', got {reduction!r}")
    z = np.asarray(logits)
    if z.dtype not in FLOAT_DTYPES:
        raise TypeError(f"logits: expected float32 or float64, got {z.dtype}")
    if z.ndim < 1 or z.shape[-1] < 1:
        raise ValueError(f"logits: expected shape (..., V) with V >= 1, got {z.shape}")
    t = np.asarray(targets)
    if t.dtype.kind not in "iu":
        raise TypeError(f"targets: expected integers, got dtype {t.dtype}")
    if t.shape != z.shape[:-1]:
        raise ValueError(
            f"targets: expected shape {z.shape[:-1]} (logits without the class "
            f"dimension), got {t.shape}"
        )
    V = z.shape[-1]
    z2, t = z.reshape(-1, V), t.reshape(-1)
    keep = t != ignore_index
    bad = keep & ((t < 0) | (t >= V))
    if bad.any():
        raise ValueError(
            f"targets: expected class indices in [0, {V}) or ignore_index "
            f"{ignore_index}, got {t[bad][0]}"
        )
    rows = np.arange(t.size)
    tk = np.where(keep, t, 0)  # any valid column for ignored rows

    d = z2 - z2.max(axis=1, keepdims=True)  # shifted logits, <= 0
    picked = d[rows, tk]
    np.exp(d, out=d)
    total = d.sum(axis=1)
    losses = np.log(total) - picked  # log sum exp - logit of the target
    count = int(keep.sum())
    scale = 1.0 / count if reduction == "mean" and count else 1.0
    loss = float(np.sum(losses, where=keep, dtype=np.float64)) * scale
    if reduction == "mean" and not count:
        loss = float("nan")
    # d loss / d logits = scale * (softmax - onehot(target)), zero for ignored rows
    d *= np.where(keep, scale / total, 0)[:, None]
    d[rows[keep], t[keep]] -= scale
    if count < t.size:
        d[~keep] = 0
    return loss, d.reshape(z.shape)
