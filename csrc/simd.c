/* simd.c - the SIMD level in use (fastrnn.h: fr_simd_level), the one value
 * every kernel reads to choose its code (simd.h). */
#include "fastrnn.h"
#include "simd.h"

#include <stdlib.h>

/* the best level this CPU and this build have: every feature its code is
 * compiled for (simd.h), as the CPU and the OS report them */
static int best_level(void)
{
#ifdef FR_X86_SIMD
    __builtin_cpu_init();
    const int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl"))
        return FR_SIMD_AVX512;
    if (avx2)
        return FR_SIMD_AVX2;
#endif
    return FR_SIMD_GENERIC;
}

/* FR_SIMD_AUTO until first read: resolved lazily, to the same value from
 * any thread */
static int g_level = FR_SIMD_AUTO;

int fr_simd_level(void)
{
#ifdef __GNUC__
    int level = __atomic_load_n(&g_level, __ATOMIC_RELAXED);
    if (level == FR_SIMD_AUTO) {
        level = best_level();
        __atomic_store_n(&g_level, level, __ATOMIC_RELAXED);
    }
#else
    int level = g_level;
    if (level == FR_SIMD_AUTO)
        g_level = level = best_level();
#endif
    return level;
}

int fr_set_simd_level(int level)
{
    const int best = best_level();
    if (level == FR_SIMD_AUTO)
        level = best;
    if (level < FR_SIMD_GENERIC || level > best)
        return -1;
#ifdef __GNUC__
    __atomic_store_n(&g_level, level, __ATOMIC_RELAXED);
#else
    g_level = level;
#endif
    return level;
}

const char *fr_simd_level_name(int level)
{
    switch (level) {
    case FR_SIMD_GENERIC: return "generic";
    case FR_SIMD_AVX2: return "avx2";
    case FR_SIMD_AVX512: return "avx512";
    default: return "auto";
    }
}
