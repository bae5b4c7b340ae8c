/* The forward kernels for AVX2 + FMA (CMake compiles this file with -mavx2 -mfma). */
#ifdef FR_BUILD_AVX2
#define FR_ISA avx2
#include "fr_forward_body.h"
#else
typedef int fr_forward_avx2_unused; /* ISO C: a translation unit needs a declaration */
#endif
