/* precision_f32_avx512.c - the float32 kernels (precision_f32.c) compiled for
 * AVX-512: the kernel set fastrnn.c runs at FR_SIMD_AVX512 (simd.h). */
#define FR_KERNEL_SUFFIX _avx512
#include "internal.h"

#if FR_SIMD_COPIES
FR_TARGET(FR_FEATURES_AVX512)
#include "precision_f32.c"
#endif
