"""Builds fastrnn._core: the Cython binding plus the C kernels in csrc/.

BLAS comes from SciPy at run time (scipy.linalg.cython_blas), so no BLAS
headers or libraries are needed here. The SIMD code of every level is built
(csrc/simd.h: the kernel set once per level, by target pragmas) and the level
is chosen at run time; never -march=native.
Set FASTRNN_SANITIZE=1 to build with AddressSanitizer and UBSan."""

import glob
import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

# One extension module: fastrnn/_core.pyx includes its parts (_core_*.pxi) and
# cimports the C API from cfastrnn.pxd; every .c file in csrc/ is the C core.
binding = ["fastrnn/cfastrnn.pxd"] + sorted(glob.glob("fastrnn/_core_*.pxi"))
sources = ["fastrnn/_core.pyx"] + sorted(glob.glob(os.path.join("csrc", "*.c")))
# OpenMP runs the time loop on several threads (FASTRNN_NO_OPENMP=1: one thread).
openmp = [] if os.environ.get("FASTRNN_NO_OPENMP") else ["-fopenmp"]
compile_args = ["-O3", "-fno-math-errno", "-fno-trapping-math"] + openmp
link_args = list(openmp)
if os.environ.get("FASTRNN_SANITIZE"):
    flags = [
        "-fsanitize=address,undefined",
        "-fno-omit-frame-pointer",
        "-fno-sanitize-recover=undefined",
    ]
    compile_args = ["-O1", "-g", "-DFR_NO_SIMD_COPIES"] + flags + openmp
    link_args = flags + openmp

core = Extension(
    "fastrnn._core",
    sources=sources,
    include_dirs=["csrc", np.get_include()],
    depends=binding + [os.path.join("csrc", f) for f in os.listdir("csrc")],
    extra_compile_args=compile_args,
    extra_link_args=link_args,
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
)

setup(ext_modules=cythonize([core], language_level=3))
