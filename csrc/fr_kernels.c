/*
 * fr_kernels.c -- fastrnn's public entry points: options, instruction sets,
 * weight packing, workspace planning, fr_layer_forward, fr_strerror.
 *
 * Design note
 * -----------
 * What it computes: one TensorFlow-1.x recurrent layer (BasicRNNCell,
 * LSTMCell / BasicLSTMCell incl. peepholes, cell clip, projection and
 * projection clip, GRUCell) run over a whole batch of sequences with
 * tf.nn.dynamic_rnn semantics (per-row lengths, zero outputs and frozen state
 * past a row's length, optional per-row reversal).  The kernel body is written
 * once (the templates below) and instantiated per dtype (float -> *_f32, double
 * -> *_f64) and per instruction set, so the variants cannot drift.
 *
 * How (the point of the package):
 * Where: fr_cells_impl.h holds each cell's pointwise math (fr_lstm_row,
 * fr_gru_gates_row, fr_rnn_row, ...), fr_vmath_impl.h their vector exp / sigmoid /
 * tanh, fr_step_impl.h the step driver (sort, input projection, the time loop,
 * thread schedules), fr_tile_impl.h the packed GEMM (gate-interleaved panels,
 * register tiles), fr_bf16.c the bfloat16 packing and tiles; this file
 * validates, plans the workspace, makes the per-CPU choices and dispatches.
 *
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
 *   3. Per step: register tiles of the product over the active prefix, each
 *      followed at once by the cell's update of the units it holds (bias, the
 *      xproj row, peepholes, activations, clipping, the state written to the
 *      next buffer, the output row): all gates of a block of units sit side by
 *      side in one panel, so no [nact, G*units] product is stored.  A projected
 *      LSTM adds a product m * P (+ clip + output); a TF1 GRU its second
 *      product (r .* h) * Wc_h after the gates of every unit are known.
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
 *     ubuf   T[batch, units]            TF1 GRU: the update gate, until the candidate
 *     mbuf   T[batch, units]            unprojected LSTM output (projected LSTM only)
 *     rh     T[batch, rld]              TF1 GRU: r .* h, the candidate product's rows
 *     ab, ab2, rb, mb, xb               bfloat16 only: the products' operand rows,
 *                                       rounded (VNNI pairs / AMX tiles)
 *     packed the weight matrices packed  when the layer brings none packed by
 *                                       fr_pack_weights for this ISA and path
 * T is float or double per layer->dtype.  Absent buffers take 0 bytes.
 *
 * Validation is cheap and about memory safety only (shapes are the caller's
 * job): enums, sizes, the pointers that will be dereferenced, lengths in
 * [0, time], every GEMM int argument <= INT_MAX (fr_layer_ok, fr_seq_ok),
 * size_t overflow, and the workspace size.  A pointer to an empty array (e.g.
 * x when batch*time == 0) may be NULL.  No global mutable state and no
 * environment: everything a call depends on is in its arguments.
 */
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fastrnn.h"
#include "fr_internal.h"
#include "fr_probe.h"


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

int fr_isa_vbytes(int isa)
{
    return isa == FR_ISA_AVX512 ? 64 : isa == FR_ISA_AVX2 ? 32 : 16;
}

/* One matrix of G gate blocks of `units` columns, K rows (kseg of them the inputs'),
 * gate g's columns at src[g], packed for bfloat16 path `bpath` (0: the native dtype). */
static int fr_mat_layout_of(fr_mat_layout *m, ptrdiff_t K, ptrdiff_t kseg, ptrdiff_t G, ptrdiff_t units,
                            ptrdiff_t vl, size_t es, int bpath, const void *const *src, const ptrdiff_t *ld)
{
    size_t n;
    ptrdiff_t g;
    m->K = K;
    m->kseg = kseg;
    m->G = G;
    m->units = units;
    m->format = bpath == FR_BF16_AMX ? FR_PACK_AMX : bpath == FR_BF16_AVX512 ? FR_PACK_VNNI
                : bpath == FR_BF16_PORTABLE ? FR_PACK_ROUNDED : FR_PACK_NATIVE;
    m->gran = m->format == FR_PACK_AMX ? 32 : m->format == FR_PACK_VNNI ? 2 : 1;
    m->Kp = FR_KPAD(kseg, m->gran) + FR_KPAD(K - kseg, m->gran);
    m->ubp = G >= 3 ? 1 : 4 / G; /* 3 or 4 vectors per panel row */
    m->pw = G * m->ubp * vl;
    m->np = (units + m->ubp * vl - 1) / (m->ubp * vl);
    for (g = 0; g < G; ++g) {
        m->src[g] = src[g];
        m->ld[g] = ld[g];
    }
    if (m->format == FR_PACK_VNNI || m->format == FR_PACK_AMX)
        es = 2; /* bfloat16 */
    return fr_mul((size_t)m->np * (size_t)m->pw, (size_t)m->Kp, &n) && fr_mul(n, es, &m->bytes);
}

int fr_mat_layouts(const fr_layer *L, ptrdiff_t vl, int bpath, fr_mat_layout m[FR_NMATS])
{
    const size_t es = L->dtype == FR_FLOAT32 ? sizeof(float) : sizeof(double);
    const ptrdiff_t U = L->units, P = L->proj, D = L->depth;
    const char *kernel = (const char *)L->kernel, *cand = (const char *)L->cand_kernel;
    const int gru = L->cell == FR_CELL_GRU, after = gru && L->cand_recurrent_bias != NULL;
    const void *src[4];
    ptrdiff_t ld[4];
    int ok = 1;
    memset(m, 0, FR_NMATS * sizeof *m);
    if (L->cell == FR_CELL_LSTM || L->cell == FR_CELL_RNN || (gru && !after)) {
        const ptrdiff_t G = fr_cell_gates(L->cell);
        ptrdiff_t g;
        for (g = 0; g < G; ++g) {
            src[g] = kernel + (size_t)(g * U) * es;
            ld[g] = G * U;
        }
        ok = fr_mat_layout_of(&m[FR_MAT_XH], D + P, D, G, U, vl, es, bpath, src, ld);
    } else { /* reset-after GRU: r, u (gates/kernel) and c (candidate/kernel) side by side */
        src[0] = kernel;
        src[1] = kernel + (size_t)U * es;
        src[2] = cand;
        ld[0] = ld[1] = 2 * U;
        ld[2] = U;
        ok = fr_mat_layout_of(&m[FR_MAT_XH], D + U, D, 3, U, vl, es, bpath, src, ld);
    }
    if (gru && !after) {
        src[0] = cand;
        ld[0] = U;
        ok = ok && fr_mat_layout_of(&m[FR_MAT_C], D + U, D, 1, U, vl, es, bpath, src, ld);
    }
    if (L->cell == FR_CELL_LSTM && L->proj_kernel) {
        src[0] = L->proj_kernel;
        ld[0] = P;
        ok = ok && fr_mat_layout_of(&m[FR_MAT_PROJ], U, 0, 1, P, vl, es, bpath, src, ld);
    }
    return ok;
}

/* Reserve the packed matrices at *cursor (offsets in off[]); 0 on overflow. */
static int fr_take_packed(const fr_mat_layout *m, size_t *cursor, size_t off[FR_NMATS])
{
    int i;
    for (i = 0; i < FR_NMATS; ++i)
        if (!fr_take(cursor, &off[i], m[i].bytes, 1, 1))
            return 0;
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
    /* every int handed to a GEMM of the layer: N, K, ld* in {depth, units, proj,
     * depth+proj, depth+units, G*units, GX = 3*units for GRU} */
    if (L->units > INT_MAX / 4 || L->depth > INT_MAX / 2 || L->proj > INT_MAX / 2)
        return 0;
    return 1;
}

/* The sequence's sizes, within what the GEMMs take: M in {batch*time, <= batch}. */
static int fr_seq_ok(const fr_seq *S)
{
    if (!S || S->batch < 0 || S->time < 0)
        return 0;
    if (S->batch > INT_MAX || S->time > INT_MAX || (S->time > 0 && S->batch > INT_MAX / S->time))
        return 0;
    return 1;
}

/* Every field of the options in range. */
static int fr_options_ok(const fr_options *O)
{
    if (!O)
        return 0;
    if (O->xproj < FR_XPROJ_AUTO || O->xproj > FR_XPROJ_FUSED)
        return 0;
    if (O->schedule < FR_SCHED_AUTO || O->schedule > FR_SCHED_ROWS)
        return 0;
    if (O->gemm < FR_GEMM_PACKED || O->gemm > FR_GEMM_PORTABLE || (O->gemm == FR_GEMM_BLAS && !O->blas))
        return 0;
    if (O->isa < FR_ISA_AUTO || O->isa > FR_ISA_AVX512 || O->nthreads < 1)
        return 0;
    if (O->tile_rows < 0 || O->tile_rows > 8)
        return 0;
    if (O->precision != FR_PREC_NATIVE && O->precision != FR_PREC_BF16)
        return 0;
    if (O->bf16_path < FR_BF16_AUTO || O->bf16_path > FR_BF16_AMX)
        return 0;
    if (O->precision == FR_PREC_BF16 && O->gemm != FR_GEMM_PACKED) /* the cross-check GEMMs are exact */
        return 0;
    return 1;
}

int fr_cell_gates(int cell)
{
    switch (cell) {
    case FR_CELL_RNN:
        return 1;
    case FR_CELL_LSTM:
        return 4;
    case FR_CELL_GRU:
        return 2;
    default:
        return 0;
    }
}

/* The matrices of L for resolved ISA `isa`, their byte offsets in a fr_pack_weights
 * buffer, and its size (0: invalid). */
static size_t fr_pack_layout(const fr_layer *L, int isa, int bpath, fr_mat_layout m[FR_NMATS],
                             size_t off[FR_NMATS])
{
    size_t cur = FR_PACK_HEADER;
    const size_t es = L && L->dtype == FR_FLOAT64 ? sizeof(double) : sizeof(float);
    if (!fr_layer_ok(L) || !fr_mat_layouts(L, fr_isa_vbytes(isa) / (ptrdiff_t)es, bpath, m) ||
        !fr_take_packed(m, &cur, off))
        return 0;
    return cur;
}

/* Fused input projection (fr_plan.fused) from this many rows on.  Below it the step
 * product is a matrix-vector product bound by reading the weights, and reading W_x at
 * every step as well would double that, where the hoisted GEMM reads it once for all
 * steps.  From it on the step product is bound by arithmetic, and fusing saves
 * writing and re-reading the [rows, G*units] xproj buffer (measured: see bench/).
 * A single time step follows the same rule, though fusing it would be a little faster (one
 * row, LSTM 128 on Zen 4: 6.3 us vs 6.6 us, medians of 8 runs of csrc/tests/bench_step):
 * so that a stream's steps (fr.Stream.step, cell(x, state)) give the bits of one call over
 * the whole sequence, which the tests hold them to.  fr_options.xproj forces either (the
 * tests run both). */
#define FR_FUSE_MIN_BATCH 4

static int fr_fused_mode(const fr_layer *L, const fr_seq *S, const fr_options *O)
{
    if (L->cell == FR_CELL_GRU && L->cand_recurrent_bias) /* reset-after: always hoisted */
        return 0;
    if (O->xproj != FR_XPROJ_AUTO)
        return O->xproj == FR_XPROJ_FUSED;
    return S->batch >= FR_FUSE_MIN_BATCH;
}

/* ---- per-CPU choices (fr_tuning) ----
 * Which schedule: with the row split every core reads ALL the weights at every step, with
 * the column split only its share (but the threads meet at every step).  When the packed
 * weights fit half of a core's L2, reading them all costs nothing extra: rows from 4 rows
 * per thread (a register tile's worth).  When they do not, each core streams them from
 * L3 at every step, which pays only while its rows' arithmetic hides the transfer:
 * rows per thread >= bytes per element * FMA peak / (2 * L3 bandwidth).  Measured:
 *   Intel Xeon (Sapphire Rapids class): 247 GFLOP/s f32 per core, L3 29 GB/s per core
 *     (L2 187 GB/s): >= 17 rows, so 24 with margin (measured there: batch 16 x 256 units
 *     ran 6.32 ms rows vs 5.55 ms columns; batch 256 x 512 171 vs 178 ms);
 *   AMD EPYC (Zen 4): 117 GFLOP/s f32 per core, L3 95 GB/s per core (L2 111 GB/s,
 *     csrc/tests/test_probe): >= 2.5 rows, so 4.
 * The ratio is the same for float64 (half the FMA rate, twice the bytes). */
void fr_tuning(int isa, size_t weight_bytes, ptrdiff_t *prefetch, ptrdiff_t *rows_from)
{
    const fr_cpu *cpu = fr_cpu_get(); /* fr_cpu_info would ask the OS for AMX at every call */
    const size_t l2 = cpu->l2_bytes ? cpu->l2_bytes : (size_t)1 << 20;
    *prefetch = 0;
    if (weight_bytes <= l2 / 2)
        *rows_from = 4;
    else
        *rows_from = strcmp(cpu->vendor, "GenuineIntel") == 0 ? 24 : 4;
    (void)isa;
}

/* Validate everything that does not need the seq's data pointers or the contents of
 * `lengths`, and lay out the workspace for resolved ISA `isa`.  Returns 1 if valid. */
static int fr_plan_make(const fr_layer *L, const fr_seq *S, const fr_options *O, int isa, int bpath,
                        fr_plan *pl)
{
    size_t es, cur = 0, wbytes = 0;
    ptrdiff_t B, T, U, P, D, gran;
    size_t u_lstm, u_gru1, u_proj;
    int i;

    if (!fr_layer_ok(L) || !fr_seq_ok(S) || !fr_options_ok(O))
        return 0;
    if (O->precision == FR_PREC_BF16 && L->dtype != FR_FLOAT32) /* bfloat16 from float32 only */
        return 0;
    B = S->batch;
    T = S->time;
    U = L->units;
    P = L->proj;
    D = L->depth;
    es = L->dtype == FR_FLOAT32 ? sizeof(float) : sizeof(double);
    if (!fr_mat_layouts(L, fr_isa_vbytes(isa) / (ptrdiff_t)es, bpath, pl->mats))
        return 0;
    pl->bpath = bpath;
    pl->has_proj = (L->cell == FR_CELL_LSTM && L->proj_kernel != NULL);
    pl->prepacked = NULL;
    pl->fused = fr_fused_mode(L, S, O);
    pl->schedule = O->schedule;
    pl->hld = pl->fused ? D + P : P;
    pl->hoff = pl->fused ? D : 0;
    u_gru1 = L->cell == FR_CELL_GRU && !L->cand_recurrent_bias ? (size_t)U : 0; /* TF1 GRU */
    pl->rld = u_gru1 ? (pl->fused ? D + U : U) : 0;
    pl->xw = pl->mats[FR_MAT_XH].np * pl->mats[FR_MAT_XH].pw +
             (u_gru1 ? pl->mats[FR_MAT_C].np * pl->mats[FR_MAT_C].pw : 0);
    pl->tile_rows = O->tile_rows;
    for (i = 0; i < FR_NMATS; ++i)
        wbytes += pl->mats[i].bytes;
    fr_tuning(isa, wbytes, &pl->prefetch, &pl->rows_from);

    u_lstm = L->cell == FR_CELL_LSTM ? (size_t)U : 0;
    u_proj = pl->has_proj ? (size_t)U : 0;
    /* bfloat16 operand rows, K segments padded as the matrices' */
    gran = pl->mats[FR_MAT_XH].gran;
    pl->aes = bpath == 0 ? 0 : bpath == FR_BF16_PORTABLE ? sizeof(float) : sizeof(uint16_t);
    pl->aoff = bpath && pl->fused ? FR_KPAD(D, gran) : 0;
    pl->ald = bpath ? pl->aoff + FR_KPAD(L->cell == FR_CELL_LSTM ? P : U, gran) : 0;
    pl->rboff = bpath && u_gru1 && pl->fused ? FR_KPAD(D, gran) : 0;
    pl->rbld = bpath && u_gru1 ? pl->rboff + FR_KPAD(U, gran) : 0;
    pl->mbld = bpath && pl->has_proj ? FR_KPAD(U, gran) : 0;
    pl->xbld = bpath && !pl->fused ? FR_KPAD(D, gran) : 0;
    if (!fr_take(&cur, &pl->off_perm, (size_t)B, 1, sizeof(ptrdiff_t)) ||
        !fr_take(&cur, &pl->off_slen, (size_t)B, 1, sizeof(ptrdiff_t)) ||
        !fr_take(&cur, &pl->off_count, B > 0 ? (size_t)T + 1 : 0, 1, sizeof(ptrdiff_t)) ||
        !fr_take(&cur, &pl->off_pchunk, (size_t)B + 1, 1, sizeof(ptrdiff_t)) ||
        !fr_take(&cur, &pl->off_xproj, pl->fused ? 0 : (size_t)B * (size_t)T, (size_t)pl->xw, es) ||
        !fr_take(&cur, &pl->off_h, (size_t)B, (size_t)pl->hld, es) ||
        !fr_take(&cur, &pl->off_h2, (size_t)B, (size_t)pl->hld, es) ||
        !fr_take(&cur, &pl->off_c, (size_t)B, u_lstm, es) ||
        !fr_take(&cur, &pl->off_ubuf, (size_t)B, u_gru1, es) ||
        !fr_take(&cur, &pl->off_mbuf, (size_t)B, u_proj, es) ||
        !fr_take(&cur, &pl->off_rh, (size_t)B, (size_t)pl->rld, es) ||
        !fr_take(&cur, &pl->off_ab, (size_t)B, (size_t)pl->ald, pl->aes) ||
        !fr_take(&cur, &pl->off_ab2, (size_t)B, (size_t)pl->ald, pl->aes) ||
        !fr_take(&cur, &pl->off_rb, (size_t)B, (size_t)pl->rbld, pl->aes) ||
        !fr_take(&cur, &pl->off_mb, (size_t)B, (size_t)pl->mbld, pl->aes) ||
        !fr_take(&cur, &pl->off_xb, pl->xbld ? (size_t)B * (size_t)T : 0, (size_t)pl->xbld, pl->aes))
        return 0;
    if (!fr_take_packed(pl->mats, &cur, pl->off_pack)) /* packed copies of the weights */
        return 0;
    /* slack to align `work` up to FR_ALIGN; offsets must also fit ptrdiff_t */
    if (cur > (size_t)PTRDIFF_MAX - (FR_ALIGN - 1))
        return 0;
    pl->total = cur + (FR_ALIGN - 1);
    return 1;
}

/* ---- run-time choice of the instruction set ----
 * The forward body is compiled once per ISA; fr_options.isa picks one (the tests
 * force each), FR_ISA_AUTO the best the CPU runs.  A requested ISA the CPU or the
 * build lacks is an error (FR_ERR_ISA), never a silent fallback. */

typedef struct fr_isa_impl {
    int (*forward_f32)(const fr_layer *, const fr_seq *, const fr_options *, char *, const fr_plan *);
    int (*forward_f64)(const fr_layer *, const fr_seq *, const fr_options *, char *, const fr_plan *);
    void (*act_f32)(float *, ptrdiff_t, int);
    void (*act_f64)(double *, ptrdiff_t, int);
    void (*pack_f32)(const fr_mat_layout *, char *, const size_t *);
    void (*pack_f64)(const fr_mat_layout *, char *, const size_t *);
    double (*tile_f32)(int, int, ptrdiff_t, ptrdiff_t, long, const void *, const void *, void *);
    double (*tile_f64)(int, int, ptrdiff_t, ptrdiff_t, long, const void *, const void *, void *);
} fr_isa_impl;

#define FR_ISA_IMPL(isa)                                                                         \
    {                                                                                            \
        .forward_f32 = fr_forward_##isa##_f32, .forward_f64 = fr_forward_##isa##_f64,            \
        .act_f32 = fr_apply_activation_##isa##_f32, .act_f64 = fr_apply_activation_##isa##_f64, \
        .pack_f32 = fr_pack_weights_##isa##_f32, .pack_f64 = fr_pack_weights_##isa##_f64,       \
        .tile_f32 = fr_tile_flops_##isa##_f32, .tile_f64 = fr_tile_flops_##isa##_f64,           \
    }
static const fr_isa_impl fr_isa_generic = FR_ISA_IMPL(generic);
#ifdef FR_BUILD_AVX2
static const fr_isa_impl fr_isa_avx2 = FR_ISA_IMPL(avx2);
#endif
#ifdef FR_BUILD_AVX512
static const fr_isa_impl fr_isa_avx512 = FR_ISA_IMPL(avx512);
#endif
#undef FR_ISA_IMPL

/* The implementation of a resolved ISA (see fr_isa_resolve). */
static const fr_isa_impl *fr_isa_impl_of(int isa)
{
#ifdef FR_BUILD_AVX512
    if (isa == FR_ISA_AVX512)
        return &fr_isa_avx512;
#endif
#ifdef FR_BUILD_AVX2
    if (isa == FR_ISA_AVX2)
        return &fr_isa_avx2;
#endif
    (void)isa;
    return &fr_isa_generic;
}

static int fr_isa_available(int isa)
{
    switch (isa) {
    case FR_ISA_GENERIC:
        return 1;
#ifdef FR_BUILD_AVX2
    case FR_ISA_AVX2:
        return fr_cpu_has_avx2();
#endif
#ifdef FR_BUILD_AVX512
    case FR_ISA_AVX512:
        return fr_cpu_has_avx512();
#endif
    default:
        return 0;
    }
}

int fr_isa_resolve(int isa)
{
    if (isa == FR_ISA_AUTO) {
        int best;
        for (best = FR_ISA_AVX512; best > FR_ISA_GENERIC && !fr_isa_available(best); --best)
            ;
        return best;
    }
    if (isa < FR_ISA_GENERIC || isa > FR_ISA_AVX512)
        return -FR_ERR_ARG;
    return fr_isa_available(isa) ? isa : -FR_ERR_ISA;
}

int fr_bf16_resolve(int path, int isa, ptrdiff_t batch)
{
    const int simd = isa == FR_ISA_AVX512;
    switch (path) {
    case FR_BF16_PORTABLE:
        return FR_BF16_PORTABLE;
    case FR_BF16_AVX512:
        return simd && fr_cpu_has_avx512bf16() ? FR_BF16_AVX512 : -FR_ERR_ISA;
    case FR_BF16_AMX:
        return simd && fr_cpu_has_amx() ? FR_BF16_AMX : -FR_ERR_ISA;
    case FR_BF16_AUTO:
        if (simd && batch >= FR_BF16_AMX_MIN_BATCH && fr_cpu_has_amx())
            return FR_BF16_AMX;
        if (simd && fr_cpu_has_avx512bf16())
            return FR_BF16_AVX512;
        return simd && fr_cpu_has_amx() ? FR_BF16_AMX : FR_BF16_PORTABLE;
    default:
        return -FR_ERR_ARG;
    }
}

const char *fr_bf16_name(int path)
{
    static const char *const names[] = {"auto", "portable", "avx512_bf16", "amx"};
    return path >= FR_BF16_AUTO && path <= FR_BF16_AMX ? names[path] : NULL;
}

/* The instruction set and bfloat16 path (0: none) a call on `batch` rows runs with, or a
 * negative fr_status. */
static int fr_resolve(const fr_options *O, ptrdiff_t batch, int *bpath)
{
    const int isa = O ? fr_isa_resolve(O->isa) : -FR_ERR_ARG;
    *bpath = 0;
    if (isa < 0 || O->precision != FR_PREC_BF16)
        return isa;
    *bpath = fr_bf16_resolve(O->bf16_path, isa, batch);
    return *bpath < 0 ? *bpath : isa;
}

const char *fr_isa_name(int isa)
{
    static const char *const names[] = {"auto", "generic", "avx2", "avx512"};
    return isa >= FR_ISA_AUTO && isa <= FR_ISA_AVX512 ? names[isa] : NULL;
}

void fr_options_default(fr_options *options)
{
    const fr_options defaults = {.isa = FR_ISA_AUTO, .xproj = FR_XPROJ_AUTO, .schedule = FR_SCHED_AUTO,
                                 .gemm = FR_GEMM_PACKED, .nthreads = fr_online_cpus(), .tile_rows = 0,
                                 .precision = FR_PREC_NATIVE, .bf16_path = FR_BF16_AUTO, .blas = NULL};
    *options = defaults;
}

double fr_tile_flops(int isa, int dtype, int R, int nv, ptrdiff_t K, ptrdiff_t npanels, long reps, const void *A,
                     const void *B, void *C)
{
    const int resolved = fr_isa_resolve(isa);
    const fr_isa_impl *impl;
    if (resolved < 0 || (dtype != FR_FLOAT32 && dtype != FR_FLOAT64) || (nv != 3 && nv != 4) || K < 1 ||
        npanels < 1 || reps < 1 || !A || !B || !C)
        return -1.0;
    impl = fr_isa_impl_of(resolved);
    return dtype == FR_FLOAT32 ? impl->tile_f32(R, nv, K, npanels, reps, A, B, C)
                               : impl->tile_f64(R, nv, K, npanels, reps, A, B, C);
}

int fr_apply_activation(int isa, int activation, int dtype, void *x, ptrdiff_t n)
{
    const int resolved = fr_isa_resolve(isa);
    const fr_isa_impl *impl;
    unsigned fp_saved;
    if (resolved < 0)
        return -resolved;
    if (activation < -1 || activation > FR_ACT_LINEAR || n < 0 || (n > 0 && !x))
        return FR_ERR_ARG;
    if (dtype != FR_FLOAT32 && dtype != FR_FLOAT64)
        return FR_ERR_ARG;
    impl = fr_isa_impl_of(resolved);
    fp_saved = fr_fp_flush_denormals(); /* as in the kernels */
    if (dtype == FR_FLOAT32)
        impl->act_f32((float *)x, n, activation);
    else
        impl->act_f64((double *)x, n, activation);
    fr_fp_restore(fp_saved);
    return FR_OK;
}

/* The header a fr_pack_weights buffer must carry to be used for layer L on `isa`. */
static void fr_pack_header_for(const fr_layer *L, int isa, int bpath, fr_pack_header *h)
{
    memset(h, 0, sizeof *h);
    h->magic = FR_PACK_MAGIC;
    h->isa = isa;
    h->bpath = bpath;
    h->dtype = L->dtype;
    h->cell = L->cell;
    h->depth = L->depth;
    h->units = L->units;
    h->proj = L->proj;
    h->has_proj = L->cell == FR_CELL_LSTM && L->proj_kernel != NULL;
    h->cand_rb = L->cell == FR_CELL_GRU && L->cand_recurrent_bias != NULL;
}

/* ---- public API ---- */

/* A packing (no batch known): the bfloat16 path a large batch would take. */
#define FR_PACK_BATCH PTRDIFF_MAX

size_t fr_packed_size(const fr_layer *layer, const fr_options *options)
{
    fr_mat_layout m[FR_NMATS];
    size_t off[FR_NMATS];
    int bpath;
    const int isa = fr_resolve(options, FR_PACK_BATCH, &bpath);
    return isa < 0 ? 0 : fr_pack_layout(layer, isa, bpath, m, off);
}

int fr_pack_weights(const fr_layer *layer, const fr_options *options, void *packed, size_t size)
{
    fr_mat_layout m[FR_NMATS];
    size_t off[FR_NMATS], total;
    fr_pack_header h;
    int bpath;
    const int isa = fr_resolve(options, FR_PACK_BATCH, &bpath);
    if (isa < 0)
        return -isa;
    total = fr_pack_layout(layer, isa, bpath, m, off);
    if (total == 0 || !packed)
        return FR_ERR_ARG;
    if (size < total)
        return FR_ERR_WORKSPACE;
    fr_pack_header_for(layer, isa, bpath, &h);
    memcpy(packed, &h, sizeof h);
    if (layer->dtype == FR_FLOAT32)
        fr_isa_impl_of(isa)->pack_f32(m, (char *)packed, off);
    else
        fr_isa_impl_of(isa)->pack_f64(m, (char *)packed, off);
    return FR_OK;
}

size_t fr_workspace_size(const fr_layer *layer, const fr_seq *seq, const fr_options *options)
{
    fr_plan pl;
    int bpath;
    const int isa = fr_resolve(options, seq ? seq->batch : 0, &bpath);
    if (isa < 0 || !fr_plan_make(layer, seq, options, isa, bpath, &pl))
        return 0;
    return pl.total;
}

int fr_layer_forward(const fr_layer *layer, const fr_seq *seq, const fr_options *options,
                     void *work, size_t work_size)
{
    fr_plan pl;
    fr_options opt;
    const fr_isa_impl *impl;
    ptrdiff_t B, T, b;
    size_t mis;
    char *base;
    int isa, bpath;

    if (!options || !fr_options_ok(options) || !seq)
        return FR_ERR_ARG;
    isa = fr_resolve(options, seq->batch, &bpath);
    if (isa < 0)
        return -isa;
    if (!fr_plan_make(layer, seq, options, isa, bpath, &pl))
        return FR_ERR_ARG;
    opt = *options;
    opt.isa = isa;
    if (opt.nthreads > FR_MAX_THREADS)
        opt.nthreads = FR_MAX_THREADS;
    impl = fr_isa_impl_of(isa);
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
    if (layer->packed && opt.gemm == FR_GEMM_PACKED) {
        fr_pack_header want, have;
        fr_mat_layout m[FR_NMATS];
        const size_t total = fr_pack_layout(layer, isa, bpath, m, pl.pre_off);
        fr_pack_header_for(layer, isa, bpath, &want);
        if (total > 0 && layer->packed_size >= total) {
            memcpy(&have, layer->packed, sizeof have);
            if (memcmp(&have, &want, sizeof have) == 0)
                pl.prepacked = (const char *)layer->packed;
        }
    }
    if (layer->dtype == FR_FLOAT32)
        return impl->forward_f32(layer, seq, &opt, base, &pl);
    return impl->forward_f64(layer, seq, &opt, base, &pl);
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
    case FR_ERR_ISA:
        return "the requested instruction set is not available on this CPU or in this build";
    case FR_ERR_CANCELLED:
        return "cancelled (fr_options.poll asked to stop)";
    default:
        return "unknown fastrnn status";
    }
}
