/* The forward kernels for AVX-512F (CMake compiles this file with -mavx512f and friends). */
#ifdef FR_BUILD_AVX512
#define FR_ISA avx512
#define FR_VBYTES 64 /* SIMD register width in bytes */
#define FR_ACC 24    /* accumulators of a register tile: 32 zmm = 24 + 4 panel vectors + 1 broadcast */
#include "fr_forward_body.h"
#else
typedef int fr_forward_avx512_unused; /* ISO C: a translation unit needs a declaration */
#endif
