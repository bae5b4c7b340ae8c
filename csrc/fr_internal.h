/*
 * fr_internal.h -- private declarations shared by the fastrnn C kernels.
 * Not installed, not part of the contract (that is fastrnn.h).
 *
 * Template bodies are instantiated once per dtype from ONE source:
 *   fr_gemm_impl.h     (included twice by fr_gemm.c)
 *   fr_tile_impl.h, fr_vmath_impl.h, fr_cells_impl.h, fr_step_impl.h  (included
 *                      twice by fr_forward_body.h, which fr_forward_generic.c /
 *                      _avx2.c / _avx512.c compile once per instruction set;
 *                      fr_kernels.c dispatches)
 * Before each inclusion the includer defines
 *   FR_T    the element type (float | double)
 *   FR_SFX  the name suffix  (f32   | f64)
 * and FR_FN(name) below turns `name` into `name_f32` / `name_f64`.
 *
 * GEMM layers (all row/column conventions spelled out because they are the
 * usual source of bugs):
 *   fr_gemm_ref_<sfx>        portable column-major GEMM, same convention as
 *                            BLAS ?gemm (Fortran order), args by value.
 *   fr_gemm_rm_<sfx>         ROW-major C[M,N] = alpha*A[M,K]*B[K,N] + beta*C,
 *                            through the fr_blas table (or the portable GEMM
 *                            when the table/entry is NULL), by operand swap:
 *                            row-major C = A*B is column-major C^T = B^T*A^T,
 *                            i.e. gemm('N','N', N, M, K, B, ldb, A, lda, C, ldc).
 *   fr_tile (fr_tile_impl.h, per ISA)  fastrnn's packed SIMD GEMM: weights packed
 *                            once per cell and ISA in gate-interleaved panels,
 *                            register tiles (fr_bf16.c: the bfloat16 tiles).
 * Every product of a layer goes through fr_product in fr_step_impl.h, which
 * picks the packed GEMM, the BLAS table or the portable GEMM by fr_options.gemm.
 * All functions below accept m/n/k == 0 (no-op, or C = beta*C when k == 0).
 */
#ifndef FR_INTERNAL_H
#define FR_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "fastrnn.h"

#define FR_CAT_(a, b) a##_##b
#define FR_CAT(a, b) FR_CAT_(a, b)
#define FR_FN(name) FR_CAT(name, FR_SFX)

/* Alignment (bytes) of every workspace sub-buffer. */
#define FR_ALIGN 64

/* ---- portable column-major GEMM (BLAS convention, arguments by value) ---- */
void fr_gemm_ref_f32(char transa, char transb, int m, int n, int k, float alpha,
                     const float *a, int lda, const float *b, int ldb, float beta,
                     float *c, int ldc);
void fr_gemm_ref_f64(char transa, char transb, int m, int n, int k, double alpha,
                     const double *a, int lda, const double *b, int ldb, double beta,
                     double *c, int ldc);

/* ---- row-major product through the BLAS table (NULL table/entry = portable) ---- */
void fr_gemm_rm_f32(const fr_blas *blas, int M, int N, int K, float alpha,
                    const float *A, int lda, const float *B, int ldb, float beta,
                    float *C, int ldc);
void fr_gemm_rm_f64(const fr_blas *blas, int M, int N, int K, double alpha,
                    const double *A, int lda, const double *B, int ldb, double beta,
                    double *C, int ldc);

/* The weight matrices of a layer, each packed whole in panels (fr_tile_impl.h) so that
 * one packed copy serves the input rows, the recurrent rows and the fused product of
 * both (rows: inputs first, then the recurrent state):
 *   FR_MAT_XH    the step's main product: LSTM kernel [depth+proj] x (i, j, f, o);
 *                RNN kernel (1 block); TF1 GRU gates/kernel (r, u); reset-after GRU
 *                gates/kernel and candidate/kernel side by side (r, u, c: its x rows
 *                give x.Wc_x, its h rows h.Wc_h)
 *   FR_MAT_C     TF1 GRU candidate/kernel [depth+units] (absent otherwise)
 *   FR_MAT_PROJ  LSTM projection/kernel [units, proj] (absent without num_proj) */
enum fr_mat_index { FR_MAT_XH, FR_MAT_C, FR_MAT_PROJ, FR_NMATS };

/* How a matrix's panels hold its values: the layer's dtype (FR_PACK_NATIVE), float32
 * rounded to bfloat16 (FR_PACK_ROUNDED: the portable bfloat16 path), or bfloat16 in VNNI
 * pairs for vdpbf16ps (FR_PACK_VNNI) or in AMX B tiles (FR_PACK_AMX); see fr_bf16.c. */
enum fr_pack_format { FR_PACK_NATIVE, FR_PACK_ROUNDED, FR_PACK_VNNI, FR_PACK_AMX };

/* A weight matrix as G gate blocks of `units` columns each (gate g's column u is
 * src[g][k * ld[g] + u], in the layer's dtype), and its panel layout for vectors of
 * `vl` elements: each panel holds, for every row k, all G gates of `ubp` blocks of vl
 * units side by side (pw = G * ubp * vl elements), so one register tile of a panel
 * ends with every gate of its units and the cell's update can follow at once.  Its K
 * rows are two segments, [0, kseg) (the inputs) and [kseg, K) (the recurrent state),
 * each padded with zero rows to a multiple of `gran` (1; bfloat16: 2 VNNI pairs, 32 AMX)
 * in the Kp packed rows.  units == 0: absent. */
typedef struct fr_mat_layout {
    ptrdiff_t K, G, units;
    ptrdiff_t kseg, gran, Kp;
    ptrdiff_t ubp, pw, np; /* unit blocks per panel, panel width, panels */
    int format;            /* fr_pack_format */
    size_t bytes;          /* packed size: np * Kp * pw elements */
    const void *src[4];
    ptrdiff_t ld[4];
} fr_mat_layout;

/* The layouts of layer L's matrices for vectors of `vl` float32/float64 elements and the
 * bfloat16 path `bpath` (0: the native dtype; fr_bf16_path otherwise); returns 1, or 0
 * when a size overflows. */
int fr_mat_layouts(const fr_layer *L, ptrdiff_t vl, int bpath, fr_mat_layout m[FR_NMATS]);

/* Padded length of a K segment of n rows for granularity gran. */
#define FR_KPAD(n, gran) (((n) + (gran) - 1) / (gran) * (gran))

/* ---- bfloat16 (fr_bf16.c) ---- */
uint16_t fr_bf16_round(float x);                                 /* to nearest even, hardware rules */
float fr_bf16_to_f32(uint16_t b);
void fr_bf16_row(const float *src, uint16_t *dst, ptrdiff_t n);  /* rounded, as bfloat16 */
void fr_bf16_round_row(const float *src, float *dst, ptrdiff_t n); /* rounded, as float32 */
ptrdiff_t fr_mat_src_row(const fr_mat_layout *lay, ptrdiff_t kp); /* source row of a packed row, -1: pad */
void fr_bf16_pack_panel(const fr_mat_layout *lay, ptrdiff_t q, void *out, ptrdiff_t vl);
void fr_bf16_tile_avx512(int R, int nv, int np, ptrdiff_t Kp, const uint16_t *A, ptrdiff_t lda,
                         const uint16_t *B, ptrdiff_t bs, ptrdiff_t pw, float *C, ptrdiff_t ldc);
void fr_bf16_tile_amx(int R, int nv, ptrdiff_t Kp, const uint16_t *A, ptrdiff_t lda, const uint16_t *B,
                      float *C, ptrdiff_t ldc);
void fr_amx_release(void); /* the calling thread's tile state, if it loaded a configuration */
int fr_cpu_has_avx512bf16(void);
int fr_cpu_has_amx(void);  /* ... and the OS granted this process the tile state */
/* AMX from this many rows in the whole batch (below, vdpbf16ps does as much per weight
 * byte read and the tile loads and stores cost more): see fr_bf16_resolve. */
#define FR_BF16_AMX_MIN_BATCH 4

/* The packed GEMM's register tile alone (csrc/tests/bench_tile.c): `reps` passes of tiles of
 * R rows over `npanels` contiguous panels of nv (3 or 4) vectors and K rows at B, A holding R
 * rows of K (lda = K), C R rows of the tile's width; on `isa`'s kernels in `dtype`.  Returns
 * the flops done, 0.0 for a tile shape the ISA does not have, -1.0 for bad arguments. */
double fr_tile_flops(int isa, int dtype, int R, int nv, ptrdiff_t K, ptrdiff_t npanels, long reps, const void *A,
                     const void *B, void *C);

/* SIMD register bytes of an instruction set (fr_isa): 16, 32 or 64. */
int fr_isa_vbytes(int isa);

/* Byte offsets of the workspace sub-buffers, relative to the aligned base. */
typedef struct fr_plan {
    fr_mat_layout mats[FR_NMATS];
    ptrdiff_t xw;  /* width of an xproj row (hoisted mode): XH's panels, then C's */
    int has_proj;  /* LSTM with proj_kernel */
    /* Input projection: hoisted (0) = one GEMM over all steps into xproj before the
     * recurrence; fused (1) = inside each step, as one product [x_t | h] . kernel.
     * In fused mode the h buffers hold rows [x_t | h] (hld = depth + proj columns,
     * h at column hoff = depth) and there is no xproj; hoisted: hld = proj, hoff = 0.
     * The reset-after GRU always runs hoisted (its candidate keeps x.Wc_x and h.Wc_h
     * apart). */
    int fused;
    ptrdiff_t hld, hoff;
    ptrdiff_t rld;  /* row width of rh: TF1 GRU [x_t | r*h] (fused) or [r*h] (hoisted) */
    int schedule;  /* fr_schedule: how threads share the recurrence (fr_forward_task) */
    int tile_rows;       /* fr_options.tile_rows: the largest register tile's rows (0: the ISA's) */
    int bpath;           /* the resolved fr_bf16_path, or 0: the layer's dtype (no bfloat16) */
    /* bfloat16 operand rows (bpath != 0), in elements of aes bytes (2: bfloat16, 4: the
     * portable path's rounded floats), K segments padded like the matrices':
     *   ab[2]  the step product's rows: [x_t | h] (fused, h at aoff) or [h] (hoisted)
     *   rb     TF1 GRU: [x_t | r*h] (fused) or [r*h];  mb: projected LSTM: m
     *   xb     hoisted: the inputs x, each row converted once, as read */
    size_t aes;
    ptrdiff_t ald, aoff, rbld, rboff, mbld, xbld;
    size_t off_ab, off_ab2, off_rb, off_mb, off_xb;
    ptrdiff_t prefetch;  /* the tiles' prefetch distance in panel rows (0: none): per CPU */
    ptrdiff_t rows_from; /* automatic schedule: rows split from this many rows per thread (0: never) */
    size_t off_perm, off_slen, off_count, off_pchunk, off_xproj, off_h, off_h2, off_c, off_ubuf,
        off_mbuf, off_rh;
    size_t off_pack[FR_NMATS]; /* packed weight matrices, see fr_mat_index */
    const char *prepacked;     /* layer->packed when usable by this call's ISA, else NULL */
    size_t pre_off[FR_NMATS];  /* ... and its matrices' offsets */
    size_t total;  /* bytes from `work` incl. alignment slack = fr_workspace_size */
} fr_plan;

/* A buffer of fr_pack_weights: this header, then the matrices (fr_pack_layout). */
#define FR_PACK_MAGIC 0x33304b4341505246ull /* "FRPACK03": gate-interleaved panels */
#define FR_PACK_HEADER 128
typedef struct fr_pack_header {
    uint64_t magic;
    int64_t isa, dtype, cell, depth, units, proj, has_proj, cand_rb, bpath;
} fr_pack_header;

/* ---- the forward body, compiled once per instruction set ----
 * fr_forward_body.h instantiates the templates for float and double in
 * fr_forward_generic.c (baseline flags), fr_forward_avx2.c (-mavx2 -mfma) and
 * fr_forward_avx512.c (-mavx512f ...); CMake defines FR_BUILD_AVX2 /
 * FR_BUILD_AVX512 when the compiler supports those flags. */
#define FR_FORWARD_DECL(isa)                                                            \
    int fr_forward_##isa##_f32(const fr_layer *, const fr_seq *, const fr_options *, char *, \
                               const fr_plan *);                                        \
    int fr_forward_##isa##_f64(const fr_layer *, const fr_seq *, const fr_options *, char *, \
                               const fr_plan *);                                        \
    void fr_apply_activation_##isa##_f32(float *, ptrdiff_t, int);                      \
    void fr_apply_activation_##isa##_f64(double *, ptrdiff_t, int);                     \
    double fr_tile_flops_##isa##_f32(int, int, ptrdiff_t, ptrdiff_t, long, const void *, const void *, void *); \
    double fr_tile_flops_##isa##_f64(int, int, ptrdiff_t, ptrdiff_t, long, const void *, const void *, void *); \
    void fr_pack_weights_##isa##_f32(const fr_mat_layout *, char *, const size_t *); \
    void fr_pack_weights_##isa##_f64(const fr_mat_layout *, char *, const size_t *);
FR_FORWARD_DECL(generic)
FR_FORWARD_DECL(avx2)
FR_FORWARD_DECL(avx512)

/* ---- threads (fr_threads.c) ---- */
#define FR_MAX_THREADS 64

/* A job: fn(arg, tid, nthreads) runs once for every tid in [0, nthreads). */
typedef void (*fr_task_fn)(void *arg, int tid, int nthreads);

/* Called with the job's actual thread count before any of its threads starts. */
typedef void (*fr_prepare_fn)(void *arg, int nthreads);

/* Cancellation of one call: the caller's poll (fr_options.poll), asked from the caller's
 * thread (tid 0) at most every FR_POLL_NS, and the flag every thread of the call reads. */
#define FR_POLL_NS 10000000LL
typedef struct fr_cancel {
    int (*poll)(void *ctx);
    void *ctx;
    int flag;          /* atomic: 1 once cancelled */
    long long next_ns; /* the caller's thread only: when to poll next */
} fr_cancel;
void fr_cancel_init(fr_cancel *c, const fr_options *o);
/* tid 0 polls when due; every thread: whether the call is cancelled */
int fr_cancel_check(fr_cancel *c, int tid);
static inline int fr_cancelled(const fr_cancel *c)
{
    return c && __atomic_load_n(&c->flag, __ATOMIC_RELAXED);
}

/* Run a job on up to `nthreads` threads (at most FR_MAX_THREADS; the caller is thread 0)
 * and return when all are done.  Cores are shared between concurrent callers: a call
 * takes up to nthreads of the cores no other call holds, waiting for one when none is
 * free (a call alone takes all it asks for), so callers never oversubscribe the machine;
 * a call that gets one core, or finds the pool busy, runs on its caller alone.  `prepare`
 * (may be NULL) learns the count first.  Returns 0, or -1 when `cancel` stopped it while
 * it waited for a core (then the job did not run). */
int fr_parallel_run(fr_task_fn fn, fr_prepare_fn prepare, void *arg, int nthreads, fr_cancel *cancel);

/* Phased work queue: the threads of a job run the same sequence of phases; a
 * phase is `nchunks` independent chunks, and it ends (for every thread) when all
 * of them have run.  Chunks are split by owner (thread o owns the o-th share, so
 * the same data stays in the same core's cache from phase to phase), but a thread
 * that finishes its share takes the others' unclaimed chunks: a thread that is
 * late or descheduled holds up only the chunks it has claimed (the one it runs,
 * or, between its last chunk and reporting its count, those it ran), never the
 * rest. */
#define FR_QPAD 8 /* long longs per counter: one cache line each */
typedef struct fr_queue {
    int nowners;
    fr_cancel *cancel;                        /* polled by thread 0 while it waits (may be NULL) */
    long long done;                           /* atomic: chunks run, whole job */
    long long next[FR_MAX_THREADS * FR_QPAD]; /* atomic: per-owner ticket counters */
} fr_queue;
typedef struct fr_cursor { /* one thread's view; every thread keeps its own */
    long long held[FR_MAX_THREADS];
    long long base[FR_MAX_THREADS];
    long long total;
} fr_cursor;
typedef void (*fr_chunk_fn)(void *ctx, ptrdiff_t chunk, int tid);
void fr_queue_init(fr_queue *q, int nowners, fr_cancel *cancel);
void fr_cursor_init(fr_cursor *cur, int nowners);
void fr_queue_phase(fr_queue *q, fr_cursor *cur, int tid, ptrdiff_t nchunks, fr_chunk_fn fn,
                    void *ctx);

/* Denormals flushed to zero (x86-64: MXCSR's FTZ and DAZ bits) on the calling
 * thread while a layer runs, as TensorFlow's CPU kernels run; returns the caller's
 * state for fr_fp_restore, which puts its modes back and keeps the exception flags
 * raised meanwhile.  Elsewhere both do nothing. */
unsigned fr_fp_flush_denormals(void);
void fr_fp_restore(unsigned saved);

/* Per-CPU choices of the kernels for resolved ISA `isa` and a layer whose packed weights
 * take `weight_bytes`: the tiles' prefetch distance and the rows per thread from which the
 * row-split schedule pays (fr_kernels.c; measured, see there). */
void fr_tuning(int isa, size_t weight_bytes, ptrdiff_t *prefetch, ptrdiff_t *rows_from);

/* CPU feature checks (x86 only; 0 elsewhere). */
int fr_cpu_has_avx2(void);
int fr_cpu_has_avx512(void);

#endif /* FR_INTERNAL_H */
