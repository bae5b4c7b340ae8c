/*
 * fr_internal.h -- private declarations shared by the fastrnn C kernels.
 * Not installed, not part of the contract (that is fastrnn.h).
 *
 * Two template bodies are instantiated once per dtype from ONE source:
 *   fr_gemm_impl.h     (included twice by fr_gemm.c)
 *   fr_kernels_impl.h  (included twice by fr_kernels.c)
 * Before each inclusion the includer defines
 *   FR_T    the element type (float | double)
 *   FR_SFX  the name suffix  (f32   | f64)
 * and FR_FN(name) below turns `name` into `name_f32` / `name_f64`.
 *
 * GEMM layers (all row/column conventions spelled out because they are the
 * usual source of bugs):
 *   fr_gemm_ref_<sfx>        portable column-major GEMM, same convention as
 *                            BLAS ?gemm (Fortran order), args by value.
 *   fr_gemm_rm_<sfx>         ROW-major C[M,N] = alpha*A[M,K]*B[K,N] + beta*C,
 *                            through the fr_blas table (or the portable GEMM
 *                            when the table/entry is NULL), by operand swap:
 *                            row-major C = A*B is column-major C^T = B^T*A^T,
 *                            i.e. gemm('N','N', N, M, K, B, ldb, A, lda, C, ldc).
 *   fr_recurrent_gemm_<sfx>  THE per-time-step product out[rows,n] = h[rows,k]*W[k,n]
 *                            (row-major, overwrites out).  Every per-step product
 *                            of the recurrence goes through it (h*W_h for all cells,
 *                            (r*h)*Wc_h for GRU, m*P for a projected LSTM), so that
 *                            a packed SIMD micro-kernel can later replace this one
 *                            function.  Today it just calls fr_gemm_rm_<sfx>.
 * All functions below accept m/n/k == 0 (no-op, or C = beta*C when k == 0).
 */
#ifndef FR_INTERNAL_H
#define FR_INTERNAL_H

#include <stddef.h>
#include "fastrnn.h"

#define FR_CAT_(a, b) a##_##b
#define FR_CAT(a, b) FR_CAT_(a, b)
#define FR_FN(name) FR_CAT(name, FR_SFX)

/* Alignment (bytes) of every workspace sub-buffer. */
#define FR_ALIGN 64

/* ---- portable column-major GEMM (BLAS convention, arguments by value) ---- */
void fr_gemm_ref_f32(char transa, char transb, int m, int n, int k, float alpha,
                     const float *a, int lda, const float *b, int ldb, float beta,
                     float *c, int ldc);
void fr_gemm_ref_f64(char transa, char transb, int m, int n, int k, double alpha,
                     const double *a, int lda, const double *b, int ldb, double beta,
                     double *c, int ldc);

/* ---- row-major product through the BLAS table (NULL table/entry = portable) ---- */
void fr_gemm_rm_f32(const fr_blas *blas, int M, int N, int K, float alpha,
                    const float *A, int lda, const float *B, int ldb, float beta,
                    float *C, int ldc);
void fr_gemm_rm_f64(const fr_blas *blas, int M, int N, int K, double alpha,
                    const double *A, int lda, const double *B, int ldb, double beta,
                    double *C, int ldc);

/* ---- the per-step recurrent product: out[rows,n] = h[rows,k] * w[k,n] (row-major) ---- */
void fr_recurrent_gemm_f32(const fr_blas *blas, int rows, int n, int k,
                           const float *h, int ldh, const float *w, int ldw,
                           float *out, int ldo);
void fr_recurrent_gemm_f64(const fr_blas *blas, int rows, int n, int k,
                           const double *h, int ldh, const double *w, int ldw,
                           double *out, int ldo);

#endif /* FR_INTERNAL_H */
