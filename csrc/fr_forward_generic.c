/* The forward kernels at the baseline ISA (what every CPU of the target runs). */
#define FR_ISA generic
#define FR_VBYTES 16 /* SIMD register width in bytes */
#define FR_ACC 10    /* accumulators of a register tile: 16 xmm = 10 + 4 panel vectors + 1 + spare */
#include "fr_forward_body.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
int fr_cpu_has_avx2(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

int fr_cpu_has_avx512(void)
{
    return __builtin_cpu_supports("avx512f") && fr_cpu_has_avx2();
}
#else
int fr_cpu_has_avx2(void)
{
    return 0;
}

int fr_cpu_has_avx512(void)
{
    return 0;
}
#endif
