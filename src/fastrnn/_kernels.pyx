# cython: language_level=3
"""fastrnn._kernels -- the thin Cython layer over csrc/ (private).

The boundary is typed: a layer crosses into C as a :class:`Layer` (every field of
``fr_layer`` a required keyword argument, named once, so a missing or misspelled
field is a ``TypeError``, never a default), and how a call runs as an
:class:`Options` (``fr_options``: instruction set, input projection, schedule, GEMM,
threads).  Enum values come from csrc/fastrnn.h through _fastrnn.pxd, never copied
by hand.

It validates nothing the Python layer already checked (fastrnn._validate does
that, with the messages users see).  What it does check is what memory safety
depends on: every array is acquired through the buffer protocol as C-contiguous
with the expected item type and exact element count, outputs as writable; a
Layer holds its weights' buffers for its whole life.  It allocates the outputs,
takes a workspace from a small pool, releases the GIL around the kernel call, and
maps status codes to exceptions in one place (_check).

float32 and float64 share one body: arrays cross into C as void* with the layer's
dtype code, and csrc/ instantiates its kernels for both types from one template.
SciPy's BLAS (a cross-check path only, ``gemm="blas"``) is loaded on first use.
"""
from cpython.buffer cimport (PyBUF_C_CONTIGUOUS, PyBUF_FORMAT, PyBUF_WRITABLE, PyBuffer_Release,
                             PyObject_GetBuffer)
from cpython.mem cimport PyMem_RawFree, PyMem_RawMalloc
from cpython.pycapsule cimport PyCapsule_GetName, PyCapsule_GetPointer
from libc.stdint cimport int64_t
from libc.string cimport memset

cimport numpy as cnp

cimport _fastrnn as c

import threading

import numpy as np

cnp.import_array()

cdef extern from "Python.h":
    int PyErr_CheckSignals()  # -1 with the handler's exception (KeyboardInterrupt) set
    object PyErr_Occurred()
    unsigned long PyThread_get_thread_ident()

# ---- enum values of csrc/fastrnn.h ----------------------------------------------------
FLOAT32, FLOAT64 = c.FR_FLOAT32, c.FR_FLOAT64
CELL_RNN, CELL_LSTM, CELL_GRU = c.FR_CELL_RNN, c.FR_CELL_LSTM, c.FR_CELL_GRU
ACTIVATIONS = {"tanh": c.FR_ACT_TANH, "sigmoid": c.FR_ACT_SIGMOID, "relu": c.FR_ACT_RELU,
               "linear": c.FR_ACT_LINEAR}
ISAS = {"auto": c.FR_ISA_AUTO, "generic": c.FR_ISA_GENERIC, "avx2": c.FR_ISA_AVX2, "avx512": c.FR_ISA_AVX512}
XPROJ = {"auto": c.FR_XPROJ_AUTO, "hoisted": c.FR_XPROJ_HOISTED, "fused": c.FR_XPROJ_FUSED}
SCHEDULES = {"auto": c.FR_SCHED_AUTO, "columns": c.FR_SCHED_COLUMNS, "rows": c.FR_SCHED_ROWS}
GEMMS = {"packed": c.FR_GEMM_PACKED, "blas": c.FR_GEMM_BLAS, "portable": c.FR_GEMM_PORTABLE}
PRECISIONS = {"native": c.FR_PREC_NATIVE, "bfloat16": c.FR_PREC_BF16}
BF16_PATHS = {"auto": c.FR_BF16_AUTO, "portable": c.FR_BF16_PORTABLE, "avx512_bf16": c.FR_BF16_AVX512,
              "amx": c.FR_BF16_AMX}

cdef enum:
    MAX_BUFFERS = 12


def cell_gates(int cell):
    """Gate blocks of a layer's kernel (``fr_cell_gates``): RNN 1, LSTM 4, GRU 2."""
    cdef int g = c.fr_cell_gates(cell)
    if g == 0:
        raise ValueError(f"cell: unknown cell kind {cell}")
    return g


def online_cpus():
    """The CPUs online (``fr_online_cpus``)."""
    return c.fr_online_cpus()


def resolve_isa(str isa):
    """The instruction set a request runs with here (``"auto"``: the best available);
    ``ValueError`` when the CPU or the build lacks the one requested."""
    cdef int r = c.fr_isa_resolve(_choice(ISAS, isa, "isa"))
    if r < 0:
        raise ValueError(f"isa: {isa!r} is not available on this CPU or in this build "
                         f"(available: {', '.join(available_isas())})")
    return c.fr_isa_name(r).decode()


def available_isas():
    """The instruction sets this CPU and build run, worst to best."""
    return [name for name, code in ISAS.items() if code != c.FR_ISA_AUTO and c.fr_isa_resolve(code) == code]


def resolve_bf16(str path, str isa, Py_ssize_t batch):
    """The bfloat16 path a call on ``batch`` rows runs with on ``isa`` ("auto": the fastest
    this CPU has; AMX from a few rows on); ``ValueError`` when the one requested is not
    available (CPU, the OS's AMX permission, the build, or an instruction set below AVX-512)."""
    cdef int i = c.fr_isa_resolve(_choice(ISAS, isa, "isa"))
    cdef int r
    if i < 0:
        resolve_isa(isa)  # raises
    r = c.fr_bf16_resolve(_choice(BF16_PATHS, path, "bf16_path"), i, batch)
    if r < 0:
        raise ValueError(f"bf16_path: {path!r} is not available here (isa {c.fr_isa_name(i).decode()}; "
                         f"available: {', '.join(available_bf16_paths())})")
    return c.fr_bf16_name(r).decode()


def available_bf16_paths():
    """The bfloat16 paths this CPU, OS and build run (on its best instruction set)."""
    cdef int best = c.fr_isa_resolve(c.FR_ISA_AUTO)
    return [name for name, code in BF16_PATHS.items()
            if code != c.FR_BF16_AUTO and c.fr_bf16_resolve(code, best, 1 << 20) == code]


cdef int _choice(dict table, str value, str name) except -1:
    try:
        return table[value]
    except KeyError:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, table))}, got {value!r}") from None


# ---- SciPy's BLAS, for gemm="blas" (loaded on first use) ----------------------------
cdef c.fr_blas _scipy_blas
cdef bint _scipy_loaded = False


cdef void *_capsule_pointer(object capsule) except NULL:
    return PyCapsule_GetPointer(capsule, PyCapsule_GetName(capsule))


cdef int _load_scipy_blas() except -1:
    global _scipy_loaded
    if _scipy_loaded:
        return 0
    try:
        from scipy.linalg import cython_blas
    except ImportError as e:
        raise ImportError("gemm='blas' needs SciPy (pip install scipy); it is only a cross-check path") from e
    capi = cython_blas.__pyx_capi__
    _scipy_blas.sgemm = <c.fr_sgemm_fn>_capsule_pointer(capi["sgemm"])
    _scipy_blas.dgemm = <c.fr_dgemm_fn>_capsule_pointer(capi["dgemm"])
    _scipy_loaded = True
    return 0


cdef class Options:
    """How a call runs (``fr_options``); every field required.

    ``isa``: ``"auto"``, ``"generic"``, ``"avx2"``, ``"avx512"`` (refused when unavailable);
    ``xproj``: ``"auto"``, ``"hoisted"``, ``"fused"``; ``schedule``: ``"auto"``,
    ``"columns"``, ``"rows"``; ``gemm``: ``"packed"``, ``"blas"`` (SciPy's), ``"portable"``;
    ``nthreads``: threads a call may use (>= 1); ``tile_rows``: rows of the largest register
    tile (0: the instruction set's; the tests force each); ``precision``: ``"native"`` or
    ``"bfloat16"``; ``bf16_path``: ``"auto"``, ``"portable"``, ``"avx512_bf16"``, ``"amx"``.
    """
    cdef c.fr_options opts
    cdef readonly str isa, xproj, schedule, gemm, precision, bf16_path
    cdef readonly int nthreads, tile_rows
    cdef readonly int resolved_isa

    def __init__(self, *, str isa, str xproj, str schedule, str gemm, int nthreads, int tile_rows, str precision,
                 str bf16_path):
        if nthreads < 1:
            raise ValueError(f"nthreads: expected a positive integer, got {nthreads}")
        if not 0 <= tile_rows <= 8:
            raise ValueError(f"tile_rows: expected 0 (automatic) to 8, got {tile_rows}")
        resolve_isa(isa)
        c.fr_options_default(&self.opts)
        self.opts.isa = _choice(ISAS, isa, "isa")
        self.opts.xproj = _choice(XPROJ, xproj, "xproj")
        self.opts.schedule = _choice(SCHEDULES, schedule, "schedule")
        self.opts.gemm = _choice(GEMMS, gemm, "gemm")
        self.opts.nthreads = nthreads
        self.opts.tile_rows = tile_rows
        self.opts.precision = _choice(PRECISIONS, precision, "precision")
        self.opts.bf16_path = _choice(BF16_PATHS, bf16_path, "bf16_path")
        if self.opts.precision == c.FR_PREC_BF16 and self.opts.gemm != c.FR_GEMM_PACKED:
            raise ValueError(f"gemm: bfloat16 runs on the packed GEMM only, got {gemm!r}")
        if self.opts.gemm == c.FR_GEMM_BLAS:
            _load_scipy_blas()
            self.opts.blas = &_scipy_blas
        self.isa, self.xproj, self.schedule, self.gemm, self.nthreads = isa, xproj, schedule, gemm, nthreads
        self.tile_rows = tile_rows
        self.precision, self.bf16_path = precision, bf16_path
        self.resolved_isa = c.fr_isa_resolve(self.opts.isa)

    def __repr__(self):
        return (f"Options(isa={self.isa!r}, xproj={self.xproj!r}, schedule={self.schedule!r}, "
                f"gemm={self.gemm!r}, nthreads={self.nthreads}, tile_rows={self.tile_rows}, "
                f"precision={self.precision!r}, bf16_path={self.bf16_path!r})")


# ---- buffers --------------------------------------------------------------------------
cdef inline const char *_format_code(const char *f) noexcept:
    """A buffer format without its byte-order prefix (native or little-endian: both ours on
    x86-64); NULL stays NULL."""
    if f != NULL:
        while f[0] == b'@' or f[0] == b'=' or f[0] == b'<':
            f += 1
    return f


cdef const void *_acquire(Py_buffer *view, object arr, Py_ssize_t count, int dtype, bint writable,
                          str name) except? NULL:
    """Acquire ``arr`` into ``view``: C-contiguous, ``count`` aligned items of the dtype.
    On error the view is released (or was never acquired)."""
    PyObject_GetBuffer(arr, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (PyBUF_WRITABLE if writable else 0))
    cdef const char *f = _format_code(view.format)
    cdef char want = b'f' if dtype == c.FR_FLOAT32 else b'd'
    cdef Py_ssize_t size = 4 if dtype == c.FR_FLOAT32 else 8
    try:
        if f == NULL or f[0] != want or f[1] != 0 or view.itemsize != size:
            raise TypeError(f"{name}: expected {'float32' if size == 4 else 'float64'} data, "
                            f"got format {view.format!r}")
        if view.len != count * view.itemsize:
            raise ValueError(f"{name}: expected {count} elements, got {view.len // view.itemsize}")
        if count and <size_t>view.buf % <size_t>view.itemsize:  # an empty array is never read
            raise ValueError(f"{name}: data at a misaligned address (not a multiple of {view.itemsize} bytes)")
    except BaseException:
        PyBuffer_Release(view)
        raise
    return view.buf


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

    cdef const void *get(self, object arr, Py_ssize_t count, bint writable, str name,
                         bint optional=False) except? NULL:
        """Data pointer of ``arr``: C-contiguous, ``count`` items of the layer's float type."""
        if arr is None:
            if optional:
                return NULL
            raise ValueError(f"{name}: required")
        if self.n >= MAX_BUFFERS:
            raise RuntimeError("too many buffers")
        cdef const void *p = _acquire(&self.views[self.n], arr, count, self.dtype, writable, name)
        self.n += 1
        return p

    cdef const int64_t *lengths(self, object arr, Py_ssize_t count) except? NULL:
        if arr is None:
            return NULL
        if self.n >= MAX_BUFFERS:
            raise RuntimeError("too many buffers")
        cdef Py_buffer *view = &self.views[self.n]
        PyObject_GetBuffer(arr, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT)
        self.n += 1
        cdef const char *f = _format_code(view.format)
        if view.itemsize != 8 or f == NULL or (f[0] != b'q' and f[0] != b'l') or f[1] != 0:
            raise TypeError(f"lengths: expected int64 data, got format {view.format!r}")
        if view.len != count * 8:
            raise ValueError(f"lengths: expected {count} elements, got {view.len // 8}")
        if count and <size_t>view.buf % 8:
            raise ValueError("lengths: data at a misaligned address (not a multiple of 8 bytes)")
        return <const int64_t *>view.buf


cdef int _poll_signals(void *ctx) noexcept nogil:
    """fr_options.poll of a call made from the main thread: run Python's signal handlers (Ctrl-C
    raises KeyboardInterrupt there); stop the call when one raised, leaving its exception set."""
    with gil:
        if PyErr_CheckSignals() != 0:
            return 1
    return 0


cdef unsigned long _main_ident = threading.main_thread().ident


cdef int _check(int status) except -1:
    if status == c.FR_OK:
        return 0
    if status == c.FR_ERR_CANCELLED:
        if PyErr_Occurred() is not None:
            return -1  # the signal handler's exception (KeyboardInterrupt), raised now
        raise KeyboardInterrupt("fastrnn kernel call cancelled")
    msg = c.fr_strerror(status).decode("utf-8", "replace")
    if status == c.FR_ERR_ARG:
        raise ValueError(f"fastrnn kernel rejected its arguments: {msg}")
    raise RuntimeError(f"fastrnn kernel failed: {msg}")


# ---- the layer ------------------------------------------------------------------------
cdef class Layer:
    """One recurrent layer as the kernels see it (``fr_layer``), with its weights held and,
    per instruction set, packed once for the packed GEMM.

    Every argument is keyword-only and required; absent weights and clips are ``None``:
    ``cell`` (``CELL_RNN``/``CELL_LSTM``/``CELL_GRU``), ``dtype`` (``FLOAT32``/``FLOAT64``),
    ``activation`` (a value of ``ACTIVATIONS``), ``depth``, ``units``, ``proj``; ``kernel``
    ``[depth + recurrent, gates * units]`` and ``bias`` ``[gates * units]`` (recurrent =
    proj for an LSTM, else units); GRU: ``cand_kernel`` ``[depth + units, units]``,
    ``cand_bias`` and (reset-after) ``cand_recurrent_bias`` ``[units]``; LSTM: ``w_i_diag``,
    ``w_f_diag``, ``w_o_diag`` ``[units]`` (all or none), ``proj_kernel`` ``[units, proj]``,
    ``forget_bias``, ``cell_clip``, ``proj_clip`` (None or a float).  The arrays must be
    C-contiguous and of the dtype; they are held (not copied) for the Layer's life.
    """
    cdef c.fr_layer L
    cdef Py_buffer views[9]
    cdef int nviews
    cdef dict packed       # (resolved fr_isa, precision, bf16 path) -> the weights packed by fr_pack_weights
    cdef object last_options, last_packed  # packed_for's last answer
    cdef readonly object arrays

    def __cinit__(self):
        self.nviews = 0
        self.packed = {}

    def __dealloc__(self):
        cdef int i
        for i in range(self.nviews):
            PyBuffer_Release(&self.views[i])

    def __init__(self, *, int cell, int dtype, int activation, Py_ssize_t depth, Py_ssize_t units,
                 Py_ssize_t proj, kernel, bias, cand_kernel, cand_bias, cand_recurrent_bias, w_i_diag,
                 w_f_diag, w_o_diag, proj_kernel, forget_bias, cell_clip, proj_clip):
        if self.nviews:
            raise RuntimeError("Layer: already initialised")
        cdef int gates = c.fr_cell_gates(cell)
        cdef bint lstm = cell == c.FR_CELL_LSTM, gru = cell == c.FR_CELL_GRU
        if gates == 0:
            raise ValueError(f"cell: expected CELL_RNN, CELL_LSTM or CELL_GRU, got {cell}")
        if dtype != c.FR_FLOAT32 and dtype != c.FR_FLOAT64:
            raise ValueError(f"dtype: expected FLOAT32 or FLOAT64, got {dtype}")
        if activation not in ACTIVATIONS.values():
            raise ValueError(f"activation: expected one of {sorted(ACTIVATIONS.values())}, got {activation}")
        if depth < 1 or units < 1 or proj < 1:
            raise ValueError(f"depth, units, proj: expected positive sizes, got {depth}, {units}, {proj}")
        peepholes = (w_i_diag, w_f_diag, w_o_diag)
        self._only(gru, "cand_kernel", cand_kernel, True, "GRU")
        self._only(gru, "cand_bias", cand_bias, True, "GRU")
        self._only(gru, "cand_recurrent_bias", cand_recurrent_bias, False, "GRU")
        for name, w in zip(("w_i_diag", "w_f_diag", "w_o_diag"), peepholes):
            self._only(lstm, name, w, False, "LSTM")
        self._only(lstm, "proj_kernel", proj_kernel, False, "LSTM")
        if lstm and any(w is None for w in peepholes) and not all(w is None for w in peepholes):
            raise ValueError("w_i_diag, w_f_diag, w_o_diag: all three peepholes or none")
        if proj_kernel is None and proj != units:
            raise ValueError(f"proj: expected units ({units}) without a proj_kernel, got {proj}")
        if lstm:
            if forget_bias is None:
                raise ValueError("forget_bias: required for an LSTM layer")
        elif forget_bias is not None or cell_clip is not None or proj_clip is not None:
            raise ValueError("forget_bias, cell_clip, proj_clip: only for LSTM layers (pass None)")
        if proj_clip is not None and proj_kernel is None:
            raise ValueError("proj_clip: only with a proj_kernel")

        cdef Py_ssize_t recurrent = proj if lstm else units
        self.L.cell, self.L.dtype, self.L.activation = cell, dtype, activation
        self.L.depth, self.L.units, self.L.proj = depth, units, proj
        self.L.kernel = self._hold(kernel, (depth + recurrent) * gates * units, "kernel")
        self.L.bias = self._hold(bias, gates * units, "bias")
        self.L.cand_kernel = self._hold(cand_kernel, (depth + units) * units, "cand_kernel")
        self.L.cand_bias = self._hold(cand_bias, units, "cand_bias")
        self.L.cand_recurrent_bias = self._hold(cand_recurrent_bias, units, "cand_recurrent_bias")
        self.L.w_i_diag = self._hold(w_i_diag, units, "w_i_diag")
        self.L.w_f_diag = self._hold(w_f_diag, units, "w_f_diag")
        self.L.w_o_diag = self._hold(w_o_diag, units, "w_o_diag")
        self.L.proj_kernel = self._hold(proj_kernel, units * proj, "proj_kernel")
        self.L.packed = NULL
        self.L.packed_size = 0
        self.L.forget_bias = 0.0 if forget_bias is None else float(forget_bias)
        self.L.has_cell_clip, self.L.cell_clip = cell_clip is not None, (0.0 if cell_clip is None else cell_clip)
        self.L.has_proj_clip, self.L.proj_clip = proj_clip is not None, (0.0 if proj_clip is None else proj_clip)
        self.arrays = (kernel, bias, cand_kernel, cand_bias, cand_recurrent_bias, w_i_diag, w_f_diag,
                       w_o_diag, proj_kernel)
        cdef c.fr_options generic
        c.fr_options_default(&generic)
        generic.isa = c.FR_ISA_GENERIC
        if c.fr_packed_size(&self.L, &generic) == 0:
            _check(c.FR_ERR_ARG)

    @staticmethod
    def _only(bint allowed, str name, value, bint required, str kind):
        if allowed and required and value is None:
            raise ValueError(f"{name}: required for a {kind} layer")
        if not allowed and value is not None:
            raise ValueError(f"{name}: only for {kind} layers (pass None)")

    cdef const void *_hold(self, object arr, Py_ssize_t count, str name) except? NULL:
        if arr is None:
            return NULL
        cdef const void *p = _acquire(&self.views[self.nviews], arr, count, self.L.dtype, False, name)
        self.nviews += 1
        return p

    @property
    def cell(self):
        return self.L.cell

    @property
    def dtype(self):
        return self.L.dtype

    @property
    def units(self):
        return self.L.units

    @property
    def proj(self):
        return self.L.proj

    @property
    def depth(self):
        return self.L.depth

    def packed_for(self, Options options):
        """The weights packed for ``options``' instruction set and precision (packed on first use;
        a bfloat16 ``options`` names its path: "auto" packs for the path of a large batch)."""
        if options is self.last_options:  # (the usual case: every call of a program alike)
            return self.last_packed
        key = (options.resolved_isa, options.opts.precision, options.opts.bf16_path)
        packed = self.packed.get(key)
        if packed is None:
            packed = np.empty(c.fr_packed_size(&self.L, &options.opts), np.uint8)
            self._pack(options, packed)
            self.packed[key] = packed
        self.last_options, self.last_packed = options, packed
        return packed

    cdef int _pack(self, Options options, object packed) except -1:
        cdef unsigned char[::1] view = packed
        _check(c.fr_pack_weights(&self.L, &options.opts, &view[0], view.shape[0]))
        return 0


# ---- workspaces -----------------------------------------------------------------------
# A call takes a workspace from this pool and gives it back afterwards, so back-to-back
# calls do not fault in fresh pages every time (measured before fused projection: LSTM
# batch 256 spent ~20 ms of 166 ms in page faults).  The pool is bounded: a workspace
# larger than WORKSPACE_CACHE_BYTES, or more than 4x larger than the call that returns
# it needed, is freed; at most MAX_IDLE_WORKSPACES wait idle.  release_memory() frees
# every idle one.  Manipulated only while holding the GIL.
WORKSPACE_CACHE_BYTES = 64 * 1024 * 1024
MAX_IDLE_WORKSPACES = 8


cdef class _Workspace:
    cdef void *ptr
    cdef size_t size

    def __cinit__(self, size_t n):
        self.ptr = PyMem_RawMalloc(n if n > 0 else 1)
        if self.ptr == NULL:
            raise MemoryError(f"fastrnn: cannot allocate a {n}-byte workspace")
        self.size = n

    def __dealloc__(self):
        PyMem_RawFree(self.ptr)


cdef list _idle = []
cdef bint _poison = False


def poison_workspaces(bint on):
    """(Tests) Fill every workspace with 0xFF bytes (NaN as floats) before each call, so that a
    kernel reading memory it did not write gives NaN instead of a plausible number."""
    global _poison
    _poison = on


cdef _Workspace _take_workspace(size_t n):
    """The smallest idle workspace of at least n bytes, else a new one."""
    cdef _Workspace ws, best = None
    cdef Py_ssize_t i, at = -1
    for i in range(len(_idle)):
        ws = <_Workspace>_idle[i]
        if ws.size >= n and (best is None or ws.size < best.size):
            best, at = ws, i
    if best is not None:
        del _idle[at]
    else:
        best = _Workspace(n)
    if _poison:
        memset(best.ptr, 0xFF, best.size)
    return best


cdef void _give_back(_Workspace ws, size_t needed):
    if ws.size > <size_t>WORKSPACE_CACHE_BYTES or ws.size > 4 * needed + 65536:
        return  # freed with the last reference
    _idle.append(ws)
    if len(_idle) > MAX_IDLE_WORKSPACES:
        _idle.sort(key=lambda w: (<_Workspace>w).size)
        del _idle[0]


def release_memory():
    """Free every idle workspace (calls in progress keep theirs until they return)."""
    del _idle[:]


def idle_workspace_bytes():
    """Bytes held by idle workspaces."""
    return sum((<_Workspace>w).size for w in _idle)


# ---- entry points ---------------------------------------------------------------------
def apply_activation(str isa, int activation, x):
    """Apply kernel activation ``activation`` (-1: the gates' sigmoid) in place to the
    contiguous float32/float64 array ``x``, exactly as the kernels of ``isa`` do (for
    accuracy tests)."""
    cdef int dtype = c.FR_FLOAT64 if x.dtype == np.float64 else c.FR_FLOAT32
    cdef _Buffers bufs = _Buffers(dtype)
    cdef void *data = <void *>bufs.get(x, x.size, True, "x")
    _check(c.fr_apply_activation(_choice(ISAS, isa, "isa"), activation, dtype, data, x.size))


def layer_forward(Layer layer, Options options, x, lengths, h0, c0, bint time_major, bint reverse,
                  Py_ssize_t batch, Py_ssize_t time):
    """Run one layer over a sequence; returns ``(outputs, h_final, c_final or None)``.

    ``x`` ``[batch * time, depth]`` in the given major order, ``lengths`` int64 ``[batch]``
    or None, ``h0`` ``[batch, proj]``, ``c0`` ``[batch, units]`` (LSTM) or None.
    """
    cdef c.fr_layer L = layer.L
    cdef c.fr_seq S
    cdef c.fr_options opts = options.opts
    cdef int dtype = L.dtype
    cdef _Buffers bufs = _Buffers(dtype)
    cdef Py_ssize_t units = L.units, proj = L.proj, depth = L.depth
    cdef bint lstm = L.cell == c.FR_CELL_LSTM
    cdef size_t work_size
    cdef int status
    cdef _Workspace ws

    if options.opts.gemm == c.FR_GEMM_PACKED:  # weights packed once per instruction set
        packed = layer.packed_for(options)
        L.packed = _data(packed)  # held by the layer (and `packed`) during the call
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
    S.out = <void *>bufs.get(out, batch * time * proj, True, "out")
    S.h_final = <void *>bufs.get(h_final, batch * proj, True, "h_final")
    S.c_final = <void *>bufs.get(c_final, batch * units, True, "c_final", not lstm)

    if PyThread_get_thread_ident() == _main_ident:  # signals reach the main thread only
        opts.poll = _poll_signals  # so that Ctrl-C stops a long call within ~10 ms
    work_size = c.fr_workspace_size(&L, &S, &opts)
    if work_size == 0:
        _check(c.FR_ERR_ARG)
    ws = _take_workspace(work_size)
    try:
        with nogil:
            status = c.fr_layer_forward(&L, &S, &opts, ws.ptr, work_size)
    finally:
        _give_back(ws, work_size)
    _check(status)
    return out, h_final, c_final


cdef class Stepper:
    """A stack of layers advanced one time step per call on buffers it owns: the streaming path
    (``fr.Stream.step``).  The state of every layer is held here twice -- the current one and
    the next -- and every kernel pointer but the input's and the output's is set once, so a
    step is one GIL-free pass of ``fr_layer_forward`` over the layers with nothing allocated
    (but the output, when no ``out`` is given).  The next state becomes the current one only
    when every layer succeeded: a failed step leaves the state as it was.

    ``layers``: the ``Layer`` of each layer, in order (each layer's depth the previous one's
    proj); ``options``: how it runs; ``batch``: rows (0: steps do nothing); ``cells`` and
    ``weights`` (optional): each layer's cell and the weights (dict) its ``Layer`` was made
    from, which :meth:`fresh` and :meth:`step_exact` compare with the cell's now; ``generation`` (optional): the options' generation it was
    made under (see :class:`CallPlan`).  The state starts at zero.  Not thread-safe: one caller at
    a time (``fr.Stream`` holds a lock).
    """
    cdef c.fr_layer *Ls
    cdef c.fr_seq *Ss      # [2][n]: the seq of layer i from state parity p at Ss[p * n + i]
    cdef c.fr_options opts
    cdef int n, dtype, cur, fail_at
    cdef readonly Py_ssize_t batch, depth, output_size
    cdef readonly list layers
    cdef list held         # packed weights and every owned buffer
    cdef list h, c_        # [2] lists of per-layer state arrays (c_: None for non-LSTM layers)
    cdef _Workspace work
    cdef size_t work_size
    cdef object np_dtype
    cdef int typenum, itemsize
    cdef list cells, weights  # each layer's cell and its weights when made (None: not checked)
    cdef unsigned long generation  # the options' generation it was made under (0: not checked)

    def __cinit__(self):
        self.Ls = NULL
        self.Ss = NULL
        self.n = 0
        self.fail_at = -1

    def __dealloc__(self):
        PyMem_RawFree(self.Ls)
        PyMem_RawFree(self.Ss)

    def __init__(self, list layers, Options options, Py_ssize_t batch, list cells=None, list weights=None,
                 unsigned long generation=0):
        cdef Layer layer
        cdef int i, p, n = len(layers)
        cdef size_t ws
        cdef c.fr_seq *S
        if n < 1:
            raise ValueError("layers: expected at least one Layer")
        if batch < 0:
            raise ValueError(f"batch: expected a non-negative number of rows, got {batch}")
        self.Ls = <c.fr_layer *>PyMem_RawMalloc(n * sizeof(c.fr_layer))
        self.Ss = <c.fr_seq *>PyMem_RawMalloc(2 * n * sizeof(c.fr_seq))
        if self.Ls == NULL or self.Ss == NULL:
            raise MemoryError()
        self.n, self.batch, self.opts, self.cur = n, batch, options.opts, 0
        self.layers, self.held = list(layers), []
        first = <Layer?>layers[0]
        self.dtype, self.depth = first.L.dtype, first.L.depth
        self.np_dtype = np.float32 if self.dtype == c.FR_FLOAT32 else np.float64
        self.typenum = cnp.NPY_FLOAT32 if self.dtype == c.FR_FLOAT32 else cnp.NPY_FLOAT64
        self.itemsize = 4 if self.dtype == c.FR_FLOAT32 else 8
        if (cells is None) != (weights is None) or cells is not None and not len(cells) == len(weights) == n:
            raise ValueError(f"cells, weights: expected both or neither, one per layer ({n})")
        self.cells = [] if cells is None else list(cells)
        self.weights = [] if weights is None else list(weights)
        self.generation = generation
        self.h, self.c_ = [[], []], [[], []]
        mids = []
        for i in range(n):
            layer = <Layer?>layers[i]
            if layer.L.dtype != self.dtype:
                raise ValueError("layers: expected one dtype for every layer")
            if i and layer.L.depth != (<Layer>layers[i - 1]).L.proj:
                raise ValueError(f"layers: layer {i}'s depth {layer.L.depth} is not the previous layer's "
                                 f"output size {(<Layer>layers[i - 1]).L.proj}")
            self.Ls[i] = layer.L
            if options.opts.gemm == c.FR_GEMM_PACKED:
                packed = layer.packed_for(options)
                self.held.append(packed)
                self.Ls[i].packed = _data(packed)
                self.Ls[i].packed_size = packed.nbytes
            lstm = layer.L.cell == c.FR_CELL_LSTM
            for p in range(2):
                self.h[p].append(np.zeros((batch, layer.L.proj), self.np_dtype))
                self.c_[p].append(np.zeros((batch, layer.L.units), self.np_dtype) if lstm else None)
            mids.append(np.empty((batch, layer.L.proj), self.np_dtype) if i < n - 1 else None)
        self.output_size = (<Layer>layers[n - 1]).L.proj
        self.held += [self.h, self.c_, mids]
        self.work_size = 1
        for p in range(2):
            for i in range(n):
                S = &self.Ss[p * n + i]
                S.batch, S.time, S.time_major, S.reverse = batch, 1, 1, 0
                S.lengths = NULL
                S.h0, S.h_final = _data(self.h[p][i]), _data(self.h[1 - p][i])
                S.c0 = _data(self.c_[p][i]) if self.c_[p][i] is not None else NULL
                S.c_final = _data(self.c_[1 - p][i]) if self.c_[p][i] is not None else NULL
                # layer 0's input and the last layer's output are the caller's, set at each
                # step; until then the state's buffers stand in (for sizing only)
                S.x = _data(mids[i - 1]) if i else S.h0
                S.out = _data(mids[i]) if i < n - 1 else S.h_final
                if batch == 0:  # nothing to run (the kernels return at once)
                    continue
                ws = c.fr_workspace_size(&self.Ls[i], S, &self.opts)
                if ws == 0:
                    _check(c.FR_ERR_ARG)
                self.work_size = max(self.work_size, ws)
        self.work = _Workspace(self.work_size)

    def step(self, x, out=None):
        """Advance one step from ``x`` (C-contiguous ``[batch, depth]`` of the layers' dtype);
        the last layer's output written to ``out`` (C-contiguous ``[batch, output_size]``, not
        ``x``) or to a new array, which is returned."""
        cdef Py_buffer xv, ov
        _acquire(&xv, x, self.batch * self.depth, self.dtype, False, "x")
        try:
            if out is None:
                out = np.empty((self.batch, self.output_size), self.np_dtype)
            _acquire(&ov, out, self.batch * self.output_size, self.dtype, True, "out")
            try:
                if (ov.len and xv.len and <char *>ov.buf < <char *>xv.buf + xv.len
                        and <char *>xv.buf < <char *>ov.buf + ov.len):
                    raise ValueError("out: shares memory with x; the output cannot overwrite the input it is "
                                     "computed from")
                self._step(xv.buf, ov.buf)
            finally:
                PyBuffer_Release(&ov)
        finally:
            PyBuffer_Release(&xv)
        return out

    def step_exact(self, x, out=None):
        """:meth:`step` when ``x`` and ``out`` (if given) are exactly ndarrays of the shapes, dtype
        and layout the kernels read, ``out`` writable and apart from ``x`` (checked with the NumPy
        C API: the streaming fast path), and the stepper is :meth:`fresh`; otherwise None, and
        nothing runs."""
        cdef const void *xp
        cdef const void *op
        cdef cnp.npy_intp dims[2]
        if self.n == 0 or not self._fresh():
            return None
        if not _exact_2d(x, self.batch, self.depth, self.typenum, &xp):
            return None
        if out is None:
            dims[0], dims[1] = self.batch, self.output_size
            out = cnp.PyArray_EMPTY(2, dims, self.typenum, 0)
        elif (not _exact_2d(out, self.batch, self.output_size, self.typenum, &op)
              or not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>out)
              or (self.batch and <const char *>op < <const char *>xp + self.batch * self.depth * self.itemsize
                  and <const char *>xp < <const char *>op + self.batch * self.output_size * self.itemsize)):
            return None
        self._step(xp, cnp.PyArray_DATA(<cnp.ndarray>out))
        return out

    cdef int _step(self, const void *x, void *out) except -1:
        cdef int i, status = c.FR_OK
        cdef c.fr_seq *S = &self.Ss[self.cur * self.n]
        S[0].x = x
        S[self.n - 1].out = out
        if _poison:
            memset(self.work.ptr, 0xFF, self.work_size)
        with nogil:
            c.fr_serial_leave()  # (see _HANDOFF_NS)
            for i in range(self.n if self.batch else 0):
                status = c.fr_layer_forward(&self.Ls[i], &S[i], &self.opts, self.work.ptr, self.work_size)
                if i == self.fail_at:
                    status = c.FR_ERR_ARG
                if status != c.FR_OK:
                    break
            c.fr_serial_wait(_HANDOFF_NS)
        c.fr_serial_enter()
        _check(status)
        self.cur ^= 1  # every layer succeeded: the next state is the state
        return 0

    cdef bint _fresh(self):
        return ((self.generation == 0 or self.generation == _generation)
                and _weights_unchanged(self.cells, self.weights))

    def fresh(self):
        """Whether the stepper was made under the options now (when given the generation it was
        made under) and every layer's cell still has the weights it was made from (when given
        the cells)."""
        return self._fresh()

    def _fail_at_layer(self, int i):
        """(Tests) make every later step fail after running layer ``i`` (-1: none)."""
        self.fail_at = i

    def state(self):
        """``(hs, cs)``: copies of each layer's ``h`` and ``c`` (None for non-LSTM layers)."""
        return ([h.copy() for h in self.h[self.cur]],
                [None if c_ is None else c_.copy() for c_ in self.c_[self.cur]])

    def set_state(self, list hs, list cs):
        """Take each layer's ``h`` ``[batch, proj]`` and ``c`` ``[batch, units]`` (LSTM; None
        for the others): copied in."""
        cdef int i
        if len(hs) != self.n or len(cs) != self.n:
            raise ValueError(f"hs, cs: expected {self.n} layers")
        for i in range(self.n):  # all checked before any is copied
            if np.shape(hs[i]) != self.h[self.cur][i].shape:
                raise ValueError(f"hs[{i}]: expected shape {self.h[self.cur][i].shape}, got {np.shape(hs[i])}")
            if (cs[i] is None) != (self.c_[self.cur][i] is None) or (
                    cs[i] is not None and np.shape(cs[i]) != self.c_[self.cur][i].shape):
                raise ValueError(f"cs[{i}]: does not match layer {i}'s cell state")
        for i in range(self.n):
            np.copyto(self.h[self.cur][i], hs[i], casting="same_kind")
            if cs[i] is not None:
                np.copyto(self.c_[self.cur][i], cs[i], casting="same_kind")


# What the one-step plans and the stream steppers were made for -- the options and the thread
# count -- is compared by number: fastrnn._compiled calls options_changed() whenever either
# changes (fastrnn._options.on_change), and each plan or stepper keeps the number it was made
# under (the caller reads generation() before it reads the options).
cdef unsigned long _generation = 1


def options_changed():
    """The options or the thread count changed: every plan and stepper made before is stale."""
    global _generation
    _generation += 1


def generation():
    """The options' generation now (see options_changed)."""
    return _generation


cdef enum:
    PLAN_MAX_LAYERS = 16

# The steps of streams and one-step calls take a few microseconds without the GIL between a
# microsecond or so of Python with it.  Threads doing them side by side would otherwise sleep
# on the GIL whenever another holds it, and wake tens of microseconds later; so each marks the
# time it holds the GIL as a serial section and, before taking the GIL back, waits up to this
# long for another that recently took it to let go (fr_serial_wait in csrc/fastrnn.h).
cdef long _HANDOFF_NS = 5000


def set_handoff_ns(long ns):
    """(Tests, benchmarks) How long a step waits for another thread's serial section before
    taking the GIL back (0: never waits); returns the previous value."""
    global _HANDOFF_NS
    if ns < 0:
        raise ValueError(f"ns: expected a non-negative number of nanoseconds, got {ns}")
    previous, _HANDOFF_NS = _HANDOFF_NS, ns
    return previous

MAX_PLAN_LAYERS = PLAN_MAX_LAYERS  # layers of a CallPlan, at most


cdef inline bint _exact_array(object a, int ndim, const cnp.npy_intp *shape, int typenum, const void **data):
    """Whether ``a`` is exactly an ndarray of ``shape`` (``ndim`` dimensions) and ``typenum`` the
    kernels read as it is (C-contiguous, aligned, native byte order); its data at ``*data``."""
    cdef int i
    if not cnp.PyArray_CheckExact(a):
        return False
    cdef cnp.ndarray arr = <cnp.ndarray>a
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(arr)
    if (cnp.PyArray_NDIM(arr) != ndim or cnp.PyArray_TYPE(arr) != typenum
            or not cnp.PyArray_IS_C_CONTIGUOUS(arr) or not cnp.PyArray_ISBEHAVED_RO(arr)):
        return False
    for i in range(ndim):
        if dims[i] != shape[i]:
            return False
    data[0] = cnp.PyArray_DATA(arr)
    return True


cdef inline bint _exact_2d(object a, Py_ssize_t rows, Py_ssize_t width, int typenum, const void **data):
    """:func:`_exact_array` of shape ``[rows, width]``."""
    cdef cnp.npy_intp shape[2]
    shape[0], shape[1] = rows, width
    return _exact_array(a, 2, shape, typenum, data)


cdef bint _weights_unchanged(object cells, list weights):
    """Whether each of ``cells`` (a list or tuple, one per entry of ``weights``) still has the
    weights (the same dict object) that ``weights`` holds."""
    cdef Py_ssize_t i
    if len(cells) != len(weights):
        return False
    for i in range(len(weights)):
        if getattr(cells[i], "_weights", None) is not weights[i]:
            return False
    return True


cdef class CallPlan:
    """One time step of a stack of layers from the caller's state into new arrays: the path of
    the one-step calls whose arguments need no checking or conversion -- ``cell(x, state)``
    and a one-step ``dynamic_rnn`` from the zero state (see ``fastrnn._compiled``).

    Everything that does not change between such calls of one cell, batch and options is
    set once: each layer's ``fr_layer`` with its packed weights, the options, the workspace
    size, zeros for the zero state, how the state is structured.  A call checks its arrays
    with the NumPy C API (exactly ndarrays of the shapes, dtype and layout the kernels read;
    anything else returns None and the caller validates in full), allocates the outputs,
    runs the layers GIL-free (layer i + 1 reads layer i's new ``h``: a step's output) and
    builds the new state.  Immutable once made, so any thread may call it at once; each call
    takes its workspace from the pool.

    ``layers``: the ``Layer`` of each layer (each depth the previous one's proj);
    ``options``; ``batch``; ``lstm_tuple``: the class of an LSTM layer's state
    (``LSTMStateTuple``; every LSTM layer's state a tuple of it, ``(c, h)``); ``multi``:
    the state is a tuple of the layers' states (a ``MultiRNNCell``), else the one layer's;
    ``weights``: the weights (dict) each layer's ``Layer`` was made from, which :meth:`fresh`
    compares (by identity) with those of the cell it is given; ``generation``: the options'
    generation (:func:`generation`, read before ``options``) that :meth:`fresh` compares with
    the one now.
    """
    cdef c.fr_layer Ls[PLAN_MAX_LAYERS]
    cdef c.fr_options opts
    cdef int n, typenum
    cdef bint multi
    cdef readonly Py_ssize_t batch
    cdef Py_ssize_t depth
    cdef size_t work_size
    cdef list held  # the layers and their packed weights
    cdef object lstm_tuple
    cdef object zeros  # [batch, widest state] of zeros: every layer's zero h and c
    cdef readonly unsigned long generation  # the options' generation it was made under
    cdef list weights  # the weights (dict) each layer's Layer was made from

    def __cinit__(self):
        self.n = 0  # (until __init__ succeeds: every call returns None)

    def __init__(self, list layers, Options options, Py_ssize_t batch, lstm_tuple, bint multi, list weights,
                 unsigned long generation):
        cdef Layer layer
        cdef int i, n = len(layers)
        cdef c.fr_seq S
        cdef size_t ws
        cdef Py_ssize_t widest = 1
        cdef void *zp
        if not 1 <= n <= PLAN_MAX_LAYERS:
            raise ValueError(f"layers: expected 1 to {PLAN_MAX_LAYERS} Layers, got {n}")
        if batch < 1:
            raise ValueError(f"batch: expected a positive number of rows, got {batch}")
        if n > 1 and not multi:
            raise ValueError("multi: several layers make a MultiRNNCell's state")
        if len(weights) != n:
            raise ValueError(f"weights: expected one per layer ({n}), got {len(weights)}")
        self.batch, self.opts, self.multi, self.lstm_tuple = batch, options.opts, multi, lstm_tuple
        self.weights, self.generation = list(weights), generation
        self.held = []
        first = <Layer?>layers[0]
        self.depth = first.L.depth
        self.typenum = cnp.NPY_FLOAT32 if first.L.dtype == c.FR_FLOAT32 else cnp.NPY_FLOAT64
        self.work_size = 1
        for i in range(n):
            layer = <Layer?>layers[i]
            if layer.L.dtype != first.L.dtype:
                raise ValueError("layers: expected one dtype for every layer")
            if i and layer.L.depth != self.Ls[i - 1].proj:
                raise ValueError(f"layers: layer {i}'s depth {layer.L.depth} is not the previous layer's "
                                 f"output size {self.Ls[i - 1].proj}")
            self.Ls[i] = layer.L
            self.held.append(layer)
            if options.opts.gemm == c.FR_GEMM_PACKED:
                packed = layer.packed_for(options)
                self.held.append(packed)
                self.Ls[i].packed = _data(packed)
                self.Ls[i].packed_size = packed.nbytes
            widest = max(widest, layer.L.proj, layer.L.units)
        self.zeros = np.zeros((batch, widest), np.float32 if self.typenum == cnp.NPY_FLOAT32 else np.float64)
        zp = _data(self.zeros)
        for i in range(n):  # any non-NULL pointers do for sizing
            S.batch, S.time, S.time_major, S.reverse, S.lengths = batch, 1, 1, 0, NULL
            S.x = S.h0 = S.out = S.h_final = zp
            S.c0 = S.c_final = zp if self.Ls[i].cell == c.FR_CELL_LSTM else NULL
            ws = c.fr_workspace_size(&self.Ls[i], &S, &self.opts)
            if ws == 0:
                _check(c.FR_ERR_ARG)
            self.work_size = max(self.work_size, ws)
        self.n = n  # made: calls may run

    cdef bint _fresh(self, object cell):
        return (self.n > 0 and self.generation == _generation
                and _weights_unchanged(getattr(cell, "_cells", ()) if self.multi else (cell,), self.weights))

    def fresh(self, cell):
        """Whether the plan was made under the options now and ``cell`` (the stack, for a
        ``MultiRNNCell``) still has the weights the plan's layers were made from.  (The plan keeps
        no reference to the cell, which keeps it: a cell goes with its last reference.)"""
        return self._fresh(cell)

    cdef object _run(self, const void *x, const void **h0, const void **c0, object out):
        """The layers from ``x``, each from ``h0[i]``/``c0[i]``, the last one's output into
        ``out`` (a new C array); returns the new state in the cell's structure."""
        cdef c.fr_seq S[PLAN_MAX_LAYERS]
        cdef cnp.npy_intp dims[2]
        cdef int i, status = c.FR_OK
        cdef c.fr_options opts = self.opts
        cdef _Workspace ws
        cdef bint lstm
        states = []
        dims[0] = self.batch
        for i in range(self.n):
            lstm = self.Ls[i].cell == c.FR_CELL_LSTM
            dims[1] = self.Ls[i].proj
            h = cnp.PyArray_EMPTY(2, dims, self.typenum, 0)
            S[i].batch, S[i].time, S[i].time_major, S[i].reverse, S[i].lengths = self.batch, 1, 1, 0, NULL
            S[i].x = x if i == 0 else S[i - 1].h_final
            S[i].h0, S[i].c0 = h0[i], c0[i]
            S[i].h_final = cnp.PyArray_DATA(<cnp.ndarray>h)
            S[i].out = cnp.PyArray_DATA(<cnp.ndarray>out) if i == self.n - 1 else S[i].h_final
            if lstm:
                dims[1] = self.Ls[i].units
                cs = cnp.PyArray_EMPTY(2, dims, self.typenum, 0)
                S[i].c_final = cnp.PyArray_DATA(<cnp.ndarray>cs)
                states.append(tuple.__new__(self.lstm_tuple, (cs, h)))
            else:
                S[i].c_final = NULL
                states.append(h)
        if PyThread_get_thread_ident() == _main_ident:
            opts.poll = _poll_signals
        ws = _take_workspace(self.work_size)
        try:
            with nogil:
                c.fr_serial_leave()  # (see _HANDOFF_NS)
                for i in range(self.n):
                    status = c.fr_layer_forward(&self.Ls[i], &S[i], &opts, ws.ptr, self.work_size)
                    if status != c.FR_OK:
                        break
                c.fr_serial_wait(_HANDOFF_NS)
            c.fr_serial_enter()
        finally:
            _give_back(ws, self.work_size)
        _check(status)
        return tuple(states) if self.multi else states[0]

    cdef bint _state(self, object state, const void **h0, const void **c0):
        """Each layer's ``h``/``c`` data when ``state`` is exactly what the kernels read."""
        cdef int i
        cdef bint lstm
        cdef Py_ssize_t rows = self.batch
        if self.multi:
            if type(state) is not tuple or len(<tuple>state) != self.n:
                return False
        for i in range(self.n):
            s = (<tuple>state)[i] if self.multi else state
            lstm = self.Ls[i].cell == c.FR_CELL_LSTM
            if lstm:
                if type(s) is not self.lstm_tuple or len(<tuple>s) != 2:
                    return False
                if not (_exact_2d((<tuple>s)[0], rows, self.Ls[i].units, self.typenum, &c0[i])
                        and _exact_2d((<tuple>s)[1], rows, self.Ls[i].proj, self.typenum, &h0[i])):
                    return False
            else:
                c0[i] = NULL
                if not _exact_2d(s, rows, self.Ls[i].units, self.typenum, &h0[i]):
                    return False
        return True

    def step(self, x, state):
        """``(output, new_state)`` of one step from ``x`` ``[batch, depth]`` and ``state`` (in the
        cell's structure), or None when an argument is not exactly what the kernels read."""
        cdef const void *xp
        cdef const void *h0[PLAN_MAX_LAYERS]
        cdef const void *c0[PLAN_MAX_LAYERS]
        cdef cnp.npy_intp dims[2]
        if self.n == 0 or not _exact_2d(x, self.batch, self.depth, self.typenum, &xp) \
                or not self._state(state, h0, c0):
            return None
        dims[0], dims[1] = self.batch, self.Ls[self.n - 1].proj
        out = cnp.PyArray_EMPTY(2, dims, self.typenum, 0)
        if _poison:
            memset(cnp.PyArray_DATA(<cnp.ndarray>out), 0xFF, cnp.PyArray_NBYTES(<cnp.ndarray>out))
        return out, self._run(xp, h0, c0, out)

    def sequence(self, x, bint time_major, state=None):
        """``(outputs, final_state)`` of a one-step sequence ``x`` (``[batch, 1, depth]``, or
        ``[1, batch, depth]`` if ``time_major``) from ``state`` (None: the zero state), or None
        when ``x`` or ``state`` is not exactly what the kernels read."""
        cdef const void *h0[PLAN_MAX_LAYERS]
        cdef const void *c0[PLAN_MAX_LAYERS]
        cdef cnp.npy_intp dims[3]
        cdef const void *xp
        cdef int i
        cdef void *zp
        dims[0], dims[1], dims[2] = 1 if time_major else self.batch, self.batch if time_major else 1, self.depth
        if self.n == 0 or not _exact_array(x, 3, dims, self.typenum, &xp):
            return None
        if state is not None:
            if not self._state(state, h0, c0):
                return None
        else:
            zp = _data(self.zeros)
            for i in range(self.n):
                h0[i] = zp
                c0[i] = zp if self.Ls[i].cell == c.FR_CELL_LSTM else NULL
        dims[2] = self.Ls[self.n - 1].proj  # the outputs: x's shape, output_size wide
        out = cnp.PyArray_EMPTY(3, dims, self.typenum, 0)
        return out, self._run(xp, h0, c0, out)


NO_PLAN = object()  # plan_step / plan_sequence: the cell has no fresh plan for this call


cdef object _fresh_plan(object cell, Py_ssize_t batch):
    """The fresh CallPlan that ``cell`` keeps for ``batch`` rows (``cell._plans``, made by
    fastrnn._compiled), else None -- also for any object that is not such a cell."""
    d = getattr(cell, "__dict__", None)
    if type(d) is not dict:
        return None
    plans = (<dict>d).get("_plans")
    if type(plans) is not dict:
        return None
    plan = (<dict>plans).get(batch)
    if not isinstance(plan, CallPlan) or not (<CallPlan>plan)._fresh(cell):
        return None
    return plan


def plan_step(cell, x, state):
    """``cell._plans[batch].step(x, state)`` when that plan is fresh: the one-step call in one
    C function, its result or None (inexact arguments); ``NO_PLAN`` when there is no such plan."""
    if not cnp.PyArray_CheckExact(x) or cnp.PyArray_NDIM(<cnp.ndarray>x) != 2:
        return None
    plan = _fresh_plan(cell, cnp.PyArray_DIMS(<cnp.ndarray>x)[0])
    if plan is None:
        return NO_PLAN
    return plan.step(x, state)


def plan_sequence(cell, x, bint time_major, state):
    """:func:`plan_step` for ``CallPlan.sequence`` (a one-step ``dynamic_rnn``)."""
    if not cnp.PyArray_CheckExact(x) or cnp.PyArray_NDIM(<cnp.ndarray>x) != 3:
        return None
    cdef cnp.npy_intp *d = cnp.PyArray_DIMS(<cnp.ndarray>x)
    if d[0 if time_major else 1] != 1:
        return None
    plan = _fresh_plan(cell, d[1 if time_major else 0])
    if plan is None:
        return NO_PLAN
    return plan.sequence(x, time_major, state)


cdef void *_data(object arr) except NULL:
    """The data of an array this module allocated (C-contiguous, writable, owned, alive as long
    as the array: its packed weights, a stepper's buffers)."""
    cdef Py_buffer view
    PyObject_GetBuffer(arr, &view, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE)
    cdef void *p = view.buf
    PyBuffer_Release(&view)
    return p


# ---- the machine probe (csrc/fr_probe.h) ---------------------------------------------------
_PROBE_ISAS = {"generic": 1, "avx2": 2, "avx512": 3}  # fr_probe_isa: the kernels' instruction sets


def cpu_info():
    """What CPUID, XCR0 and the OS say about this CPU (``fr_cpu_info``), as a dict."""
    cdef c.fr_cpu cpu
    c.fr_cpu_info(&cpu)
    flags = ("sse2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16",
             "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "os_avx", "os_avx512", "os_amx", "amx_granted")
    values = (cpu.sse2, cpu.avx, cpu.avx2, cpu.fma, cpu.avx512f, cpu.avx512bw, cpu.avx512vl, cpu.avx512dq,
              cpu.avx512_bf16, cpu.avx512_fp16, cpu.amx_tile, cpu.amx_bf16, cpu.amx_int8, cpu.os_avx,
              cpu.os_avx512, cpu.os_amx, cpu.amx_granted)
    info = {"vendor": cpu.vendor.decode("ascii", "replace"), "brand": cpu.brand.decode("ascii", "replace"),
            "family": cpu.family, "model": cpu.model, "stepping": cpu.stepping,
            "hypervisor": bool(cpu.hypervisor),
            "l1d_bytes": cpu.l1d_bytes, "l2_bytes": cpu.l2_bytes, "l3_bytes": cpu.l3_bytes,
            "cache_source": cpu.cache_source.decode("ascii", "replace") if cpu.cache_source else "unknown"}
    info.update({k: bool(v) for k, v in zip(flags, values)})
    return info


def amx_request():
    """Ask Linux for the AMX tile state (once per process); whether it is granted."""
    return bool(c.fr_amx_request())


cdef double _seconds(double seconds) except? -1:
    if not seconds > 0 or seconds > 60:
        raise ValueError(f"seconds: expected a number in (0, 60], got {seconds!r}")
    return seconds


def probe_fma_peak(str isa, dtype, double seconds):
    """GFLOP/s of the calling core: 12 independent FMA chains in ``isa`` ("generic", "avx2",
    "avx512") and ``dtype`` (float32/float64); 0.0 when this machine cannot run ``isa``.
    Releases the GIL (threads may probe cores at once)."""
    cdef int i = _choice(_PROBE_ISAS, isa, "isa")
    cdef int d
    cdef double r
    dt = np.dtype(dtype)
    if dt != np.float32 and dt != np.float64:
        raise ValueError(f"dtype: expected float32 or float64, got {dt}")
    d = c.FR_FLOAT32 if dt == np.float32 else c.FR_FLOAT64
    seconds = _seconds(seconds)
    with nogil:
        r = c.fr_probe_fma_peak(i, d, seconds)
    return r


def probe_bf16_peak(double seconds):
    """GFLOP/s of the calling core with AVX512-BF16 vdpbf16ps; 0.0 without it."""
    cdef double r
    seconds = _seconds(seconds)
    with nogil:
        r = c.fr_probe_bf16_peak(seconds)
    return r


def probe_amx_peak(double seconds):
    """GFLOP/s of the calling core with AMX tdpbf16ps; 0.0 without AMX (CPU, OS permission or build)."""
    cdef double r
    seconds = _seconds(seconds)
    with nogil:
        r = c.fr_probe_amx_peak(seconds)
    return r


def probe_bandwidth(Py_ssize_t nbytes, double seconds):
    """GB/s the calling core reads from a buffer of ``nbytes`` (>= 512)."""
    cdef double r
    if nbytes < 512:
        raise ValueError(f"nbytes: expected at least 512, got {nbytes}")
    seconds = _seconds(seconds)
    with nogil:
        r = c.fr_probe_bandwidth(<size_t>nbytes, seconds)
    return r


def probe_clock_ghz(double seconds):
    """The calling core's clock (GHz) from a chain of dependent adds; 0.0 off x86-64."""
    cdef double r
    seconds = _seconds(seconds)
    with nogil:
        r = c.fr_probe_clock_ghz(seconds)
    return r
