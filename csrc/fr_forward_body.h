/*
 * fr_forward_body.h -- the forward kernels of one instruction set: included by
 * exactly one of fr_forward_generic.c / _avx2.c / _avx512.c, which defines
 * FR_ISA (generic | avx2 | avx512), FR_VBYTES (SIMD register bytes) and FR_ACC
 * (accumulator registers a tile may use), and is compiled with that ISA's flags.
 * Per dtype it instantiates, in this order: the packed GEMM (fr_tile_impl.h), the
 * vector math (fr_vmath_impl.h), the cells' pointwise math (fr_cells_impl.h) and the
 * step driver that calls them (fr_step_impl.h).
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h> /* (fr_vmath_impl.h: AVX-512's rcp14 where this file is compiled for it) */
#endif

#include "fastrnn.h"
#include "fr_internal.h"

#define FR_ENTRY(name) FR_CAT(FR_CAT(name, FR_ISA), FR_SFX)

#define FR_T float
#define FR_SFX f32
#define FR_F64 0
#include "fr_tile_impl.h"
#include "fr_vmath_impl.h"
#include "fr_cells_impl.h"
#include "fr_step_impl.h"
#undef FR_T
#undef FR_SFX
#undef FR_F64

#define FR_T double
#define FR_SFX f64
#define FR_F64 1
#include "fr_tile_impl.h"
#include "fr_vmath_impl.h"
#include "fr_cells_impl.h"
#include "fr_step_impl.h"
#undef FR_T
#undef FR_SFX
#undef FR_F64
