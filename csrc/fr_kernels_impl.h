/*
 * fr_kernels_impl.h -- template body of the recurrent-layer kernel.  Included
 * twice (float -> *_f32, double -> *_f64) by fr_forward_body.h, which is in turn
 * compiled once per instruction set (fr_forward_generic.c, _avx2.c, _avx512.c)
 * so that the same source auto-vectorizes for each; fr_kernels.c dispatches at
 * run time.  No include guard on purpose.  The includer defines FR_T, FR_SFX,
 * FR_SIGMOID1, FR_TANH1 and FR_ENTRY (name -> name_<isa>_<sfx>).
 *
 * Design note
 * -----------
 * Computes, in the layer's dtype (float math for float32, as TF does), with
 * z = x.W_x + h.W_h + bias split into `units`-wide column blocks:
 *   RNN : h' = act(z)
 *   LSTM: blocks i, j, f, o;
 *         c' = c*sig(f + forget_bias [+ w_f.c]) + sig(i [+ w_i.c])*act(j)
 *         c' = clip(c', +-cell_clip)                       if has_cell_clip
 *         m  = sig(o [+ w_o.c'])*act(c')                   ([...] = peepholes)
 *         m  = clip(m.P, +-proj_clip)                      if projected (clip if has_proj_clip)
 *         state (c', m), output m
 *   GRU : [r|u] = sig(x.Wg_x + h.Wg_h + gates_bias)
 *         cand  = act(x.Wc_x + (r*h).Wc_h + cand_bias)         TF1 (reset before)
 *         cand  = act(x.Wc_x + cand_bias + r*(h.Wc_h + rbias)) reset_after
 *         h'    = u*h + (1-u)*cand, output h'
 * sig and tanh: branch-free float32 versions, libm for float64 (fr_mathf.h).
 *
 * Memory layout: all matrices row-major.  kernel = [W_x (depth rows);
 * W_h (proj or units rows)], packed once as a whole; W_x and W_h are views of
 * its rows (fr_mat_rows), and the fused mode multiplies [x_t | h] rows by all
 * of it (see fr_kernels.c, "How", 2).  x/out row of (t, b)
 * is t*batch+b (time-major) or b*time+t (batch-major); xproj uses the same
 * row numbering as x, so the big input GEMM reads x as one [batch*time, depth]
 * matrix whatever the majorness.  State buffers (h, c, gates, ...) are in
 * length-sorted order (see fr_kernels.c) so the active rows of step t are
 * the prefix [0, nact).  Row b at step s reads/writes time index
 * len[b]-1-s when reversed, s otherwise.
 */

/* ---- row-wise pointwise helpers: straight loops over contiguous rows, no
 * calls or branches inside, so they vectorize for the ISA of the including
 * translation unit.  FR_SIGMOID1 / FR_TANH1 are the scalar functions of the
 * dtype (branch-free fast float32, libm float64: see fr_mathf.h). */

static void FR_FN(fr_vsigmoid)(FR_T *restrict x, ptrdiff_t n)
{
    ptrdiff_t j;
    for (j = 0; j < n; ++j)
        x[j] = FR_SIGMOID1(x[j]);
}

/* the cell's activation, in place */
static void FR_FN(fr_vact)(FR_T *restrict x, ptrdiff_t n, int act)
{
    ptrdiff_t j;
    switch (act) {
    case FR_ACT_TANH:
        for (j = 0; j < n; ++j)
            x[j] = FR_TANH1(x[j]);
        break;
    case FR_ACT_SIGMOID:
        FR_FN(fr_vsigmoid)(x, n);
        break;
    case FR_ACT_RELU:
        for (j = 0; j < n; ++j)
            x[j] = x[j] < (FR_T)0 ? (FR_T)0 : x[j]; /* NaN propagates */
        break;
    default: /* FR_ACT_LINEAR */
        break;
    }
}

/* z += a + b, or z += b when a is NULL (fused mode: the product already holds x.W_x) */
static void FR_FN(fr_vadd2)(FR_T *restrict z, const FR_T *restrict a, const FR_T *restrict b,
                            ptrdiff_t n)
{
    ptrdiff_t j;
    if (a) {
        for (j = 0; j < n; ++j)
            z[j] += a[j] + b[j];
    } else {
        for (j = 0; j < n; ++j)
            z[j] += b[j];
    }
}

/* p + k, NULL stays NULL (an absent xproj row) */
#define FR_OFF(p, k) ((p) ? (p) + (k) : NULL)

/* clip_by_value(x, -lim, lim) in place; NaN propagates */
static void FR_FN(fr_vclip)(FR_T *restrict x, ptrdiff_t n, FR_T lim)
{
    ptrdiff_t j;
    for (j = 0; j < n; ++j) {
        const FR_T v = x[j] < -lim ? -lim : x[j];
        x[j] = v > lim ? lim : v;
    }
}

/* Entry point for accuracy tests: the activation exactly as the kernels apply it
 * (act < 0 selects the gates' logistic sigmoid). */
void FR_ENTRY(fr_apply_activation)(FR_T *x, ptrdiff_t n, int act)
{
    if (act < 0)
        FR_FN(fr_vsigmoid)(x, n);
    else
        FR_FN(fr_vact)(x, n, act);
}

/* One weight matrix of the layer: row-major source (K x N*blocks, leading dimension
 * ld) and, in packed mode, its panels.  The kernel is kept as G blocks (one per
 * gate, N = units each) so that threads can take the same unit range of every
 * gate: block g, columns [n0, n1) is source columns g*N + [n0, n1). */
typedef struct {
    const FR_T *w;
    ptrdiff_t ld, K, N, blocks;
    FR_T *packed;
    ptrdiff_t kst;     /* rows of the packed panels (K, or more for a view of some rows) */
    ptrdiff_t bstride; /* packed elements per block */
} FR_FN(fr_mat);

/* Rows [k0, k1) of m: the input half (W_x) or the recurrent half (W_h) of a kernel
 * packed whole, with no copy. */
static FR_FN(fr_mat) FR_FN(fr_mat_rows)(const FR_FN(fr_mat) *m, ptrdiff_t k0, ptrdiff_t k1)
{
    FR_FN(fr_mat) v = *m;
    v.K = k1 - k0;
    if (m->N == 0) /* an absent matrix (0 bytes): no pointer into it */
        return v;
    v.w = m->w ? m->w + k0 * m->ld : NULL;
    v.packed = m->packed ? m->packed + k0 * FR_PG_NR : NULL;
    return v;
}

/* C[r0:r1, g*N + n0 : g*N + n1] (acc: +)= A[r0:r1, :] . M[:, same] for every block g:
 * the one interface every product of the layer goes through (input projection: all
 * columns, a row range per thread; step products: all active rows, a column range per
 * thread).  n0 must be a multiple of the panel width FR_PG_NR. */
static void FR_FN(fr_product)(const fr_blas *blas, const FR_FN(fr_mat) *m, ptrdiff_t r0, ptrdiff_t r1,
                              ptrdiff_t n0, ptrdiff_t n1, const FR_T *a, ptrdiff_t lda, FR_T *c,
                              ptrdiff_t ldc, int acc)
{
    ptrdiff_t g;
    if (r1 <= r0 || n1 <= n0)
        return;
    for (g = 0; g < m->blocks; ++g) {
        FR_T *cg = c + g * m->N;
        if (blas == NULL || blas->products == FR_PRODUCTS_PACKED)
            FR_FN(fr_pgemm)(r0, r1, n0, n1, m->K, a, lda, m->packed + g * m->bstride, m->kst, cg, ldc,
                            acc);
        else
            FR_FN(fr_gemm_rm)(blas, (int)(r1 - r0), (int)(n1 - n0), (int)m->K, (FR_T)1, a + r0 * lda,
                              (int)lda, m->w + g * m->N + n0, (int)m->ld, (FR_T)(acc ? 1 : 0),
                              cg + r0 * ldc + n0, (int)ldc);
    }
}

/* Everything the threads of one layer call share. */
typedef struct {
    const fr_layer *L;
    const fr_seq *S;
    const fr_plan *pl;
    const fr_blas *blas;
    char *base;
    FR_FN(fr_mat) mats[FR_NMATS];
    /* their halves: kernel rows of the inputs (wx, cx) and of the recurrent state (wh, ch) */
    FR_FN(fr_mat) wx, wh, cx, ch;
    FR_T *hbuf[2];         /* the h columns of the two state buffers (see fr_plan.hld) */
    ptrdiff_t na, nb;      /* chunks of a step's phase A and phase B (0: no phase B) */
    ptrdiff_t groups;      /* row split in this many groups, or 0: column split (fr_forward_task) */
    ptrdiff_t proj_rows;   /* rows per input-projection chunk */
    fr_queue queue;
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
    int whole;          /* a step chunk covers all units (row split), else one panel of them */
    const FR_T *h;      /* recurrent state read by step t: hbuf[t % 2], rows of pl->hld */
    FR_T *hn;           /* ... and written by it: hbuf[(t + 1) % 2] */
} FR_FN(fr_ctx);

#define FR_LAYOUT(job)                                                                        \
    const fr_layer *L = (job)->L;                                                             \
    const fr_seq *S = (job)->S;                                                               \
    const fr_plan *pl = (job)->pl;                                                            \
    char *base = (job)->base;                                                                 \
    const ptrdiff_t B = S->batch, T = S->time;                                                \
    const ptrdiff_t U = L->units, P = L->proj;                                                \
    const ptrdiff_t GU = pl->G * L->units, GX = pl->GX, HLD = pl->hld;                         \
    ptrdiff_t *perm = (ptrdiff_t *)(void *)(base + pl->off_perm);                             \
    ptrdiff_t *slen = (ptrdiff_t *)(void *)(base + pl->off_slen);                             \
    FR_T *xproj = (FR_T *)(void *)(base + pl->off_xproj);                                     \
    FR_T *c = (FR_T *)(void *)(base + pl->off_c);                                             \
    FR_T *gates = (FR_T *)(void *)(base + pl->off_gates);                                     \
    FR_T *mbuf = (FR_T *)(void *)(base + pl->off_mbuf);                                       \
    FR_T *rh = (FR_T *)(void *)(base + pl->off_rh);                                           \
    FR_T *cand = (FR_T *)(void *)(base + pl->off_cand);                                       \
    FR_T *out = (FR_T *)S->out;                                                               \
    const int time_major = S->time_major != 0, reverse = S->reverse != 0

/* x/out row of sorted row p at time index tin, and at step t (reversed within its
 * length when reverse is set): the one place the row layout is spelled out. */
#define FR_XROW(p, tin) (time_major ? (tin) * B + perm[p] : perm[p] * T + (tin))
#define FR_ROW_AT(p, t) FR_XROW(p, reverse ? slen[p] - 1 - (t) : (t))
#define FR_ROW(p) FR_ROW_AT(p, t)

#define FR_PROJ_ROWS 64 /* rows per input-projection chunk, at most (see fr_forward_prepare) */

/* Fused mode: copy the inputs of step t of those sorted rows of [p0, p1) that run at
 * step t into the x columns of their [x | h] rows in xh. */
static void FR_FN(fr_load_x)(const FR_FN(fr_job) *job, FR_T *xh, ptrdiff_t t, ptrdiff_t p0,
                             ptrdiff_t p1)
{
    const fr_seq *S = job->S;
    const ptrdiff_t B = S->batch, T = S->time, D = job->L->depth, HLD = job->pl->hld;
    const ptrdiff_t *perm = (const ptrdiff_t *)(void *)(job->base + job->pl->off_perm);
    const ptrdiff_t *slen = (const ptrdiff_t *)(void *)(job->base + job->pl->off_slen);
    const int time_major = S->time_major != 0, reverse = S->reverse != 0;
    const FR_T *x = (const FR_T *)S->x;
    ptrdiff_t p;
    for (p = p0; p < p1; ++p)
        if (slen[p] > t)
            memcpy(xh + p * HLD, x + FR_ROW_AT(p, t) * D, (size_t)D * sizeof(FR_T));
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

/* Phase "sort" (1 chunk): stable counting sort of the rows by length, descending,
 * and the initial state gathered into that order (hbuf[0], c). */
static void FR_FN(fr_chunk_sort)(void *arg, ptrdiff_t chunk, int tid)
{
    FR_FN(fr_job) *job = ((FR_FN(fr_ctx) *)arg)->job;
    FR_LAYOUT(job);
    ptrdiff_t *count = (ptrdiff_t *)(void *)(base + pl->off_count);
    FR_T *xh = (FR_T *)(void *)(base + pl->off_h);
    FR_T *h = xh + pl->hoff;
    ptrdiff_t b, l, p, pos = 0;
    (void)chunk, (void)tid, (void)xproj, (void)gates, (void)mbuf, (void)rh, (void)cand, (void)out,
        (void)time_major, (void)reverse, (void)GU, (void)GX;
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
    for (p = 0; p < B; ++p) {
        memcpy(h + p * HLD, (const FR_T *)S->h0 + perm[p] * P, (size_t)P * sizeof(FR_T));
        if (L->cell == FR_CELL_LSTM)
            memcpy(c + p * U, (const FR_T *)S->c0 + perm[p] * U, (size_t)U * sizeof(FR_T));
    }
    if (pl->fused) /* the inputs of step 0 */
        FR_FN(fr_load_x)(job, xh, 0, 0, B);
    /* the rows the recurrence will read, in chunks for the input projection: padding
     * past a row's length is never projected */
    {
        ptrdiff_t *cum = (ptrdiff_t *)(void *)(base + pl->off_pchunk);
        const ptrdiff_t maxlen = B > 0 ? slen[0] : 0;
        job->row_segments = S->lengths && !time_major;
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
    FR_FN(fr_job) *job = ((FR_FN(fr_ctx) *)arg)->job;
    int mi;
    (void)tid;
    for (mi = 0; mi < FR_NMATS; ++mi) {
        const FR_FN(fr_mat) *m = &job->mats[mi];
        const ptrdiff_t np = (m->N + FR_PG_NR - 1) / FR_PG_NR;
        if (chunk < np) {
            const ptrdiff_t j0 = chunk * FR_PG_NR, nr = m->N - j0 < FR_PG_NR ? m->N - j0 : FR_PG_NR;
            ptrdiff_t g;
            for (g = 0; g < m->blocks; ++g)
                FR_FN(fr_pack_b)(m->K, nr, m->w + g * m->N + j0, m->ld, m->packed + g * m->bstride + j0 * m->K);
            return;
        }
        chunk -= np;
    }
}

static ptrdiff_t FR_FN(fr_pack_chunks)(const FR_FN(fr_job) *job)
{
    ptrdiff_t n = 0;
    int mi;
    for (mi = 0; mi < FR_NMATS; ++mi)
        n += (job->mats[mi].N + FR_PG_NR - 1) / FR_PG_NR;
    return n;
}

/* Phase "input projection": chunk = a block of at most job->proj_rows rows of one
 * segment of x (see fr_job), all columns. */
static void FR_FN(fr_chunk_xproj)(void *arg, ptrdiff_t chunk, int tid)
{
    FR_FN(fr_job) *job = ((FR_FN(fr_ctx) *)arg)->job;
    const fr_layer *L = job->L;
    const ptrdiff_t D = L->depth;
    const ptrdiff_t *cum = (const ptrdiff_t *)(void *)(job->base + job->pl->off_pchunk);
    ptrdiff_t lo = 0, hi = job->nseg - 1, r0, r1, end;
    const FR_T *x = (const FR_T *)job->S->x;
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
    FR_T *xproj = (FR_T *)(void *)(job->base + job->pl->off_xproj);
    (void)tid;
    FR_FN(fr_product)(job->blas, &job->wx, r0, r1, 0, L->units, x, D, xproj, job->pl->GX, 0);
    if (L->cell == FR_CELL_GRU) /* candidate input kernel, columns [2U, 3U) */
        FR_FN(fr_product)(job->blas, &job->cx, r0, r1, 0, L->units, x, D,
                          xproj + job->pl->G * L->units, job->pl->GX, 0);
}

/* Phase A of step t, chunk = a panel of units [u0, u1) of every gate (all units when
 * cx->whole): the step's product for those columns, then the fused pointwise pass over
 * those units for every active row.  (GRU: gates and r*h; a projected LSTM: m before
 * projection.)
 * Fused mode: the product is [x_t | h] . kernel, and the chunk also copies its share
 * of the next step's inputs into the other [x | h] buffer (which this step does not
 * read: it writes only that buffer's h columns). */
static void FR_FN(fr_chunk_step_a)(void *arg, ptrdiff_t chunk, int tid)
{
    const FR_FN(fr_ctx) *cx = (const FR_FN(fr_ctx) *)arg;
    FR_FN(fr_job) *job = cx->job;
    FR_LAYOUT(job);
    const fr_blas *blas = job->blas;
    const FR_FN(fr_mat) *mats = job->mats;
    const FR_T *bias = (const FR_T *)L->bias;
    const int act = L->activation;
    const ptrdiff_t t = cx->t, p0 = cx->p0, p1 = cx->p1;
    const FR_T *h = cx->h;
    FR_T *hn = cx->hn;
    const ptrdiff_t u0 = cx->whole ? 0 : chunk * FR_PG_NR;
    const ptrdiff_t u1 = cx->whole || u0 + FR_PG_NR > U ? U : u0 + FR_PG_NR, nu = u1 - u0;
    const int fused = pl->fused;
    const FR_T *xh = h - pl->hoff; /* fused mode: the [x_t | h] rows */
    ptrdiff_t p, j;
    (void)tid, (void)mbuf, (void)rh, (void)cand, (void)c;

    if (fused && t + 1 < T) {
        const ptrdiff_t nchunks = cx->whole ? 1 : job->na;
        const ptrdiff_t n = FR_FN(fr_active)(slen, p0, p1, t + 1) - p0;
        FR_FN(fr_load_x)(job, hn - pl->hoff, t + 1, p0 + chunk * n / nchunks, p0 + (chunk + 1) * n / nchunks);
    } else if (t + 1 < T) {
        /* Prefetch this chunk's input-projection values of the NEXT step (xproj is far
         * larger than the caches and is read once per step): the GEMM below hides the
         * latency.  Measured: the first xproj read of the gate pass was 6% of an LSTM
         * call (batch 16, 256 units) before. */
        const ptrdiff_t tt = t + 1;
        ptrdiff_t g, off;
        for (p = p0; p < p1 && slen[p] > tt; ++p) {
            const ptrdiff_t row = FR_ROW_AT(p, tt);
            for (g = 0; g < GX; g += U)
                for (off = 0; off < nu; off += 64 / (ptrdiff_t)sizeof(FR_T))
                    __builtin_prefetch(xproj + row * GX + g + u0 + off, 0, 3);
        }
    }

    /* gates[p0:p1, g*U + [u0,u1)] = h[p0:p1, :] . W_h (fused: [x_t | h] . kernel),
     * every gate g */
    if (fused)
        FR_FN(fr_product)(blas, &mats[FR_MAT_XH], p0, p1, u0, u1, xh, HLD, gates, GU, 0);
    else
        FR_FN(fr_product)(blas, &job->wh, p0, p1, u0, u1, h, HLD, gates, GU, 0);

    if (L->cell == FR_CELL_RNN) {
        for (p = p0; p < p1; ++p) {
            const ptrdiff_t row = FR_ROW(p);
            FR_T *g = gates + p * GU + u0;
            FR_FN(fr_vadd2)(g, fused ? NULL : xproj + row * GX + u0, bias + u0, nu);
            FR_FN(fr_vact)(g, nu, act);
            memcpy(hn + p * HLD + u0, g, (size_t)nu * sizeof(FR_T));
            memcpy(out + row * P + u0, g, (size_t)nu * sizeof(FR_T));
        }
    } else if (L->cell == FR_CELL_LSTM) {
        const FR_T fb = (FR_T)L->forget_bias;
        const FR_T cclip = (FR_T)L->cell_clip;
        const int has_cclip = L->has_cell_clip != 0;
        const int has_proj = pl->has_proj;
        const FR_T *wi = L->w_i_diag ? (const FR_T *)L->w_i_diag + u0 : NULL;
        const FR_T *wf = L->w_f_diag ? (const FR_T *)L->w_f_diag + u0 : NULL;
        const FR_T *wo = L->w_o_diag ? (const FR_T *)L->w_o_diag + u0 : NULL;
        const int peep = wi != NULL;
        for (p = p0; p < p1; ++p) {
            const ptrdiff_t row = FR_ROW(p);
            FR_T *restrict gi = gates + p * GU + u0; /* gate blocks i | j | f | o */
            FR_T *restrict gj = gi + U;
            FR_T *restrict gf = gi + 2 * U;
            FR_T *restrict go = gi + 3 * U;
            const FR_T *xp = fused ? NULL : xproj + row * GX + u0;
            FR_T *restrict cr = c + p * U + u0;
            FR_T *restrict mr = has_proj ? mbuf + p * U + u0 : hn + p * HLD + u0;
            FR_FN(fr_vadd2)(gi, xp, bias + u0, nu);
            FR_FN(fr_vadd2)(gj, FR_OFF(xp, U), bias + U + u0, nu);
            FR_FN(fr_vadd2)(gf, FR_OFF(xp, 2 * U), bias + 2 * U + u0, nu);
            FR_FN(fr_vadd2)(go, FR_OFF(xp, 3 * U), bias + 3 * U + u0, nu);
            if (peep) {
                for (j = 0; j < nu; ++j) {
                    gi[j] += wi[j] * cr[j];
                    gf[j] += wf[j] * cr[j];
                }
            }
            for (j = 0; j < nu; ++j)
                gf[j] += fb;
            FR_FN(fr_vsigmoid)(gi, nu);
            FR_FN(fr_vact)(gj, nu, act);
            FR_FN(fr_vsigmoid)(gf, nu);
            for (j = 0; j < nu; ++j)
                cr[j] = cr[j] * gf[j] + gi[j] * gj[j];
            if (has_cclip)
                FR_FN(fr_vclip)(cr, nu, cclip);
            if (peep) {
                for (j = 0; j < nu; ++j)
                    go[j] += wo[j] * cr[j];
            }
            FR_FN(fr_vsigmoid)(go, nu);
            memcpy(gj, cr, (size_t)nu * sizeof(FR_T)); /* j is consumed: reuse it for act(c') */
            FR_FN(fr_vact)(gj, nu, act);
            for (j = 0; j < nu; ++j)
                mr[j] = go[j] * gj[j];
            if (!has_proj)
                memcpy(out + row * P + u0, mr, (size_t)nu * sizeof(FR_T));
        }
    } else { /* FR_CELL_GRU */
        const FR_T *crb = L->cand_recurrent_bias ? (const FR_T *)L->cand_recurrent_bias + u0 : NULL;
        /* reset-after: cand = h . Wc_h, before the reset gate (same h as the gates);
         * fused mode: x . Wc_x into rh (which reset-after does not otherwise use) */
        if (crb) {
            FR_FN(fr_product)(blas, &job->ch, p0, p1, u0, u1, h, HLD, cand, U, 0);
            if (fused)
                FR_FN(fr_product)(blas, &job->cx, p0, p1, u0, u1, xh, HLD, rh, U, 0);
        }
        for (p = p0; p < p1; ++p) {
            const ptrdiff_t row = FR_ROW(p);
            FR_T *restrict gr = gates + p * GU + u0;
            FR_T *restrict gu = gr + U;
            const FR_T *xp = fused ? NULL : xproj + row * GX + u0;
            FR_FN(fr_vadd2)(gr, xp, bias + u0, nu);
            FR_FN(fr_vadd2)(gu, FR_OFF(xp, U), bias + U + u0, nu);
            FR_FN(fr_vsigmoid)(gr, nu);
            FR_FN(fr_vsigmoid)(gu, nu);
            if (crb) { /* the whole step: cand = act(xc + cb + r * (h.Wc_h + rb)), h' */
                const FR_T *restrict cb = (const FR_T *)L->cand_bias + u0;
                const FR_T *restrict hr = h + p * HLD + u0;
                const FR_T *restrict xc = fused ? rh + p * U + u0 : xproj + row * GX + GU + u0;
                FR_T *restrict cr = cand + p * U + u0;
                FR_T *restrict hnr = hn + p * HLD + u0;
                for (j = 0; j < nu; ++j)
                    cr[j] = (xc[j] + cb[j]) + gr[j] * (cr[j] + crb[j]);
                FR_FN(fr_vact)(cr, nu, act);
                for (j = 0; j < nu; ++j)
                    hnr[j] = gu[j] * hr[j] + ((FR_T)1 - gu[j]) * cr[j];
                memcpy(out + row * P + u0, hnr, (size_t)nu * sizeof(FR_T));
            } else { /* TF1: rh = r .* h; the candidate needs every unit of rh (phase B) */
                const FR_T *restrict hr = h + p * HLD + u0;
                FR_T *restrict rr = rh + p * U + u0;
                for (j = 0; j < nu; ++j)
                    rr[j] = gr[j] * hr[j];
            }
        }
    }
}

/* Phase B of step t (only where a product needs every unit of phase A):
 *   TF1 GRU: chunk = units [u0,u1): cand = rh . Wc_h, then h' = u*h + (1-u)*act(...);
 *   projected LSTM: chunk = output columns [r0,r1): h' = clip(m . P), output. */
static void FR_FN(fr_chunk_step_b)(void *arg, ptrdiff_t chunk, int tid)
{
    const FR_FN(fr_ctx) *cx = (const FR_FN(fr_ctx) *)arg;
    FR_FN(fr_job) *job = cx->job;
    FR_LAYOUT(job);
    const ptrdiff_t t = cx->t, p0 = cx->p0, p1 = cx->p1;
    const FR_T *h = cx->h;
    FR_T *hn = cx->hn;
    const ptrdiff_t n = L->cell == FR_CELL_GRU ? U : P;
    const ptrdiff_t k0 = cx->whole ? 0 : chunk * FR_PG_NR;
    const ptrdiff_t k1 = cx->whole || k0 + FR_PG_NR > n ? n : k0 + FR_PG_NR, nk = k1 - k0;
    ptrdiff_t p, j;
    (void)tid, (void)c;
    if (L->cell == FR_CELL_GRU) {
        const FR_T *cb = (const FR_T *)L->cand_bias + k0;
        if (pl->fused) { /* cand = [x_t | rh] . Wc as x . Wc_x, then += rh . Wc_h */
            FR_FN(fr_product)(job->blas, &job->cx, p0, p1, k0, k1, h - pl->hoff, HLD, cand, U, 0);
            FR_FN(fr_product)(job->blas, &job->ch, p0, p1, k0, k1, rh, U, cand, U, 1);
        } else {
            FR_FN(fr_product)(job->blas, &job->ch, p0, p1, k0, k1, rh, U, cand, U, 0);
        }
        for (p = p0; p < p1; ++p) {
            const ptrdiff_t row = FR_ROW(p);
            const FR_T *restrict u = gates + p * GU + U + k0;
            const FR_T *restrict hr = h + p * HLD + k0;
            FR_T *restrict cr = cand + p * U + k0;
            FR_T *restrict hnr = hn + p * HLD + k0;
            FR_FN(fr_vadd2)(cr, pl->fused ? NULL : xproj + row * GX + GU + k0, cb, nk);
            FR_FN(fr_vact)(cr, nk, L->activation);
            for (j = 0; j < nk; ++j)
                hnr[j] = u[j] * hr[j] + ((FR_T)1 - u[j]) * cr[j];
            memcpy(out + row * P + k0, hnr, (size_t)nk * sizeof(FR_T));
        }
    } else {
        const int has_pclip = L->has_proj_clip != 0;
        const FR_T pclip = (FR_T)L->proj_clip;
        FR_FN(fr_product)(job->blas, &job->mats[FR_MAT_PROJ], p0, p1, k0, k1, mbuf, U, hn, HLD, 0);
        for (p = p0; p < p1; ++p) {
            FR_T *hr = hn + p * HLD + k0;
            if (has_pclip)
                FR_FN(fr_vclip)(hr, nk, pclip);
            memcpy(out + FR_ROW(p) * P + k0, hr, (size_t)nk * sizeof(FR_T));
        }
    }
}

/* Phase "final", chunk = a block of FR_FINAL_ROWS sorted rows: zero the outputs
 * past each row's length (TF: reverse_sequence leaves positions >= len in place,
 * and those outputs are zero) and scatter the final state back to the caller's
 * row order (row p's last h is in hbuf[slen[p] % 2]). */
#define FR_FINAL_ROWS 16
static void FR_FN(fr_chunk_final)(void *arg, ptrdiff_t chunk, int tid)
{
    FR_FN(fr_job) *job = ((FR_FN(fr_ctx) *)arg)->job;
    FR_LAYOUT(job);
    FR_T *hbuf[2];
    const ptrdiff_t p1 = (chunk + 1) * FR_FINAL_ROWS < B ? (chunk + 1) * FR_FINAL_ROWS : B;
    ptrdiff_t p, t;
    (void)tid, (void)xproj, (void)gates, (void)mbuf, (void)rh, (void)cand, (void)reverse, (void)GU,
        (void)GX;
    hbuf[0] = (FR_T *)(void *)(base + pl->off_h) + pl->hoff;
    hbuf[1] = (FR_T *)(void *)(base + pl->off_h2) + pl->hoff;
    for (p = chunk * FR_FINAL_ROWS; p < p1; ++p) {
        for (t = slen[p]; t < T; ++t) {
            const ptrdiff_t row = FR_XROW(p, t); /* padding is never reversed */
            memset(out + row * P, 0, (size_t)P * sizeof(FR_T));
        }
        memcpy((FR_T *)S->h_final + perm[p] * P, hbuf[slen[p] % 2] + p * HLD, (size_t)P * sizeof(FR_T));
        if (L->cell == FR_CELL_LSTM)
            memcpy((FR_T *)S->c_final + perm[p] * U, c + p * U, (size_t)U * sizeof(FR_T));
    }
}

/* The recurrence of the rows [p0, p1) (sorted, descending lengths) over the shrinking
 * prefix still running; h double-buffered so that a step reads hbuf[t % 2] whole while
 * it writes the other.
 *   cur != NULL (column split): every thread of the job runs this together, and each
 *     phase of a step is shared out through the queue, a panel of units per chunk.
 *   cur == NULL (a row group): the calling thread runs every phase alone as one call
 *     over all units (a panel at a time in the product, then the pointwise pass over
 *     whole rows).  Measured against alternating product and pointwise pass per panel,
 *     whose short loops cost more than they keep hot (medians, one process, 2 threads):
 *     LSTM batch 16 9.1 vs 9.8 ms, float64 18.7 vs 21.2, batch 64 65.0 vs 68.2, ragged
 *     batch 64 37.2 vs 40.5. */
static void FR_FN(fr_run_steps)(FR_FN(fr_ctx) *cx, ptrdiff_t p0, ptrdiff_t p1, fr_cursor *cur, int tid)
{
    FR_FN(fr_job) *job = cx->job;
    const ptrdiff_t *slen = (const ptrdiff_t *)(void *)(job->base + job->pl->off_slen);
    ptrdiff_t t;
    cx->p0 = p0;
    cx->p1 = p1;
    cx->whole = cur == NULL;
    for (t = 0; t < job->S->time; ++t) {
        cx->p1 = FR_FN(fr_active)(slen, p0, cx->p1, t);
        if (cx->p1 == p0)
            break;
        cx->t = t;
        cx->h = job->hbuf[t % 2];
        cx->hn = job->hbuf[(t + 1) % 2];
        if (cur) {
            fr_queue_phase(&job->queue, cur, tid, job->na, FR_FN(fr_chunk_step_a), cx);
            if (job->nb > 0)
                fr_queue_phase(&job->queue, cur, tid, job->nb, FR_FN(fr_chunk_step_b), cx);
        } else {
            FR_FN(fr_chunk_step_a)(cx, 0, tid);
            if (job->nb > 0)
                FR_FN(fr_chunk_step_b)(cx, 0, tid);
        }
    }
}

/* Phase "recurrence" of the row-split schedule: chunk = row group g, all its steps. */
static void FR_FN(fr_chunk_group)(void *arg, ptrdiff_t chunk, int tid)
{
    FR_FN(fr_ctx) cx = *(const FR_FN(fr_ctx) *)arg; /* this group's own step state */
    const ptrdiff_t B = cx.job->S->batch, ng = cx.job->groups;
    FR_FN(fr_run_steps)(&cx, FR_FN(fr_group_lo)(B, ng, chunk), FR_FN(fr_group_lo)(B, ng, chunk + 1), NULL,
                        tid);
}

/* The whole layer call, run by every thread of the job (the same phase sequence).
 * The recurrence has two schedules:
 *   column split (groups == 0): every step is a phase whose chunks are panels of
 *     units, so each core keeps its part of the weights in cache; a phase ends when
 *     all its chunks are done, so the threads meet at every step.
 *   row split (groups >= 1): the sorted rows are dealt to the groups in turn (each
 *     gets a similar share of every length) and each group runs all its steps as one
 *     chunk, on one thread, with no meeting point until the end (ONNX Runtime's way).
 *     Each core then reads all the weights at every step, from L3 when they exceed
 *     its L2; measured to pay once every group has a full register tile of rows.
 *     A call on one thread is one group: each step's phases then run over whole rows
 *     (see fr_run_steps) instead of panel by panel. */
static void FR_FN(fr_forward_task)(void *arg, int tid, int nthreads)
{
    FR_FN(fr_job) *job = (FR_FN(fr_job) *)arg;
    const fr_plan *pl = job->pl;
    const ptrdiff_t B = job->S->batch;
    FR_FN(fr_ctx) cx;
    fr_cursor cur;
    /* Denormals flushed to zero while the layer runs, as in TensorFlow's CPU kernels: a
     * state decaying towards zero would otherwise cost a microcode assist per operation
     * on many x86 cores (measured here, AMD EPYC: +4% for an LSTM whose outputs were
     * half subnormal; Intel cores are known to slow down far more). */
    const unsigned fp_saved = fr_fp_flush_denormals();
    (void)nthreads;

    fr_cursor_init(&cur, job->queue.nowners);
    memset(&cx, 0, sizeof cx);
    cx.job = job;

    fr_queue_phase(&job->queue, &cur, tid, 1, FR_FN(fr_chunk_sort), &cx);
    if ((job->blas == NULL || job->blas->products == FR_PRODUCTS_PACKED) && !pl->prepacked)
        fr_queue_phase(&job->queue, &cur, tid, FR_FN(fr_pack_chunks)(job), FR_FN(fr_chunk_pack), &cx);
    /* the input projection of all time steps, outside the recurrence (hoisted mode) */
    if (!pl->fused)
        fr_queue_phase(&job->queue, &cur, tid, job->xproj_chunks, FR_FN(fr_chunk_xproj), &cx);

    /* the recurrence: one chunk per row group, or every step shared out by panels */
    if (job->groups > 0)
        fr_queue_phase(&job->queue, &cur, tid, job->groups, FR_FN(fr_chunk_group), &cx);
    else
        FR_FN(fr_run_steps)(&cx, 0, B, &cur, tid);
    fr_queue_phase(&job->queue, &cur, tid, (B + FR_FINAL_ROWS - 1) / FR_FINAL_ROWS, FR_FN(fr_chunk_final),
                   &cx);
    fr_fp_restore(fp_saved);
}

/* Called once the job's thread count is known, before any thread starts. */
static void FR_FN(fr_forward_prepare)(void *arg, int nthreads)
{
    FR_FN(fr_job) *job = (FR_FN(fr_job) *)arg;
    const ptrdiff_t B = job->S->batch;
    fr_queue_init(&job->queue, nthreads);
    /* input-projection chunks: FR_PROJ_ROWS rows, or fewer (whole register tiles) when
     * that leaves under 4 chunks per thread -- a batch-1 sequence of 100 steps made 2
     * chunks of 64 and 36 rows, one per thread */
    {
        const ptrdiff_t rows = B * job->S->time, per = (rows + 4 * nthreads - 1) / (4 * nthreads);
        job->proj_rows = (per + FR_MR - 1) / FR_MR * FR_MR;
        if (job->proj_rows > FR_PROJ_ROWS)
            job->proj_rows = FR_PROJ_ROWS;
        if (job->proj_rows < FR_MR)
            job->proj_rows = FR_MR;
    }
    if (job->pl->schedule == FR_SCHED_ROWS) /* forced: as many groups as rows allow */
        job->groups = nthreads < B ? nthreads : B;
    else if (job->pl->schedule == FR_SCHED_AUTO && nthreads == 1)
        job->groups = 1; /* one thread: whole-row phases, no meeting points */
    else if (job->pl->schedule == FR_SCHED_AUTO && B >= (ptrdiff_t)nthreads * FR_MR)
        job->groups = nthreads; /* a full register tile of rows per group */
    else
        job->groups = 0;
}

#undef FR_ROW
#undef FR_ROW_AT
#undef FR_XROW
#undef FR_LAYOUT
#undef FR_PROJ_ROWS
#undef FR_FINAL_ROWS

/* The weight matrices of layer L (kernel rows: inputs first, then the recurrent
 * state), their packed copies not yet placed. */
static void FR_FN(fr_init_mats)(const fr_layer *L, int has_proj, FR_FN(fr_mat) *mats)
{
    const ptrdiff_t D = L->depth, U = L->units, P = L->proj;
    const ptrdiff_t G = L->cell == FR_CELL_LSTM ? 4 : L->cell == FR_CELL_GRU ? 2 : 1;
    const FR_T *kernel = (const FR_T *)L->kernel;
    const FR_T *cand_kernel = (const FR_T *)L->cand_kernel;
    const int gru = L->cell == FR_CELL_GRU;
    const size_t pad = FR_PACK_ALIGN_BYTES / sizeof(FR_T);
    const ptrdiff_t Upad = (ptrdiff_t)(((size_t)U + pad - 1) / pad * pad);
    mats[FR_MAT_XH] = (FR_FN(fr_mat)){kernel, G * U, D + P, U, G, NULL, D + P, (D + P) * Upad};
    mats[FR_MAT_C] = (FR_FN(fr_mat)){cand_kernel, U, D + U, gru ? U : 0, 1, NULL, D + U, 0};
    mats[FR_MAT_PROJ] = (FR_FN(fr_mat)){(const FR_T *)L->proj_kernel, P, U, has_proj ? P : 0, 1, NULL, U, 0};
}

/* fr_pack_weights for this ISA: every matrix at its offset in `buf`. */
void FR_ENTRY(fr_pack_weights)(const fr_layer *L, int has_proj, char *buf, const size_t *off)
{
    FR_FN(fr_mat) mats[FR_NMATS];
    int mi;
    ptrdiff_t g;
    FR_FN(fr_init_mats)(L, has_proj, mats);
    for (mi = 0; mi < FR_NMATS; ++mi) {
        FR_FN(fr_mat) *m = &mats[mi];
        m->packed = (FR_T *)(void *)(buf + off[mi]);
        for (g = 0; g < m->blocks && m->N > 0; ++g)
            FR_FN(fr_pack_b)(m->K, m->N, m->w + g * m->N, m->ld, m->packed + g * m->bstride);
    }
}

void FR_ENTRY(fr_forward)(const fr_layer *L, const fr_seq *S, char *base, const fr_plan *pl,
                          const fr_blas *blas)
{
    FR_FN(fr_job) job;
    const ptrdiff_t B = S->batch, T = S->time, D = L->depth, U = L->units, P = L->proj;
    const ptrdiff_t G = pl->G;
    /* flops of the whole call, to decide whether threads pay off */
    const double work = 2.0 * (double)B * (double)T * (double)(D + P) *
                        (double)(G * U + (L->cell == FR_CELL_GRU ? U : 0));
    int nthreads, mi;

    if (B == 0) /* nothing to read or write */
        return;
    memset(&job, 0, sizeof job);
    job.L = L;
    job.S = S;
    job.pl = pl;
    job.blas = blas;
    job.base = base;
    FR_FN(fr_init_mats)(L, pl->has_proj, job.mats);
    for (mi = 0; mi < FR_NMATS; ++mi)
        job.mats[mi].packed = pl->prepacked ? (FR_T *)(void *)(pl->prepacked + pl->pre_off[mi])
                                            : (FR_T *)(void *)(base + pl->off_pack[mi]);
    job.wx = FR_FN(fr_mat_rows)(&job.mats[FR_MAT_XH], 0, D);
    job.wh = FR_FN(fr_mat_rows)(&job.mats[FR_MAT_XH], D, D + P);
    job.cx = FR_FN(fr_mat_rows)(&job.mats[FR_MAT_C], 0, D);
    job.ch = FR_FN(fr_mat_rows)(&job.mats[FR_MAT_C], D, D + U);
    job.hbuf[0] = (FR_T *)(void *)(base + pl->off_h) + pl->hoff;
    job.hbuf[1] = (FR_T *)(void *)(base + pl->off_h2) + pl->hoff;
    job.na = (U + FR_PG_NR - 1) / FR_PG_NR;
    job.nb = (L->cell == FR_CELL_GRU && !L->cand_recurrent_bias) ? job.na
             : pl->has_proj                                       ? (P + FR_PG_NR - 1) / FR_PG_NR
                                                                  : 0;

    /* small calls run on the caller's thread alone, unless a schedule is forced */
    nthreads = work < 4e6 && pl->schedule == FR_SCHED_AUTO ? 1 : fr_get_num_threads();
    fr_parallel_run(FR_FN(fr_forward_task), FR_FN(fr_forward_prepare), &job, nthreads);
}

#undef FR_PG_VL
#undef FR_PG_NR
