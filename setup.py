"""Builds fastrnn._core: the Cython binding plus the C kernels in csrc/.

BLAS comes from SciPy at run time (scipy.linalg.cython_blas), so no BLAS
headers or libraries are needed here. The SIMD code of every level is built
(csrc/simd.h: the kernel set once per level, by target pragmas) and the level
is chosen at run time; never -march=native.
Set FASTRNN_SANITIZE=1 to build with AddressSanitizer and UBSan."""
import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

sources = ["fastrnn/_core.pyx"] + [
    os.path.join("csrc", f) for f in (
        "fastrnn.c", "simd.c", "matmul.c", "vmath.c", "optim.c", "fma_peak.c",
        "precision_f32.c", "precision_f64.c", "precision_f32_avx2.c", "precision_f64_avx2.c",
        "precision_f32_avx512.c", "precision_f64_avx512.c")
]
# OpenMP runs the time loop on several threads (FASTRNN_NO_OPENMP=1: one thread).
openmp = [] if os.environ.get("FASTRNN_NO_OPENMP") else ["-fopenmp"]
compile_args = ["-O3", "-fno-math-errno", "-fno-trapping-math"] + openmp
link_args = list(openmp)
if os.environ.get("FASTRNN_SANITIZE"):
    flags = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]
    compile_args = ["-O1", "-g", "-DFR_NO_CLONES"] + flags + openmp
    link_args = flags + openmp

core = Extension(
    "fastrnn._core",
    sources=sources,
    include_dirs=["csrc", np.get_include()],
    depends=[os.path.join("csrc", f) for f in os.listdir("csrc")],
    extra_compile_args=compile_args,
    extra_link_args=link_args,
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
)

setup(ext_modules=cythonize([core], language_level=3))
