/*
 * fr_step_impl.h -- the step driver of a recurrent layer: sorting, packing, the
 * input projection, the time loop and its thread schedules.  Template body included
 * per dtype by fr_forward_body.h (so compiled once per instruction set and dtype);
 * the includer defines FR_T, FR_SFX and FR_ENTRY (name -> name_<isa>_<sfx>).  The
 * cells' pointwise math is in fr_cells_impl.h, the products in fr_pgemm_impl.h.
 *
 * Design note
 * -----------
 * One call computes, in the layer's dtype (float math for float32, as TF does),
 * z = x.W_x + h.W_h (+ bias, added by the cell functions) per step, split into
 * `units`-wide gate blocks, for the rows still running, then the cell's update.
 *
 * Memory layout: all matrices row-major.  kernel = [W_x (depth rows); W_h (proj or
 * units rows)], packed once as a whole; W_x and W_h are views of its rows
 * (fr_mat_rows), and the fused mode multiplies [x_t | h] rows by all of it (see
 * fr_kernels.c, "How", 2).  The x/out row of (t, b) is t*batch+b (time-major) or
 * b*time+t (batch-major); xproj uses the same row numbering as x, so the big input
 * GEMM reads x as one [batch*time, depth] matrix whatever the majorness.  State
 * buffers (h, c, zbuf, ...) are in length-sorted order (see fr_kernels.c) so the
 * active rows of step t are the prefix [0, nact).  Row b at step s reads/writes time
 * index len[b]-1-s when reversed, s otherwise.
 */

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

/* The workspace of one call, typed (offsets: fr_plan, laid out in fr_kernels.c). */
typedef struct {
    ptrdiff_t *perm;   /* sorted position -> the caller's row */
    ptrdiff_t *slen;   /* length of the row at each sorted position */
    ptrdiff_t *count;  /* counting-sort buckets */
    ptrdiff_t *pchunk; /* input-projection chunks per row segment, cumulated */
    FR_T *xproj;       /* hoisted mode: x . W_x (and x . Wc_x), rows as in x */
    FR_T *xh[2];       /* the two state buffers, rows [x_t | h] (fused) or [h] (hoisted) */
    FR_T *h[2];        /* their h columns */
    FR_T *c;           /* LSTM cell state */
    FR_T *zbuf;        /* the step product: gate pre-activations [batch, G * units] */
    FR_T *mbuf;        /* projected LSTM: m before the projection */
    FR_T *rh;          /* GRU: r * h (reset-after, fused: x . Wc_x) */
    FR_T *cand;        /* GRU: the candidate's product */
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
        .zbuf = (FR_T *)(void *)(base + pl->off_zbuf),
        .mbuf = (FR_T *)(void *)(base + pl->off_mbuf),
        .rh = (FR_T *)(void *)(base + pl->off_rh),
        .cand = (FR_T *)(void *)(base + pl->off_cand),
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
    FR_FN(fr_mat) mats[FR_NMATS];
    /* views of rows of the kernels: the input rows and the recurrent rows */
    FR_FN(fr_mat) kern_x, kern_h, cand_x, cand_h;
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
    const FR_T *h;      /* recurrent state read by step t: buf.h[t % 2], rows of pl->hld */
    FR_T *hn;           /* ... and written by it: buf.h[(t + 1) % 2] */
} FR_FN(fr_phase);

/* C[r0:r1, g*N + n0 : g*N + n1] (acc: +)= A[r0:r1, :] . M[:, same] for every block g:
 * the one interface every product of the layer goes through (input projection: all
 * columns, a row range per thread; step products: all active rows, a column range per
 * thread).  n0 must be a multiple of the panel width FR_PG_NR. */
static void FR_FN(fr_product)(const FR_FN(fr_job) *job, const FR_FN(fr_mat) *m, ptrdiff_t r0, ptrdiff_t r1,
                              ptrdiff_t n0, ptrdiff_t n1, const FR_T *a, ptrdiff_t lda, FR_T *c,
                              ptrdiff_t ldc, int acc)
{
    ptrdiff_t g;
    if (r1 <= r0 || n1 <= n0)
        return;
    for (g = 0; g < m->blocks; ++g) {
        FR_T *cg = c + g * m->N;
        if (job->opt->gemm == FR_GEMM_PACKED)
            FR_FN(fr_pgemm)(r0, r1, n0, n1, m->K, a, lda, m->packed + g * m->bstride, m->kst, cg, ldc,
                            acc);
        else
            FR_FN(fr_gemm_rm)(job->opt->gemm == FR_GEMM_BLAS ? job->opt->blas : NULL, (int)(r1 - r0),
                              (int)(n1 - n0), (int)m->K, (FR_T)1, a + r0 * lda, (int)lda,
                              m->w + g * m->N + n0, (int)m->ld, (FR_T)(acc ? 1 : 0), cg + r0 * ldc + n0,
                              (int)ldc);
    }
}

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
 * step t into the x columns of their [x | h] rows in xh. */
static void FR_FN(fr_load_x)(const FR_FN(fr_job) *job, FR_T *xh, ptrdiff_t t, ptrdiff_t p0, ptrdiff_t p1)
{
    const ptrdiff_t D = job->L->depth, HLD = job->pl->hld;
    ptrdiff_t p;
    for (p = p0; p < p1; ++p)
        if (job->buf.slen[p] > t)
            memcpy(xh + p * HLD, job->x + FR_FN(fr_step_row)(job, p, t) * D, (size_t)D * sizeof(FR_T));
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
    for (p = 0; p < B; ++p) {
        memcpy(bf->h[0] + p * HLD, (const FR_T *)S->h0 + perm[p] * P, (size_t)P * sizeof(FR_T));
        if (job->L->cell == FR_CELL_LSTM)
            memcpy(bf->c + p * U, (const FR_T *)S->c0 + perm[p] * U, (size_t)U * sizeof(FR_T));
    }
    if (job->pl->fused) /* the inputs of step 0 */
        FR_FN(fr_load_x)(job, bf->xh[0], 0, 0, B);
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
    FR_FN(fr_job) *job = ((FR_FN(fr_phase) *)arg)->job;
    const fr_layer *L = job->L;
    const ptrdiff_t *cum = job->buf.pchunk;
    ptrdiff_t lo = 0, hi = job->nseg - 1, r0, r1, end;
    FR_T *xproj = job->buf.xproj;
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
    FR_FN(fr_product)(job, &job->kern_x, r0, r1, 0, L->units, job->x, L->depth, xproj, job->pl->GX, 0);
    if (L->cell == FR_CELL_GRU) /* candidate input kernel, columns [2U, 3U) */
        FR_FN(fr_product)(job, &job->cand_x, r0, r1, 0, L->units, job->x, L->depth,
                          xproj + job->pl->G * L->units, job->pl->GX, 0);
}

/* Fused mode: copy this chunk's share of the next step's inputs into the other [x | h]
 * buffer (which step t does not read: it writes only that buffer's h columns).
 * Hoisted mode: prefetch this chunk's input-projection values of the next step (xproj
 * is far larger than the caches and is read once per step): the product hides the
 * latency.  Measured: the first xproj read of the gate pass was 6% of an LSTM call
 * (batch 16, 256 units) before. */
static void FR_FN(fr_next_inputs)(const FR_FN(fr_phase) *ph, ptrdiff_t chunk, ptrdiff_t u0, ptrdiff_t nu)
{
    const FR_FN(fr_job) *job = ph->job;
    const ptrdiff_t t = ph->t, p0 = ph->p0, p1 = ph->p1, GX = job->pl->GX;
    const ptrdiff_t *slen = job->buf.slen;
    ptrdiff_t p, g, off;
    if (t + 1 >= job->S->time)
        return;
    if (job->pl->fused) {
        const ptrdiff_t nchunks = ph->whole ? 1 : job->na;
        const ptrdiff_t n = FR_FN(fr_active)(slen, p0, p1, t + 1) - p0;
        FR_FN(fr_load_x)(job, ph->hn - job->pl->hoff, t + 1, p0 + chunk * n / nchunks,
                         p0 + (chunk + 1) * n / nchunks);
        return;
    }
    for (p = p0; p < p1 && slen[p] > t + 1; ++p) {
        const FR_T *row = job->buf.xproj + FR_FN(fr_step_row)(job, p, t + 1) * GX + u0;
        for (g = 0; g < GX; g += job->L->units)
            for (off = 0; off < nu; off += 64 / (ptrdiff_t)sizeof(FR_T))
                __builtin_prefetch(row + g + off, 0, 3);
    }
}

/* Phase A of step t, chunk = a panel of units [u0, u1) of every gate (all units when
 * ph->whole): the step's product for those columns, then the cell's pointwise update
 * of those units for every active row (GRU: its gates, and the whole update when
 * reset-after; a projected LSTM: m, before the projection). */
static void FR_FN(fr_chunk_step_a)(void *arg, ptrdiff_t chunk, int tid)
{
    const FR_FN(fr_phase) *ph = (const FR_FN(fr_phase) *)arg;
    const FR_FN(fr_job) *job = ph->job;
    const FR_FN(fr_bufs) *bf = &job->buf;
    const FR_FN(fr_cell) *cell = &job->cell;
    const fr_layer *L = job->L;
    const ptrdiff_t U = L->units, P = L->proj, GU = job->pl->G * U, GX = job->pl->GX;
    const ptrdiff_t HLD = job->pl->hld, t = ph->t, p0 = ph->p0, p1 = ph->p1;
    const ptrdiff_t u0 = ph->whole ? 0 : chunk * FR_PG_NR;
    const ptrdiff_t u1 = ph->whole || u0 + FR_PG_NR > U ? U : u0 + FR_PG_NR, nu = u1 - u0;
    const int fused = job->pl->fused, has_proj = job->pl->has_proj;
    const FR_T *h = ph->h;
    const FR_T *xh = h - job->pl->hoff; /* fused mode: the [x_t | h] rows */
    FR_T *hn = ph->hn;
    ptrdiff_t p;
    (void)tid;

    FR_FN(fr_next_inputs)(ph, chunk, u0, nu);

    /* zbuf[p0:p1, g*U + [u0,u1)] = h . W_h (fused: [x_t | h] . kernel), every gate g */
    if (fused)
        FR_FN(fr_product)(job, &job->mats[FR_MAT_XH], p0, p1, u0, u1, xh, HLD, bf->zbuf, GU, 0);
    else
        FR_FN(fr_product)(job, &job->kern_h, p0, p1, u0, u1, h, HLD, bf->zbuf, GU, 0);
    if (L->cell == FR_CELL_GRU && cell->cand_rbias) {
        /* reset-after: the candidate's recurrent product h . Wc_h, before the reset gate
         * (same h as the gates); fused mode: x . Wc_x into rh (unused otherwise) */
        FR_FN(fr_product)(job, &job->cand_h, p0, p1, u0, u1, h, HLD, bf->cand, U, 0);
        if (fused)
            FR_FN(fr_product)(job, &job->cand_x, p0, p1, u0, u1, xh, HLD, bf->rh, U, 0);
    }

    for (p = p0; p < p1; ++p) {
        const ptrdiff_t row = FR_FN(fr_step_row)(job, p, t);
        const FR_T *xp = fused ? NULL : bf->xproj + row * GX;
        FR_T *z = bf->zbuf + p * GU;
        FR_T *out = job->out + row * P;
        if (L->cell == FR_CELL_RNN) {
            FR_FN(fr_rnn_row)(cell, z, xp, hn + p * HLD, u0, nu);
            memcpy(out + u0, hn + p * HLD + u0, (size_t)nu * sizeof(FR_T));
        } else if (L->cell == FR_CELL_LSTM) {
            FR_T *m = has_proj ? bf->mbuf + p * U : hn + p * HLD;
            FR_FN(fr_lstm_row)(cell, z, xp, bf->c + p * U, m, u0, nu);
            if (!has_proj)
                memcpy(out + u0, m + u0, (size_t)nu * sizeof(FR_T));
        } else if (cell->cand_rbias) { /* reset-after GRU: the whole step */
            const FR_T *xc = fused ? bf->rh + p * U : xp + GU;
            FR_FN(fr_gru_gates_row)(cell, z, xp, NULL, NULL, u0, nu);
            FR_FN(fr_gru_after_row)(cell, z, bf->cand + p * U, xc, h + p * HLD, hn + p * HLD, u0, nu);
            memcpy(out + u0, hn + p * HLD + u0, (size_t)nu * sizeof(FR_T));
        } else { /* TF1 GRU: gates and r * h; the candidate needs every unit of it (phase B) */
            FR_FN(fr_gru_gates_row)(cell, z, xp, h + p * HLD, bf->rh + p * U, u0, nu);
        }
    }
}

/* Phase B of step t (only where a product needs every unit of phase A):
 *   TF1 GRU: chunk = units [k0,k1): cand = (r*h) . Wc_h, then h' = u*h + (1-u)*act(...);
 *   projected LSTM: chunk = output columns [k0,k1): h' = clip(m . P), output. */
static void FR_FN(fr_chunk_step_b)(void *arg, ptrdiff_t chunk, int tid)
{
    const FR_FN(fr_phase) *ph = (const FR_FN(fr_phase) *)arg;
    const FR_FN(fr_job) *job = ph->job;
    const FR_FN(fr_bufs) *bf = &job->buf;
    const fr_layer *L = job->L;
    const ptrdiff_t U = L->units, P = L->proj, GU = job->pl->G * U, GX = job->pl->GX;
    const ptrdiff_t HLD = job->pl->hld, t = ph->t, p0 = ph->p0, p1 = ph->p1;
    const ptrdiff_t n = L->cell == FR_CELL_GRU ? U : P;
    const ptrdiff_t k0 = ph->whole ? 0 : chunk * FR_PG_NR;
    const ptrdiff_t k1 = ph->whole || k0 + FR_PG_NR > n ? n : k0 + FR_PG_NR, nk = k1 - k0;
    const FR_T *h = ph->h;
    FR_T *hn = ph->hn;
    ptrdiff_t p;
    (void)tid;
    if (L->cell == FR_CELL_GRU) {
        if (job->pl->fused) { /* cand = [x_t | rh] . Wc as x . Wc_x, then += rh . Wc_h */
            FR_FN(fr_product)(job, &job->cand_x, p0, p1, k0, k1, h - job->pl->hoff, HLD, bf->cand, U, 0);
            FR_FN(fr_product)(job, &job->cand_h, p0, p1, k0, k1, bf->rh, U, bf->cand, U, 1);
        } else {
            FR_FN(fr_product)(job, &job->cand_h, p0, p1, k0, k1, bf->rh, U, bf->cand, U, 0);
        }
        for (p = p0; p < p1; ++p) {
            const ptrdiff_t row = FR_FN(fr_step_row)(job, p, t);
            const FR_T *xc = job->pl->fused ? NULL : bf->xproj + row * GX + GU;
            FR_FN(fr_gru_cand_row)(&job->cell, bf->zbuf + p * GU, bf->cand + p * U, xc, h + p * HLD,
                                   hn + p * HLD, k0, nk);
            memcpy(job->out + row * P + k0, hn + p * HLD + k0, (size_t)nk * sizeof(FR_T));
        }
    } else {
        FR_FN(fr_product)(job, &job->mats[FR_MAT_PROJ], p0, p1, k0, k1, bf->mbuf, U, hn, HLD, 0);
        for (p = p0; p < p1; ++p) {
            FR_FN(fr_lstm_proj_row)(&job->cell, hn + p * HLD, k0, nk);
            memcpy(job->out + FR_FN(fr_step_row)(job, p, t) * P + k0, hn + p * HLD + k0,
                   (size_t)nk * sizeof(FR_T));
        }
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
 *     phase of a step is shared out through the queue, a panel of units per chunk.
 *   cur == NULL (a row group): the calling thread runs every phase alone as one call
 *     over all units (a panel at a time in the product, then the pointwise pass over
 *     whole rows).  Measured against alternating product and pointwise pass per panel,
 *     whose short loops cost more than they keep hot (medians, one process, 2 threads):
 *     LSTM batch 16 9.1 vs 9.8 ms, float64 18.7 vs 21.2, batch 64 65.0 vs 68.2, ragged
 *     batch 64 37.2 vs 40.5. */
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

#undef FR_PROJ_ROWS
#undef FR_FINAL_ROWS

/* The weight matrices of layer L (kernel rows: inputs first, then the recurrent
 * state), their packed copies not yet placed. */
static void FR_FN(fr_init_mats)(const fr_layer *L, int has_proj, FR_FN(fr_mat) *mats)
{
    const ptrdiff_t D = L->depth, U = L->units, P = L->proj, G = fr_cell_gates(L->cell);
    const int gru = L->cell == FR_CELL_GRU;
    const size_t pad = FR_PACK_ALIGN_BYTES / sizeof(FR_T);
    const ptrdiff_t Upad = (ptrdiff_t)(((size_t)U + pad - 1) / pad * pad);
    mats[FR_MAT_XH] = (FR_FN(fr_mat)){.w = (const FR_T *)L->kernel, .ld = G * U, .K = D + P, .N = U,
                                      .blocks = G, .kst = D + P, .bstride = (D + P) * Upad};
    mats[FR_MAT_C] = (FR_FN(fr_mat)){.w = (const FR_T *)L->cand_kernel, .ld = U, .K = D + U,
                                     .N = gru ? U : 0, .blocks = 1, .kst = D + U};
    mats[FR_MAT_PROJ] = (FR_FN(fr_mat)){.w = (const FR_T *)L->proj_kernel, .ld = P, .K = U,
                                        .N = has_proj ? P : 0, .blocks = 1, .kst = U};
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

void FR_ENTRY(fr_forward)(const fr_layer *L, const fr_seq *S, const fr_options *opt, char *base,
                          const fr_plan *pl)
{
    const ptrdiff_t B = S->batch, T = S->time, D = L->depth, U = L->units, P = L->proj;
    /* flops of the whole call, to decide whether threads pay off */
    const double work = 2.0 * (double)B * (double)T * (double)(D + P) *
                        (double)(pl->G * U + (L->cell == FR_CELL_GRU ? U : 0));
    FR_FN(fr_job) job = {
        .L = L,
        .S = S,
        .pl = pl,
        .opt = opt,
        .buf = FR_FN(fr_bufs_of)(base, pl),
        .cell = FR_FN(fr_cell_of)(L),
        .x = (const FR_T *)S->x,
        .out = (FR_T *)S->out,
        .na = (U + FR_PG_NR - 1) / FR_PG_NR,
    };
    int nthreads, mi;

    if (B == 0) /* nothing to read or write */
        return;
    FR_FN(fr_init_mats)(L, pl->has_proj, job.mats);
    for (mi = 0; mi < FR_NMATS; ++mi)
        job.mats[mi].packed = pl->prepacked ? (FR_T *)(void *)(pl->prepacked + pl->pre_off[mi])
                                            : (FR_T *)(void *)(base + pl->off_pack[mi]);
    job.kern_x = FR_FN(fr_mat_rows)(&job.mats[FR_MAT_XH], 0, D);
    job.kern_h = FR_FN(fr_mat_rows)(&job.mats[FR_MAT_XH], D, D + P);
    job.cand_x = FR_FN(fr_mat_rows)(&job.mats[FR_MAT_C], 0, D);
    job.cand_h = FR_FN(fr_mat_rows)(&job.mats[FR_MAT_C], D, D + U);
    job.nb = (L->cell == FR_CELL_GRU && !L->cand_recurrent_bias) ? job.na
             : pl->has_proj                                       ? (P + FR_PG_NR - 1) / FR_PG_NR
                                                                  : 0;

    /* small calls run on the caller's thread alone, unless a schedule is forced */
    nthreads = work < 4e6 && pl->schedule == FR_SCHED_AUTO ? 1 : opt->nthreads;
    fr_parallel_run(FR_FN(fr_forward_task), FR_FN(fr_forward_prepare), &job, nthreads);
}

#undef FR_PG_VL
#undef FR_PG_NR
