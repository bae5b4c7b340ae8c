# Declarations of csrc/fastrnn.h, and nothing else (see that header for the contract).
from libc.stdint cimport int64_t

cdef extern from "fastrnn.h" nogil:
    ctypedef enum fr_dtype:
        FR_FLOAT32
        FR_FLOAT64
    ctypedef enum fr_cell_kind:
        FR_CELL_RNN
        FR_CELL_LSTM
        FR_CELL_GRU
    ctypedef enum fr_activation:
        FR_ACT_TANH
        FR_ACT_SIGMOID
        FR_ACT_RELU
        FR_ACT_LINEAR
    ctypedef enum fr_status:
        FR_OK
        FR_ERR_ARG
        FR_ERR_WORKSPACE
        FR_ERR_ISA
        FR_ERR_CANCELLED
    ctypedef enum fr_isa:
        FR_ISA_AUTO
        FR_ISA_GENERIC
        FR_ISA_AVX2
        FR_ISA_AVX512
    ctypedef enum fr_xproj:
        FR_XPROJ_AUTO
        FR_XPROJ_HOISTED
        FR_XPROJ_FUSED
    ctypedef enum fr_schedule:
        FR_SCHED_AUTO
        FR_SCHED_COLUMNS
        FR_SCHED_ROWS
    ctypedef enum fr_gemm:
        FR_GEMM_PACKED
        FR_GEMM_BLAS
        FR_GEMM_PORTABLE
    ctypedef enum fr_precision:
        FR_PREC_NATIVE
        FR_PREC_BF16
    ctypedef enum fr_bf16_path:
        FR_BF16_AUTO
        FR_BF16_PORTABLE
        FR_BF16_AVX512
        FR_BF16_AMX

    ctypedef void (*fr_sgemm_fn)(char *transa, char *transb, int *m, int *n, int *k,
                                 float *alpha, float *a, int *lda, float *b, int *ldb,
                                 float *beta, float *c, int *ldc) noexcept nogil
    ctypedef void (*fr_dgemm_fn)(char *transa, char *transb, int *m, int *n, int *k,
                                 double *alpha, double *a, int *lda, double *b, int *ldb,
                                 double *beta, double *c, int *ldc) noexcept nogil

    ctypedef struct fr_blas:
        fr_sgemm_fn sgemm
        fr_dgemm_fn dgemm

    ctypedef struct fr_options:
        int isa
        int xproj
        int schedule
        int gemm
        int nthreads
        int tile_rows
        int precision
        int bf16_path
        const fr_blas *blas
        int (*poll)(void *ctx) noexcept nogil
        void *poll_ctx

    ctypedef struct fr_layer:
        int cell
        int dtype
        int activation
        Py_ssize_t depth
        Py_ssize_t units
        Py_ssize_t proj
        const void *kernel
        const void *bias
        const void *cand_kernel
        const void *cand_bias
        const void *cand_recurrent_bias
        const void *w_i_diag
        const void *w_f_diag
        const void *w_o_diag
        const void *proj_kernel
        const void *packed
        size_t packed_size
        double forget_bias
        int has_cell_clip
        double cell_clip
        int has_proj_clip
        double proj_clip

    ctypedef struct fr_seq:
        Py_ssize_t batch
        Py_ssize_t time
        int time_major
        int reverse
        const void *x
        const int64_t *lengths
        const void *h0
        const void *c0
        void *out
        void *h_final
        void *c_final

    void fr_options_default(fr_options *options) noexcept
    int fr_cell_gates(int cell) noexcept
    size_t fr_workspace_size(const fr_layer *layer, const fr_seq *seq, const fr_options *options) noexcept
    int fr_layer_forward(const fr_layer *layer, const fr_seq *seq, const fr_options *options,
                         void *work, size_t work_size) noexcept
    size_t fr_packed_size(const fr_layer *layer, const fr_options *options) noexcept
    int fr_pack_weights(const fr_layer *layer, const fr_options *options, void *packed, size_t size) noexcept
    const char *fr_strerror(int status) noexcept
    int fr_isa_resolve(int isa) noexcept
    const char *fr_isa_name(int isa) noexcept
    int fr_online_cpus() noexcept
    void fr_serial_enter() noexcept nogil
    void fr_serial_leave() noexcept nogil
    void fr_serial_wait(long max_ns) noexcept nogil
    int fr_bf16_resolve(int path, int isa, Py_ssize_t batch) noexcept
    const char *fr_bf16_name(int path) noexcept
    int fr_apply_activation(int isa, int activation, int dtype, void *x, Py_ssize_t n) noexcept


cdef extern from "fr_probe.h":
    ctypedef struct fr_cpu:
        char vendor[13]
        char brand[49]
        int family, model, stepping, hypervisor
        int sse2, avx, avx2, fma
        int avx512f, avx512bw, avx512vl, avx512dq
        int avx512_bf16, avx512_fp16, amx_tile, amx_bf16, amx_int8
        int os_avx, os_avx512, os_amx, amx_granted
        size_t l1d_bytes, l2_bytes, l3_bytes
        const char *cache_source

    void fr_cpu_info(fr_cpu *cpu) noexcept nogil
    int fr_amx_request() noexcept nogil
    int fr_probe_isa_usable(int isa) noexcept nogil
    double fr_probe_fma_peak(int isa, int dtype, double seconds) noexcept nogil
    double fr_probe_bf16_peak(double seconds) noexcept nogil
    double fr_probe_amx_peak(double seconds) noexcept nogil
    double fr_probe_bandwidth(size_t bytes, double seconds) noexcept nogil
    double fr_probe_clock_ghz(double seconds) noexcept nogil
