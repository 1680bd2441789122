/* precision_f64_avx2.c - the float64 kernels (precision_f64.c) compiled for
 * AVX2 + FMA: the kernel set fastrnn.c runs at FR_SIMD_AVX2 (simd.h). */
#define FR_KERNEL_SUFFIX _avx2
#include "internal.h"

#if FR_SIMD_COPIES
FR_TARGET(FR_FEATURES_AVX2)
#include "precision_f64.c"
#endif
