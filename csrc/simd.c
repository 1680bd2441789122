/* simd.c - the SIMD level in use (fastrnn.h: fr_simd_level), the one value
 * every kernel reads to choose its code (simd.h). */
#include "fastrnn.h"
#include "simd.h"

#include <stdlib.h>
#include <unistd.h>

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

/* What the CPU reports, else the smallest L2 of the CPUs fastrnn is tuned
 * on (512 KB: AMD Zen 2 and 3), so that blocks made for it still fit. */
static size_t read_l2_bytes(void)
{
    const char *env = getenv("FASTRNN_L2_KB");
    const long kb = env ? atol(env) : 0;
    if (kb >= 16 && kb <= (1L << 20)) /* 16 KB to 1 GB; else ignored */
        return (size_t)kb * 1024;
#ifdef _SC_LEVEL2_CACHE_SIZE
    long n = sysconf(_SC_LEVEL2_CACHE_SIZE);
    if (n >= 64 * 1024)
        return (size_t)n;
#endif
    return (size_t)512 * 1024;
}

static size_t g_l2_bytes; /* 0 until first read; the same value from any thread */

size_t fr_l2_bytes(void)
{
#ifdef __GNUC__
    size_t n = __atomic_load_n(&g_l2_bytes, __ATOMIC_RELAXED);
    if (!n) {
        n = read_l2_bytes();
        __atomic_store_n(&g_l2_bytes, n, __ATOMIC_RELAXED);
    }
    return n;
#else
    if (!g_l2_bytes)
        g_l2_bytes = read_l2_bytes();
    return g_l2_bytes;
#endif
}
