/*
 * fr_pgemm_impl.h -- fastrnn's packed GEMM: C[M,N] = A[M,K] . B[K,N], row-major.
 * Template body (FR_T, FR_SFX) included per dtype by fr_forward_body.h, which is
 * compiled once per ISA with FR_VBYTES (SIMD width in bytes) and FR_MR (rows of
 * the register tile) set for it.
 *
 * Why our own: the products of an RNN are the same weight matrix applied again
 * and again -- W_h at every step, W_x to every row -- with few rows per call of
 * the step product (the batch).  Generic BLAS repacks B on every call and is
 * tuned for large square shapes (measured here through scipy.linalg.cython_blas:
 * 79 GFLOP/s for 16x256x1024, 105 for 2048^3, against ~180 for PyTorch's GEMM).
 * Here B is packed ONCE per layer call into panels of NR = 2 SIMD vectors of
 * columns (k-major inside a panel, zero-padded to NR), and a register tile of
 * FR_MR rows x NR columns accumulates over all of K with broadcasts of A and
 * streaming loads of the panel: 2*FR_MR accumulators, 2 loads, 1 broadcast live
 * (AVX-512: 8x32 floats in 16 of 32 zmm; AVX2: 6x16 in 12 of 16 ymm).
 * Loop order: row blocks of FR_PG_MC rows (A block stays in L2), then panels
 * (a panel stays in L1/L2 while the row block sweeps it), then FR_MR-row tiles.
 * Written with GCC/Clang vector extensions, so one source serves every ISA.
 */

#define FR_PG_VL (FR_VBYTES / (ptrdiff_t)sizeof(FR_T)) /* elements per vector */
#define FR_PG_NR (2 * FR_PG_VL)                         /* columns per panel */
#define FR_PG_MC 96                                     /* rows per cache block */

typedef FR_T FR_FN(fr_vec) __attribute__((vector_size(FR_VBYTES)));

static inline FR_FN(fr_vec) FR_FN(fr_vload)(const FR_T *p)
{
    FR_FN(fr_vec) v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void FR_FN(fr_vstore)(FR_T *p, FR_FN(fr_vec) v)
{
    memcpy(p, &v, sizeof v);
}

#if 2 * FR_VBYTES > FR_PACK_ALIGN_BYTES
#error "panel wider than the workspace plan's packing granularity (FR_PACK_ALIGN_BYTES)"
#endif

/* Pack row-major B[K, N] (leading dimension ldb) into panels of NR columns. */
static void FR_FN(fr_pack_b)(ptrdiff_t K, ptrdiff_t N, const FR_T *B, ptrdiff_t ldb, FR_T *Bp)
{
    ptrdiff_t j0, k, j;
    for (j0 = 0; j0 < N; j0 += FR_PG_NR) {
        const ptrdiff_t nr = N - j0 < FR_PG_NR ? N - j0 : FR_PG_NR;
        for (k = 0; k < K; ++k) {
            const FR_T *src = B + k * ldb + j0;
            for (j = 0; j < nr; ++j)
                Bp[j] = src[j];
            for (; j < FR_PG_NR; ++j)
                Bp[j] = (FR_T)0;
            Bp += FR_PG_NR;
        }
    }
}

/* One register tile: C[0:MRC, 0:nr] (+)= A[0:MRC, 0:K] . panel, for a compile-time row
 * count MRC <= FR_MR (always inlined into fr_tile's switch, so each row count gets
 * its own fully unrolled code).  Every element is one accumulator summed over k in
 * order, whatever MRC: its rounding never depends on how rows are grouped into tiles
 * (by thread count, schedule, batch- or time-major layout), so results are bitwise
 * reproducible.  (Splitting k into partial sums for 1-2 rows would shorten the FMA
 * latency chain, but made an element's bits depend on its tile's height.) */
static inline __attribute__((always_inline)) void
FR_FN(fr_tile_n)(const int MRC, ptrdiff_t K, const FR_T *A, ptrdiff_t lda, const FR_T *panel,
                 FR_T *C, ptrdiff_t ldc, ptrdiff_t nr, int acc)
{
    typedef FR_FN(fr_vec) vec;
    vec c0[FR_MR], c1[FR_MR];
    FR_T buf[FR_PG_NR];
    ptrdiff_t k, j;
    int r;
    for (r = 0; r < MRC; ++r) {
        c0[r] = (vec){0};
        c1[r] = (vec){0};
        if (acc) { /* C += A . panel: start from C */
            const FR_T *src = C + r * ldc;
            if (nr < FR_PG_NR) {
                for (j = 0; j < FR_PG_NR; ++j)
                    buf[j] = j < nr ? src[j] : (FR_T)0;
                src = buf;
            }
            c0[r] = FR_FN(fr_vload)(src);
            c1[r] = FR_FN(fr_vload)(src + FR_PG_VL);
        }
    }
    for (k = 0; k < K; ++k) {
        const vec b0 = FR_FN(fr_vload)(panel);
        const vec b1 = FR_FN(fr_vload)(panel + FR_PG_VL);
        panel += FR_PG_NR;
        for (r = 0; r < MRC; ++r) {
            const FR_T s = A[r * lda + k];
            c0[r] += b0 * s;
            c1[r] += b1 * s;
        }
    }
    if (nr == FR_PG_NR) {
        for (r = 0; r < MRC; ++r) {
            FR_FN(fr_vstore)(C + r * ldc, c0[r]);
            FR_FN(fr_vstore)(C + r * ldc + FR_PG_VL, c1[r]);
        }
    } else {
        for (r = 0; r < MRC; ++r) {
            FR_FN(fr_vstore)(buf, c0[r]);
            FR_FN(fr_vstore)(buf + FR_PG_VL, c1[r]);
            for (j = 0; j < nr; ++j)
                C[r * ldc + j] = buf[j];
        }
    }
}

static void FR_FN(fr_tile)(ptrdiff_t K, ptrdiff_t mr, const FR_T *A, ptrdiff_t lda,
                           const FR_T *panel, FR_T *C, ptrdiff_t ldc, ptrdiff_t nr, int acc)
{
    switch (mr) {
#define FR_TILE_CASE(n) \
    case n: \
        FR_FN(fr_tile_n)(n, K, A, lda, panel, C, ldc, nr, acc); \
        break;
    FR_TILE_CASE(1)
    FR_TILE_CASE(2)
    FR_TILE_CASE(3)
    FR_TILE_CASE(4)
#if FR_MR > 4
    FR_TILE_CASE(5)
    FR_TILE_CASE(6)
#endif
#if FR_MR > 6
    FR_TILE_CASE(7)
    FR_TILE_CASE(8)
#endif
#undef FR_TILE_CASE
    default:
        break;
    }
}

/* C[m0:m1, n0:n1] = A[m0:m1, :] . B[:, n0:n1] (acc: C += ...) with B packed by
 * fr_pack_b.  n0 must be a multiple of NR (so that threads can split columns by
 * panels).  B may be rows [k0, k0+K) of a packed matrix of kst rows: then Bp is the
 * packed start + k0 * NR and kst the panels' stride in rows. */
static void FR_FN(fr_pgemm)(ptrdiff_t m0, ptrdiff_t m1, ptrdiff_t n0, ptrdiff_t n1, ptrdiff_t K,
                            const FR_T *A, ptrdiff_t lda, const FR_T *Bp, ptrdiff_t kst, FR_T *C,
                            ptrdiff_t ldc, int acc)
{
    ptrdiff_t i0, i, j0;
    for (i0 = m0; i0 < m1; i0 += FR_PG_MC) {
        const ptrdiff_t i1 = m1 - i0 < FR_PG_MC ? m1 : i0 + FR_PG_MC;
        for (j0 = n0; j0 < n1; j0 += FR_PG_NR) {
            const FR_T *panel = Bp + (j0 / FR_PG_NR) * FR_PG_NR * kst;
            const ptrdiff_t nr = n1 - j0 < FR_PG_NR ? n1 - j0 : FR_PG_NR;
            for (i = i0; i < i1; i += FR_MR) {
                const ptrdiff_t mr = i1 - i < FR_MR ? i1 - i : FR_MR;
                FR_FN(fr_tile)(K, mr, A + i * lda, lda, panel, C + i * ldc + j0, ldc, nr, acc);
            }
        }
    }
}

#undef FR_PG_MC
/* FR_PG_VL and FR_PG_NR stay defined for fr_kernels_impl.h, which undefines them. */
