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
 * W_h (proj or units rows)], so W_x = kernel and W_h = kernel + depth*ncols,
 * both with leading dimension ncols -- no weight copies.  x/out row of (t, b)
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

/* z += a + b */
static void FR_FN(fr_vadd2)(FR_T *restrict z, const FR_T *restrict a, const FR_T *restrict b,
                            ptrdiff_t n)
{
    ptrdiff_t j;
    for (j = 0; j < n; ++j)
        z[j] += a[j] + b[j];
}

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
 * ld) and, in packed mode, its panels in the workspace.  W_h is kept as G blocks
 * (one per gate, N = units each) so that threads can take the same unit range of
 * every gate: block g, columns [n0, n1) is source columns g*N + [n0, n1). */
typedef struct {
    const FR_T *w;
    ptrdiff_t ld, K, N, blocks;
    FR_T *packed;
    ptrdiff_t bstride; /* packed elements per block */
} FR_FN(fr_mat);

/* Pack panels [q0, q1) (of every block) of a matrix: the threads of a job split them. */
static void FR_FN(fr_pack_part)(const FR_FN(fr_mat) *m, int tid, int nthreads)
{
    const ptrdiff_t np = (m->N + FR_PG_NR - 1) / FR_PG_NR;
    const ptrdiff_t q0 = np * tid / nthreads, q1 = np * (tid + 1) / nthreads;
    ptrdiff_t g;
    if (m->N == 0 || q0 >= q1)
        return;
    for (g = 0; g < m->blocks; ++g)
        FR_FN(fr_pack_b)(m->K, (q1 * FR_PG_NR < m->N ? q1 * FR_PG_NR : m->N) - q0 * FR_PG_NR,
                         m->w + g * m->N + q0 * FR_PG_NR, m->ld,
                         m->packed + g * m->bstride + q0 * FR_PG_NR * m->K);
}

/* C[r0:r1, g*N + n0 : g*N + n1] = A[r0:r1, :] . M[:, same] for every block g: the one
 * interface every product of the layer goes through (input projection: all columns,
 * a row range per thread; step products: all active rows, a column range per thread).
 * n0 must be a multiple of the panel width FR_PG_NR. */
static void FR_FN(fr_product)(const fr_blas *blas, const FR_FN(fr_mat) *m, ptrdiff_t r0, ptrdiff_t r1,
                              ptrdiff_t n0, ptrdiff_t n1, const FR_T *a, ptrdiff_t lda, FR_T *c,
                              ptrdiff_t ldc)
{
    ptrdiff_t g;
    if (r1 <= r0 || n1 <= n0)
        return;
    for (g = 0; g < m->blocks; ++g) {
        FR_T *cg = c + g * m->N;
        if (blas == NULL || blas->products == FR_PRODUCTS_PACKED)
            FR_FN(fr_pgemm)(r0, r1, n0, n1, m->K, a, lda, m->packed + g * m->bstride, cg, ldc);
        else
            FR_FN(fr_gemm_rm)(blas, (int)(r1 - r0), (int)(n1 - n0), (int)m->K, (FR_T)1, a + r0 * lda,
                              (int)lda, m->w + g * m->N + n0, (int)m->ld, (FR_T)0,
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
    int rec_panels;    /* panels of units: at most this many threads share the recurrence */
    int rec_threads;   /* threads that share the recurrence (by unit ranges) */
    fr_barrier all;    /* every thread of the job */
    fr_barrier rec;    /* the recurrence's threads */
} FR_FN(fr_job);

/* [lo, hi) of n items in panels of FR_PG_NR, share `tid` of `nt` (lo a panel multiple). */
static void FR_FN(fr_panel_share)(ptrdiff_t n, int tid, int nt, ptrdiff_t *lo, ptrdiff_t *hi)
{
    const ptrdiff_t np = (n + FR_PG_NR - 1) / FR_PG_NR;
    *lo = np * tid / nt * FR_PG_NR;
    *hi = np * (tid + 1) / nt * FR_PG_NR;
    if (*hi > n)
        *hi = n;
    if (*lo > n)
        *lo = n;
}

/* Called once the job's thread count is known, before any thread starts. */
static void FR_FN(fr_forward_prepare)(void *arg, int nthreads)
{
    FR_FN(fr_job) *job = (FR_FN(fr_job) *)arg;
    job->rec_threads = job->rec_panels < nthreads ? job->rec_panels : nthreads;
    if (job->rec_threads < 1)
        job->rec_threads = 1;
    fr_barrier_init(&job->all, nthreads);
    fr_barrier_init(&job->rec, job->rec_threads);
}

static void FR_FN(fr_forward_task)(void *arg, int tid, int nthreads)
{
    FR_FN(fr_job) *job = (FR_FN(fr_job) *)arg;
    const fr_layer *L = job->L;
    const fr_seq *S = job->S;
    const fr_plan *pl = job->pl;
    const fr_blas *blas = job->blas;
    char *base = job->base;
    const FR_FN(fr_mat) *mats = job->mats;
    const ptrdiff_t B = S->batch, T = S->time;
    const ptrdiff_t D = L->depth, U = L->units, P = L->proj;
    const ptrdiff_t GU = pl->G * L->units, GX = pl->GX;
    const int cell = L->cell, act = L->activation;
    const int time_major = S->time_major != 0, reverse = S->reverse != 0;
    const int64_t *lengths = S->lengths;

    const FR_T *x = (const FR_T *)S->x;
    FR_T *out = (FR_T *)S->out;
    const FR_T *bias = (const FR_T *)L->bias;

    ptrdiff_t *perm = (ptrdiff_t *)(void *)(base + pl->off_perm);
    ptrdiff_t *slen = (ptrdiff_t *)(void *)(base + pl->off_slen);
    ptrdiff_t *count = (ptrdiff_t *)(void *)(base + pl->off_count);
    FR_T *xproj = (FR_T *)(void *)(base + pl->off_xproj);
    FR_T *hbuf[2];
    FR_T *c = (FR_T *)(void *)(base + pl->off_c);
    FR_T *gates = (FR_T *)(void *)(base + pl->off_gates);
    FR_T *mbuf = (FR_T *)(void *)(base + pl->off_mbuf);
    FR_T *rh = (FR_T *)(void *)(base + pl->off_rh);
    FR_T *cand = (FR_T *)(void *)(base + pl->off_cand);

    ptrdiff_t b, p, t, l, j, nact, u0, u1, r0, r1;
    int mi;

    hbuf[0] = (FR_T *)(void *)(base + pl->off_h);
    hbuf[1] = (FR_T *)(void *)(base + pl->off_h2);

    /* 1. Thread 0: stable counting sort of the rows by length, descending, and the
     *    initial state gathered into that order (hbuf[0]).  All: pack the weights. */
    if (tid == 0) {
        for (l = 0; l <= T; ++l)
            count[l] = 0;
        for (b = 0; b < B; ++b)
            count[lengths ? (ptrdiff_t)lengths[b] : T] += 1;
        {
            ptrdiff_t pos = 0;
            for (l = T; l >= 0; --l) {
                const ptrdiff_t n = count[l];
                count[l] = pos;
                pos += n;
            }
        }
        for (b = 0; b < B; ++b) {
            const ptrdiff_t len = lengths ? (ptrdiff_t)lengths[b] : T;
            p = count[len]++;
            perm[p] = b;
            slen[p] = len;
        }
        for (p = 0; p < B; ++p) {
            memcpy(hbuf[0] + p * P, (const FR_T *)S->h0 + perm[p] * P, (size_t)P * sizeof(FR_T));
            if (cell == FR_CELL_LSTM)
                memcpy(c + p * U, (const FR_T *)S->c0 + perm[p] * U, (size_t)U * sizeof(FR_T));
        }
    }
    if (blas == NULL || blas->products == FR_PRODUCTS_PACKED) {
        for (mi = 0; mi < FR_NMATS; ++mi)
            FR_FN(fr_pack_part)(&mats[mi], tid, nthreads);
    }
    fr_barrier_wait(&job->all);

    /* 2. The input projection of all time steps, outside the recurrence: one GEMM,
     *    its rows split between the threads. */
    r0 = B * T * tid / nthreads;
    r1 = B * T * (tid + 1) / nthreads;
    FR_FN(fr_product)(blas, &mats[FR_MAT_X], r0, r1, 0, GU, x, D, xproj, GX);
    if (cell == FR_CELL_GRU) /* candidate input kernel, columns [2U, 3U) */
        FR_FN(fr_product)(blas, &mats[FR_MAT_XC], r0, r1, 0, U, x, D, xproj + GU, GX);
    fr_barrier_wait(&job->all);

    /* 3. The recurrence over the shrinking prefix of active rows.  Each of the
     *    rec_threads threads owns the units [u0, u1) of every gate (and, for a
     *    projection, the output columns [r0, r1)); h is double-buffered so that a
     *    step reads hbuf[t % 2] whole while the threads write their parts of the
     *    other; one barrier ends each step (plus one before a product that needs
     *    every unit: GRU's (r*h).Wc_h, the projection).  FR_ROW(p) is the x/out
     *    row of sorted row p at step t (reversed within its length). */
#define FR_ROW(p) (time_major ? (reverse ? slen[p] - 1 - t : t) * B + perm[p] \
                              : perm[p] * T + (reverse ? slen[p] - 1 - t : t))
    if (tid < job->rec_threads) {
        const int nt = job->rec_threads;
        const ptrdiff_t nu = (FR_FN(fr_panel_share)(U, tid, nt, &u0, &u1), u1 - u0);
        FR_FN(fr_panel_share)(P, tid, nt, &r0, &r1);
        nact = B;
        for (t = 0; t < T; ++t) {
            const FR_T *h = hbuf[t % 2];
            FR_T *hn = hbuf[(t + 1) % 2];
            while (nact > 0 && slen[nact - 1] <= t)
                --nact;
            if (nact == 0)
                break;

            /* gates[0:nact, g*U + [u0,u1)] = h[0:nact, :] . W_h, every gate g */
            FR_FN(fr_product)(blas, &mats[FR_MAT_H], 0, nact, u0, u1, h, P, gates, GU);

            if (cell == FR_CELL_RNN) {
                for (p = 0; p < nact; ++p) {
                    const ptrdiff_t row = FR_ROW(p);
                    FR_T *g = gates + p * GU + u0;
                    FR_FN(fr_vadd2)(g, xproj + row * GX + u0, bias + u0, nu);
                    FR_FN(fr_vact)(g, nu, act);
                    memcpy(hn + p * P + u0, g, (size_t)nu * sizeof(FR_T));
                    memcpy(out + row * P + u0, g, (size_t)nu * sizeof(FR_T));
                }
            } else if (cell == FR_CELL_LSTM) {
                const FR_T fb = (FR_T)L->forget_bias;
                const FR_T cclip = (FR_T)L->cell_clip;
                const int has_cclip = L->has_cell_clip != 0;
                const int has_proj = pl->has_proj;
                const FR_T *wi = L->w_i_diag ? (const FR_T *)L->w_i_diag + u0 : NULL;
                const FR_T *wf = L->w_f_diag ? (const FR_T *)L->w_f_diag + u0 : NULL;
                const FR_T *wo = L->w_o_diag ? (const FR_T *)L->w_o_diag + u0 : NULL;
                const int peep = wi != NULL;

                for (p = 0; p < nact; ++p) {
                    const ptrdiff_t row = FR_ROW(p);
                    FR_T *restrict gi = gates + p * GU + u0; /* gate blocks i | j | f | o */
                    FR_T *restrict gj = gi + U;
                    FR_T *restrict gf = gi + 2 * U;
                    FR_T *restrict go = gi + 3 * U;
                    const FR_T *xp = xproj + row * GX + u0;
                    FR_T *restrict cr = c + p * U + u0;
                    FR_T *restrict mr = has_proj ? mbuf + p * U + u0 : hn + p * P + u0;
                    FR_FN(fr_vadd2)(gi, xp, bias + u0, nu);
                    FR_FN(fr_vadd2)(gj, xp + U, bias + U + u0, nu);
                    FR_FN(fr_vadd2)(gf, xp + 2 * U, bias + 2 * U + u0, nu);
                    FR_FN(fr_vadd2)(go, xp + 3 * U, bias + 3 * U + u0, nu);
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

                if (has_proj) {
                    /* hn[0:nact, [r0,r1)] = mbuf[0:nact, :] . proj_kernel, clip, output */
                    const int has_pclip = L->has_proj_clip != 0;
                    const FR_T pclip = (FR_T)L->proj_clip;
                    fr_barrier_wait(&job->rec);
                    FR_FN(fr_product)(blas, &mats[FR_MAT_PROJ], 0, nact, r0, r1, mbuf, U, hn, P);
                    for (p = 0; p < nact; ++p) {
                        FR_T *hr = hn + p * P + r0;
                        if (has_pclip)
                            FR_FN(fr_vclip)(hr, r1 - r0, pclip);
                        memcpy(out + FR_ROW(p) * P + r0, hr, (size_t)(r1 - r0) * sizeof(FR_T));
                    }
                }
            } else { /* FR_CELL_GRU */
                const FR_T *cb = (const FR_T *)L->cand_bias + u0;
                const FR_T *crb = L->cand_recurrent_bias ? (const FR_T *)L->cand_recurrent_bias + u0 : NULL;

                /* reset-after: cand[0:nact, [u0,u1)] = h . Wc_h, before the reset gate
                 * (from the same h as the gates: no barrier in between) */
                if (crb)
                    FR_FN(fr_product)(blas, &mats[FR_MAT_HC], 0, nact, u0, u1, h, P, cand, U);

                /* r, u = sigmoid(...) in place in the gates row; TF1: rh = r .* h */
                for (p = 0; p < nact; ++p) {
                    const ptrdiff_t row = FR_ROW(p);
                    FR_T *restrict gr = gates + p * GU + u0;
                    FR_T *restrict gu = gr + U;
                    const FR_T *restrict hr = h + p * P + u0;
                    FR_T *restrict rr = rh + p * U + u0;
                    FR_FN(fr_vadd2)(gr, xproj + row * GX + u0, bias + u0, nu);
                    FR_FN(fr_vadd2)(gu, xproj + row * GX + U + u0, bias + U + u0, nu);
                    FR_FN(fr_vsigmoid)(gr, nu);
                    FR_FN(fr_vsigmoid)(gu, nu);
                    if (crb) { /* cand = r * (h.Wc_h + recurrent bias), the product's part */
                        FR_T *restrict cr = cand + p * U + u0;
                        for (j = 0; j < nu; ++j)
                            cr[j] = gr[j] * (cr[j] + crb[j]);
                    } else {
                        for (j = 0; j < nu; ++j)
                            rr[j] = gr[j] * hr[j];
                    }
                }
                if (!crb) {
                    /* TF1: cand[0:nact, [u0,u1)] = rh[0:nact, :] . Wc_h needs every unit of rh */
                    fr_barrier_wait(&job->rec);
                    FR_FN(fr_product)(blas, &mats[FR_MAT_HC], 0, nact, u0, u1, rh, U, cand, U);
                }

                for (p = 0; p < nact; ++p) {
                    const ptrdiff_t row = FR_ROW(p);
                    const FR_T *restrict u = gates + p * GU + U + u0;
                    const FR_T *restrict hr = h + p * P + u0;
                    FR_T *restrict cr = cand + p * U + u0;
                    FR_T *restrict hnr = hn + p * P + u0;
                    FR_FN(fr_vadd2)(cr, xproj + row * GX + GU + u0, cb, nu);
                    FR_FN(fr_vact)(cr, nu, act);
                    for (j = 0; j < nu; ++j)
                        hnr[j] = u[j] * hr[j] + ((FR_T)1 - u[j]) * cr[j];
                    memcpy(out + row * P + u0, hnr, (size_t)nu * sizeof(FR_T));
                }
            }
            fr_barrier_wait(&job->rec);
        }
    }
#undef FR_ROW
    fr_barrier_wait(&job->all);

    /* 4. Zero the output rows past each row's length (TF: reverse_sequence leaves
     *    positions >= len in place, and those outputs are zero), and scatter the
     *    final state back to the caller's row order: row p's last state is in
     *    hbuf[slen[p] % 2].  Rows split between the threads. */
    for (p = B * tid / nthreads; p < B * (tid + 1) / nthreads; ++p) {
        for (t = slen[p]; t < T; ++t) {
            const ptrdiff_t row = time_major ? t * B + perm[p] : perm[p] * T + t;
            memset(out + row * P, 0, (size_t)P * sizeof(FR_T));
        }
        memcpy((FR_T *)S->h_final + perm[p] * P, hbuf[slen[p] % 2] + p * P, (size_t)P * sizeof(FR_T));
        if (cell == FR_CELL_LSTM)
            memcpy((FR_T *)S->c_final + perm[p] * U, c + p * U, (size_t)U * sizeof(FR_T));
    }
}

void FR_ENTRY(fr_forward)(const fr_layer *L, const fr_seq *S, char *base, const fr_plan *pl,
                          const fr_blas *blas)
{
    FR_FN(fr_job) job;
    const ptrdiff_t B = S->batch, T = S->time, D = L->depth, U = L->units, P = L->proj;
    const ptrdiff_t G = pl->G;
    const FR_T *kernel = (const FR_T *)L->kernel;
    const FR_T *cand_kernel = (const FR_T *)L->cand_kernel;
    const int gru = L->cell == FR_CELL_GRU;
    const size_t pad = FR_PACK_ALIGN_BYTES / sizeof(FR_T);
    const ptrdiff_t Upad = (ptrdiff_t)(((size_t)U + pad - 1) / pad * pad);
    /* flops of the whole call, to decide whether threads pay off */
    const double work = 2.0 * (double)B * (double)T * (double)(D + P) * (double)(G * U + (gru ? U : 0));
    int nthreads, mi;

    if (B == 0) /* nothing to read or write */
        return;
    memset(&job, 0, sizeof job);
    job.L = L;
    job.S = S;
    job.pl = pl;
    job.blas = blas;
    job.base = base;
    /* the weight matrices (kernel rows: inputs first, then the recurrent state) */
    job.mats[FR_MAT_X] = (FR_FN(fr_mat)){kernel, G * U, D, G * U, 1, NULL, 0};
    job.mats[FR_MAT_H] = (FR_FN(fr_mat)){kernel + D * G * U, G * U, P, U, G, NULL, P * Upad};
    job.mats[FR_MAT_XC] = (FR_FN(fr_mat)){cand_kernel, U, D, gru ? U : 0, 1, NULL, 0};
    job.mats[FR_MAT_HC] = (FR_FN(fr_mat)){gru ? cand_kernel + D * U : NULL, U, U, gru ? U : 0, 1, NULL, 0};
    job.mats[FR_MAT_PROJ] = (FR_FN(fr_mat)){(const FR_T *)L->proj_kernel, P, U, pl->has_proj ? P : 0, 1,
                                            NULL, 0};
    for (mi = 0; mi < FR_NMATS; ++mi)
        job.mats[mi].packed = (FR_T *)(void *)(base + pl->off_pack[mi]);

    nthreads = work < 4e6 ? 1 : fr_get_num_threads();
    if (nthreads > B * T && nthreads > 1)
        nthreads = B * T > 1 ? (int)(B * T) : 1;
    job.rec_panels = (int)((U + FR_PG_NR - 1) / FR_PG_NR);
    fr_parallel_run(FR_FN(fr_forward_task), FR_FN(fr_forward_prepare), &job, nthreads);
}

#undef FR_PG_VL
#undef FR_PG_NR
