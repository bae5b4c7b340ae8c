/*
 * fr_kernels.c -- fastrnn's public entry points: fr_workspace_size,
 * fr_layer_forward, fr_strerror.
 *
 * Design note
 * -----------
 * What it computes: one TensorFlow-1.x recurrent layer (BasicRNNCell,
 * LSTMCell / BasicLSTMCell incl. peepholes, cell clip, projection and
 * projection clip, GRUCell) run over a whole batch of sequences with
 * tf.nn.dynamic_rnn semantics (per-row lengths, zero outputs and frozen state
 * past a row's length, optional per-row reversal).  The equations are written
 * out in fr_kernels_impl.h, which holds the kernel body once and is included
 * twice below (float -> *_f32, double -> *_f64), so the two dtypes cannot drift.
 *
 * How (the point of the package):
 *   1. Rows are counting-sorted by length, descending and stable, and the
 *      state lives in the workspace in that order.  At step t the rows still
 *      running are then a contiguous prefix [0, nact), nact shrinks as rows
 *      finish, and every per-step product runs only on that prefix: total
 *      work follows sum(lengths), not batch * max(lengths).
 *   2. The input half of the products, x_t * W_x, does not depend on the
 *      recurrence.  Two ways (fr_plan.fused, chosen by fr_fused_mode):
 *      hoisted -- ONE large GEMM for all time steps (xproj) before the loop,
 *      only over the rows the recurrence reads; each step then multiplies
 *      h * W_h.  Pays below FR_FUSE_MIN_BATCH rows, where a step's product is
 *      bound by reading the weights.
 *      fused -- each step multiplies [x_t | h] * kernel in one product (the
 *      state buffers hold rows [x_t | h]; a step copies the next step's x rows
 *      in).  Pays from FR_FUSE_MIN_BATCH rows on: the step is bound by
 *      arithmetic, and no [rows, G*units] xproj is written and read back.
 *      Either way every product reads ONE packed copy of the kernel (rows
 *      [0, depth) for x, [depth, depth+proj) for h, or all of them).
 *   3. Per step: the product gates[nact, G*units], then one fused pointwise
 *      pass per active row that adds the bias (and the xproj row), applies
 *      peepholes, activations and clipping, updates the state in place and
 *      writes the output row.  A projected LSTM adds one GEMM on the prefix
 *      (m * P) + clip + output write; a GRU needs its second product
 *      (r .* h) * Wc_h between two pointwise passes.
 *   4. Output rows past a row's length are zeroed, the final state is
 *      scattered back to the caller's row order.
 * Nothing is allocated: everything lives in the caller's workspace, whose
 * layout is computed by fr_plan_make() below (one place, shared by
 * fr_workspace_size and fr_layer_forward so they cannot disagree).
 *
 * Workspace layout (every sub-buffer starts on a 64-byte boundary measured
 * from the first 64-aligned address inside `work`; fr_workspace_size adds 63
 * bytes of slack so `work` itself needs no particular alignment):
 *     perm   ptrdiff_t[batch]           sorted position -> caller's row index
 *     slen   ptrdiff_t[batch]           length of the row at each sorted position
 *     count  ptrdiff_t[time + 1]        counting-sort buckets (0 bytes if batch == 0)
 *     pchunk ptrdiff_t[batch + 1]       input-projection chunks per row segment
 *     xproj  T[batch*time, GX]          hoisted mode only: X * W_x, rows in the
 *                                       caller's x row order; GX = units (RNN),
 *                                       4*units (LSTM), 3*units (GRU: [r|u gates |
 *                                       candidate])
 *     h, h2  T[batch, hld]              recurrent state, sorted order, double-
 *                                       buffered; fused mode: rows [x_t | h]
 *     c      T[batch, units]            LSTM cell state, sorted order (LSTM only)
 *     gates  T[batch, G*units]          the per-step product (G = 1, 4, 2)
 *     mbuf   T[batch, units]            unprojected LSTM output (projected LSTM only)
 *     rh     T[batch, units]            GRU r .* h (GRU only; reset-after, fused:
 *                                       x * Wc_x)
 *     cand   T[batch, units]            GRU (r .* h) * Wc_h (GRU only)
 * T is float or double per layer->dtype.  Absent buffers take 0 bytes.
 *
 * Validation is cheap and about memory safety only (shapes are the caller's
 * job): enums, sizes, the pointers that will be dereferenced, lengths in
 * [0, time], every BLAS int argument <= INT_MAX, size_t overflow, and the
 * workspace size.  A pointer to an empty array (e.g. x when batch*time == 0)
 * may be NULL.  No global mutable state: calls are thread-safe.
 */
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fastrnn.h"
#include "fr_internal.h"


/* *r = a * b, 0 on size_t overflow. */
static int fr_mul(size_t a, size_t b, size_t *r)
{
    if (a != 0 && b > SIZE_MAX / a)
        return 0;
    *r = a * b;
    return 1;
}

/* Reserve n1*n2*elsize bytes, rounded up to FR_ALIGN, at *cursor. */
static int fr_take(size_t *cursor, size_t *off, size_t n1, size_t n2, size_t elsize)
{
    size_t n, bytes;
    if (!fr_mul(n1, n2, &n) || !fr_mul(n, elsize, &bytes))
        return 0;
    if (bytes > SIZE_MAX - (FR_ALIGN - 1))
        return 0;
    bytes = (bytes + (FR_ALIGN - 1)) / FR_ALIGN * FR_ALIGN;
    if (*cursor > SIZE_MAX - bytes)
        return 0;
    *off = *cursor;
    *cursor += bytes;
    return 1;
}

/* Validate everything that does not need the seq's data pointers or the
 * contents of `lengths`, and lay out the workspace.  Returns 1 if valid. */
/* Rows and padded columns of each weight matrix as packed (0 rows: absent). */
static void fr_pack_dims(const fr_layer *L, size_t es, size_t rows[FR_NMATS], size_t cols[FR_NMATS])
{
    const size_t pad = FR_PACK_ALIGN_BYTES / es;
    const size_t U = (size_t)L->units, P = (size_t)L->proj, D = (size_t)L->depth;
    const size_t G = L->cell == FR_CELL_LSTM ? 4 : L->cell == FR_CELL_GRU ? 2 : 1;
    const size_t u_gru = L->cell == FR_CELL_GRU ? U : 0;
    const int has_proj = L->cell == FR_CELL_LSTM && L->proj_kernel != NULL;
    rows[FR_MAT_XH] = D + P; /* one block per gate, each padded */
    cols[FR_MAT_XH] = G * ((U + pad - 1) / pad * pad);
    rows[FR_MAT_C] = D + U;
    cols[FR_MAT_C] = u_gru;
    rows[FR_MAT_PROJ] = U;
    cols[FR_MAT_PROJ] = has_proj ? P : 0;
}

/* Reserve the packed matrices at *cursor (offsets in off[]); 0 on overflow. */
static int fr_take_packed(const fr_layer *L, size_t *cursor, size_t off[FR_NMATS])
{
    const size_t es = L->dtype == FR_FLOAT32 ? sizeof(float) : sizeof(double);
    const size_t pad = FR_PACK_ALIGN_BYTES / es;
    size_t rows[FR_NMATS], cols[FR_NMATS];
    int m;
    fr_pack_dims(L, es, rows, cols);
    for (m = 0; m < FR_NMATS; ++m) {
        if (!fr_take(cursor, &off[m], rows[m], (cols[m] + pad - 1) / pad * pad, es))
            return 0;
    }
    return 1;
}

/* Everything about the layer alone that the kernels rely on (see fastrnn.h). */
static int fr_layer_ok(const fr_layer *L)
{
    if (!L)
        return 0;
    if (L->dtype != FR_FLOAT32 && L->dtype != FR_FLOAT64)
        return 0;
    if (L->cell != FR_CELL_RNN && L->cell != FR_CELL_LSTM && L->cell != FR_CELL_GRU)
        return 0;
    if (L->activation < FR_ACT_TANH || L->activation > FR_ACT_LINEAR)
        return 0;
    if (L->units < 1 || L->proj < 1 || L->depth < 1)
        return 0;
    if (!L->kernel || !L->bias) /* weights the kernel always reads */
        return 0;
    if (!(L->cell == FR_CELL_LSTM && L->proj_kernel != NULL) && L->proj != L->units)
        return 0;
    if (L->cell == FR_CELL_LSTM) {
        int npeep = (L->w_i_diag != NULL) + (L->w_f_diag != NULL) + (L->w_o_diag != NULL);
        if (npeep != 0 && npeep != 3)
            return 0;
    }
    if (L->cell == FR_CELL_GRU && (!L->cand_kernel || !L->cand_bias))
        return 0;
    /* every int handed to a GEMM: N, K, ld* in {depth, units, proj, depth+proj,
     * depth+units, G*units, GX} */
    if (L->units > INT_MAX / 4 || L->depth > INT_MAX / 2 || L->proj > INT_MAX / 2)
        return 0;
    return 1;
}

/* Byte offsets of the matrices in a fr_pack_weights buffer, and its size (0: invalid). */
static size_t fr_pack_layout(const fr_layer *L, size_t off[FR_NMATS])
{
    size_t cur = FR_PACK_HEADER;
    if (!fr_layer_ok(L) || !fr_take_packed(L, &cur, off))
        return 0;
    return cur;
}

/* Fused input projection (fr_plan.fused) from this many rows on.  Below it the step
 * product is a matrix-vector product bound by reading the weights, and reading W_x at
 * every step as well would double that, where the hoisted GEMM reads it once for all
 * steps.  From it on the step product is bound by arithmetic, and fusing saves
 * writing and re-reading the [rows, G*units] xproj buffer (measured: see bench/).
 * FASTRNN_XPROJ=fused|hoisted forces either (the tests run both). */
#define FR_FUSE_MIN_BATCH 4

static int fr_fused_mode(const fr_seq *S)
{
    const char *want = getenv("FASTRNN_XPROJ");
    if (want && strcmp(want, "fused") == 0)
        return 1;
    if (want && strcmp(want, "hoisted") == 0)
        return 0;
    return S->batch >= FR_FUSE_MIN_BATCH;
}

static int fr_schedule_forced(void)
{
    const char *want = getenv("FASTRNN_SCHEDULE");
    if (want && strcmp(want, "columns") == 0)
        return FR_SCHED_COLUMNS;
    if (want && strcmp(want, "rows") == 0)
        return FR_SCHED_ROWS;
    return FR_SCHED_AUTO;
}

static int fr_plan_make(const fr_layer *L, const fr_seq *S, fr_plan *pl)
{
    size_t es, cur = 0;
    ptrdiff_t B, T, U, P, D;
    size_t u_lstm, u_gru, u_proj;

    if (!S || !fr_layer_ok(L))
        return 0;
    B = S->batch;
    T = S->time;
    U = L->units;
    P = L->proj;
    D = L->depth;
    if (B < 0 || T < 0)
        return 0;
    pl->has_proj = (L->cell == FR_CELL_LSTM && L->proj_kernel != NULL);
    pl->prepacked = NULL;

    pl->G = L->cell == FR_CELL_LSTM ? 4 : L->cell == FR_CELL_GRU ? 2 : 1;
    /* Every int handed to a GEMM: M in {batch*time, <= batch}; N, K, ld* in
     * {depth, units, proj, G*units, GX}; GX = 3*units for GRU, else G*units. */
    if (U > INT_MAX / 4 || D > INT_MAX || P > INT_MAX || B > INT_MAX || T > INT_MAX)
        return 0;
    if (T > 0 && B > INT_MAX / T)
        return 0;
    pl->GX = L->cell == FR_CELL_GRU ? 3 * U : pl->G * U;
    pl->fused = fr_fused_mode(S);
    pl->schedule = fr_schedule_forced();
    pl->hld = pl->fused ? D + P : P;
    pl->hoff = pl->fused ? D : 0;

    es = L->dtype == FR_FLOAT32 ? sizeof(float) : sizeof(double);
    u_lstm = L->cell == FR_CELL_LSTM ? (size_t)U : 0;
    u_gru = L->cell == FR_CELL_GRU ? (size_t)U : 0;
    u_proj = pl->has_proj ? (size_t)U : 0;
    if (!fr_take(&cur, &pl->off_perm, (size_t)B, 1, sizeof(ptrdiff_t)) ||
        !fr_take(&cur, &pl->off_slen, (size_t)B, 1, sizeof(ptrdiff_t)) ||
        !fr_take(&cur, &pl->off_count, B > 0 ? (size_t)T + 1 : 0, 1, sizeof(ptrdiff_t)) ||
        !fr_take(&cur, &pl->off_pchunk, (size_t)B + 1, 1, sizeof(ptrdiff_t)) ||
        !fr_take(&cur, &pl->off_xproj, pl->fused ? 0 : (size_t)B * (size_t)T, (size_t)pl->GX, es) ||
        !fr_take(&cur, &pl->off_h, (size_t)B, (size_t)pl->hld, es) ||
        !fr_take(&cur, &pl->off_h2, (size_t)B, (size_t)pl->hld, es) ||
        !fr_take(&cur, &pl->off_c, (size_t)B, u_lstm, es) ||
        !fr_take(&cur, &pl->off_gates, (size_t)B, (size_t)(pl->G * U), es) ||
        !fr_take(&cur, &pl->off_mbuf, (size_t)B, u_proj, es) ||
        !fr_take(&cur, &pl->off_rh, (size_t)B, u_gru, es) ||
        !fr_take(&cur, &pl->off_cand, (size_t)B, u_gru, es))
        return 0;
    if (!fr_take_packed(L, &cur, pl->off_pack)) /* packed copies of the weights */
        return 0;
    /* slack to align `work` up to FR_ALIGN; offsets must also fit ptrdiff_t */
    if (cur > (size_t)PTRDIFF_MAX - (FR_ALIGN - 1))
        return 0;
    pl->total = cur + (FR_ALIGN - 1);
    return 1;
}

/* ---- run-time choice of the instruction set ----
 * The forward body is compiled once per ISA; pick the best the CPU runs, unless
 * FASTRNN_ISA=generic|avx2|avx512 asks for a specific one (tests force each path
 * this way; asking for one the CPU or the build lacks falls back to generic). */

typedef struct fr_isa_impl {
    const char *name;
    void (*forward_f32)(const fr_layer *, const fr_seq *, char *, const fr_plan *, const fr_blas *);
    void (*forward_f64)(const fr_layer *, const fr_seq *, char *, const fr_plan *, const fr_blas *);
    void (*act_f32)(float *, ptrdiff_t, int);
    void (*act_f64)(double *, ptrdiff_t, int);
    void (*pack_f32)(const fr_layer *, int, char *, const size_t *);
    void (*pack_f64)(const fr_layer *, int, char *, const size_t *);
    int id; /* stored in packed weights: their panel layout is this ISA's */
} fr_isa_impl;

static const fr_isa_impl fr_isa_generic = {"generic", fr_forward_generic_f32, fr_forward_generic_f64,
                                           fr_apply_activation_generic_f32,
                                           fr_apply_activation_generic_f64, fr_pack_weights_generic_f32,
                                           fr_pack_weights_generic_f64, 1};
#ifdef FR_BUILD_AVX2
static const fr_isa_impl fr_isa_avx2 = {"avx2", fr_forward_avx2_f32, fr_forward_avx2_f64,
                                        fr_apply_activation_avx2_f32, fr_apply_activation_avx2_f64,
                                        fr_pack_weights_avx2_f32, fr_pack_weights_avx2_f64, 2};
#endif
#ifdef FR_BUILD_AVX512
static const fr_isa_impl fr_isa_avx512 = {"avx512", fr_forward_avx512_f32, fr_forward_avx512_f64,
                                          fr_apply_activation_avx512_f32,
                                          fr_apply_activation_avx512_f64, fr_pack_weights_avx512_f32,
                                          fr_pack_weights_avx512_f64, 3};
#endif

static const fr_isa_impl *fr_isa(void)
{
    const char *want = getenv("FASTRNN_ISA");
    const int any = want == NULL || want[0] == '\0';
#ifdef FR_BUILD_AVX512
    if ((any || strcmp(want, "avx512") == 0) && fr_cpu_has_avx512())
        return &fr_isa_avx512;
#endif
#ifdef FR_BUILD_AVX2
    if ((any || strcmp(want, "avx2") == 0) && fr_cpu_has_avx2())
        return &fr_isa_avx2;
#endif
    (void)any;
    return &fr_isa_generic;
}

const char *fr_isa_name(void)
{
    return fr_isa()->name;
}

int fr_apply_activation(int activation, int dtype, void *x, ptrdiff_t n)
{
    const fr_isa_impl *isa = fr_isa();
    unsigned fp_saved;
    if (activation < -1 || activation > FR_ACT_LINEAR || n < 0 || (n > 0 && !x))
        return FR_ERR_ARG;
    if (dtype != FR_FLOAT32 && dtype != FR_FLOAT64)
        return FR_ERR_ARG;
    fp_saved = fr_fp_flush_denormals(); /* as in the kernels */
    if (dtype == FR_FLOAT32)
        isa->act_f32((float *)x, n, activation);
    else
        isa->act_f64((double *)x, n, activation);
    fr_fp_restore(fp_saved);
    return FR_OK;
}

/* The header a fr_pack_weights buffer must carry to be used for layer L on `isa`. */
static void fr_pack_header_for(const fr_layer *L, const fr_isa_impl *isa, fr_pack_header *h)
{
    memset(h, 0, sizeof *h);
    h->magic = FR_PACK_MAGIC;
    h->isa = isa->id;
    h->dtype = L->dtype;
    h->cell = L->cell;
    h->depth = L->depth;
    h->units = L->units;
    h->proj = L->proj;
    h->has_proj = L->cell == FR_CELL_LSTM && L->proj_kernel != NULL;
    h->cand_rb = L->cell == FR_CELL_GRU && L->cand_recurrent_bias != NULL;
}

/* ---- public API ---- */

size_t fr_packed_size(const fr_layer *layer)
{
    size_t off[FR_NMATS];
    return fr_pack_layout(layer, off);
}

int fr_pack_weights(const fr_layer *layer, void *packed, size_t size)
{
    const fr_isa_impl *isa = fr_isa();
    size_t off[FR_NMATS];
    const size_t total = fr_pack_layout(layer, off);
    fr_pack_header h;
    if (total == 0 || !packed)
        return FR_ERR_ARG;
    if (size < total)
        return FR_ERR_WORKSPACE;
    fr_pack_header_for(layer, isa, &h);
    memcpy(packed, &h, sizeof h);
    if (layer->dtype == FR_FLOAT32)
        isa->pack_f32(layer, (int)h.has_proj, (char *)packed, off);
    else
        isa->pack_f64(layer, (int)h.has_proj, (char *)packed, off);
    return FR_OK;
}

size_t fr_workspace_size(const fr_layer *layer, const fr_seq *seq)
{
    fr_plan pl;
    if (!fr_plan_make(layer, seq, &pl))
        return 0;
    return pl.total;
}

int fr_layer_forward(const fr_layer *layer, const fr_seq *seq,
                     void *work, size_t work_size, const fr_blas *blas)
{
    fr_plan pl;
    const fr_isa_impl *isa = fr_isa();
    ptrdiff_t B, T, b;
    size_t mis;
    char *base;

    if (!fr_plan_make(layer, seq, &pl))
        return FR_ERR_ARG;
    B = seq->batch;
    T = seq->time;

    /* pointers that will be dereferenced (empty arrays may be NULL) */
    if (B > 0 && T > 0 && (!seq->x || !seq->out))
        return FR_ERR_ARG;
    if (B > 0 && (!seq->h0 || !seq->h_final))
        return FR_ERR_ARG;
    if (layer->cell == FR_CELL_LSTM) {
        if (B > 0 && (!seq->c0 || !seq->c_final))
            return FR_ERR_ARG;
    } else if (seq->c0 || seq->c_final) {
        return FR_ERR_ARG;
    }
    if (seq->lengths) {
        for (b = 0; b < B; ++b)
            if (seq->lengths[b] < 0 || seq->lengths[b] > (int64_t)T)
                return FR_ERR_ARG;
    }

    if (!work || work_size < pl.total)
        return FR_ERR_WORKSPACE;
    mis = (size_t)((uintptr_t)work % FR_ALIGN);
    base = (char *)work + (mis ? FR_ALIGN - mis : 0);

    /* weights packed by fr_pack_weights, if they were packed for this layer and ISA */
    if (layer->packed && (blas == NULL || blas->products == FR_PRODUCTS_PACKED)) {
        fr_pack_header want, have;
        const size_t total = fr_pack_layout(layer, pl.pre_off);
        fr_pack_header_for(layer, isa, &want);
        if (total > 0 && layer->packed_size >= total) {
            memcpy(&have, layer->packed, sizeof have);
            if (memcmp(&have, &want, sizeof have) == 0)
                pl.prepacked = (const char *)layer->packed;
        }
    }
    if (layer->dtype == FR_FLOAT32)
        isa->forward_f32(layer, seq, base, &pl, blas);
    else
        isa->forward_f64(layer, seq, base, &pl, blas);
    return FR_OK;
}

const char *fr_strerror(int status)
{
    switch (status) {
    case FR_OK:
        return "success";
    case FR_ERR_ARG:
        return "invalid argument: a size, pointer, enum or length is out of range";
    case FR_ERR_WORKSPACE:
        return "workspace is NULL or smaller than fr_workspace_size()";
    default:
        return "unknown fastrnn status";
    }
}
