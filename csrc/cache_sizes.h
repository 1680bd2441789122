/* cache_sizes.h - the CPU's cache sizes, read once at run time: the blocks of
 * the products (matmul.c) and the time loops' choices (sequence.inc,
 * sequence_backward.inc) follow them rather than constants made for one CPU. */
#ifndef FASTRNN_CACHE_SIZES_H
#define FASTRNN_CACHE_SIZES_H

#include <stddef.h>

/* Bytes of L2 cache per core. FASTRNN_L2_KB in the environment (16 to
 * 1048576) overrides it, to test the blocking another CPU gets. */
size_t fr_l2_bytes(void);

/* Bytes of the last-level cache the cores share (L3). FASTRNN_L3_KB (16 to
 * 1048576) overrides it. */
size_t fr_l3_bytes(void);

#endif
