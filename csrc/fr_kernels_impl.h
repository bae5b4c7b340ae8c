/*
 * fr_kernels_impl.h -- template body of the recurrent-layer kernel, included
 * twice by fr_kernels.c (float -> *_f32, double -> *_f64).  No include guard
 * on purpose.  The includer defines FR_T, FR_SFX, FR_EXP, FR_TANH, FR_FABS
 * (the libm functions of the dtype) and the fr_plan type.
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
 *         cand  = act(x.Wc_x + (r*h).Wc_h + cand_bias)
 *         h'    = u*h + (1-u)*cand, output h'
 * sig(x) uses exp(-|x|), so it never overflows.
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

static FR_T FR_FN(fr_sigmoid)(FR_T x)
{
    const FR_T e = FR_EXP(-FR_FABS(x)); /* in (0, 1]: no overflow */
    return x >= (FR_T)0 ? (FR_T)1 / ((FR_T)1 + e) : e / ((FR_T)1 + e);
}

static FR_T FR_FN(fr_act)(FR_T x, int act)
{
    switch (act) {
    case FR_ACT_TANH:
        return FR_TANH(x);
    case FR_ACT_SIGMOID:
        return FR_FN(fr_sigmoid)(x);
    case FR_ACT_RELU:
        return x < (FR_T)0 ? (FR_T)0 : x; /* NaN propagates */
    default: /* FR_ACT_LINEAR */
        return x;
    }
}

/* clip_by_value(x, -lim, lim); NaN propagates */
static FR_T FR_FN(fr_clip)(FR_T x, FR_T lim)
{
    return x < -lim ? -lim : (x > lim ? lim : x);
}

static void FR_FN(fr_forward)(const fr_layer *L, const fr_seq *S, char *base,
                              const fr_plan *pl, const fr_blas *blas)
{
    const ptrdiff_t B = S->batch, T = S->time;
    const ptrdiff_t D = L->depth, U = L->units, P = L->proj;
    const ptrdiff_t GU = pl->G * L->units, GX = pl->GX;
    const int cell = L->cell, act = L->activation;
    const int time_major = S->time_major != 0, reverse = S->reverse != 0;
    const int64_t *lengths = S->lengths;

    const FR_T *x = (const FR_T *)S->x;
    FR_T *out = (FR_T *)S->out;
    const FR_T *kernel = (const FR_T *)L->kernel;
    const FR_T *bias = (const FR_T *)L->bias;
    const FR_T *w_h = kernel + D * GU; /* recurrent rows of the kernel */

    ptrdiff_t *perm = (ptrdiff_t *)(void *)(base + pl->off_perm);
    ptrdiff_t *slen = (ptrdiff_t *)(void *)(base + pl->off_slen);
    ptrdiff_t *count = (ptrdiff_t *)(void *)(base + pl->off_count);
    FR_T *xproj = (FR_T *)(void *)(base + pl->off_xproj);
    FR_T *h = (FR_T *)(void *)(base + pl->off_h);
    FR_T *c = (FR_T *)(void *)(base + pl->off_c);
    FR_T *gates = (FR_T *)(void *)(base + pl->off_gates);
    FR_T *mbuf = (FR_T *)(void *)(base + pl->off_mbuf);
    FR_T *rh = (FR_T *)(void *)(base + pl->off_rh);
    FR_T *cand = (FR_T *)(void *)(base + pl->off_cand);

    ptrdiff_t b, p, t, l, j, nact;

    if (B == 0) /* nothing to read or write */
        return;

    /* 1. Stable counting sort of the rows by length, descending. */
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

    /* 2. Gather the initial state into sorted order. */
    for (p = 0; p < B; ++p) {
        memcpy(h + p * P, (const FR_T *)S->h0 + perm[p] * P, (size_t)P * sizeof(FR_T));
        if (cell == FR_CELL_LSTM)
            memcpy(c + p * U, (const FR_T *)S->c0 + perm[p] * U, (size_t)U * sizeof(FR_T));
    }

    /* 3. The input projection of all time steps: one GEMM, outside the loop. */
    if (B * T > 0) {
        FR_FN(fr_gemm_rm)(blas, (int)(B * T), (int)GU, (int)D, (FR_T)1, x, (int)D,
                          kernel, (int)GU, (FR_T)0, xproj, (int)GX);
        if (cell == FR_CELL_GRU) /* candidate input kernel, columns [2U, 3U) */
            FR_FN(fr_gemm_rm)(blas, (int)(B * T), (int)U, (int)D, (FR_T)1, x, (int)D,
                              (const FR_T *)L->cand_kernel, (int)U, (FR_T)0,
                              xproj + GU, (int)GX);
    }

    /* 4. The recurrence over the shrinking prefix of active rows. */
    nact = B;
    for (t = 0; t < T; ++t) {
        int na;
        while (nact > 0 && slen[nact - 1] <= t)
            --nact;
        if (nact == 0)
            break;
        na = (int)nact;

        /* gates[0:nact, GU] = h[0:nact, P] . W_h */
        FR_FN(fr_recurrent_gemm)(blas, na, (int)GU, (int)P, h, (int)P, w_h, (int)GU,
                                 gates, (int)GU);

        if (cell == FR_CELL_RNN) {
            for (p = 0; p < nact; ++p) {
                const ptrdiff_t tin = reverse ? slen[p] - 1 - t : t;
                const ptrdiff_t row = time_major ? tin * B + perm[p] : perm[p] * T + tin;
                const FR_T *xp = xproj + row * GX;
                const FR_T *g = gates + p * GU;
                FR_T *hr = h + p * P;
                FR_T *o = out + row * P;
                for (j = 0; j < U; ++j) {
                    const FR_T v = FR_FN(fr_act)(xp[j] + g[j] + bias[j], act);
                    hr[j] = v;
                    o[j] = v;
                }
            }
        } else if (cell == FR_CELL_LSTM) {
            const FR_T fb = (FR_T)L->forget_bias;
            const FR_T cclip = (FR_T)L->cell_clip;
            const int has_cclip = L->has_cell_clip != 0;
            const int has_proj = pl->has_proj;
            const FR_T *wi = (const FR_T *)L->w_i_diag;
            const FR_T *wf = (const FR_T *)L->w_f_diag;
            const FR_T *wo = (const FR_T *)L->w_o_diag;
            const int peep = wi != NULL;

            for (p = 0; p < nact; ++p) {
                const ptrdiff_t tin = reverse ? slen[p] - 1 - t : t;
                const ptrdiff_t row = time_major ? tin * B + perm[p] : perm[p] * T + tin;
                const FR_T *xp = xproj + row * GX;
                const FR_T *g = gates + p * GU;
                FR_T *cr = c + p * U;
                FR_T *mr = has_proj ? mbuf + p * U : h + p * P;
                FR_T *o = out + row * P;
                for (j = 0; j < U; ++j) {
                    const FR_T zi = xp[j] + g[j] + bias[j];
                    const FR_T zj = xp[U + j] + g[U + j] + bias[U + j];
                    const FR_T zf = xp[2 * U + j] + g[2 * U + j] + bias[2 * U + j];
                    const FR_T zo = xp[3 * U + j] + g[3 * U + j] + bias[3 * U + j];
                    const FR_T cp = cr[j];
                    FR_T cn, m;
                    if (peep)
                        cn = FR_FN(fr_sigmoid)(zf + fb + wf[j] * cp) * cp +
                             FR_FN(fr_sigmoid)(zi + wi[j] * cp) * FR_FN(fr_act)(zj, act);
                    else
                        cn = FR_FN(fr_sigmoid)(zf + fb) * cp +
                             FR_FN(fr_sigmoid)(zi) * FR_FN(fr_act)(zj, act);
                    if (has_cclip)
                        cn = FR_FN(fr_clip)(cn, cclip);
                    if (peep)
                        m = FR_FN(fr_sigmoid)(zo + wo[j] * cn) * FR_FN(fr_act)(cn, act);
                    else
                        m = FR_FN(fr_sigmoid)(zo) * FR_FN(fr_act)(cn, act);
                    cr[j] = cn;
                    mr[j] = m;
                    if (!has_proj)
                        o[j] = m;
                }
            }

            if (has_proj) {
                /* h[0:nact, P] = mbuf[0:nact, U] . proj_kernel, then clip + output */
                const int has_pclip = L->has_proj_clip != 0;
                const FR_T pclip = (FR_T)L->proj_clip;
                FR_FN(fr_recurrent_gemm)(blas, na, (int)P, (int)U, mbuf, (int)U,
                                         (const FR_T *)L->proj_kernel, (int)P, h, (int)P);
                for (p = 0; p < nact; ++p) {
                    const ptrdiff_t tin = reverse ? slen[p] - 1 - t : t;
                    const ptrdiff_t row = time_major ? tin * B + perm[p] : perm[p] * T + tin;
                    FR_T *hr = h + p * P;
                    FR_T *o = out + row * P;
                    for (j = 0; j < P; ++j) {
                        const FR_T v = has_pclip ? FR_FN(fr_clip)(hr[j], pclip) : hr[j];
                        hr[j] = v;
                        o[j] = v;
                    }
                }
            }
        } else { /* FR_CELL_GRU */
            const FR_T *cb = (const FR_T *)L->cand_bias;
            const FR_T *wc_h = (const FR_T *)L->cand_kernel + D * U;

            /* r, u; rh = r .* h; u kept in the u half of the gates row */
            for (p = 0; p < nact; ++p) {
                const ptrdiff_t tin = reverse ? slen[p] - 1 - t : t;
                const ptrdiff_t row = time_major ? tin * B + perm[p] : perm[p] * T + tin;
                const FR_T *xp = xproj + row * GX;
                FR_T *g = gates + p * GU;
                const FR_T *hr = h + p * P;
                FR_T *rr = rh + p * U;
                for (j = 0; j < U; ++j) {
                    const FR_T r = FR_FN(fr_sigmoid)(xp[j] + g[j] + bias[j]);
                    g[U + j] = FR_FN(fr_sigmoid)(xp[U + j] + g[U + j] + bias[U + j]);
                    rr[j] = r * hr[j];
                }
            }

            /* cand[0:nact, U] = rh[0:nact, U] . Wc_h */
            FR_FN(fr_recurrent_gemm)(blas, na, (int)U, (int)U, rh, (int)U, wc_h, (int)U,
                                     cand, (int)U);

            for (p = 0; p < nact; ++p) {
                const ptrdiff_t tin = reverse ? slen[p] - 1 - t : t;
                const ptrdiff_t row = time_major ? tin * B + perm[p] : perm[p] * T + tin;
                const FR_T *xc = xproj + row * GX + GU;
                const FR_T *u = gates + p * GU + U;
                const FR_T *cr = cand + p * U;
                FR_T *hr = h + p * P;
                FR_T *o = out + row * P;
                for (j = 0; j < U; ++j) {
                    const FR_T cv = FR_FN(fr_act)(xc[j] + cr[j] + cb[j], act);
                    const FR_T v = u[j] * hr[j] + ((FR_T)1 - u[j]) * cv;
                    hr[j] = v;
                    o[j] = v;
                }
            }
        }
    }

    /* 5. Zero output rows past each row's length (TF: reverse_sequence leaves
     *    positions >= len in place, and those outputs are zero). */
    for (p = 0; p < B; ++p) {
        for (t = slen[p]; t < T; ++t) {
            const ptrdiff_t row = time_major ? t * B + perm[p] : perm[p] * T + t;
            FR_T *o = out + row * P;
            for (j = 0; j < P; ++j)
                o[j] = (FR_T)0;
        }
    }

    /* 6. Scatter the final state back to the caller's row order. */
    for (p = 0; p < B; ++p) {
        memcpy((FR_T *)S->h_final + perm[p] * P, h + p * P, (size_t)P * sizeof(FR_T));
        if (cell == FR_CELL_LSTM)
            memcpy((FR_T *)S->c_final + perm[p] * U, c + p * U, (size_t)U * sizeof(FR_T));
    }
}
