/* The forward kernels for AVX-512F (CMake compiles this file with -mavx512f and friends). */
#ifdef FR_BUILD_AVX512
#define FR_ISA avx512
#define FR_VBYTES 64 /* SIMD register width in bytes */
#define FR_MR 8      /* GEMM register tile rows: 2*FR_MR accumulators fit the register file */
#include "fr_forward_body.h"
#else
typedef int fr_forward_avx512_unused; /* ISO C: a translation unit needs a declaration */
#endif
