/*
 * fr_cells_impl.h -- the cells' pointwise math: one short function per cell family.
 * Template body (FR_T, FR_SFX), included per dtype by
 * fr_forward_body.h, so it is compiled once per instruction set and dtype.
 *
 * Design note
 * -----------
 * Each function updates ONE batch row over the n units [u0, u0 + n), after the step's
 * product for them has been computed: `z` points at the product for unit u0 of gate
 * block 0, gate block g at z + g * zs (zs: the gate stride of wherever the product
 * sits -- the tile buffer of the packed GEMM, whose panels hold the gates of a few
 * units side by side); `xp` likewise the row's hoisted input projection (gate stride
 * xs), or NULL when the product already holds x . W_x (fused mode).  The state rows
 * (c, h, ...) and the biases are indexed by unit: u0 + j.  Nothing here knows about
 * threads, schedules, sorting, packing or the GEMM: the step driver (fr_step_impl.h)
 * calls these right after each tile of the product, while it is hot in L1, and a new
 * product or tile never touches them.  The equations (TF1's):
 *
 *   fr_rnn_row         h' = act(z + b)
 *   fr_lstm_row        i, j, f, o = z + b;  c' = c*sig(f + forget_bias [+ w_f.c])
 *                      + sig(i [+ w_i.c])*act(j);  c' = clip(c') if cell_clip;
 *                      m = sig(o [+ w_o.c'])*act(c')                  ([..] = peepholes)
 *   fr_lstm_proj_row   m.P has been computed: clip it if proj_clip
 *   fr_gru_gates_row   r, u = sig(z + b);  TF1: rh = r*h (the candidate's product
 *                      needs every unit of rh, so the update waits for fr_gru_cand_row)
 *   fr_gru_cand_row    TF1:         h' = u*h + (1-u)*act(z_cand + cb)
 *   fr_gru_after_row   reset-after: h' = u*h + (1-u)*act(xc + cb + r*(hc + rb)), with the
 *                      product's gate blocks r, u, hc (and xp's r, u, xc)
 *
 * The math is explicit SIMD vector code (fr_vmath_impl.h: branch-free sig, tanh, relu,
 * clip), one vector of units at a time.
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

/* ---- the cells ----
 * Each function updates one vector of units: n == VL (a full block; the driver passes
 * the constant, so the loads and stores are plain vector ones) or the n < VL units
 * left at the end of a layer (zero-filled lanes, partial stores).  Every unit goes
 * through the same vector code whatever the tile or thread that computed its product,
 * so results do not depend on how the work was split.  Always inlined into the step
 * driver. */
#define FR_INLINE static inline __attribute__((always_inline))
#define FR_V FR_FN(fr_vec)
#define LD(p) FR_FN(fr_vld)((p), n)
#define ST(p, v) FR_FN(fr_vst)((p), (v), n)
/* gate g: product + (input projection + bias), as the kernels always summed them */
#define FR_GATE(g) (LD(z + (g) * zs) + (xp ? LD(xp + (g) * xs) + LD(FR_BIAS(g)) : LD(FR_BIAS(g))))
#define FR_BIAS(g) (P->bias + (g) * P->units + u0)

/* BasicRNNCell: h' = act(z + xp + b) into hn (the row's new state). */
FR_INLINE void FR_FN(fr_rnn_row)(const FR_FN(fr_cell) *P, const FR_T *z, const FR_T *xp, FR_T *hn, ptrdiff_t u0,
                                 ptrdiff_t n)
{
    const ptrdiff_t zs = 0, xs = 0;
    ST(hn + u0, FR_FN(fr_vact1)(FR_GATE(0), P->act));
}

/* LSTMCell / BasicLSTMCell: the gates (z: i, j, f, o at stride zs), the new cell state c
 * (in place) and m = sig(o) * act(c') into m (h', or the input of the projection). */
FR_INLINE void FR_FN(fr_lstm_row)(const FR_FN(fr_cell) *P, const FR_T *z, ptrdiff_t zs, const FR_T *xp,
                                  ptrdiff_t xs, FR_T *c, FR_T *m, ptrdiff_t u0, ptrdiff_t n)
{
    FR_V i = FR_GATE(0), j = FR_GATE(1), f = FR_GATE(2), o = FR_GATE(3), cv = LD(c + u0);
    if (P->w_i) { /* peepholes on c into i and f */
        i += LD(P->w_i + u0) * cv;
        f += LD(P->w_f + u0) * cv;
    }
    f += P->forget_bias;
    cv = cv * FR_FN(fr_vsigmoid1)(f) + FR_FN(fr_vsigmoid1)(i) * FR_FN(fr_vact1)(j, P->act);
    if (P->has_cell_clip)
        cv = FR_FN(fr_vclip1)(cv, P->cell_clip);
    if (P->w_o) /* peephole on c' into o */
        o += LD(P->w_o + u0) * cv;
    ST(c + u0, cv);
    ST(m + u0, FR_FN(fr_vsigmoid1)(o) * FR_FN(fr_vact1)(cv, P->act));
}

/* A projected LSTM's output h' = m.P (n values at h, already computed): proj_clip. */
FR_INLINE void FR_FN(fr_lstm_proj_row)(const FR_FN(fr_cell) *P, FR_T *h, ptrdiff_t n)
{
    if (P->has_proj_clip)
        ST(h, FR_FN(fr_vclip1)(LD(h), P->proj_clip));
}

/* GRUCell, the gates: r, u = sig(z + xp + b), written back over z; TF1's variant also
 * forms rh = r * h (the input of the candidate's product; h, rh: the row's state and
 * its rh row, indexed by unit). */
FR_INLINE void FR_FN(fr_gru_gates_row)(const FR_FN(fr_cell) *P, FR_T *z, ptrdiff_t zs, const FR_T *xp,
                                       ptrdiff_t xs, const FR_T *h, FR_T *rh, ptrdiff_t u0, ptrdiff_t n)
{
    const FR_V r = FR_FN(fr_vsigmoid1)(FR_GATE(0)), u = FR_FN(fr_vsigmoid1)(FR_GATE(1));
    ST(z, r);
    ST(z + zs, u);
    if (rh)
        ST(rh + u0, r * LD(h + u0));
}

/* TF1 GRUCell, the update: cand = act(z + xc + cb) (z = (r*h).Wc_h, plus x.Wc_x in
 * fused mode; xc = the hoisted x.Wc_x or NULL), h' = u*h + (1-u)*cand into hn.  u: the
 * update gate of the n units (from fr_gru_gates_row). */
FR_INLINE void FR_FN(fr_gru_cand_row)(const FR_FN(fr_cell) *P, const FR_T *z, const FR_T *xc, const FR_T *u,
                                      const FR_T *h, FR_T *hn, ptrdiff_t u0, ptrdiff_t n)
{
    const FR_V cb = LD(P->cand_bias + u0), uv = LD(u);
    const FR_V cand = FR_FN(fr_vact1)(LD(z) + (xc ? LD(xc) + cb : cb), P->act);
    ST(hn + u0, uv * LD(h + u0) + ((FR_T)1 - uv) * cand);
}

/* Reset-after GRUCell, the whole update: z's gate blocks are r, u (to which
 * fr_gru_gates_row applied the bias and sigmoid) and hc = h.Wc_h; xp's block 2 is
 * xc = x.Wc_x.  cand = act(xc + cb + r*(hc + rb)), h' = u*h + (1-u)*cand into hn. */
FR_INLINE void FR_FN(fr_gru_after_row)(const FR_FN(fr_cell) *P, const FR_T *z, ptrdiff_t zs, const FR_T *xp,
                                       ptrdiff_t xs, const FR_T *h, FR_T *hn, ptrdiff_t u0, ptrdiff_t n)
{
    const FR_V r = LD(z), uv = LD(z + zs), hc = LD(z + 2 * zs);
    const FR_V cand = FR_FN(fr_vact1)((LD(xp + 2 * xs) + LD(P->cand_bias + u0)) + r * (hc + LD(P->cand_rbias + u0)),
                                      P->act);
    ST(hn + u0, uv * LD(h + u0) + ((FR_T)1 - uv) * cand);
}

#undef FR_V
#undef LD
#undef ST
#undef FR_GATE
#undef FR_BIAS
#undef FR_INLINE

