/*
 * fr_step_impl.h -- the step driver of a recurrent layer: sorting, packing, the
 * input projection, the time loop and its thread schedules.  Template body included
 * per dtype by fr_forward_body.h (so compiled once per instruction set and dtype);
 * the includer defines FR_T, FR_SFX and FR_ENTRY (name -> name_<isa>_<sfx>).  The
 * cells' pointwise math is in fr_cells_impl.h, the tiles and panels in fr_tile_impl.h.
 *
 * Design note
 * -----------
 * One call computes, in the layer's dtype (float math for float32, as TF does),
 * z = x.W_x + h.W_h per step for the rows still running, one register tile at a time
 * (a few rows x one panel: all gates of a few units), and right after each tile the
 * cell's update of those rows and units (bias, gates, state, output) from the tile
 * buffer, while it is hot in L1.
 *
 * Memory layout: all matrices row-major.  The kernel's rows are [W_x (depth rows);
 * W_h (proj or units rows)], packed once as a whole in panels; W_x and W_h are views of
 * its rows (fr_pmat_rows), and the fused mode multiplies [x_t | h] rows by all of it
 * (see fr_kernels.c, "How", 2).  The x/out row of (t, b) is t*batch+b (time-major) or
 * b*time+t (batch-major); xproj uses the same row numbering as x, its columns the
 * panels' order, so the input GEMM reads x as one [batch*time, depth] matrix whatever
 * the majorness and a tile's epilogue reads its input projection at the same offsets
 * as its product.  State buffers (h, c, ...) are in length-sorted order (see
 * fr_kernels.c) so the active rows of step t are the prefix [0, nact).  Row b at step
 * s reads/writes time index len[b]-1-s when reversed, s otherwise.
 */

/* The workspace of one call, typed (offsets: fr_plan, laid out in fr_kernels.c). */
typedef struct {
    ptrdiff_t *perm;   /* sorted position -> the caller's row */
    ptrdiff_t *slen;   /* length of the row at each sorted position */
    ptrdiff_t *count;  /* counting-sort buckets */
    ptrdiff_t *pchunk; /* input-projection chunks per row segment, cumulated */
    FR_T *xproj;       /* hoisted mode: x . W_x (and x . Wc_x), rows as in x, columns as panels */
    FR_T *xh[2];       /* the two state buffers, rows [x_t | h] (fused) or [h] (hoisted) */
    FR_T *h[2];        /* their h columns */
    FR_T *c;           /* LSTM cell state */
    FR_T *ubuf;        /* TF1 GRU: the update gate, from phase A to phase B */
    FR_T *mbuf;        /* projected LSTM: m before the projection */
    FR_T *rh;          /* TF1 GRU: rows [x_t | r * h] (fused) or [r * h] */
    /* bfloat16 only: the products' operand rows, rounded (fr_plan: ab, rb, mb, xb) */
    char *ab[2], *rb, *mb, *xb;
} FR_FN(fr_bufs);

static FR_FN(fr_bufs) FR_FN(fr_bufs_of)(char *base, const fr_plan *pl)
{
    FR_FN(fr_bufs) b = {
        .perm = (ptrdiff_t *)(void *)(base + pl->off_perm),
        .slen = (ptrdiff_t *)(void *)(base + pl->off_slen),
        .count = (ptrdiff_t *)(void *)(base + pl->off_count),
        .pchunk = (ptrdiff_t *)(void *)(base + pl->off_pchunk),
        .xproj = (FR_T *)(void *)(base + pl->off_xproj),
        .xh = {(FR_T *)(void *)(base + pl->off_h), (FR_T *)(void *)(base + pl->off_h2)},
        .c = (FR_T *)(void *)(base + pl->off_c),
        .ubuf = (FR_T *)(void *)(base + pl->off_ubuf),
        .mbuf = (FR_T *)(void *)(base + pl->off_mbuf),
        .rh = (FR_T *)(void *)(base + pl->off_rh),
        .ab = {base + pl->off_ab, base + pl->off_ab2},
        .rb = base + pl->off_rb,
        .mb = base + pl->off_mb,
        .xb = base + pl->off_xb,
    };
    b.h[0] = b.xh[0] + pl->hoff;
    b.h[1] = b.xh[1] + pl->hoff;
    return b;
}

/* Everything the threads of one layer call share. */
typedef struct {
    const fr_layer *L;
    const fr_seq *S;
    const fr_plan *pl;
    const fr_options *opt;
    FR_FN(fr_bufs) buf;
    FR_FN(fr_cell) cell;
    const FR_T *x;         /* the caller's inputs [batch * time, depth] */
    FR_T *out;             /* the caller's outputs [batch * time, proj] */
    FR_FN(fr_pmat) mats[FR_NMATS];
    /* views of the matrices' rows: the input rows and the recurrent rows */
    FR_FN(fr_pmat) kern_x, kern_h, cand_x, cand_h;
    int rmax;              /* rows of the largest register tile (per CPU, or forced) */
    int bpath;             /* the bfloat16 path (fr_bf16_path), or 0: the layer's dtype */
    size_t aes;            /* bytes of an operand element: sizeof(FR_T), or pl->aes for bfloat16 */
    ptrdiff_t pf;          /* prefetch distance of the panels, in rows (0: none) */
    ptrdiff_t ppc;         /* panels per step chunk (2 when a tile has one row: more chains) */
    ptrdiff_t na, nb;      /* chunks of a step's phase A and phase B (0: no phase B) */
    ptrdiff_t groups;      /* row split in this many groups, or 0: column split (fr_forward_task) */
    ptrdiff_t proj_rows;   /* rows per input-projection chunk */
    fr_queue queue;
    fr_cancel cancel;      /* the caller's interruption (fr_options.poll) */
    /* segments of x rows that are ever read (set by the sort phase): one per batch row
     * (its first len[b] rows) for batch-major input with lengths, else one (all rows of
     * the steps before the longest length); xproj chunks cover them in order */
    int row_segments; /* 1: segment b is batch row b's first len[b] rows */
    ptrdiff_t nseg, seg_rows, xproj_chunks;
} FR_FN(fr_job);

/* One thread's view of the current phase (every thread keeps its own copy, with
 * the same values: they all run the same phase sequence). */
typedef struct {
    FR_FN(fr_job) *job;
    ptrdiff_t t;        /* the step */
    ptrdiff_t p0, p1;   /* its rows [p0, p1): those of a row group still running (sorted order) */
    int whole;          /* a step chunk covers all panels (row split), else ppc of them */
    const FR_T *h;      /* recurrent state read by step t: buf.h[t % 2], rows of pl->hld */
    FR_T *hn;           /* ... and written by it: buf.h[(t + 1) % 2] */
} FR_FN(fr_phase);

/* ---- products ---- */

/* C[0:R, 0:np*pw] = A[0:R, :] . panels [q, q+np) of m: the packed GEMM's tile -- float32 or
 * float64, or one of the bfloat16 paths (A: rows of the operand's elements, lda of them
 * apart) -- or, with fr_options.gemm == BLAS / PORTABLE, the same result laid out the
 * same way from the row-major weights through fr_gemm_rm (the cross-checks), one gate
 * block at a time. */
static void FR_FN(fr_product)(const FR_FN(fr_job) *job, const FR_FN(fr_pmat) *m, ptrdiff_t q, int np, int R,
                              const void *A, ptrdiff_t lda, FR_T *C, ptrdiff_t ldc)
{
    const fr_mat_layout *lay = m->lay;
    ptrdiff_t qq, b, g, r, j;
#if !FR_F64
    if (job->bpath == FR_BF16_AVX512) {
        fr_bf16_tile_avx512(R, (int)m->nv, np, m->K, (const uint16_t *)A, lda,
                            (const uint16_t *)(const void *)FR_FN(fr_panel)(m, q), m->kst * m->pw, m->pw, C, ldc);
        return;
    }
    if (job->bpath == FR_BF16_AMX) {
        for (qq = 0; qq < np; ++qq)
            fr_bf16_tile_amx(R, (int)m->nv, m->K, (const uint16_t *)A, lda,
                             (const uint16_t *)(const void *)FR_FN(fr_panel)(m, q + qq), C + qq * m->pw, ldc);
        return;
    }
#endif
    if (job->opt->gemm == FR_GEMM_PACKED) { /* the float tile: float32/64, or bfloat16-rounded floats */
        FR_FN(fr_tile)(m, q, np, R, (const FR_T *)A, lda, C, ldc, job->pf);
        return;
    }
    for (qq = q; qq < q + np; ++qq) {
        for (b = 0; b < lay->ubp; ++b) {
            const ptrdiff_t u0 = (qq * lay->ubp + b) * FR_VL;
            const ptrdiff_t n = lay->units - u0 < FR_VL ? lay->units - u0 : FR_VL;
            for (g = 0; g < lay->G; ++g) {
                FR_T *cg = C + (qq - q) * m->pw + (b * lay->G + g) * FR_VL;
                for (r = 0; r < R; ++r) /* padding units are zero, as in the packed panels */
                    for (j = n > 0 ? n : 0; j < FR_VL; ++j)
                        cg[r * ldc + j] = (FR_T)0;
                if (n > 0)
                    FR_FN(fr_gemm_rm)(job->opt->gemm == FR_GEMM_BLAS ? job->opt->blas : NULL, R, (int)n,
                                      (int)m->K, (FR_T)1, (const FR_T *)A, (int)lda,
                                      (const FR_T *)lay->src[g] + m->k0 * lay->ld[g] + u0, (int)lay->ld[g],
                                      (FR_T)0, cg, (int)ldc);
            }
        }
    }
}

/* Row r of an operand matrix a (rows lda elements of job->aes bytes apart). */
static inline const void *FR_FN(fr_arow)(const FR_FN(fr_job) *job, const void *a, ptrdiff_t r, ptrdiff_t lda)
{
    return (const char *)a + (size_t)(r * lda) * job->aes;
}

/* bfloat16 only: n values of the float32 row `src`, rounded, as units [u0, u0+n) of the
 * operand row `dst` (bfloat16, or rounded floats on the portable path). */
static inline void FR_FN(fr_operand)(const FR_FN(fr_job) *job, char *dst, ptrdiff_t u0, const FR_T *src, ptrdiff_t n)
{
#if !FR_F64
    if (job->bpath == FR_BF16_PORTABLE)
        fr_bf16_round_row(src, (float *)(void *)dst + u0, n);
    else if (job->bpath)
        fr_bf16_row(src, (uint16_t *)(void *)dst + u0, n);
#else
    (void)job, (void)dst, (void)u0, (void)src, (void)n; /* bfloat16 computes from float32 only */
#endif
}

/* Row tiles of n rows: tile i of ntiles(n) starts at tile_lo(i) (heights differ by at most
 * one, none above rmax). */
static ptrdiff_t FR_FN(fr_ntiles)(const FR_FN(fr_job) *job, ptrdiff_t n)
{
    return (n + job->rmax - 1) / job->rmax;
}

static ptrdiff_t FR_FN(fr_tile_lo)(ptrdiff_t n, ptrdiff_t ntiles, ptrdiff_t i)
{
    return i * (n / ntiles) + (i < n % ntiles ? i : n % ntiles);
}

/* ---- rows of x, out and the state ---- */

/* The x/out row of sorted row p at time index tin: the one place the row layout is
 * spelled out. */
static ptrdiff_t FR_FN(fr_xrow)(const FR_FN(fr_job) *job, ptrdiff_t p, ptrdiff_t tin)
{
    const ptrdiff_t b = job->buf.perm[p];
    return job->S->time_major ? tin * job->S->batch + b : b * job->S->time + tin;
}

/* ... and at step t (reversed within the row's length when the layer runs backwards). */
static ptrdiff_t FR_FN(fr_step_row)(const FR_FN(fr_job) *job, ptrdiff_t p, ptrdiff_t t)
{
    return FR_FN(fr_xrow)(job, p, job->S->reverse ? job->buf.slen[p] - 1 - t : t);
}

#define FR_PROJ_ROWS 64 /* rows per input-projection chunk, at most (see fr_forward_prepare) */

/* Fused mode: copy the inputs of step t of those sorted rows of [p0, p1) that run at
 * step t into the x columns of their [x | h] rows in state buffer `buf` (and, bfloat16,
 * rounded into its operand rows). */
static void FR_FN(fr_load_x)(const FR_FN(fr_job) *job, int buf, ptrdiff_t t, ptrdiff_t p0, ptrdiff_t p1)
{
    const ptrdiff_t D = job->L->depth, HLD = job->pl->hld;
    ptrdiff_t p;
    for (p = p0; p < p1; ++p)
        if (job->buf.slen[p] > t) {
            const FR_T *x = job->x + FR_FN(fr_step_row)(job, p, t) * D;
            memcpy(job->buf.xh[buf] + p * HLD, x, (size_t)D * sizeof(FR_T));
            if (job->bpath)
                FR_FN(fr_operand)(job, job->buf.ab[buf] + (size_t)(p * job->pl->ald) * job->aes, 0, x, D);
        }
}

/* First sorted position of row group g of ng (see fr_forward_task): sorted position q
 * goes to group q % ng, so groups j < g hold B / ng rows, plus one if j < B % ng. */
static ptrdiff_t FR_FN(fr_group_lo)(ptrdiff_t B, ptrdiff_t ng, ptrdiff_t g)
{
    return g * (B / ng) + (g < B % ng ? g : B % ng);
}

/* The end of the rows of [p0, p1) (sorted by length, descending) still running at step t. */
static ptrdiff_t FR_FN(fr_active)(const ptrdiff_t *slen, ptrdiff_t p0, ptrdiff_t p1, ptrdiff_t t)
{
    while (p1 > p0 && slen[p1 - 1] <= t)
        --p1;
    return p1;
}

/* ---- phases ---- */

/* Phase "sort" (1 chunk): stable counting sort of the rows by length, descending,
 * and the initial state gathered into that order (h[0], c). */
static void FR_FN(fr_chunk_sort)(void *arg, ptrdiff_t chunk, int tid)
{
    FR_FN(fr_job) *job = ((FR_FN(fr_phase) *)arg)->job;
    const fr_seq *S = job->S;
    const FR_FN(fr_bufs) *bf = &job->buf;
    const ptrdiff_t B = S->batch, T = S->time, U = job->L->units, P = job->L->proj, HLD = job->pl->hld;
    ptrdiff_t *count = bf->count, *perm = bf->perm, *slen = bf->slen;
    ptrdiff_t b, l, p, pos = 0;
    (void)chunk, (void)tid;
    for (l = 0; l <= T; ++l)
        count[l] = 0;
    for (b = 0; b < B; ++b)
        count[S->lengths ? (ptrdiff_t)S->lengths[b] : T] += 1;
    for (l = T; l >= 0; --l) {
        const ptrdiff_t n = count[l];
        count[l] = pos;
        pos += n;
    }
    for (b = 0; b < B; ++b) { /* sorted position q, stored at p: its group's place */
        const ptrdiff_t len = S->lengths ? (ptrdiff_t)S->lengths[b] : T;
        const ptrdiff_t q = count[len]++, ng = job->groups;
        p = ng > 1 ? FR_FN(fr_group_lo)(B, ng, q % ng) + q / ng : q;
        perm[p] = b;
        slen[p] = len;
    }
    if (job->bpath) { /* operand rows: their padding stays zero (0 * NaN would not) */
        const fr_plan *pl = job->pl;
        memset(bf->ab[0], 0, (size_t)(B * pl->ald) * pl->aes);
        memset(bf->ab[1], 0, (size_t)(B * pl->ald) * pl->aes);
        memset(bf->rb, 0, (size_t)(B * pl->rbld) * pl->aes);
        memset(bf->mb, 0, (size_t)(B * pl->mbld) * pl->aes);
    }
    for (p = 0; p < B; ++p) {
        memcpy(bf->h[0] + p * HLD, (const FR_T *)S->h0 + perm[p] * P, (size_t)P * sizeof(FR_T));
        if (job->L->cell == FR_CELL_LSTM)
            memcpy(bf->c + p * U, (const FR_T *)S->c0 + perm[p] * U, (size_t)U * sizeof(FR_T));
        if (job->bpath)
            FR_FN(fr_operand)(job, bf->ab[0] + (size_t)(p * job->pl->ald) * job->aes, job->pl->aoff, bf->h[0] + p * HLD, P);
    }
    if (job->pl->fused) /* the inputs of step 0 */
        FR_FN(fr_load_x)(job, 0, 0, 0, B);
    /* the rows the recurrence will read, in chunks for the input projection: padding
     * past a row's length is never projected */
    {
        ptrdiff_t *cum = bf->pchunk;
        const ptrdiff_t maxlen = B > 0 ? slen[0] : 0;
        job->row_segments = S->lengths && !S->time_major;
        if (job->row_segments) {
            job->nseg = B;
            cum[0] = 0;
            for (b = 0; b < B; ++b)
                cum[b + 1] = cum[b] + (S->lengths[b] + job->proj_rows - 1) / job->proj_rows;
        } else {
            job->nseg = 1;
            job->seg_rows = (S->lengths ? maxlen : T) * B;
            cum[0] = 0;
            cum[1] = (job->seg_rows + job->proj_rows - 1) / job->proj_rows;
        }
        job->xproj_chunks = cum[job->nseg];
    }
}

/* Phase "pack": chunk q packs panel q of the matrices taken in order. */
static void FR_FN(fr_chunk_pack)(void *arg, ptrdiff_t chunk, int tid)
{
    FR_FN(fr_job) *job = ((FR_FN(fr_phase) *)arg)->job;
    int mi;
    (void)tid;
    for (mi = 0; mi < FR_NMATS; ++mi) {
        const FR_FN(fr_pmat) *m = &job->mats[mi];
        if (chunk < m->np) {
            FR_FN(fr_pack_panel)(m->lay, chunk, m->p);
            return;
        }
        chunk -= m->np;
    }
}

static ptrdiff_t FR_FN(fr_pack_chunks)(const FR_FN(fr_job) *job)
{
    ptrdiff_t n = 0;
    int mi;
    for (mi = 0; mi < FR_NMATS; ++mi)
        n += job->mats[mi].np;
    return n;
}

/* Phase "input projection": chunk = a block of at most job->proj_rows rows of one
 * segment of x (see fr_job), every panel: x . W_x into xproj (and the TF1 GRU's
 * x . Wc_x after it), in the panels' column order. */
static void FR_FN(fr_chunk_xproj)(void *arg, ptrdiff_t chunk, int tid)
{
    FR_FN(fr_job) *job = ((FR_FN(fr_phase) *)arg)->job;
    if (fr_cancel_check(&job->cancel, tid)) /* cancelled: every remaining chunk is a no-op */
        return;
    const ptrdiff_t *cum = job->buf.pchunk, D = job->L->depth, XW = job->pl->xw;
    ptrdiff_t lo = 0, hi = job->nseg - 1, r0, r1, end, q, i, nt;
    const FR_FN(fr_pmat) *mats[2] = {&job->kern_x, &job->cand_x};
    int mi;
    (void)tid;
    while (lo < hi) { /* the segment whose chunks include `chunk` */
        const ptrdiff_t mid = (lo + hi + 1) / 2;
        if (cum[mid] <= chunk)
            lo = mid;
        else
            hi = mid - 1;
    }
    if (!job->row_segments) {
        r0 = 0;
        end = job->seg_rows;
    } else {
        r0 = lo * job->S->time;
        end = r0 + (ptrdiff_t)job->S->lengths[lo];
    }
    r0 += (chunk - cum[lo]) * job->proj_rows;
    r1 = r0 + job->proj_rows < end ? r0 + job->proj_rows : end;
    nt = FR_FN(fr_ntiles)(job, r1 - r0);
    {
        const void *a = job->x;
        ptrdiff_t lda = D, r;
        if (job->bpath) { /* these rows of x, rounded once into the operand rows xb */
            lda = job->pl->xbld;
            for (r = r0; r < r1; ++r) {
                char *row = job->buf.xb + (size_t)(r * lda) * job->aes;
                FR_FN(fr_operand)(job, row, 0, job->x + r * D, D);
                /* the padding up to the packing's granularity: multiplied by the weights' zero
                 * rows, it must be a number (garbage could be NaN, and NaN * 0 is NaN) */
                memset(row + (size_t)D * job->aes, 0, (size_t)(lda - D) * job->aes);
            }
            a = job->buf.xb;
        }
        for (mi = 0; mi < 2; ++mi) {
            const FR_FN(fr_pmat) *m = mats[mi];
            FR_T *col = job->buf.xproj + (mi ? job->mats[FR_MAT_XH].np * job->mats[FR_MAT_XH].pw : 0);
            for (q = 0; q < m->np; ++q)
                for (i = 0; i < nt; ++i) {
                    const ptrdiff_t lo = r0 + FR_FN(fr_tile_lo)(r1 - r0, nt, i);
                    const ptrdiff_t hi = r0 + FR_FN(fr_tile_lo)(r1 - r0, nt, i + 1);
                    FR_FN(fr_product)(job, m, q, 1, (int)(hi - lo), FR_FN(fr_arow)(job, a, lo, lda), lda,
                                      col + lo * XW + q * m->pw, XW);
                }
        }
    }
}

/* Fused mode: copy this chunk's share of the next step's inputs into the other [x | h]
 * buffer (which step t does not read: it writes only that buffer's h columns), and for
 * the TF1 GRU this step's inputs into the x columns of its [x | r*h] rows.  Hoisted
 * mode: prefetch this chunk's input-projection values of the NEXT step (xproj is far
 * larger than the caches and is read once per step): the product hides the latency. */
static void FR_FN(fr_next_inputs)(const FR_FN(fr_phase) *ph, ptrdiff_t chunk, ptrdiff_t q0, ptrdiff_t q1)
{
    const FR_FN(fr_job) *job = ph->job;
    const ptrdiff_t t = ph->t, p0 = ph->p0, p1 = ph->p1, XW = job->pl->xw, pw = job->mats[FR_MAT_XH].pw;
    const ptrdiff_t nchunks = ph->whole ? 1 : job->na;
    const ptrdiff_t *slen = job->buf.slen;
    ptrdiff_t p, off;
    if (job->pl->fused) {
        if (job->L->cell == FR_CELL_GRU && job->nb > 0) { /* x_t into [x_t | r*h] */
            const ptrdiff_t D = job->L->depth, n = p1 - p0;
            for (p = p0 + chunk * n / nchunks; p < p0 + (chunk + 1) * n / nchunks; ++p) {
                memcpy(job->buf.rh + p * job->pl->rld, ph->h - job->pl->hoff + p * job->pl->hld,
                       (size_t)D * sizeof(FR_T));
                if (job->bpath) /* already rounded in the step's operand rows */
                    memcpy(job->buf.rb + (size_t)(p * job->pl->rbld) * job->aes,
                           job->buf.ab[t % 2] + (size_t)(p * job->pl->ald) * job->aes, (size_t)job->pl->rboff * job->aes);
            }
        }
        if (t + 1 < job->S->time) {
            const ptrdiff_t n = FR_FN(fr_active)(slen, p0, p1, t + 1) - p0;
            FR_FN(fr_load_x)(job, (int)((t + 1) % 2), t + 1, p0 + chunk * n / nchunks, p0 + (chunk + 1) * n / nchunks);
        }
        return;
    }
    if (t + 1 >= job->S->time)
        return;
    for (p = p0; p < p1 && slen[p] > t + 1; ++p) {
        const FR_T *row = job->buf.xproj + FR_FN(fr_step_row)(job, p, t + 1) * XW + q0 * pw;
        for (off = 0; off < (q1 - q0) * pw; off += 64 / (ptrdiff_t)sizeof(FR_T))
            __builtin_prefetch(row + off, 0, 3);
    }
}

/* The cell's update of sorted row p (x/out row `row`) for the n units from u0 (one unit
 * block of panel q of the main matrix), from their product zb (tile buffer, gate stride
 * VL) and, hoisted, their input projection xp. */
static inline __attribute__((always_inline)) void
FR_FN(fr_block_a)(const FR_FN(fr_phase) *ph, ptrdiff_t p, FR_T *out, FR_T *zb, const FR_T *xp, ptrdiff_t u0,
                  ptrdiff_t n)
{
    const FR_FN(fr_job) *job = ph->job;
    const FR_FN(fr_bufs) *bf = &job->buf;
    const FR_FN(fr_cell) *cell = &job->cell;
    const ptrdiff_t U = job->L->units, HLD = job->pl->hld, vl = FR_VL;
    const FR_T *h = ph->h + p * HLD;
    FR_T *hn = ph->hn + p * HLD;
    const fr_plan *pl = job->pl;
    switch (job->L->cell) {
    case FR_CELL_RNN:
        FR_FN(fr_rnn_row)(cell, zb, xp, hn, u0, n);
        memcpy(out + u0, hn + u0, (size_t)n * sizeof(FR_T));
        break;
    case FR_CELL_LSTM: {
        FR_T *m = pl->has_proj ? bf->mbuf + p * U : hn;
        FR_FN(fr_lstm_row)(cell, zb, vl, xp, vl, bf->c + p * U, m, u0, n);
        if (!pl->has_proj)
            memcpy(out + u0, m + u0, (size_t)n * sizeof(FR_T));
        else if (job->bpath) /* m is the projection's operand */
            FR_FN(fr_operand)(job, bf->mb + (size_t)(p * pl->mbld) * job->aes, u0, m + u0, n);
        break;
    }
    default: /* FR_CELL_GRU */
        if (cell->cand_rbias) { /* reset-after: the whole step */
            FR_FN(fr_gru_gates_row)(cell, zb, vl, xp, vl, NULL, NULL, u0, n);
            FR_FN(fr_gru_after_row)(cell, zb, vl, xp, vl, h, hn, u0, n);
            memcpy(out + u0, hn + u0, (size_t)n * sizeof(FR_T));
        } else { /* TF1: gates and r * h; the candidate needs every unit of it (phase B) */
            FR_T *rh = bf->rh + p * pl->rld + pl->rld - U;
            FR_FN(fr_gru_gates_row)(cell, zb, vl, xp, vl, h, rh, u0, n);
            memcpy(bf->ubuf + p * U + u0, zb + vl, (size_t)n * sizeof(FR_T));
            if (job->bpath)
                FR_FN(fr_operand)(job, bf->rb + (size_t)(p * pl->rbld) * job->aes, pl->rboff + u0, rh + u0, n);
            return; /* h' comes in phase B */
        }
    }
    if (job->bpath && !pl->has_proj) /* h' is the next step's operand */
        FR_FN(fr_operand)(job, bf->ab[(ph->t + 1) % 2] + (size_t)(p * pl->ald) * job->aes, pl->aoff + u0, hn + u0, n);
}

/* Phase A's epilogue: the cell's update of sorted row p (x/out row `row`) for the units
 * of panel q of the main matrix, from the row's product in the tile buffer `z`. */
static void FR_FN(fr_epilogue_a)(const FR_FN(fr_phase) *ph, ptrdiff_t p, ptrdiff_t row, ptrdiff_t q, FR_T *z)
{
    const FR_FN(fr_job) *job = ph->job;
    const fr_mat_layout *lay = job->mats[FR_MAT_XH].lay;
    const ptrdiff_t U = job->L->units, G = lay->G, vl = FR_VL;
    FR_T *out = job->out + row * job->L->proj;
    const FR_T *xrow = job->pl->fused ? NULL : job->buf.xproj + row * job->pl->xw + q * lay->pw;
    ptrdiff_t b;
    for (b = 0; b < lay->ubp; ++b) {
        const ptrdiff_t u0 = (q * lay->ubp + b) * vl;
        const FR_T *xp = xrow ? xrow + b * G * vl : NULL;
        if (U - u0 >= vl) /* a full vector of units: straight-line code */
            FR_FN(fr_block_a)(ph, p, out, z + b * G * vl, xp, u0, vl);
        else if (U - u0 > 0)
            FR_FN(fr_block_a)(ph, p, out, z + b * G * vl, xp, u0, U - u0);
    }
}

/* The panels of a step chunk: [q0, q1) of np. */
static void FR_FN(fr_chunk_panels)(const FR_FN(fr_phase) *ph, ptrdiff_t chunk, ptrdiff_t np, ptrdiff_t *q0,
                                   ptrdiff_t *q1)
{
    const ptrdiff_t ppc = ph->whole ? np : ph->job->ppc;
    *q0 = chunk * ppc;
    *q1 = *q0 + ppc < np ? *q0 + ppc : np;
}

/* Run the product of the active rows [p0, p1) (A rows of width lda) with panels [q0, q1)
 * of m, one register tile at a time, each followed by the epilogue `ep` of its rows
 * (phase A or B).  A one-row tile takes two panels at once. */
#define FR_TILE_BUF (16 * FR_NVMAX * 16) /* the largest tile: AMX, 16 rows x 4 x 16 floats (>= 8 x 2 x 4 vectors) */
static void FR_FN(fr_tiles)(const FR_FN(fr_phase) *ph, const FR_FN(fr_pmat) *m, ptrdiff_t q0, ptrdiff_t q1,
                            const void *a, ptrdiff_t lda,
                            void (*ep)(const FR_FN(fr_phase) *, ptrdiff_t, ptrdiff_t, ptrdiff_t, FR_T *))
{
    const FR_FN(fr_job) *job = ph->job;
    const ptrdiff_t n = ph->p1 - ph->p0, nt = FR_FN(fr_ntiles)(job, n), pw = m->pw;
    FR_T tbuf[FR_TILE_BUF] __attribute__((aligned(64)));
    ptrdiff_t q, i, r;
    for (q = q0; q < q1;) {
        const int np = n == 1 && q + 1 < q1 ? 2 : 1;
        for (i = 0; i < nt; ++i) {
            const ptrdiff_t lo = ph->p0 + FR_FN(fr_tile_lo)(n, nt, i), hi = ph->p0 + FR_FN(fr_tile_lo)(n, nt, i + 1);
            FR_FN(fr_product)(job, m, q, np, (int)(hi - lo), FR_FN(fr_arow)(job, a, lo, lda), lda, tbuf, np * pw);
            for (r = lo; r < hi; ++r) {
                const ptrdiff_t row = FR_FN(fr_step_row)(job, r, ph->t);
                int k;
                for (k = 0; k < np; ++k)
                    ep(ph, r, row, q + k, tbuf + (r - lo) * np * pw + k * pw);
            }
        }
        q += np;
    }
}

/* Phase A of step t, chunk = ppc panels of the main matrix (all of them when ph->whole):
 * the step's product for those units, tile by tile, each followed by the cell's update
 * of its rows (GRU: its gates, and the whole update when reset-after; a projected LSTM:
 * m, before the projection). */
static void FR_FN(fr_chunk_step_a)(void *arg, ptrdiff_t chunk, int tid)
{
    const FR_FN(fr_phase) *ph = (const FR_FN(fr_phase) *)arg;
    const FR_FN(fr_job) *job = ph->job;
    ptrdiff_t q0, q1;
    (void)tid;
    if (fr_cancelled(&job->cancel)) /* every remaining chunk is a no-op */
        return;
    FR_FN(fr_chunk_panels)(ph, chunk, job->mats[FR_MAT_XH].np, &q0, &q1);
    FR_FN(fr_next_inputs)(ph, chunk, q0, q1);
    if (job->bpath) /* the rounded operand rows, [x_t | h] or [h] */
        FR_FN(fr_tiles)(ph, job->pl->fused ? &job->mats[FR_MAT_XH] : &job->kern_h, q0, q1, job->buf.ab[ph->t % 2],
                        job->pl->ald, FR_FN(fr_epilogue_a));
    else if (job->pl->fused) /* [x_t | h] . kernel */
        FR_FN(fr_tiles)(ph, &job->mats[FR_MAT_XH], q0, q1, ph->h - job->pl->hoff, job->pl->hld,
                        FR_FN(fr_epilogue_a));
    else /* h . W_h, plus the hoisted x . W_x in the epilogue */
        FR_FN(fr_tiles)(ph, &job->kern_h, q0, q1, ph->h, job->pl->hld, FR_FN(fr_epilogue_a));
}

/* The epilogue of phase B for sorted row p, the n units (or columns) from u0:
 *   TF1 GRU: h' = u*h + (1-u)*act(cand + xc + cb) for the panel's units;
 *   projected LSTM: h' = clip(m . P) for the panel's output columns. */
static inline __attribute__((always_inline)) void
FR_FN(fr_block_b)(const FR_FN(fr_phase) *ph, ptrdiff_t p, FR_T *out, FR_T *zb, const FR_T *xc, ptrdiff_t u0,
                  ptrdiff_t n)
{
    const FR_FN(fr_job) *job = ph->job;
    const ptrdiff_t HLD = job->pl->hld;
    FR_T *hn = ph->hn + p * HLD;
    if (job->L->cell == FR_CELL_GRU) {
        FR_FN(fr_gru_cand_row)(&job->cell, zb, xc, job->buf.ubuf + p * job->L->units + u0, ph->h + p * HLD, hn, u0,
                               n);
    } else {
        memcpy(hn + u0, zb, (size_t)n * sizeof(FR_T));
        FR_FN(fr_lstm_proj_row)(&job->cell, hn + u0, n);
    }
    memcpy(out + u0, hn + u0, (size_t)n * sizeof(FR_T));
    if (job->bpath) /* h' is the next step's operand */
        FR_FN(fr_operand)(job, job->buf.ab[(ph->t + 1) % 2] + (size_t)(p * job->pl->ald) * job->aes,
                          job->pl->aoff + u0, hn + u0, n);
}

/* Phase B's epilogue for sorted row p and panel q of its matrix (one gate block). */
static void FR_FN(fr_epilogue_b)(const FR_FN(fr_phase) *ph, ptrdiff_t p, ptrdiff_t row, ptrdiff_t q, FR_T *z)
{
    const FR_FN(fr_job) *job = ph->job;
    const int gru = job->L->cell == FR_CELL_GRU;
    const fr_mat_layout *lay = job->mats[gru ? FR_MAT_C : FR_MAT_PROJ].lay;
    const ptrdiff_t vl = FR_VL;
    FR_T *out = job->out + row * job->L->proj;
    const FR_T *xrow = !gru || job->pl->fused ? NULL
                       : job->buf.xproj + row * job->pl->xw +
                             job->mats[FR_MAT_XH].np * job->mats[FR_MAT_XH].pw + q * lay->pw;
    ptrdiff_t b;
    for (b = 0; b < lay->ubp; ++b) {
        const ptrdiff_t u0 = (q * lay->ubp + b) * vl;
        const FR_T *xc = xrow ? xrow + b * vl : NULL;
        if (lay->units - u0 >= vl)
            FR_FN(fr_block_b)(ph, p, out, z + b * vl, xc, u0, vl);
        else if (lay->units - u0 > 0)
            FR_FN(fr_block_b)(ph, p, out, z + b * vl, xc, u0, lay->units - u0);
    }
}

/* Phase B of step t (only where a product needs every unit of phase A), chunk = ppc
 * panels: TF1 GRU: cand = [x_t | r*h] . Wc (hoisted: (r*h) . Wc_h); projected LSTM:
 * m . P. */
static void FR_FN(fr_chunk_step_b)(void *arg, ptrdiff_t chunk, int tid)
{
    const FR_FN(fr_phase) *ph = (const FR_FN(fr_phase) *)arg;
    const FR_FN(fr_job) *job = ph->job;
    ptrdiff_t q0, q1;
    (void)tid;
    if (fr_cancelled(&job->cancel))
        return;
    if (job->L->cell == FR_CELL_GRU) {
        const FR_FN(fr_pmat) *m = job->pl->fused ? &job->mats[FR_MAT_C] : &job->cand_h;
        FR_FN(fr_chunk_panels)(ph, chunk, m->np, &q0, &q1);
        if (job->bpath)
            FR_FN(fr_tiles)(ph, m, q0, q1, job->buf.rb, job->pl->rbld, FR_FN(fr_epilogue_b));
        else
            FR_FN(fr_tiles)(ph, m, q0, q1, job->buf.rh, job->pl->rld, FR_FN(fr_epilogue_b));
    } else {
        FR_FN(fr_chunk_panels)(ph, chunk, job->mats[FR_MAT_PROJ].np, &q0, &q1);
        if (job->bpath)
            FR_FN(fr_tiles)(ph, &job->mats[FR_MAT_PROJ], q0, q1, job->buf.mb, job->pl->mbld, FR_FN(fr_epilogue_b));
        else
            FR_FN(fr_tiles)(ph, &job->mats[FR_MAT_PROJ], q0, q1, job->buf.mbuf, job->L->units, FR_FN(fr_epilogue_b));
    }
}

/* Phase "final", chunk = a block of FR_FINAL_ROWS sorted rows: zero the outputs
 * past each row's length (TF: reverse_sequence leaves positions >= len in place,
 * and those outputs are zero) and scatter the final state back to the caller's
 * row order (row p's last h is in buf.h[slen[p] % 2]). */
#define FR_FINAL_ROWS 16
static void FR_FN(fr_chunk_final)(void *arg, ptrdiff_t chunk, int tid)
{
    const FR_FN(fr_job) *job = ((FR_FN(fr_phase) *)arg)->job;
    const FR_FN(fr_bufs) *bf = &job->buf;
    const fr_seq *S = job->S;
    const ptrdiff_t B = S->batch, T = S->time, U = job->L->units, P = job->L->proj, HLD = job->pl->hld;
    const ptrdiff_t p1 = (chunk + 1) * FR_FINAL_ROWS < B ? (chunk + 1) * FR_FINAL_ROWS : B;
    ptrdiff_t p, t;
    (void)tid;
    for (p = chunk * FR_FINAL_ROWS; p < p1; ++p) {
        const ptrdiff_t b = bf->perm[p];
        for (t = bf->slen[p]; t < T; ++t) /* padding is never reversed */
            memset(job->out + FR_FN(fr_xrow)(job, p, t) * P, 0, (size_t)P * sizeof(FR_T));
        memcpy((FR_T *)S->h_final + b * P, bf->h[bf->slen[p] % 2] + p * HLD, (size_t)P * sizeof(FR_T));
        if (job->L->cell == FR_CELL_LSTM)
            memcpy((FR_T *)S->c_final + b * U, bf->c + p * U, (size_t)U * sizeof(FR_T));
    }
}

/* The recurrence of the rows [p0, p1) (sorted, descending lengths) over the shrinking
 * prefix still running; h double-buffered so that a step reads buf.h[t % 2] whole while
 * it writes the other.
 *   cur != NULL (column split): every thread of the job runs this together, and each
 *     phase of a step is shared out through the queue, ppc panels per chunk.
 *   cur == NULL (a row group): the calling thread runs every phase alone over all
 *     panels. */
static void FR_FN(fr_run_steps)(FR_FN(fr_phase) *ph, ptrdiff_t p0, ptrdiff_t p1, fr_cursor *cur, int tid)
{
    FR_FN(fr_job) *job = ph->job;
    ptrdiff_t t;
    ph->p0 = p0;
    ph->p1 = p1;
    ph->whole = cur == NULL;
    for (t = 0; t < job->S->time; ++t) {
        ph->p1 = FR_FN(fr_active)(job->buf.slen, p0, ph->p1, t);
        if (ph->p1 == p0)
            break;
        /* interrupted: stop here (every later phase of the call is skipped by every thread,
         * see fr_queue_phase, so no thread waits for another) */
        if (fr_cancel_check(&job->cancel, tid))
            break;
        ph->t = t;
        ph->h = job->buf.h[t % 2];
        ph->hn = job->buf.h[(t + 1) % 2];
        if (cur) {
            fr_queue_phase(&job->queue, cur, tid, job->na, FR_FN(fr_chunk_step_a), ph);
            if (job->nb > 0)
                fr_queue_phase(&job->queue, cur, tid, job->nb, FR_FN(fr_chunk_step_b), ph);
        } else {
            FR_FN(fr_chunk_step_a)(ph, 0, tid);
            if (job->nb > 0)
                FR_FN(fr_chunk_step_b)(ph, 0, tid);
        }
    }
}

/* Phase "recurrence" of the row-split schedule: chunk = row group g, all its steps. */
static void FR_FN(fr_chunk_group)(void *arg, ptrdiff_t chunk, int tid)
{
    FR_FN(fr_phase) ph = *(const FR_FN(fr_phase) *)arg; /* this group's own step state */
    const ptrdiff_t B = ph.job->S->batch, ng = ph.job->groups;
    FR_FN(fr_run_steps)(&ph, FR_FN(fr_group_lo)(B, ng, chunk), FR_FN(fr_group_lo)(B, ng, chunk + 1), NULL,
                        tid);
}

/* The whole layer call, run by every thread of the job (the same phase sequence).
 * The recurrence has two schedules (chosen in fr_forward_prepare):
 *   column split (groups == 0): every step is a phase whose chunks are panels, so each
 *     core keeps its part of the weights in cache; a phase ends when all its chunks are
 *     done, so the threads meet at every step.
 *   row split (groups >= 1): the sorted rows are dealt to the groups in turn (each
 *     gets a similar share of every length) and each group runs all its steps as one
 *     chunk, on one thread, with no meeting point until the end (ONNX Runtime's way).
 *     Each core then reads all the weights at every step, from its L2 when they fit. */
static void FR_FN(fr_forward_task)(void *arg, int tid, int nthreads)
{
    FR_FN(fr_job) *job = (FR_FN(fr_job) *)arg;
    const fr_plan *pl = job->pl;
    FR_FN(fr_phase) ph = {.job = job};
    fr_cursor cur;
    /* Denormals flushed to zero while the layer runs, as in TensorFlow's CPU kernels: a
     * state decaying towards zero would otherwise cost a microcode assist per operation
     * on many x86 cores (measured here, AMD EPYC: +4% for an LSTM whose outputs were
     * half subnormal; Intel cores are known to slow down far more). */
    const unsigned fp_saved = fr_fp_flush_denormals();
    (void)nthreads;

    fr_cursor_init(&cur, job->queue.nowners);
    fr_queue_phase(&job->queue, &cur, tid, 1, FR_FN(fr_chunk_sort), &ph);
    if (job->opt->gemm == FR_GEMM_PACKED && !pl->prepacked)
        fr_queue_phase(&job->queue, &cur, tid, FR_FN(fr_pack_chunks)(job), FR_FN(fr_chunk_pack), &ph);
    /* the input projection of all time steps, outside the recurrence (hoisted mode) */
    if (!pl->fused)
        fr_queue_phase(&job->queue, &cur, tid, job->xproj_chunks, FR_FN(fr_chunk_xproj), &ph);

    /* the recurrence: one chunk per row group, or every step shared out by panels */
    if (job->groups > 0)
        fr_queue_phase(&job->queue, &cur, tid, job->groups, FR_FN(fr_chunk_group), &ph);
    else
        FR_FN(fr_run_steps)(&ph, 0, job->S->batch, &cur, tid);
    fr_queue_phase(&job->queue, &cur, tid, (job->S->batch + FR_FINAL_ROWS - 1) / FR_FINAL_ROWS,
                   FR_FN(fr_chunk_final), &ph);
    if (job->bpath == FR_BF16_AMX) /* no tile state kept past the call (8 KiB per context switch) */
        fr_amx_release();
    fr_fp_restore(fp_saved);
}

/* Called once the job's thread count is known, before any thread starts. */
static void FR_FN(fr_forward_prepare)(void *arg, int nthreads)
{
    FR_FN(fr_job) *job = (FR_FN(fr_job) *)arg;
    const ptrdiff_t B = job->S->batch;
    fr_queue_init(&job->queue, nthreads, &job->cancel);
    /* input-projection chunks: FR_PROJ_ROWS rows, or fewer (whole register tiles) when
     * that leaves under 4 chunks per thread -- a batch-1 sequence of 100 steps made 2
     * chunks of 64 and 36 rows, one per thread */
    {
        const ptrdiff_t rows = B * job->S->time, per = (rows + 4 * nthreads - 1) / (4 * nthreads);
        job->proj_rows = (per + job->rmax - 1) / job->rmax * job->rmax;
        if (job->proj_rows > FR_PROJ_ROWS)
            job->proj_rows = FR_PROJ_ROWS;
        if (job->proj_rows < job->rmax)
            job->proj_rows = job->rmax;
    }
    if (job->pl->schedule == FR_SCHED_ROWS) /* forced: as many groups as rows allow */
        job->groups = nthreads < B ? nthreads : B;
    else if (job->pl->schedule == FR_SCHED_AUTO && nthreads == 1)
        job->groups = 1; /* one thread: whole-row phases, no meeting points */
    else if (job->pl->schedule == FR_SCHED_AUTO && job->pl->rows_from > 0 && B >= nthreads * job->pl->rows_from)
        job->groups = nthreads; /* enough rows per thread, and the weights fit each core's cache */
    else
        job->groups = 0;
}

#undef FR_PROJ_ROWS
#undef FR_FINAL_ROWS
#undef FR_TILE_BUF

/* The packed matrices of layer L at `base` + off[] (or of the prepacked buffer). */
static void FR_FN(fr_init_pmats)(const fr_mat_layout *lay, char *base, const size_t *off, FR_FN(fr_pmat) *m)
{
    int mi;
    for (mi = 0; mi < FR_NMATS; ++mi) {
        const size_t pes = lay[mi].format == FR_PACK_VNNI || lay[mi].format == FR_PACK_AMX ? 2 : sizeof(FR_T);
        m[mi] = (FR_FN(fr_pmat)){.p = base + off[mi], .pes = pes, .k0 = 0, .K = lay[mi].Kp, .kst = lay[mi].Kp,
                                 .pw = lay[mi].pw, .np = lay[mi].np, .nv = lay[mi].pw / FR_VL, .lay = &lay[mi]};
    }
}

/* fr_pack_weights for this ISA: every matrix at its offset in `buf`. */
void FR_ENTRY(fr_pack_weights)(const fr_mat_layout *lay, char *buf, const size_t *off)
{
    int mi;
    ptrdiff_t q;
    for (mi = 0; mi < FR_NMATS; ++mi)
        for (q = 0; q < lay[mi].np; ++q)
            FR_FN(fr_pack_panel)(&lay[mi], q, buf + off[mi]);
}

int FR_ENTRY(fr_forward)(const fr_layer *L, const fr_seq *S, const fr_options *opt, char *base,
                         const fr_plan *pl)
{
    const ptrdiff_t B = S->batch, T = S->time, D = L->depth, U = L->units, P = L->proj;
    const int G = fr_cell_gates(L->cell);
    /* flops of the whole call, to decide whether threads pay off */
    const double work = 2.0 * (double)B * (double)T * (double)(D + P) *
                        (double)(G * U + (L->cell == FR_CELL_GRU ? U : 0));
    FR_FN(fr_job) job = {
        .L = L,
        .S = S,
        .pl = pl,
        .opt = opt,
        .buf = FR_FN(fr_bufs_of)(base, pl),
        .cell = FR_FN(fr_cell_of)(L),
        .x = (const FR_T *)S->x,
        .out = (FR_T *)S->out,
        .pf = pl->prefetch,
    };
    int nthreads;

    if (B == 0) /* nothing to read or write */
        return FR_OK;
    fr_cancel_init(&job.cancel, opt);
    FR_FN(fr_init_pmats)(pl->mats, pl->prepacked ? (char *)(uintptr_t)pl->prepacked : base,
                         pl->prepacked ? pl->pre_off : pl->off_pack, job.mats);
    job.bpath = pl->bpath;
    job.aes = pl->bpath ? pl->aes : sizeof(FR_T);
    job.rmax = pl->bpath == FR_BF16_AMX ? 16 : (int)FR_RMAX_OF(job.mats[FR_MAT_XH].nv); /* AMX: a tile of 16 rows */
    if (pl->tile_rows > 0 && pl->tile_rows < job.rmax)
        job.rmax = pl->tile_rows;
    {   /* the input rows and the recurrent rows (each segment padded to the packing's granularity) */
        const ptrdiff_t dx = FR_KPAD(D, pl->mats[FR_MAT_XH].gran);
        job.kern_x = FR_FN(fr_pmat_rows)(&job.mats[FR_MAT_XH], 0, dx);
        job.kern_h = FR_FN(fr_pmat_rows)(&job.mats[FR_MAT_XH], dx, job.mats[FR_MAT_XH].K);
        job.cand_x = FR_FN(fr_pmat_rows)(&job.mats[FR_MAT_C], 0, job.mats[FR_MAT_C].np ? dx : 0);
        job.cand_h = FR_FN(fr_pmat_rows)(&job.mats[FR_MAT_C], job.mats[FR_MAT_C].np ? dx : 0, job.mats[FR_MAT_C].K);
    }
    job.ppc = B == 1 ? 2 : 1; /* one row: two panels per tile, for more independent chains */
    job.na = (job.mats[FR_MAT_XH].np + job.ppc - 1) / job.ppc;
    job.nb = L->cell == FR_CELL_GRU && !L->cand_recurrent_bias ? (job.mats[FR_MAT_C].np + job.ppc - 1) / job.ppc
             : pl->has_proj                                    ? (job.mats[FR_MAT_PROJ].np + job.ppc - 1) / job.ppc
                                                               : 0;

    /* small calls run on the caller's thread alone, unless a schedule is forced */
    nthreads = work < 4e6 && pl->schedule == FR_SCHED_AUTO ? 1 : opt->nthreads;
    if (fr_parallel_run(FR_FN(fr_forward_task), FR_FN(fr_forward_prepare), &job, nthreads, &job.cancel) != 0 ||
        fr_cancelled(&job.cancel))
        return FR_ERR_CANCELLED;
    return FR_OK;
}

#undef FR_VL
#undef FR_NVMAX
#undef FR_RMAX_OF
