/*
 * fastrnn.h -- the C kernels' only public header (plain C99, no Python.h).
 *
 * One call runs one recurrent layer over a whole sequence:
 *
 *   fr_layer   what the layer is: cell family, sizes, activation, weights in
 *              TensorFlow 1.x layout (row-major, rows = [inputs; recurrent state]).
 *   fr_seq     what it runs on: inputs, per-row lengths, initial and final
 *              state, outputs; batch- or time-major; forward or reversed.
 *
 * Semantics are tf.nn.dynamic_rnn's: for t >= lengths[b] the output row is zero
 * and the state of row b is copied through unchanged, so its final state is the
 * state after step lengths[b]-1 (its initial state when lengths[b] == 0).
 * With reverse != 0 each row is read backwards *within its own length* and its
 * outputs are written back at the original positions (TF's reverse_sequence on
 * both sides), which is exactly the backward half of a bidirectional RNN.
 *
 * Data pointers are void* so that one struct serves float32 and float64; the
 * `dtype` field says which.  All arrays are C-contiguous.  The caller validates
 * shapes; the kernel re-checks only what would otherwise be memory-unsafe and
 * returns FR_ERR_ARG.  No allocation happens inside: the caller passes a
 * workspace of at least fr_workspace_size() bytes (and the same workspace may
 * serve call after call).  A call may use the persistent thread pool of
 * fr_threads.c; concurrent calls from several threads are safe.
 *
 * How a call runs (instruction set, input projection, thread schedule, GEMM,
 * threads) is chosen by the caller's fr_options, passed with every call: the
 * library reads no environment variable and keeps no setting between calls.
 * Those choices change speed, never results beyond rounding.
 */
#ifndef FASTRNN_H
#define FASTRNN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { FR_FLOAT32 = 0, FR_FLOAT64 = 1 } fr_dtype;

typedef enum { FR_CELL_RNN = 0, FR_CELL_LSTM = 1, FR_CELL_GRU = 2 } fr_cell_kind;

typedef enum {
    FR_ACT_TANH = 0,
    FR_ACT_SIGMOID = 1,
    FR_ACT_RELU = 2,
    FR_ACT_LINEAR = 3
} fr_activation;

typedef enum {
    FR_OK = 0,
    FR_ERR_ARG = 1,       /* a size, pointer or enum is out of range */
    FR_ERR_WORKSPACE = 2, /* work is NULL or smaller than fr_workspace_size() */
    FR_ERR_ISA = 3,       /* the requested instruction set is not available (CPU or build) */
    FR_ERR_CANCELLED = 4  /* fr_options.poll asked to stop: the outputs are incomplete */
} fr_status;

/* Instruction sets the kernels are compiled for; FR_ISA_AUTO picks the best the CPU runs. */
typedef enum { FR_ISA_AUTO = 0, FR_ISA_GENERIC = 1, FR_ISA_AVX2 = 2, FR_ISA_AVX512 = 3 } fr_isa;

/* The input projection x.W_x: FR_XPROJ_HOISTED = one GEMM over all steps before the
 * recurrence; FR_XPROJ_FUSED = inside each step's product ([x_t | h] . kernel);
 * FR_XPROJ_AUTO = fused from a few rows on (see fr_kernels.c). */
typedef enum { FR_XPROJ_AUTO = 0, FR_XPROJ_HOISTED = 1, FR_XPROJ_FUSED = 2 } fr_xproj;

/* How threads share the recurrence: FR_SCHED_COLUMNS = every step split by panels of
 * units (threads meet at each step); FR_SCHED_ROWS = rows dealt to groups, each running
 * all its steps alone; FR_SCHED_AUTO = chosen by size (and small calls on one thread).
 * A forced schedule applies whatever the size. */
typedef enum { FR_SCHED_AUTO = 0, FR_SCHED_COLUMNS = 1, FR_SCHED_ROWS = 2 } fr_schedule;

/* The GEMM behind every product: fastrnn's packed SIMD GEMM (the default), the caller's
 * BLAS table (fr_options.blas), or the portable C GEMM; the last two are cross-checks. */
typedef enum { FR_GEMM_PACKED = 0, FR_GEMM_BLAS = 1, FR_GEMM_PORTABLE = 2 } fr_gemm;

/* The arithmetic of the products.  FR_PREC_NATIVE: the layer's dtype.  FR_PREC_BF16
 * (float32 layers only): the weights and every product's operands rounded to bfloat16
 * (round to nearest even), products summed in float32; gates, state and outputs stay
 * float32. */
typedef enum { FR_PREC_NATIVE = 0, FR_PREC_BF16 = 1 } fr_precision;

/* How FR_PREC_BF16 multiplies: AMX tiles (tdpbf16ps; Intel Sapphire Rapids and later,
 * from FR_BF16_AMX_MIN_BATCH rows), AVX512-BF16 (vdpbf16ps; AMD Zen 4, Intel Cooper Lake
 * and later), or the portable path (operands rounded, float32 FMA) that every CPU runs.
 * FR_BF16_AUTO: the fastest this CPU has (chosen by the batch, never by the thread count,
 * so results do not depend on it). */
typedef enum { FR_BF16_AUTO = 0, FR_BF16_PORTABLE = 1, FR_BF16_AVX512 = 2, FR_BF16_AMX = 3 } fr_bf16_path;

/* Fortran-convention GEMM as exported by scipy.linalg.cython_blas:
 * C = alpha * op(A) * op(B) + beta * C, column-major. */
typedef void (*fr_sgemm_fn)(char *transa, char *transb, int *m, int *n, int *k,
                            float *alpha, float *a, int *lda, float *b, int *ldb,
                            float *beta, float *c, int *ldc);
typedef void (*fr_dgemm_fn)(char *transa, char *transb, int *m, int *n, int *k,
                            double *alpha, double *a, int *lda, double *b, int *ldb,
                            double *beta, double *c, int *ldc);

/* A BLAS for FR_GEMM_BLAS; a NULL entry selects the portable C GEMM for that dtype. */
typedef struct fr_blas {
    fr_sgemm_fn sgemm;
    fr_dgemm_fn dgemm;
} fr_blas;

/* How one call runs; fr_options_default fills the defaults (all automatic, packed
 * GEMM, every online CPU).  Unknown enum values are FR_ERR_ARG. */
typedef struct fr_options {
    int isa;              /* fr_isa */
    int xproj;            /* fr_xproj */
    int schedule;         /* fr_schedule */
    int gemm;             /* fr_gemm */
    int nthreads;         /* threads the call may use, >= 1 (at most 64 are used) */
    int tile_rows;        /* rows of the largest register tile, 0 = the ISA's (tests force each) */
    int precision;        /* fr_precision */
    int bf16_path;        /* fr_bf16_path (FR_PREC_BF16 only) */
    const fr_blas *blas;  /* FR_GEMM_BLAS only */
    /* Interruption (may be NULL): called from the calling thread about every 10 ms while
     * the call runs or waits for a free core; a non-zero return stops the call, which
     * returns FR_ERR_CANCELLED within a time step (every thread turns its remaining work
     * into no-ops; the pool and the workspace stay usable). */
    int (*poll)(void *ctx);
    void *poll_ctx;
} fr_options;

typedef struct fr_layer {
    int cell;        /* fr_cell_kind */
    int dtype;       /* fr_dtype */
    int activation;  /* fr_activation: the cell's `activation` (LSTM: on j and on c') */
    ptrdiff_t depth; /* input width */
    ptrdiff_t units; /* num_units */
    ptrdiff_t proj;  /* output and recurrent width: num_proj for a projected LSTM, else units */

    /* RNN : kernel [depth+units, units],  bias [units]
     * LSTM: kernel [depth+proj, 4*units], bias [4*units], gate columns i, j, f, o
     * GRU : kernel = gates/kernel [depth+units, 2*units], bias = gates/bias [2*units] (r, u) */
    const void *kernel;
    const void *bias;
    /* GRU only: candidate/kernel [depth+units, units], candidate/bias [units]; else NULL */
    const void *cand_kernel;
    const void *cand_bias;
    /* GRU only: candidate/recurrent_bias [units] selects the reset-after variant
     * (Keras 2 reset_after=True, PyTorch, cuDNN):
     *   cand = act(x.Wc_x + cand_bias + r * (h.Wc_h + cand_recurrent_bias));
     * NULL: TF1's GRUCell, cand = act(x.Wc_x + (r*h).Wc_h + cand_bias). */
    const void *cand_recurrent_bias;
    /* LSTM peepholes [units] each: all three or none (NULL) */
    const void *w_i_diag;
    const void *w_f_diag;
    const void *w_o_diag;
    /* LSTM projection/kernel [units, proj], or NULL (then proj == units) */
    const void *proj_kernel;

    /* Optional: these weights already packed by fr_pack_weights (the same weights,
     * dtype and shapes), so that calls skip packing them; NULL packs them in every
     * call.  A buffer packed for another instruction set, or one that does not
     * match the layer, is ignored (the call packs).  Its contents must not change
     * while a call runs, and it must be re-packed after the weights change. */
    const void *packed;
    size_t packed_size;

    double forget_bias;  /* LSTM: added to f before the sigmoid */
    int has_cell_clip;   /* LSTM: clip c' to [-cell_clip, cell_clip] */
    double cell_clip;
    int has_proj_clip;   /* LSTM with projection: clip the projected output */
    double proj_clip;
} fr_layer;

typedef struct fr_seq {
    ptrdiff_t batch;
    ptrdiff_t time;
    int time_major;          /* row of (t, b) in x and out: t*batch + b if 1, b*time + t if 0 */
    int reverse;             /* run each row backwards within its own length */
    const void *x;           /* [batch*time, depth] */
    const int64_t *lengths;  /* [batch], each in [0, time]; NULL means all rows run `time` steps */
    const void *h0;          /* [batch, proj]  initial recurrent state (h; m for a projected LSTM) */
    const void *c0;          /* [batch, units] initial LSTM cell state; NULL for RNN and GRU */
    void *out;               /* [batch*time, proj] outputs, zero past each row's length */
    void *h_final;           /* [batch, proj]  final recurrent state */
    void *c_final;           /* [batch, units] final LSTM cell state; NULL for RNN and GRU */
} fr_seq;

/* The defaults: every choice automatic, the packed GEMM, fr_online_cpus() threads. */
void fr_options_default(fr_options *options);

/* Gate blocks of a cell's `kernel` (columns = gates * units): RNN 1, LSTM 4, GRU 2
 * (a GRU's candidate kernel is separate); 0 for an unknown cell. */
int fr_cell_gates(int cell);

/* Bytes of workspace fr_layer_forward needs for this layer, sequence and options
 * (0 if the arguments are invalid). */
size_t fr_workspace_size(const fr_layer *layer, const fr_seq *seq, const fr_options *options);

/* Run the layer over the sequence.  Returns an fr_status. */
int fr_layer_forward(const fr_layer *layer, const fr_seq *seq, const fr_options *options,
                     void *work, size_t work_size);

/* Bytes fr_pack_weights needs for this layer on the instruction set `options` selects
 * (0 if the layer is invalid or the ISA unavailable). */
size_t fr_packed_size(const fr_layer *layer, const fr_options *options);

/* Pack the layer's weights for the packed GEMM of the instruction set that `options`
 * selects into `packed` (at least fr_packed_size bytes); then set layer->packed to
 * reuse them.  Returns an fr_status. */
int fr_pack_weights(const fr_layer *layer, const fr_options *options, void *packed, size_t size);

/* A static, human-readable message for a status code. */
const char *fr_strerror(int status);

/* The instruction set a request resolves to on this CPU and build (FR_ISA_AUTO: the
 * best available), or -FR_ERR_ISA when the requested one is not available and
 * -FR_ERR_ARG for an unknown value. */
int fr_isa_resolve(int isa);

/* "generic", "avx2", "avx512", or "auto"; NULL for an unknown value. */
const char *fr_isa_name(int isa);

/* The bfloat16 path a request resolves to for a batch of `batch` rows on instruction set
 * `isa` (resolved; FR_BF16_AUTO: the fastest this CPU has), or -FR_ERR_ISA when the one
 * requested is not available (the CPU, the OS's permission for AMX tiles, the build, or
 * an instruction set below AVX-512 for the two SIMD paths) and -FR_ERR_ARG for an unknown
 * value. */
int fr_bf16_resolve(int path, int isa, ptrdiff_t batch);

/* "auto", "portable", "avx512_bf16", "amx"; NULL for an unknown value. */
const char *fr_bf16_name(int path);

/* Online CPUs (at least 1), read once. */
int fr_online_cpus(void);

/* Serial sections of concurrent callers -- e.g. Python threads, each stepping its own
 * stream, that run a microsecond of interpreter code under the GIL between kernel calls of
 * a few microseconds made without it.  When one such caller wants the GIL back while
 * another holds it, it sleeps on the GIL's condition variable, and a sleeping core takes
 * tens of microseconds to wake under a hypervisor (measured: 30% of the steps of two LSTM
 * 128 streams took 15-150 us instead of 8).  So a caller marks its serial section
 * (fr_serial_enter once it holds the lock, fr_serial_leave once it let go), and before
 * taking the lock again fr_serial_wait spins -- at most `max_ns` -- while another caller
 * is in a serial section it entered less than `max_ns` ago: that one is about to let go,
 * and taking the lock after it does never sleeps.  A caller busy elsewhere (entered long
 * ago) is not waited for.  The first 64 threads to call take part; thread-safe, lock-free. */
void fr_serial_enter(void);
void fr_serial_leave(void);
void fr_serial_wait(long max_ns);

/* Apply `activation` (an fr_activation, or -1 for the gates' logistic sigmoid)
 * in place to n values of `dtype`, exactly as the kernels of instruction set `isa`
 * (an fr_isa) do (denormals flushed to zero, on x86-64).  For tests of the
 * activations' accuracy.  Returns an fr_status. */
int fr_apply_activation(int isa, int activation, int dtype, void *x, ptrdiff_t n);

#ifdef __cplusplus
}
#endif

#endif /* FASTRNN_H */
