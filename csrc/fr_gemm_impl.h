/*
 * fr_gemm_impl.h -- template body of the GEMM layer, included twice by
 * fr_gemm.c (float/f32 and double/f64).  No include guard on purpose.
 *
 * The includer defines:
 *   FR_T          element type
 *   FR_SFX        name suffix (f32 / f64)
 *   FR_BLAS_ENTRY the fr_blas field to use (sgemm / dgemm)
 *   FR_BLAS_FN_T  its pointer type (fr_sgemm_fn / fr_dgemm_fn)
 * See fr_gemm.c for the design note.
 */

/* Element (i, j) of a column-major matrix with leading dimension ld. */
#define FR_CM(p, i, j, ld) (p)[(ptrdiff_t)(i) + (ptrdiff_t)(j) * (ptrdiff_t)(ld)]

void FR_FN(fr_gemm_ref)(char transa, char transb, int m, int n, int k, FR_T alpha,
                        const FR_T *a, int lda, const FR_T *b, int ldb, FR_T beta,
                        FR_T *c, int ldc)
{
    const int nota = (transa == 'N' || transa == 'n');
    const int notb = (transb == 'N' || transb == 'n');
    int i, j, l;

    if (m <= 0 || n <= 0)
        return;

    /* C = beta * C.  Like BLAS, C is not read when beta == 0 (so it may hold
     * garbage or NaN), and left alone when beta == 1. */
    if (beta == (FR_T)0) {
        for (j = 0; j < n; ++j)
            for (i = 0; i < m; ++i)
                FR_CM(c, i, j, ldc) = (FR_T)0;
    } else if (beta != (FR_T)1) {
        for (j = 0; j < n; ++j)
            for (i = 0; i < m; ++i)
                FR_CM(c, i, j, ldc) *= beta;
    }
    if (k <= 0 || alpha == (FR_T)0)
        return;

    if (nota) {
        /* op(A) = A: column j of C is a linear combination of the columns
         * of A (an axpy over contiguous memory; for the row-major callers
         * this is "output row += x[l] * weight row l"). */
        for (j = 0; j < n; ++j) {
            FR_T *cj = &FR_CM(c, 0, j, ldc);
            for (l = 0; l < k; ++l) {
                const FR_T t = alpha * (notb ? FR_CM(b, l, j, ldb) : FR_CM(b, j, l, ldb));
                const FR_T *al = &FR_CM(a, 0, l, lda);
                for (i = 0; i < m; ++i)
                    cj[i] += t * al[i];
            }
        }
    } else {
        /* op(A) = A^T: C(i, j) is a dot product of column i of A with
         * column j of op(B)^T. */
        for (j = 0; j < n; ++j) {
            for (i = 0; i < m; ++i) {
                const FR_T *ai = &FR_CM(a, 0, i, lda);
                FR_T s = (FR_T)0;
                if (notb) {
                    const FR_T *bj = &FR_CM(b, 0, j, ldb);
                    for (l = 0; l < k; ++l)
                        s += ai[l] * bj[l];
                } else {
                    for (l = 0; l < k; ++l)
                        s += ai[l] * FR_CM(b, j, l, ldb);
                }
                FR_CM(c, i, j, ldc) += alpha * s;
            }
        }
    }
}

#undef FR_CM

void FR_FN(fr_gemm_rm)(const fr_blas *blas, int M, int N, int K, FR_T alpha,
                       const FR_T *A, int lda, const FR_T *B, int ldb, FR_T beta,
                       FR_T *C, int ldc)
{
    FR_BLAS_FN_T fn = blas ? blas->FR_BLAS_ENTRY : NULL;

    if (M <= 0 || N <= 0)
        return;
    if (fn) {
        /* Fortran interface: everything by pointer, nothing const.  BLAS
         * does not write A or B, so dropping const is safe; the union keeps
         * -Wcast-qual quiet. */
        char ta = 'N', tb = 'N';
        int m = N, n = M, k = K, la = ldb, lb = lda, lc = ldc;
        FR_T al = alpha, be = beta;
        union { const FR_T *c; FR_T *m; } a_col, b_col;
        a_col.c = B; /* column-major A := row-major B */
        b_col.c = A; /* column-major B := row-major A */
        fn(&ta, &tb, &m, &n, &k, &al, a_col.m, &la, b_col.m, &lb, &be, C, &lc);
    } else {
        FR_FN(fr_gemm_ref)('N', 'N', N, M, K, alpha, B, ldb, A, lda, beta, C, ldc);
    }
}

