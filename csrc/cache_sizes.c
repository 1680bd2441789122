/* cache_sizes.c - the CPU's L2 and L3 sizes (cache_sizes.h), read once. */
#include "cache_sizes.h"

#include <stdlib.h>
#include <unistd.h>

/* FASTRNN_<env> KB if set within 16 KB to 1 GB; else what the CPU reports
 * (glibc's sysconf) if at least `least`; else `fallback` */
static size_t read_bytes(const char *env, int sc_name, size_t least, size_t fallback)
{
    const char *text = getenv(env);
    const long kb = text ? atol(text) : 0;
    if (kb >= 16 && kb <= (1L << 20))
        return (size_t)kb * 1024;
    const long n = sc_name >= 0 ? sysconf(sc_name) : -1;
    return n >= (long)least ? (size_t)n : fallback;
}

#ifdef _SC_LEVEL2_CACHE_SIZE
#define SC_L2 _SC_LEVEL2_CACHE_SIZE
#define SC_L3 _SC_LEVEL3_CACHE_SIZE
#else
#define SC_L2 (-1)
#define SC_L3 (-1)
#endif

/* *slot, read on first use: the same value from any thread */
static size_t once(size_t *slot, const char *env, int sc_name, size_t least, size_t fallback)
{
    size_t n = __atomic_load_n(slot, __ATOMIC_RELAXED);
    if (!n) {
        n = read_bytes(env, sc_name, least, fallback);
        __atomic_store_n(slot, n, __ATOMIC_RELAXED);
    }
    return n;
}

/* Unknown sizes are taken as the smallest of the CPUs fastrnn is tuned on
 * (AMD Zen 2 and 3: 512 KB of L2, 16 MB of L3 on a Zen 2 CCX), so that
 * blocks made for them still fit. */
size_t fr_l2_bytes(void)
{
    static size_t bytes;
    return once(&bytes, "FASTRNN_L2_KB", SC_L2, (size_t)64 << 10, (size_t)512 << 10);
}

size_t fr_l3_bytes(void)
{
    static size_t bytes;
    return once(&bytes, "FASTRNN_L3_KB", SC_L3, (size_t)1 << 20, (size_t)16 << 20);
}
