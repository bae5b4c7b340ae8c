# cython: language_level=3
"""fastrnn._kernels -- the thin Cython layer over csrc/ (private).

It validates nothing the Python layer already checked (fastrnn._validate does
that, with the messages users see).  What it does check is what memory safety
depends on: every array is acquired through the buffer protocol as C-contiguous
with the expected item type and exact element count, outputs as writable.  It
allocates the outputs and the kernel's workspace, releases the GIL around the
kernel call, and maps status codes to exceptions in one place (_check).

float32 and float64 share one body: arrays cross into C as void* with the
layer's dtype code, and csrc/ instantiates its kernels for both types from one
template.  BLAS comes from SciPy's scipy.linalg.cython_blas, taken from the
module's exported C capsules at import (no SciPy headers needed to build).
"""
from cpython.buffer cimport (PyBUF_C_CONTIGUOUS, PyBUF_FORMAT, PyBUF_WRITABLE, PyBuffer_Release,
                             PyObject_GetBuffer)
from cpython.mem cimport PyMem_RawFree, PyMem_RawMalloc
from cpython.pycapsule cimport PyCapsule_GetName, PyCapsule_GetPointer
from libc.stdint cimport int64_t
from libc.string cimport memset

cimport _fastrnn as c

import threading

import numpy as np

cdef c.fr_blas _packed_blas     # products: fastrnn's packed SIMD GEMM (the default)
cdef c.fr_blas _scipy_blas      # products: SciPy's BLAS
cdef c.fr_blas _portable_blas   # products: csrc's portable C GEMM (NULL entries)
_packed_blas.products = c.FR_PRODUCTS_PACKED
_scipy_blas.products = c.FR_PRODUCTS_TABLE
_portable_blas.products = c.FR_PRODUCTS_TABLE
cdef c.fr_blas *_blas = &_packed_blas

cdef enum:
    MAX_BUFFERS = 24


cdef void *_capsule_pointer(object capsule) except NULL:
    return PyCapsule_GetPointer(capsule, PyCapsule_GetName(capsule))


def _load_scipy_blas():
    from scipy.linalg import cython_blas
    capi = cython_blas.__pyx_capi__
    _scipy_blas.sgemm = <c.fr_sgemm_fn>_capsule_pointer(capi["sgemm"])
    _scipy_blas.dgemm = <c.fr_dgemm_fn>_capsule_pointer(capi["dgemm"])
    _packed_blas.sgemm, _packed_blas.dgemm = _scipy_blas.sgemm, _scipy_blas.dgemm


_load_scipy_blas()


def set_gemm(str which):
    """Select the GEMM behind the kernels' products: ``"packed"`` (fastrnn's packed SIMD GEMM,
    the default), ``"blas"`` (SciPy's BLAS) or ``"portable"`` (csrc's plain C GEMM).
    Process-wide; meant for tests and benchmarks."""
    global _blas
    if which == "packed":
        _blas = &_packed_blas
    elif which == "blas":
        _blas = &_scipy_blas
    elif which == "portable":
        _blas = &_portable_blas
    else:
        raise ValueError(f"which: expected 'packed', 'blas' or 'portable', got {which!r}")


def get_gemm():
    """The GEMM selected by :func:`set_gemm`."""
    if _blas == &_packed_blas:
        return "packed"
    return "portable" if _blas == &_portable_blas else "blas"


def set_num_threads(int n):
    """Threads a kernel call may use (n >= 1), or 0 for the default (FASTRNN_NUM_THREADS, else all CPUs)."""
    if n < 0:
        raise ValueError(f"n: expected a non-negative integer, got {n}")
    c.fr_set_num_threads(n)


def get_num_threads():
    """Threads a kernel call may use."""
    return c.fr_get_num_threads()


def isa():
    """The instruction set the kernels run with now ("avx512", "avx2" or "generic").

    The best the CPU supports, unless the environment variable FASTRNN_ISA names one.
    """
    return c.fr_isa_name().decode()


def apply_activation(int activation, x):
    """Apply kernel activation ``activation`` (-1: the gates' sigmoid) in place to the
    contiguous float32/float64 array ``x``, exactly as the kernels do (for accuracy tests)."""
    cdef int dtype = c.FR_FLOAT64 if x.dtype == np.float64 else c.FR_FLOAT32
    cdef _Buffers bufs = _Buffers(dtype)
    cdef void *data = bufs.get(x, x.size, True, "x")
    _check(c.fr_apply_activation(activation, dtype, data, x.size))


cdef class _Buffers:
    """Buffers acquired for one kernel call; all released when it goes away."""
    cdef Py_buffer views[MAX_BUFFERS]
    cdef int n
    cdef int dtype

    def __cinit__(self, int dtype):
        self.n = 0
        self.dtype = dtype

    def __dealloc__(self):
        cdef int i
        for i in range(self.n):
            PyBuffer_Release(&self.views[i])

    cdef void *get(self, object arr, Py_ssize_t count, bint writable, str name, bint optional=False) except? NULL:
        """Data pointer of ``arr``: C-contiguous, ``count`` items of the layer's float type."""
        if arr is None:
            if optional:
                return NULL
            raise ValueError(f"{name}: required")
        if self.n >= MAX_BUFFERS:
            raise RuntimeError("too many buffers")
        cdef Py_buffer *view = &self.views[self.n]
        PyObject_GetBuffer(arr, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (PyBUF_WRITABLE if writable else 0))
        self.n += 1
        fmt = (<bytes>view.format).lstrip(b"@=<")
        expected = b"f" if self.dtype == c.FR_FLOAT32 else b"d"
        if fmt != expected or view.itemsize != (4 if expected == b"f" else 8):
            raise TypeError(f"{name}: expected {'float32' if expected == b'f' else 'float64'} data, "
                            f"got format {view.format!r}")
        if view.len != count * view.itemsize:
            raise ValueError(f"{name}: expected {count} elements, got {view.len // view.itemsize}")
        if count and <size_t>view.buf % <size_t>view.itemsize:  # an empty array is never read
            raise ValueError(f"{name}: data at a misaligned address (not a multiple of {view.itemsize} bytes)")
        return view.buf

    cdef const void *raw(self, object arr, str name) except NULL:
        """Data pointer of any C-contiguous buffer (bytes, whatever the item type)."""
        if self.n >= MAX_BUFFERS:
            raise RuntimeError("too many buffers")
        cdef Py_buffer *view = &self.views[self.n]
        PyObject_GetBuffer(arr, view, PyBUF_C_CONTIGUOUS)
        self.n += 1
        if view.len == 0:
            raise ValueError(f"{name}: empty")
        return view.buf

    cdef const int64_t *lengths(self, object arr, Py_ssize_t count) except? NULL:
        if arr is None:
            return NULL
        if self.n >= MAX_BUFFERS:
            raise RuntimeError("too many buffers")
        cdef Py_buffer *view = &self.views[self.n]
        PyObject_GetBuffer(arr, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT)
        self.n += 1
        if view.itemsize != 8 or (<bytes>view.format).lstrip(b"@=<") not in (b"q", b"l"):
            raise TypeError(f"lengths: expected int64 data, got format {view.format!r}")
        if view.len != count * 8:
            raise ValueError(f"lengths: expected {count} elements, got {view.len // 8}")
        if count and <size_t>view.buf % 8:
            raise ValueError("lengths: data at a misaligned address (not a multiple of 8 bytes)")
        return <const int64_t *>view.buf


# Each Python thread keeps its last workspace (up to this size) for its next call: a fresh
# multi-megabyte allocation is handed out by the OS as untouched pages, and faulting them in
# again on every call costs more than the kernels' arithmetic for large inputs (measured:
# LSTM batch 256, 512 units, 50 steps spent ~20 ms of 166 ms in page faults for the
# input-projection buffer).  Larger workspaces are freed after their call.
WORKSPACE_CACHE_BYTES = 512 * 1024 * 1024


cdef class _Workspace:
    cdef void *ptr
    cdef size_t size

    def __cinit__(self):
        self.ptr = NULL
        self.size = 0

    def __dealloc__(self):
        PyMem_RawFree(self.ptr)

    cdef void *get(self, size_t n) except NULL:
        if n > self.size:
            PyMem_RawFree(self.ptr)
            self.ptr = PyMem_RawMalloc(n)
            self.size = n if self.ptr != NULL else 0
            if self.ptr == NULL:
                raise MemoryError(f"fastrnn: cannot allocate a {n}-byte workspace")
        return self.ptr


_local = threading.local()


def release_workspace():
    """Free the calling thread's cached kernel workspace (it is re-created on the next call)."""
    _local.__dict__.pop("workspace", None)


cdef int _check(int status) except -1:
    if status == c.FR_OK:
        return 0
    msg = c.fr_strerror(status).decode("utf-8", "replace")
    if status == c.FR_ERR_ARG:
        raise ValueError(f"fastrnn kernel rejected its arguments: {msg}")
    raise RuntimeError(f"fastrnn kernel failed: {msg}")


cdef int _fill_layer(c.fr_layer *L, dict layer, _Buffers bufs) except -1:
    """Fill ``L`` from a layer spec (see layer_forward), acquiring every weight buffer."""
    cdef Py_ssize_t depth = layer["depth"], units = layer["units"], proj = layer["proj"]
    cdef Py_ssize_t gates = {c.FR_CELL_RNN: 1, c.FR_CELL_LSTM: 4, c.FR_CELL_GRU: 2}[layer["cell"]]
    cdef Py_ssize_t recur = proj if layer["cell"] == c.FR_CELL_LSTM else units
    cdef bint gru = layer["cell"] == c.FR_CELL_GRU
    memset(L, 0, sizeof(c.fr_layer))
    L.cell = layer["cell"]
    L.dtype = layer["dtype"]
    L.activation = layer["activation"]
    L.depth, L.units, L.proj = depth, units, proj
    L.kernel = bufs.get(layer["kernel"], (depth + recur) * gates * units, False, "kernel")
    L.bias = bufs.get(layer["bias"], gates * units, False, "bias")
    L.cand_kernel = bufs.get(layer.get("cand_kernel"), (depth + units) * units, False, "cand_kernel", not gru)
    L.cand_bias = bufs.get(layer.get("cand_bias"), units, False, "cand_bias", not gru)
    L.cand_recurrent_bias = bufs.get(layer.get("cand_recurrent_bias"), units, False, "cand_recurrent_bias",
                                     True)
    L.w_i_diag = bufs.get(layer.get("w_i_diag"), units, False, "w_i_diag", True)
    L.w_f_diag = bufs.get(layer.get("w_f_diag"), units, False, "w_f_diag", True)
    L.w_o_diag = bufs.get(layer.get("w_o_diag"), units, False, "w_o_diag", True)
    L.proj_kernel = bufs.get(layer.get("proj_kernel"), units * proj, False, "proj_kernel", True)
    L.forget_bias = layer.get("forget_bias", 0.0)
    cell_clip, proj_clip = layer.get("cell_clip"), layer.get("proj_clip")
    L.has_cell_clip, L.cell_clip = cell_clip is not None, (cell_clip or 0.0)
    L.has_proj_clip, L.proj_clip = proj_clip is not None, (proj_clip or 0.0)
    return 0


def pack_weights(dict layer):
    """The layer's weights packed for the current instruction set, as a uint8 array to pass
    back as ``layer["packed"]`` (calls then skip packing; the kernel ignores a buffer packed
    for another ISA or another layer).  Re-pack after the weights change."""
    cdef c.fr_layer L
    cdef _Buffers bufs = _Buffers(layer["dtype"])
    _fill_layer(&L, layer, bufs)
    cdef size_t size = c.fr_packed_size(&L)
    if size == 0:
        _check(c.FR_ERR_ARG)
    packed = np.empty(size, np.uint8)
    cdef unsigned char[::1] view = packed
    _check(c.fr_pack_weights(&L, &view[0], size))
    return packed


def layer_forward(dict layer, x, lengths, h0, c0, bint time_major, bint reverse, Py_ssize_t batch,
                  Py_ssize_t time):
    """Run one layer over a sequence; returns ``(outputs, h_final, c_final or None)``.

    ``layer`` holds ``cell``, ``dtype`` (0 float32, 1 float64), ``activation``, ``depth``,
    ``units``, ``proj``, the weight arrays (``kernel``, ``bias``, ``cand_kernel``,
    ``cand_bias``, ``cand_recurrent_bias``, ``w_i_diag``, ``w_f_diag``, ``w_o_diag``, ``proj_kernel``; absent ones
    None), ``forget_bias``, ``cell_clip`` and ``proj_clip`` (None or a float).
    """
    cdef c.fr_layer L
    cdef c.fr_seq S
    cdef int dtype = layer["dtype"]
    cdef _Buffers bufs = _Buffers(dtype)
    cdef Py_ssize_t units = layer["units"], proj = layer["proj"], depth = layer["depth"]
    cdef bint lstm = layer["cell"] == c.FR_CELL_LSTM
    cdef size_t work_size
    cdef void *work = NULL
    cdef int status
    cdef _Workspace ws

    _fill_layer(&L, layer, bufs)
    packed = layer.get("packed")
    if packed is not None:  # weights packed once by pack_weights (checked by the kernel)
        L.packed = bufs.raw(packed, "packed")
        L.packed_size = packed.nbytes

    np_dtype = np.float32 if dtype == c.FR_FLOAT32 else np.float64
    shape = (time, batch, proj) if time_major else (batch, time, proj)
    out = np.empty(shape, np_dtype)
    h_final = np.empty((batch, proj), np_dtype)
    c_final = np.empty((batch, units), np_dtype) if lstm else None

    S.batch, S.time = batch, time
    S.time_major, S.reverse = time_major, reverse
    S.x = bufs.get(x, batch * time * depth, False, "x")
    S.lengths = bufs.lengths(lengths, batch)
    S.h0 = bufs.get(h0, batch * proj, False, "h0")
    S.c0 = bufs.get(c0, batch * units, False, "c0", not lstm)
    S.out = bufs.get(out, batch * time * proj, True, "out")
    S.h_final = bufs.get(h_final, batch * proj, True, "h_final")
    S.c_final = bufs.get(c_final, batch * units, True, "c_final", not lstm)

    work_size = c.fr_workspace_size(&L, &S)
    if work_size == 0:
        _check(c.FR_ERR_ARG)
    if work_size <= WORKSPACE_CACHE_BYTES:
        ws = _local.__dict__.get("workspace")
        if ws is None:
            ws = _local.workspace = _Workspace()
    else:
        ws = _Workspace()  # freed when this call returns
    work = ws.get(work_size)
    with nogil:
        status = c.fr_layer_forward(&L, &S, work, work_size, _blas)
    _check(status)
    return out, h_final, c_final
