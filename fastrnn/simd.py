"""The SIMD path fastrnn's kernels run, and FASTRNN_ISA, which forces one.

By default every kernel runs the best instruction set the CPU has.
FASTRNN_ISA=avx512, avx2 or generic in the environment, read once when
fastrnn is imported, forces that path instead (to test or measure it on any
CPU that has it); asking for one the CPU lacks, or for an unknown one, warns
(RuntimeWarning) and runs the best the CPU has."""

from __future__ import annotations

import os
import warnings

from . import _core

LEVELS = ("avx512", "avx2", "generic")  # best first


def simd_level() -> str:
    """The SIMD path fastrnn's kernels run: "avx512", "avx2" or "generic"
    (the best this CPU has, unless FASTRNN_ISA forced another)."""
    return _core.simd_level()


def _apply_environment():
    asked = os.environ.get("FASTRNN_ISA", "")
    name = asked.strip().lower()
    if not name or _core.set_simd_level(name):
        return
    why = "this CPU does not support it" if name in LEVELS else f"not one of {', '.join(LEVELS)}"
    warnings.warn(
        f"FASTRNN_ISA={asked!r}: {why}; running {_core.simd_level()}", RuntimeWarning, stacklevel=1
    )


_apply_environment()
