"""Checks on what users hand the public API, before anything reaches C.

Each failure is a ValueError or TypeError naming the argument, what was
expected and what was given. Real numeric input of another dtype or layout is
converted once, as PyTorch users expect."""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, DTypeLike

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_dtype(dtype: DTypeLike) -> np.dtype[Any]:
    try:
        d = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype: expected float32 or float64, got {dtype!r}") from None
    if d not in FLOAT_DTYPES:
        raise TypeError(f"dtype: expected float32 or float64, got {d}")
    return d


def as_real_array(a: ArrayLike, name: str, dtype: DTypeLike) -> np.ndarray:
    """`a` as a C-contiguous array of `dtype`; refuses what is not real numbers."""
    try:
        arr = np.asarray(a)
    except Exception as e:  # e.g. a torch tensor that requires grad
        raise TypeError(
            f"{name}: expected an array of real numbers, got {type(a).__name__} ({e})"
        ) from None
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected an array of real numbers, got dtype {arr.dtype}")
    return np.asarray(arr, dtype=dtype, order="C")  # (ascontiguousarray makes 0-d 1-D)


def positive_int(value: Any, name: str, minimum: int = 1) -> int:
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}") from None
    if v < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {v}")
    return v


def as_lengths(lengths: ArrayLike, B: int, T: int) -> np.ndarray:
    """Per-sequence lengths as int32 (B,), each in [0, T]."""
    try:
        arr = np.asarray(lengths)
    except Exception as e:
        raise TypeError(f"lengths: expected integers, got {type(lengths).__name__} ({e})") from None
    if arr.dtype.kind not in "iu" and not (arr.size == 0 and arr.dtype.kind == "f"):
        raise TypeError(f"lengths: expected integers, got dtype {arr.dtype}")
    if arr.shape != (B,):
        raise ValueError(f"lengths: expected {B} lengths (one per sequence), got shape {arr.shape}")
    if B and (arr.min() < 0 or arr.max() > T):
        raise ValueError(
            f"lengths: expected values in [0, {T}] (T = {T}), got min {arr.min()} max {arr.max()}"
        )
    return np.ascontiguousarray(arr, dtype=np.int32)


def as_state(h: ArrayLike, name: str, shape: tuple[int, ...], dtype: DTypeLike) -> np.ndarray:
    """An initial state of exactly `shape`, as a fresh contiguous array."""
    arr = as_real_array(h, name, dtype)
    if arr.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {arr.shape}")
    return arr


def is_pair(value):
    """Whether `value`, refused as one state array, was a pair such as (h, c)
    handed where one array belongs: two items, each None or an array of at
    least one dimension. (A nested list that forms the one array is taken as
    that array before this is asked.)"""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        return False
    try:
        return all(v is None or np.ndim(v) >= 1 for v in value)
    except ValueError:  # a ragged item
        return True


def as_one_state(
    value: Any, name: str, shape: tuple[int, ...], dtype: DTypeLike, pair_error: str
) -> np.ndarray:
    """as_state for a layer or cell with one state array; `pair_error` is
    the TypeError's message when `value` is a pair instead."""
    try:
        return as_state(value, name, shape, dtype)
    except (TypeError, ValueError):
        if is_pair(value):
            raise TypeError(pair_error) from None
        raise
