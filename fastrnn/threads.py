"""How many threads fastrnn's time loops use.

By default OpenMP's limit: the number of CPUs, OMP_NUM_THREADS, or what
threadpoolctl.threadpool_limits sets. fr.set_num_threads(n) overrides it for
the whole process (None goes back to the default). The BLAS that SciPy ships
(the input projections) has its own threads, which threadpoolctl controls."""

from __future__ import annotations

import operator

from . import _core

_num_threads = None


def set_num_threads(n: int | None) -> None:
    """Set the threads of fastrnn's kernels for the whole process: an int
    >= 1, or None for the default (OpenMP's limit). ValueError below 1."""
    global _num_threads
    if n is not None:
        n = operator.index(n)
        if n < 1:
            raise ValueError(f"n: expected a number of threads >= 1, got {n}")
    _num_threads = n


def get_num_threads() -> int:
    """The threads fastrnn's kernels use: what set_num_threads set, else
    OpenMP's limit (the number of CPUs, OMP_NUM_THREADS, or threadpoolctl's)."""
    return _num_threads if _num_threads is not None else _core.max_threads()
