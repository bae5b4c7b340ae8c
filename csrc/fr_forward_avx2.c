/* The forward kernels for AVX2 + FMA (CMake compiles this file with -mavx2 -mfma). */
#ifdef FR_BUILD_AVX2
#define FR_ISA avx2
#define FR_VBYTES 32 /* SIMD register width in bytes */
#define FR_ACC 10    /* accumulators of a register tile: 16 ymm = 10 + 4 panel vectors + 1 + spare */
#include "fr_forward_body.h"
#else
typedef int fr_forward_avx2_unused; /* ISO C: a translation unit needs a declaration */
#endif
