/*
 * fr_tile_impl.h -- fastrnn's packed GEMM: weights in gate-interleaved panels, register
 * tiles.  Template body (FR_T, FR_SFX) included per dtype by fr_forward_body.h, which is
 * compiled once per ISA with FR_VBYTES (SIMD register bytes) and FR_ACC (accumulator
 * registers a tile may use: 24 of AVX-512's 32, 10 of AVX2's / SSE2's 16) set for it.
 *
 * Design note
 * -----------
 * The products of an RNN are the same weights applied again and again -- W_h at every
 * step, W_x to every row -- with few rows per product (the batch, or a thread's share of
 * it).  So the weights are packed once (per layer call, or once per cell and ISA by
 * fr_pack_weights) and every product is a sequence of register tiles.
 *
 * Panels (fr_mat_layout): each panel holds, for every row k of the matrix, the G gate
 * blocks of `ubp` blocks of VL units side by side -- an LSTM panel is i, j, f, o of 16
 * units (AVX-512 float32), a TF1-GRU panel r, u of two blocks of 16, an RNN panel four
 * blocks of 16 -- so pw = G * ubp * VL elements (NV = G * ubp = 3 or 4 vectors), stored
 * k-major: one contiguous stream per panel.  Units past `units` are zero padding.
 *
 * Tile: R rows x NV vectors of accumulators (R <= FR_ACC / NV: 6 x 4 = 24 on AVX-512,
 * the count of ONNX Runtime's 12 x 2 and oneDNN's 6 x 4, enough to keep both FMA ports
 * of an Intel core busy; 2 x 4 on 16-register ISAs), each row's A value broadcast per k,
 * NV vector loads of the panel per k.  Loads per k: R + NV for R * NV FMAs.  The tile
 * ends with all gates of its units in registers; it stores them to a small buffer in
 * L1 and the cell's update (fr_cells_impl.h) runs on them at once, while hot: no
 * [batch, gates * units] buffer is written or read back.  A one-row tile takes two
 * panels at once (2 * NV independent accumulator chains instead of NV: at one row the
 * FMA latency, not the arithmetic, would bound it).
 *
 * Every element is ONE accumulator summed over k in order, whatever R, NV or the number
 * of panels taken together: its rounding never depends on how rows and columns are
 * split into tiles (thread count, schedule, batch- or time-major layout), so results
 * are bitwise reproducible on a given instruction set.
 *
 * Prefetch: `pf` rows of the panel ahead (0: none), one prefetch per cache line of the
 * row; chosen per CPU at run time (fr_kernels.c).  Written with GCC/Clang vector
 * extensions, so one source serves every ISA and dtype.
 */

#define FR_VL (FR_VBYTES / (ptrdiff_t)sizeof(FR_T)) /* elements per vector */
#define FR_NVMAX 4                                  /* vectors per panel row, at most */
#define FR_RMAX_OF(nv) (FR_ACC / (nv) < 8 ? FR_ACC / (nv) : 8)

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

/* A packed matrix, or a view of some of its rows.  Whatever the format (fr_pack_format),
 * panel q holds kst x pw elements of pes bytes and its row k starts at element k * pw
 * (VNNI pairs and AMX tiles keep that true for rows at multiples of their granularity,
 * which every view starts at). */
typedef struct {
    char *p;        /* panel 0, at the view's first row */
    size_t pes;     /* bytes of a packed element */
    ptrdiff_t k0;   /* the view's first packed row in the whole matrix */
    ptrdiff_t K;    /* packed rows of the view */
    ptrdiff_t kst;  /* packed rows of every panel in memory (the whole matrix's Kp) */
    ptrdiff_t pw;   /* panel width (elements) */
    ptrdiff_t np;   /* panels */
    ptrdiff_t nv;   /* vectors per panel row: pw / VL */
    const fr_mat_layout *lay;
} FR_FN(fr_pmat);

/* Panel q of m, at the view's first row. */
static inline const char *FR_FN(fr_panel)(const FR_FN(fr_pmat) *m, ptrdiff_t q)
{
    return m->p + (size_t)(q * m->kst * m->pw) * m->pes;
}

/* Packed rows [k0, k1) of m: the input rows (W_x) or the recurrent rows (W_h) of a matrix
 * packed whole, with no copy. */
static FR_FN(fr_pmat) FR_FN(fr_pmat_rows)(const FR_FN(fr_pmat) *m, ptrdiff_t k0, ptrdiff_t k1)
{
    FR_FN(fr_pmat) v = *m;
    v.k0 = m->k0 + k0;
    v.K = k1 - k0;
    if (m->np > 0) /* an absent matrix (0 bytes): no pointer into it */
        v.p = m->p + (size_t)(k0 * m->pw) * m->pes;
    return v;
}

/* Panel q of the matrix `lay` packed at `out` (np * Kp * pw elements); the bfloat16
 * formats are packed by fr_bf16.c. */
static void FR_FN(fr_pack_panel)(const fr_mat_layout *lay, ptrdiff_t q, void *out)
{
    const ptrdiff_t vl = FR_VL, G = lay->G, K = lay->K, pw = lay->pw;
    ptrdiff_t k, b, g, j;
    FR_T *dst = (FR_T *)out + q * K * pw;
    if (lay->format != FR_PACK_NATIVE) {
        fr_bf16_pack_panel(lay, q, out, vl);
        return;
    }
    for (k = 0; k < K; ++k) {
        for (b = 0; b < lay->ubp; ++b) {
            const ptrdiff_t u0 = (q * lay->ubp + b) * vl;
            for (g = 0; g < G; ++g) {
                const FR_T *src = (const FR_T *)lay->src[g] + k * lay->ld[g];
                FR_T *d = dst + k * pw + (b * G + g) * vl;
                for (j = 0; j < vl; ++j)
                    d[j] = u0 + j < lay->units ? src[u0 + j] : (FR_T)0;
            }
        }
    }
}

/* One register tile: C[0:R, 0:NP*NV*VL] = A[0:R, 0:K] . panels (NP adjacent panels of NV
 * vectors, the second at B + bstride).  R, NV and NP are compile-time constants in each
 * caller (always inlined into fr_tile's switch), so every shape gets its own unrolled
 * code with the accumulators in registers. */
static inline __attribute__((always_inline)) void
FR_FN(fr_tile_n)(const int R, const int NV, const int NP, ptrdiff_t K, const FR_T *A, ptrdiff_t lda,
                 const FR_T *B, ptrdiff_t bstride, ptrdiff_t pw, FR_T *C, ptrdiff_t ldc, ptrdiff_t pf)
{
    typedef FR_FN(fr_vec) vec;
    vec acc[8][2 * FR_NVMAX];
    ptrdiff_t k;
    int r, v, p;
    for (r = 0; r < R; ++r)
        for (v = 0; v < NP * NV; ++v)
            acc[r][v] = (vec){0};
    for (k = 0; k < K; ++k) {
        vec b[2 * FR_NVMAX];
        for (p = 0; p < NP; ++p) {
            const FR_T *row = B + p * bstride + k * pw;
            if (pf) { /* one prefetch per cache line of the row pf rows ahead */
                ptrdiff_t off;
                for (off = 0; off < pw; off += 64 / (ptrdiff_t)sizeof(FR_T))
                    __builtin_prefetch(row + pf * pw + off, 0, 3);
            }
            for (v = 0; v < NV; ++v)
                b[p * NV + v] = FR_FN(fr_vload)(row + v * FR_VL);
        }
        for (r = 0; r < R; ++r) {
            const FR_T s = A[r * lda + k];
            for (v = 0; v < NP * NV; ++v)
                acc[r][v] += b[v] * s;
        }
    }
    for (r = 0; r < R; ++r)
        for (v = 0; v < NP * NV; ++v)
            FR_FN(fr_vstore)(C + r * ldc + v * FR_VL, acc[r][v]);
}

/* C[0:R, 0:np*pw] = A[0:R, 0:K] . panels q .. q+np-1 of m (np = 1, or 2 for R == 1),
 * with R <= FR_RMAX_OF(m->nv). */
static void FR_FN(fr_tile)(const FR_FN(fr_pmat) *m, ptrdiff_t q, int np, int R, const FR_T *A, ptrdiff_t lda,
                           FR_T *C, ptrdiff_t ldc, ptrdiff_t pf)
{
    const FR_T *B = (const FR_T *)(const void *)FR_FN(fr_panel)(m, q);
    const ptrdiff_t bs = m->kst * m->pw, K = m->K, pw = m->pw;
#define FR_TILE_CASE(nv, np_, r)                                                                   \
    case (nv) * 100 + (np_) * 10 + (r):                                                           \
        FR_FN(fr_tile_n)(r, nv, np_, K, A, lda, B, bs, pw, C, ldc, pf);                           \
        return;
    switch (m->nv * 100 + np * 10 + R) {
        FR_TILE_CASE(3, 2, 1)
        FR_TILE_CASE(4, 2, 1)
        FR_TILE_CASE(3, 1, 1)
        FR_TILE_CASE(3, 1, 2)
        FR_TILE_CASE(3, 1, 3)
        FR_TILE_CASE(4, 1, 1)
        FR_TILE_CASE(4, 1, 2)
#if FR_ACC >= 24
        FR_TILE_CASE(3, 1, 4)
        FR_TILE_CASE(3, 1, 5)
        FR_TILE_CASE(3, 1, 6)
        FR_TILE_CASE(3, 1, 7)
        FR_TILE_CASE(3, 1, 8)
        FR_TILE_CASE(4, 1, 3)
        FR_TILE_CASE(4, 1, 4)
        FR_TILE_CASE(4, 1, 5)
        FR_TILE_CASE(4, 1, 6)
#endif
    default: /* not unrolled (never chosen by the driver): the same sums, a loop at a time */
        {
            ptrdiff_t r, k, p, c;
            for (r = 0; r < R; ++r)
                for (p = 0; p < np; ++p)
                    for (c = 0; c < pw; ++c) {
                        FR_T s = 0;
                        for (k = 0; k < K; ++k)
                            s += A[r * lda + k] * B[p * bs + k * pw + c];
                        C[r * ldc + p * pw + c] = s;
                    }
        }
        break;
    }
#undef FR_TILE_CASE
}
