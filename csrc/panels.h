/* panels.h - what the packed products share (matmul.c in float32, qmatmul.c
 * in int8): the panels of FR_PANEL columns of C their packed layouts are cut
 * in, and the prefetch of a kernel's row of C. Internal; static inline. */
#ifndef FASTRNN_PANELS_H
#define FASTRNN_PANELS_H

#define FR_PANEL 32 /* columns of C (rows of W) per packed panel */

/* The column range [lo, hi) of panel p that lies in [n0, n1). */
static inline void fr_panel_cols(int p, int n0, int n1, int *lo, int *hi)
{
    const int first = p * FR_PANEL;
    *lo = n0 > first ? n0 - first : 0;
    *hi = n1 - first < FR_PANEL ? n1 - first : FR_PANEL;
}

/* Ask for the cache lines of c[lo .. hi) (one row of a kernel's output) at
 * the start of the kernel: its K loop (about a microsecond) then hides the
 * miss, where a load of c at the end (beta != 0: the step's slice of xg,
 * written long before, usually in DRAM) or the stores' read-for-ownership
 * would stall. A hint only: no fault, no change in the results. */
static inline void fr_prefetch_cols(const float *c, int lo, int hi)
{
    if (hi <= lo)
        return;
#ifdef __GNUC__
    for (int j = lo; j < hi; j += 16)
        __builtin_prefetch(c + j, 1, 3);
    __builtin_prefetch(c + hi - 1, 1, 3);
#else
    (void)c;
#endif
}

#endif
