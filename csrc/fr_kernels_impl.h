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
 *         cand  = act(x.Wc_x + (r*h).Wc_h + cand_bias)
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

void FR_ENTRY(fr_forward)(const fr_layer *L, const fr_seq *S, char *base,
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

    /* 4. The recurrence over the shrinking prefix of active rows.  FR_ROW(p) is
     *    the x/out row of sorted row p at step t (reversed within its length). */
#define FR_ROW(p) (time_major ? (reverse ? slen[p] - 1 - t : t) * B + perm[p] \
                              : perm[p] * T + (reverse ? slen[p] - 1 - t : t))
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
                const ptrdiff_t row = FR_ROW(p);
                FR_T *g = gates + p * GU;
                FR_FN(fr_vadd2)(g, xproj + row * GX, bias, U);
                FR_FN(fr_vact)(g, U, act);
                memcpy(h + p * P, g, (size_t)U * sizeof(FR_T));
                memcpy(out + row * P, g, (size_t)U * sizeof(FR_T));
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
                const ptrdiff_t row = FR_ROW(p);
                FR_T *restrict gi = gates + p * GU; /* gate blocks i | j | f | o */
                FR_T *restrict gj = gi + U;
                FR_T *restrict gf = gi + 2 * U;
                FR_T *restrict go = gi + 3 * U;
                FR_T *restrict cr = c + p * U;
                FR_T *restrict mr = has_proj ? mbuf + p * U : h + p * P;
                FR_FN(fr_vadd2)(gi, xproj + row * GX, bias, GU);
                if (peep) {
                    for (j = 0; j < U; ++j) {
                        gi[j] += wi[j] * cr[j];
                        gf[j] += wf[j] * cr[j];
                    }
                }
                for (j = 0; j < U; ++j)
                    gf[j] += fb;
                FR_FN(fr_vsigmoid)(gi, U);
                FR_FN(fr_vact)(gj, U, act);
                FR_FN(fr_vsigmoid)(gf, U);
                for (j = 0; j < U; ++j)
                    cr[j] = cr[j] * gf[j] + gi[j] * gj[j];
                if (has_cclip)
                    FR_FN(fr_vclip)(cr, U, cclip);
                if (peep) {
                    for (j = 0; j < U; ++j)
                        go[j] += wo[j] * cr[j];
                }
                FR_FN(fr_vsigmoid)(go, U);
                memcpy(gj, cr, (size_t)U * sizeof(FR_T)); /* j is consumed: reuse it for act(c') */
                FR_FN(fr_vact)(gj, U, act);
                for (j = 0; j < U; ++j)
                    mr[j] = go[j] * gj[j];
                if (!has_proj)
                    memcpy(out + row * P, mr, (size_t)U * sizeof(FR_T));
            }

            if (has_proj) {
                /* h[0:nact, P] = mbuf[0:nact, U] . proj_kernel, then clip + output */
                const int has_pclip = L->has_proj_clip != 0;
                const FR_T pclip = (FR_T)L->proj_clip;
                FR_FN(fr_recurrent_gemm)(blas, na, (int)P, (int)U, mbuf, (int)U,
                                         (const FR_T *)L->proj_kernel, (int)P, h, (int)P);
                for (p = 0; p < nact; ++p) {
                    FR_T *hr = h + p * P;
                    if (has_pclip)
                        FR_FN(fr_vclip)(hr, P, pclip);
                    memcpy(out + FR_ROW(p) * P, hr, (size_t)P * sizeof(FR_T));
                }
            }
        } else { /* FR_CELL_GRU */
            const FR_T *cb = (const FR_T *)L->cand_bias;
            const FR_T *wc_h = (const FR_T *)L->cand_kernel + D * U;

            /* r, u = sigmoid(...) in place in the gates row; rh = r .* h */
            for (p = 0; p < nact; ++p) {
                FR_T *restrict g = gates + p * GU;
                const FR_T *restrict hr = h + p * P;
                FR_T *restrict rr = rh + p * U;
                FR_FN(fr_vadd2)(g, xproj + FR_ROW(p) * GX, bias, GU);
                FR_FN(fr_vsigmoid)(g, GU);
                for (j = 0; j < U; ++j)
                    rr[j] = g[j] * hr[j];
            }

            /* cand[0:nact, U] = rh[0:nact, U] . Wc_h */
            FR_FN(fr_recurrent_gemm)(blas, na, (int)U, (int)U, rh, (int)U, wc_h, (int)U,
                                     cand, (int)U);

            for (p = 0; p < nact; ++p) {
                const ptrdiff_t row = FR_ROW(p);
                const FR_T *restrict u = gates + p * GU + U;
                FR_T *restrict cr = cand + p * U;
                FR_T *restrict hr = h + p * P;
                FR_FN(fr_vadd2)(cr, xproj + row * GX + GU, cb, U);
                FR_FN(fr_vact)(cr, U, act);
                for (j = 0; j < U; ++j)
                    hr[j] = u[j] * hr[j] + ((FR_T)1 - u[j]) * cr[j];
                memcpy(out + row * P, hr, (size_t)U * sizeof(FR_T));
            }
        }
    }

#undef FR_ROW

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
