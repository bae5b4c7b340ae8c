/*
 * fr_cells_impl.h -- the cells' pointwise math: one short function per cell family.
 * Template body (FR_T, FR_SFX, FR_SIGMOID1, FR_TANH1), included per dtype by
 * fr_forward_body.h, so it is compiled once per instruction set and dtype.
 *
 * Design note
 * -----------
 * Each function updates ONE batch row over the units [u0, u0 + n), after the step's
 * product has been computed: `z` is the row of the product (gate block g of the
 * row's units at z + g * units), `xp` the row's hoisted input projection in the same
 * layout, or NULL when the product already holds x . W_x (fused mode).  Nothing here
 * knows about threads, schedules, sorting, packing or the GEMM: the step driver
 * (fr_step_impl.h) calls these on whatever rows and unit ranges its schedule gives a
 * thread, and a new product or tile never touches them.  The equations (TF1's):
 *
 *   fr_rnn_row         h' = act(z + b)
 *   fr_lstm_row        i, j, f, o = z + b;  c' = c*sig(f + forget_bias [+ w_f.c])
 *                      + sig(i [+ w_i.c])*act(j);  c' = clip(c') if cell_clip;
 *                      m = sig(o [+ w_o.c'])*act(c')                  ([..] = peepholes)
 *   fr_lstm_proj_row   m.P has been computed: clip it if proj_clip
 *   fr_gru_gates_row   r, u = sig(z + b);  TF1: rh = r*h (the candidate's product
 *                      needs every unit of rh, so the update waits for fr_gru_cand_row)
 *   fr_gru_cand_row    TF1:         h' = u*h + (1-u)*act(z_cand + cb)
 *   fr_gru_after_row   reset-after: h' = u*h + (1-u)*act(xc + cb + r*(hc + rb))
 *
 * Loops are straight and branch-free inside (the activations are branch-free too,
 * see fr_mathf.h), so they vectorize for the ISA of the including file.  sig and
 * tanh: branch-free float32 versions, Cephes-style float64 ones (fr_mathf.h).
 */

/* The weights and options of one layer that the pointwise math reads (typed views
 * of fr_layer; absent weights NULL). */
typedef struct {
    ptrdiff_t units;
    int act;                      /* fr_activation of the cell */
    const FR_T *bias;             /* [G * units]: gate blocks (LSTM i, j, f, o; GRU r, u) */
    const FR_T *w_i, *w_f, *w_o;  /* LSTM peepholes [units], or NULL */
    FR_T forget_bias;
    int has_cell_clip, has_proj_clip;
    FR_T cell_clip, proj_clip;
    const FR_T *cand_bias;        /* GRU candidate/bias [units] */
    const FR_T *cand_rbias;       /* GRU candidate/recurrent_bias [units]: reset-after, else NULL */
} FR_FN(fr_cell);

static FR_FN(fr_cell) FR_FN(fr_cell_of)(const fr_layer *L)
{
    return (FR_FN(fr_cell)){
        .units = L->units,
        .act = L->activation,
        .bias = (const FR_T *)L->bias,
        .w_i = (const FR_T *)L->w_i_diag,
        .w_f = (const FR_T *)L->w_f_diag,
        .w_o = (const FR_T *)L->w_o_diag,
        .forget_bias = (FR_T)L->forget_bias,
        .has_cell_clip = L->has_cell_clip != 0,
        .has_proj_clip = L->has_proj_clip != 0,
        .cell_clip = (FR_T)L->cell_clip,
        .proj_clip = (FR_T)L->proj_clip,
        .cand_bias = (const FR_T *)L->cand_bias,
        .cand_rbias = (const FR_T *)L->cand_recurrent_bias,
    };
}

/* ---- vector helpers over a row segment (straight loops that vectorize) ---- */

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

/* z += xp + b, or z += b when xp is NULL (fused mode: the product already holds x.W_x) */
static void FR_FN(fr_vadd_bias)(FR_T *restrict z, const FR_T *restrict xp, const FR_T *restrict b,
                                ptrdiff_t n)
{
    ptrdiff_t j;
    if (xp) {
        for (j = 0; j < n; ++j)
            z[j] += xp[j] + b[j];
    } else {
        for (j = 0; j < n; ++j)
            z[j] += b[j];
    }
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

/* gate block g of a row laid out in blocks of `units` (z, xp, bias), at unit u0 */
#define FR_BLOCK(p, g) ((p) + (g) * P->units + u0)
#define FR_XBLOCK(g) (xp ? FR_BLOCK(xp, g) : NULL)

/* ---- the cells ---- */

/* BasicRNNCell: h' = act(z + xp + b) into `hn` (the row's new state, units u0..). */
static void FR_FN(fr_rnn_row)(const FR_FN(fr_cell) *P, FR_T *z, const FR_T *xp, FR_T *hn, ptrdiff_t u0,
                              ptrdiff_t n)
{
    FR_T *restrict zr = FR_BLOCK(z, 0);
    FR_FN(fr_vadd_bias)(zr, FR_XBLOCK(0), FR_BLOCK(P->bias, 0), n);
    FR_FN(fr_vact)(zr, n, P->act);
    memcpy(hn + u0, zr, (size_t)n * sizeof(FR_T));
}

/* LSTMCell / BasicLSTMCell: the gates and the new cell state `c` (in place), and
 * m = sig(o) * act(c') into `m` (h', or the input of the projection). */
static void FR_FN(fr_lstm_row)(const FR_FN(fr_cell) *P, FR_T *z, const FR_T *xp, FR_T *c, FR_T *m,
                               ptrdiff_t u0, ptrdiff_t n)
{
    FR_T *restrict gi = FR_BLOCK(z, 0), *restrict gj = FR_BLOCK(z, 1);
    FR_T *restrict gf = FR_BLOCK(z, 2), *restrict go = FR_BLOCK(z, 3);
    FR_T *restrict cr = c + u0, *restrict mr = m + u0;
    ptrdiff_t j;
    FR_FN(fr_vadd_bias)(gi, FR_XBLOCK(0), FR_BLOCK(P->bias, 0), n);
    FR_FN(fr_vadd_bias)(gj, FR_XBLOCK(1), FR_BLOCK(P->bias, 1), n);
    FR_FN(fr_vadd_bias)(gf, FR_XBLOCK(2), FR_BLOCK(P->bias, 2), n);
    FR_FN(fr_vadd_bias)(go, FR_XBLOCK(3), FR_BLOCK(P->bias, 3), n);
    if (P->w_i) { /* peepholes on c into i and f */
        const FR_T *restrict wi = P->w_i + u0, *restrict wf = P->w_f + u0;
        for (j = 0; j < n; ++j) {
            gi[j] += wi[j] * cr[j];
            gf[j] += wf[j] * cr[j];
        }
    }
    for (j = 0; j < n; ++j)
        gf[j] += P->forget_bias;
    FR_FN(fr_vsigmoid)(gi, n);
    FR_FN(fr_vact)(gj, n, P->act);
    FR_FN(fr_vsigmoid)(gf, n);
    for (j = 0; j < n; ++j)
        cr[j] = cr[j] * gf[j] + gi[j] * gj[j];
    if (P->has_cell_clip)
        FR_FN(fr_vclip)(cr, n, P->cell_clip);
    if (P->w_o) { /* peephole on c' into o */
        const FR_T *restrict wo = P->w_o + u0;
        for (j = 0; j < n; ++j)
            go[j] += wo[j] * cr[j];
    }
    FR_FN(fr_vsigmoid)(go, n);
    memcpy(gj, cr, (size_t)n * sizeof(FR_T)); /* j is consumed: reuse it for act(c') */
    FR_FN(fr_vact)(gj, n, P->act);
    for (j = 0; j < n; ++j)
        mr[j] = go[j] * gj[j];
}

/* A projected LSTM's output h' = m.P (already in `h`, columns [k0, k0 + n)): proj_clip. */
static void FR_FN(fr_lstm_proj_row)(const FR_FN(fr_cell) *P, FR_T *h, ptrdiff_t k0, ptrdiff_t n)
{
    if (P->has_proj_clip)
        FR_FN(fr_vclip)(h + k0, n, P->proj_clip);
}

/* GRUCell, the gates: r, u = sig(z + xp + b) in place; TF1's variant also forms
 * rh = r * h (the input of the candidate's product). */
static void FR_FN(fr_gru_gates_row)(const FR_FN(fr_cell) *P, FR_T *z, const FR_T *xp, const FR_T *h,
                                    FR_T *rh, ptrdiff_t u0, ptrdiff_t n)
{
    FR_T *restrict gr = FR_BLOCK(z, 0), *restrict gu = FR_BLOCK(z, 1);
    ptrdiff_t j;
    FR_FN(fr_vadd_bias)(gr, FR_XBLOCK(0), FR_BLOCK(P->bias, 0), n);
    FR_FN(fr_vadd_bias)(gu, FR_XBLOCK(1), FR_BLOCK(P->bias, 1), n);
    FR_FN(fr_vsigmoid)(gr, n);
    FR_FN(fr_vsigmoid)(gu, n);
    if (rh) {
        const FR_T *restrict hr = h + u0;
        FR_T *restrict rr = rh + u0;
        for (j = 0; j < n; ++j)
            rr[j] = gr[j] * hr[j];
    }
}

/* TF1 GRUCell, the update: cand = act(cand + xc + cb) (cand = (r*h).Wc_h, plus x.Wc_x
 * in fused mode; xc = the hoisted x.Wc_x or NULL), h' = u*h + (1-u)*cand into hn.
 * `z` is the row of the gates (u in block 1). */
static void FR_FN(fr_gru_cand_row)(const FR_FN(fr_cell) *P, const FR_T *z, FR_T *cand, const FR_T *xc,
                                   const FR_T *h, FR_T *hn, ptrdiff_t u0, ptrdiff_t n)
{
    const FR_T *restrict u = z + P->units + u0, *restrict hr = h + u0;
    FR_T *restrict cr = cand + u0, *restrict hnr = hn + u0;
    ptrdiff_t j;
    FR_FN(fr_vadd_bias)(cr, xc ? xc + u0 : NULL, P->cand_bias + u0, n);
    FR_FN(fr_vact)(cr, n, P->act);
    for (j = 0; j < n; ++j)
        hnr[j] = u[j] * hr[j] + ((FR_T)1 - u[j]) * cr[j];
}

/* Reset-after GRUCell, the update once the gates are done: hc = h.Wc_h (in place),
 * xc = x.Wc_x, cand = act(xc + cb + r*(hc + rb)), h' = u*h + (1-u)*cand into hn. */
static void FR_FN(fr_gru_after_row)(const FR_FN(fr_cell) *P, const FR_T *z, FR_T *hc, const FR_T *xc,
                                    const FR_T *h, FR_T *hn, ptrdiff_t u0, ptrdiff_t n)
{
    const FR_T *restrict r = z + u0, *restrict u = z + P->units + u0, *restrict hr = h + u0;
    const FR_T *restrict cb = P->cand_bias + u0, *restrict rb = P->cand_rbias + u0, *restrict xr = xc + u0;
    FR_T *restrict cr = hc + u0, *restrict hnr = hn + u0;
    ptrdiff_t j;
    for (j = 0; j < n; ++j)
        cr[j] = (xr[j] + cb[j]) + r[j] * (cr[j] + rb[j]);
    FR_FN(fr_vact)(cr, n, P->act);
    for (j = 0; j < n; ++j)
        hnr[j] = u[j] * hr[j] + ((FR_T)1 - u[j]) * cr[j];
}

#undef FR_BLOCK
#undef FR_XBLOCK

/* Entry point for accuracy tests: the activation exactly as the kernels apply it
 * (act < 0 selects the gates' logistic sigmoid). */
void FR_ENTRY(fr_apply_activation)(FR_T *x, ptrdiff_t n, int act)
{
    if (act < 0)
        FR_FN(fr_vsigmoid)(x, n);
    else
        FR_FN(fr_vact)(x, n, act);
}
