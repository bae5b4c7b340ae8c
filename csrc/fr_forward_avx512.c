/* The forward kernels for AVX-512F (CMake compiles this file with -mavx512f and friends). */
#ifdef FR_BUILD_AVX512
#define FR_ISA avx512
#include "fr_forward_body.h"
#else
typedef int fr_forward_avx512_unused; /* ISO C: a translation unit needs a declaration */
#endif
