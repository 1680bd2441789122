# Part of fastrnn/_core.pyx (included there): the C core's process-wide
# settings, the SIMD level every kernel runs and OpenMP's thread limit.

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int fr_max_threads(void) { return omp_get_max_threads(); }
    #else
    static int fr_max_threads(void) { return 1; }
    #endif
    """
    int fr_max_threads() nogil


def max_threads():
    """OpenMP's current thread limit (OMP_NUM_THREADS, threadpoolctl)."""
    return fr_max_threads()


_SIMD_LEVELS = {"generic": FR_SIMD_GENERIC, "avx2": FR_SIMD_AVX2, "avx512": FR_SIMD_AVX512}


def simd_level():
    """The SIMD path every kernel runs: "avx512", "avx2" or "generic"."""
    return fr_simd_level_name(fr_simd_level()).decode()


def set_simd_level(str name):
    """Run the SIMD path `name` (a simd_level() value) from now on: True, or
    False, changing nothing, where the CPU (or the build) lacks it. Only
    while no other thread is in a fastrnn call (fastrnn.simd does it once,
    at import)."""
    return name in _SIMD_LEVELS and fr_set_simd_level(_SIMD_LEVELS[name]) >= 0
