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
    ctypedef enum fr_status:
        FR_OK
        FR_ERR_ARG
        FR_ERR_WORKSPACE

    ctypedef void (*fr_sgemm_fn)(char *transa, char *transb, int *m, int *n, int *k,
                                 float *alpha, float *a, int *lda, float *b, int *ldb,
                                 float *beta, float *c, int *ldc) noexcept nogil
    ctypedef void (*fr_dgemm_fn)(char *transa, char *transb, int *m, int *n, int *k,
                                 double *alpha, double *a, int *lda, double *b, int *ldb,
                                 double *beta, double *c, int *ldc) noexcept nogil

    ctypedef enum fr_products:
        FR_PRODUCTS_PACKED
        FR_PRODUCTS_TABLE

    ctypedef struct fr_blas:
        fr_sgemm_fn sgemm
        fr_dgemm_fn dgemm
        int products

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

    size_t fr_workspace_size(const fr_layer *layer, const fr_seq *seq) noexcept
    int fr_layer_forward(const fr_layer *layer, const fr_seq *seq, void *work, size_t work_size,
                         const fr_blas *blas) noexcept
    size_t fr_packed_size(const fr_layer *layer) noexcept
    int fr_pack_weights(const fr_layer *layer, void *packed, size_t size) noexcept
    const char *fr_strerror(int status) noexcept
    const char *fr_isa_name() noexcept
    void fr_set_num_threads(int n) noexcept
    int fr_get_num_threads() noexcept
    int fr_apply_activation(int activation, int dtype, void *x, Py_ssize_t n) noexcept
