/*
 * fr_forward_body.h -- the forward kernels of one instruction set: included by
 * exactly one of fr_forward_generic.c / _avx2.c / _avx512.c, which defines
 * FR_ISA (generic | avx2 | avx512), FR_VBYTES (SIMD register bytes) and FR_MR
 * (rows of the GEMM register tile), and is compiled with that ISA's flags.
 * Per dtype it instantiates, in this order: the packed GEMM (fr_pgemm_impl.h),
 * the cells' pointwise math (fr_cells_impl.h) and the step driver that calls both
 * (fr_step_impl.h).
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fastrnn.h"
#include "fr_internal.h"
#include "fr_mathf.h"

#define FR_ENTRY(name) FR_CAT(FR_CAT(name, FR_ISA), FR_SFX)

#define FR_T float
#define FR_SFX f32
#define FR_SIGMOID1 fr_sigmoidf_fast
#define FR_TANH1 fr_tanhf_fast
#include "fr_pgemm_impl.h"
#include "fr_cells_impl.h"
#include "fr_step_impl.h"
#undef FR_T
#undef FR_SFX
#undef FR_SIGMOID1
#undef FR_TANH1

#define FR_T double
#define FR_SFX f64
#define FR_SIGMOID1 fr_sigmoid_f64
#define FR_TANH1 fr_tanh_f64
#include "fr_pgemm_impl.h"
#include "fr_cells_impl.h"
#include "fr_step_impl.h"
#undef FR_T
#undef FR_SFX
#undef FR_SIGMOID1
#undef FR_TANH1
