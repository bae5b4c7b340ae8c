/*
 * fr_gemm.c -- the GEMM layer of the fastrnn kernels.
 *
 * Design note
 * -----------
 * What: two functions per dtype (bodies in fr_gemm_impl.h, instantiated
 * here for float/f32 and double/f64 from the one template), the GEMM paths
 * that are not fastrnn's packed GEMM (fr_tile_impl.h): cross-checks selected
 * by fr_options.gemm (FR_GEMM_BLAS, FR_GEMM_PORTABLE) and the C tests' ground
 * truth.
 *
 *   fr_gemm_ref_<sfx>   a portable reference GEMM with exactly the BLAS
 *                       sgemm/dgemm convention -- column-major (Fortran)
 *                       storage, transa/transb 'N'/'T', m, n, k, alpha, a, lda,
 *                       b, ldb, beta, c, ldc: C = alpha*op(A)*op(B) + beta*C,
 *                       C not read when beta == 0.  Used whenever the caller's
 *                       fr_blas table, or its entry for the dtype, is NULL (and
 *                       by the C tests as ground truth for the operand swap).
 *   fr_gemm_rm_<sfx>    the row-major helper the kernels call on those paths:
 *                       C[M,N] (ldc) = alpha*A[M,K] (lda) * B[K,N] (ldb) + beta*C,
 *                       through the caller's BLAS table, or the portable GEMM
 *                       when the table or its entry is NULL.
 *
 * Layout and why: the kernels keep every matrix row-major (C order, like
 * NumPy and TensorFlow's weight layout), while BLAS is column-major.  A
 * row-major matrix is the column-major storage of its transpose, so
 * row-major C = A*B is column-major C^T = B^T * A^T, i.e. one call
 * gemm('N','N', N, M, K, alpha, B, ldb, A, lda, beta, C, ldc) with no
 * transposition or copy.  Through scipy's cython_blas the table entries are
 * the Fortran symbols, which take every argument by pointer and nothing
 * const; the helper owns that calling convention so the kernels never see it.
 *
 * The reference loops are the classic reference-BLAS orders: for op(A) = A
 * the inner loop is an axpy over a contiguous column (vectorisable), for
 * op(A) = A^T a contiguous dot product.  No blocking: the packed GEMM is the
 * fast path, this one is for correctness.
 * No global state; every function is reentrant.
 */
#include <stddef.h>

#include "fr_internal.h"

#define FR_T float
#define FR_SFX f32
#define FR_BLAS_ENTRY sgemm
#define FR_BLAS_FN_T fr_sgemm_fn
#include "fr_gemm_impl.h"
#undef FR_T
#undef FR_SFX
#undef FR_BLAS_ENTRY
#undef FR_BLAS_FN_T

#define FR_T double
#define FR_SFX f64
#define FR_BLAS_ENTRY dgemm
#define FR_BLAS_FN_T fr_dgemm_fn
#include "fr_gemm_impl.h"
#undef FR_T
#undef FR_SFX
#undef FR_BLAS_ENTRY
#undef FR_BLAS_FN_T
