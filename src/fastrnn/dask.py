"""fastrnn over Dask arrays: the dynamic drivers on any Dask scheduler or cluster.

>>> import dask.array as da, fastrnn as fr, fastrnn.dask as frd   # doctest: +SKIP
>>> x = da.random.random((100_000, 100, 64), chunks=(2048, 100, 64)).astype("float32")
>>> outputs, state = frd.dynamic_rnn(fr.BasicLSTMCell(128, seed=0), x)   # lazy
>>> state.h.sum().compute()

The recurrence runs along time and never crosses batch rows, so each block of
rows is an independent :func:`fastrnn.dynamic_rnn` call: the graph is one task
per batch block, nothing more.  Design decisions, where they are made:

- **Whole sequences per block.**  Inputs chunked along time or depth are
  rechunked so that each block holds whole sequences.  The user's batch chunks
  are kept where they already hold whole sequences; otherwise they are split
  further so that a block (inputs and outputs) stays within Dask's
  ``array.chunk-size``.  When one row's sequence alone is larger than that, the
  call is refused with a ``ValueError`` saying the sizes and the two ways out.
- **The cell ships once per graph.**  The cell is built (weights created, the
  same seeded initialization as a local call) *before* the graph is made --
  a lazily built cell would draw different weights on every worker -- and put
  into the graph as one key (a :class:`_Cells` box, a plain object: a tuple of
  cells would read as a task).  Every block task refers to that key, so a
  worker receives the cell once, however many blocks it runs, and keeps the
  packed weights the first block packed for the next ones.
- **One run per block, many outputs.**  A block task returns its outputs and
  the flat leaves of its final state as a tuple; the returned dask arrays
  (outputs, and one ``[batch, size]`` array per state leaf, in the cell's own
  structure) pick from those tuples.  Computed or persisted together, however
  (``dask.compute``, ``dask.persist``, ``client.compute((outputs, state))``,
  ``dask.optimize``), the RNN runs once per block: the graph is laid out so that
  no optimizer can fuse a block's run into one of its picks (see :func:`_graph`).
- **Weights arrive aligned.**  ``distributed`` unpickles NumPy arrays from
  out-of-band buffers wherever its frames put them; a built-in cell takes
  aligned copies of its weights as it is unpickled (and a pickled cell carries
  its weights only, never what the kernels packed for the sender's CPU).
- **Kernel threads.**  In a worker *process* (``dask.distributed``, the
  multiprocessing scheduler), the scheduler's threads are the parallelism, so
  each block runs its kernels on one thread (``fastrnn.set_num_threads(1)``) --
  what ``distributed`` does for BLAS with ``OMP_NUM_THREADS=1``.  Set
  ``FASTRNN_NUM_THREADS`` in the workers' environment to choose otherwise.  In
  the caller's own process (the threaded scheduler) nothing is changed:
  concurrent kernel calls already share the pool without oversubscribing.

Only fastrnn's public API is used: the drivers, ``state_size`` and the cells
themselves.  Validation is eager where the values are known (shapes, dtypes,
chunks, NumPy lengths); the values of a dask ``sequence_length`` are checked
by fastrnn in each block, and an error names the block's rows.
"""
from __future__ import annotations

import functools
import numbers
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

import fastrnn as _fr
from fastrnn import _validate

try:
    import dask
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph
    from dask.utils import format_bytes, parse_bytes
except ImportError as e:  # pragma: no cover - only without the extra
    raise ImportError("fastrnn.dask needs Dask: pip install 'fastrnn[dask]' "
                      "(dask[array], and distributed for clusters)") from e

__all__ = ["dynamic_rnn", "bidirectional_dynamic_rnn"]



class _Cells:
    """The cells of one graph, as one graph value (a tuple of callables would be a task)."""

    __slots__ = ("cells",)

    def __init__(self, cells: Tuple[Any, ...]) -> None:
        self.cells = cells

    def __getstate__(self) -> Tuple[Any, ...]:
        return self.cells

    def __setstate__(self, cells: Tuple[Any, ...]) -> None:
        # (the built-in cells take aligned copies of weights that distributed unpickles from
        # out-of-band buffers at any address, and pickle nothing packed for the sender's CPU)
        self.cells = cells

    def __dask_tokenize__(self) -> Any:
        return ("fastrnn.dask._Cells", dask.base.tokenize(*self.cells))


def dynamic_rnn(cell: Any, inputs: Any, sequence_length: Any = None, initial_state: Any = None,
                dtype: Any = None, time_major: bool = False) -> Tuple[Any, Any]:
    """:func:`fastrnn.dynamic_rnn` over a dask array, chunked along the batch.

    Parameters
    ----------
    cell : RNNCell
        Built here if it is not yet (for the inputs' depth and dtype), so that
        every worker gets the same weights.
    inputs : dask.array.Array (or array_like)
        ``[batch, time, depth]`` float32/float64, or ``[time, batch, depth]`` with
        ``time_major=True``.  Blocks along the batch run independently; chunks
        along time or depth are merged into whole sequences (see the module's notes).
    sequence_length : dask or NumPy int vector ``[batch]``, optional
    initial_state : dask or NumPy arrays in the structure of ``cell.state_size``, optional
    dtype, time_major
        As in :func:`fastrnn.dynamic_rnn`.

    Returns
    -------
    outputs : dask.array.Array
        ``[batch, time, output_size]`` (time-major if ``time_major``), chunked like the batch.
    state : dask arrays
        The final state in the cell's structure (``LSTMStateTuple``, tuples for
        ``MultiRNNCell``), each leaf ``[batch, size]``; computed by the same tasks as
        ``outputs``.
    """
    outs, states = _lazy((cell,), inputs, sequence_length, {"initial_state": initial_state}, dtype, time_major)
    return outs[0], states[0]


def bidirectional_dynamic_rnn(cell_fw: Any, cell_bw: Any, inputs: Any, sequence_length: Any = None,
                              initial_state_fw: Any = None, initial_state_bw: Any = None, dtype: Any = None,
                              time_major: bool = False) -> Tuple[Tuple[Any, Any], Tuple[Any, Any]]:
    """:func:`fastrnn.bidirectional_dynamic_rnn` over a dask array, chunked along the batch.

    Arguments as in :func:`dynamic_rnn` (and :func:`fastrnn.bidirectional_dynamic_rnn`).

    Returns
    -------
    (output_fw, output_bw) : dask arrays
    (state_fw, state_bw) : dask arrays in the structures of the two cells' states
        All computed by one task per batch block.
    """
    outs, states = _lazy((cell_fw, cell_bw), inputs, sequence_length,
                         {"initial_state_fw": initial_state_fw, "initial_state_bw": initial_state_bw},
                         dtype, time_major)
    return (outs[0], outs[1]), (states[0], states[1])


def _call(cells: Tuple[Any, ...], x: np.ndarray, lengths: Any, states: Sequence[Any], dtype: Any,
          time_major: bool) -> Tuple[List[np.ndarray], List[Any]]:
    """The one in-process fastrnn call of one cell or a forward/backward pair: ``(outputs, states)``."""
    if len(cells) == 1:
        out, state = _fr.dynamic_rnn(cells[0], x, sequence_length=lengths, initial_state=states[0], dtype=dtype,
                                     time_major=time_major)
        return [out], [state]
    (out_fw, out_bw), (st_fw, st_bw) = _fr.bidirectional_dynamic_rnn(
        cells[0], cells[1], x, sequence_length=lengths, initial_state_fw=states[0], initial_state_bw=states[1],
        dtype=dtype, time_major=time_major)
    return [out_fw, out_bw], [st_fw, st_bw]


def _lazy(cells: Tuple[Any, ...], inputs: Any, sequence_length: Any, initial_states: Dict[str, Any], dtype: Any,
          time_major: Any) -> Tuple[List[Any], List[Any]]:
    """Validate, build the cells, and make the graph; ``(outputs, states)`` as dask arrays."""
    time_major = _flag(time_major, "time_major")
    x, batch, time = _inputs(inputs, time_major)
    # One in-process call on 0 rows and 0 steps checks the cells, the inputs' dtype and depth and
    # `dtype` with fastrnn's own messages, builds the cells as a local call would, and gives the
    # outputs' and states' dtypes, widths and structures -- at no cost.
    out_metas, state_metas = _call(cells, np.zeros((0, 0, x.shape[2]), x.dtype), None, [None] * len(cells),
                                   dtype, time_major)
    step_bytes = x.dtype.itemsize * x.shape[2] + sum(m.itemsize * m.shape[2] for m in out_metas)
    x = _whole_sequences(x, time_major, step_bytes)
    chunks = x.chunks[1 if time_major else 0]
    lengths = _lengths(sequence_length, batch, time, chunks)
    explicit = None if dtype is None else out_metas[0].dtype  # TF's feed rule for the states, as in fastrnn
    leaves = [_state_leaves(state, cell.state_size, batch, chunks, name, explicit)
              for cell, (name, state) in zip(cells, initial_states.items())]
    return _graph(cells, x, lengths, leaves, out_metas, state_metas, time_major)


# -- nested states (tuples, lists, LSTMStateTuple) -------------------------------

def _nesting(value: Any) -> Any:
    """The nesting of a state or state_size, leaves erased: tuples, lists and namedtuples alike."""
    return tuple(_nesting(v) for v in value) if isinstance(value, (tuple, list)) else None


def _flatten(state: Any) -> List[Any]:
    return [leaf for s in state for leaf in _flatten(s)] if isinstance(state, (tuple, list)) else [state]


def _pack(template: Any, leaves: Sequence[Any]) -> Any:
    """``leaves`` (in :func:`_flatten` order) in the nesting of ``template``."""
    it = iter(leaves)

    def build(t: Any) -> Any:
        if not isinstance(t, (tuple, list)):
            return next(it)
        items = [build(s) for s in t]
        return type(t)(*items) if hasattr(t, "_fields") else type(t)(items)

    return build(template)


# -- validation ---------------------------------------------------------------

def _flag(value: Any, name: str) -> bool:
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, numbers.Integral) and value in (0, 1)):
        return bool(value)
    raise TypeError(f"{name}: expected True or False, got {value!r} ({type(value).__name__})")


def _inputs(inputs: Any, time_major: bool) -> Tuple[Any, int, int]:
    """``inputs`` as a 3-D dask array of known shape; returns ``(x, batch, time)``."""
    x = inputs
    if not isinstance(x, da.Array):  # NumPy: whole sequences, batch blocks of Dask's chunk size
        arr = np.asarray(x)
        b_axis = int(time_major)
        x = da.from_array(arr, chunks={b_axis: "auto", 1 - b_axis: -1, 2: -1} if arr.ndim == 3 else -1)
    layout = "[time, batch, depth]" if time_major else "[batch, time, depth]"
    if x.ndim != 3:
        raise ValueError(f"inputs: expected a 3-D array {layout}, got shape {x.shape}")
    if any(np.isnan(n) for n in x.shape):
        raise ValueError(f"inputs: the shape {x.shape} has unknown sizes (NaN chunks); "
                         "call inputs.compute_chunk_sizes() first")
    if x.shape[2] == 0:
        raise ValueError(f"inputs: expected depth >= 1 (the last axis of {layout}), got shape {x.shape}")
    time, batch = (x.shape[0], x.shape[1]) if time_major else (x.shape[1], x.shape[0])
    return x, int(batch), int(time)


def _whole_sequences(x: Any, time_major: bool, row_bytes_per_step: int) -> Any:
    """``x`` with each block holding whole sequences: one chunk along time and depth."""
    t_axis, b_axis = (0, 1) if time_major else (1, 0)
    if len(x.chunks[t_axis]) <= 1 and len(x.chunks[2]) <= 1:
        return x  # already whole sequences: the caller's batch chunks stand
    limit = parse_bytes(dask.config.get("array.chunk-size"))
    row = row_bytes_per_step * x.shape[t_axis]
    if row > limit:
        raise ValueError(
            f"inputs: chunked along the {'time' if len(x.chunks[t_axis]) > 1 else 'depth'} axis "
            f"(chunks {x.chunks}), but each block must hold whole sequences (the recurrence runs along time), "
            f"and one row's sequence -- its inputs and outputs, {format_bytes(row)} -- is larger than Dask's "
            f"array.chunk-size ({format_bytes(limit)}). Raise the limit if the workers can hold such blocks "
            f"(dask.config.set({{'array.chunk-size': '{format_bytes(2 * row).replace(' ', '')}'}})), or split "
            "the sequences along time yourself and pass each part's final state on as initial_state "
            "(examples/chunked_sequence.py)")
    rows = max(1, limit // row)
    batch_chunks = tuple(min(rows, c - start) for c in x.chunks[b_axis] for start in range(0, c, rows)) or (0,)
    return x.rechunk({b_axis: batch_chunks, t_axis: -1, 2: -1})


def _lengths(lengths: Any, batch: int, time: int, chunks: Tuple[int, ...]) -> Any:
    """``sequence_length`` as a dask vector chunked like the batch (values checked now when NumPy)."""
    if lengths is None:
        return None
    arr = lengths if isinstance(lengths, da.Array) else np.asarray(lengths)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"sequence_length: expected an integer vector, got dtype {arr.dtype}")
    if arr.ndim != 1 or arr.shape[0] != batch:
        raise ValueError(f"sequence_length: expected a 1-D vector of {batch} lengths (one per batch row), "
                         f"got shape {arr.shape}")
    if isinstance(arr, np.ndarray):
        # fastrnn checks them again in each block; here the error comes before any graph runs
        bad = (arr < 0) | (arr > time) | (arr != np.round(arr))
        if bad.any():
            row = int(np.argmax(bad))
            raise ValueError(f"sequence_length: expected integers in [0, {time}] (the time axis), "
                             f"got {arr[row]} at row {row}")
        arr = da.from_array(arr, chunks=(chunks,))
    return arr.rechunk((chunks,))


def _state_leaves(state: Any, state_size: Any, batch: int, chunks: Tuple[int, ...], name: str,
                  explicit: Optional[np.dtype]) -> List[Any]:
    """The leaves of a given initial state as dask arrays chunked like the batch ([] for None); their
    dtype checked by fastrnn's feed rule (``explicit``: the run's dtype when ``dtype`` was given; each
    block's call converts them)."""
    if state is None:
        return []
    sizes = _flatten(state_size)
    if _nesting(state) != _nesting(state_size):
        raise ValueError(f"{name}: expected a state with the structure of state_size={state_size!r} "
                         f"({len(sizes)} array{'s' if len(sizes) != 1 else ''}), got {type(state).__name__}")
    out = []
    for i, (leaf, size) in enumerate(zip(_flatten(state), sizes)):
        where = name if len(sizes) == 1 else f"{name}[{i}] (leaf {i} of state_size={state_size!r})"
        arr = leaf if isinstance(leaf, da.Array) else _validate.as_array(leaf, where)
        _validate.fed(np.empty(0, arr.dtype), where, explicit)  # the rule needs only the dtype
        if arr.shape != (batch, size):
            raise ValueError(f"{where}: expected shape ({batch}, {size}), got {arr.shape}")
        arr = arr if isinstance(arr, da.Array) else da.from_array(arr, chunks=(chunks, -1))
        out.append(arr.rechunk((chunks, -1)))
    return out


# -- the graph ----------------------------------------------------------------

def _graph(cells: Tuple[Any, ...], x: Any, lengths: Any, leaves: List[List[Any]], out_metas: List[np.ndarray],
           state_metas: List[Any], time_major: bool) -> Tuple[List[Any], List[Any]]:
    """One task per batch block, the cells one key they all refer to; the returned arrays pick.

    The block tasks are a plain (materialized) layer and every pick also reads the block's
    row numbers, so no optimizer can fuse a block's run into one of its picks: Dask fuses a
    task into its only dependent, and when collections are optimized apart -- as
    ``client.compute((outputs, state))`` does with the state tuple, or ``dask.optimize`` --
    each would get a fused copy of the run.  This way they all share the one run task."""
    b_axis = 1 if time_major else 0
    chunks = x.chunks[b_axis]
    box = dask.delayed(_Cells(cells), pure=True)
    rows = da.arange(x.shape[b_axis], chunks=(chunks,))
    flat = [leaf for group in leaves for leaf in group]
    counts = tuple(len(group) for group in leaves)  # state leaves given per cell
    token = dask.base.tokenize(box, x, lengths, flat, counts, out_metas[0].dtype, time_major)
    run_name = f"fastrnn-dask-rnn-{token}"
    run_block = functools.partial(_run_block, time_major=time_major, counts=counts,
                                  compute_dtype=out_metas[0].dtype, caller_pid=os.getpid())
    layer: Dict[Any, Any] = {}  # key -> task (legacy tuple form: understood by every Dask since 2024)
    for i in range(len(chunks)):
        x_key = (x.name, 0, i, 0) if time_major else (x.name, i, 0, 0)
        lengths_key = None if lengths is None else (lengths.name, i)
        layer[(run_name, i)] = (run_block, box.key, (rows.name, i), x_key, lengths_key,
                                *((leaf.name, i, 0) for leaf in flat))
    deps: List[Any] = [box, rows, x, *([] if lengths is None else [lengths]), *flat]
    run = da.Array(HighLevelGraph.from_collections(run_name, layer, dependencies=deps), run_name, (chunks,),
                   meta=np.empty((0,), object))

    def pick(what: str, i: int, meta: np.ndarray, new_chunks: Tuple[Tuple[int, ...], ...], b_pos: int) -> Any:
        """The array of item ``i`` of every block's results; its batch axis is ``b_pos``."""
        name = f"fastrnn-dask-{what}-{i}-{token}"
        at = [0] * len(new_chunks)
        layer: Dict[Any, Any] = {}
        for b in range(len(chunks)):
            at[b_pos] = b
            layer[(name, *at)] = (_pick, (run_name, b), (rows.name, b), i)
        graph = HighLevelGraph.from_collections(name, layer, dependencies=[run, rows])  # type: ignore[list-item]
        return da.Array(graph, name, new_chunks, meta=meta)

    time = (x.shape[1 - b_axis],)
    outs = [pick("outputs", i, m, (time, chunks, (m.shape[2],)) if time_major else (chunks, time, (m.shape[2],)),
                 b_axis) for i, m in enumerate(out_metas)]
    first, states = len(out_metas), []
    for meta in state_metas:
        metas = _flatten(meta)
        states.append(_pack(meta, [pick("state", first + k, m, (chunks, (m.shape[1],)), 0)
                                   for k, m in enumerate(metas)]))
        first += len(metas)
    return outs, states


def _pick(result: Tuple[np.ndarray, ...], rows: np.ndarray, i: int) -> np.ndarray:
    """Item ``i`` of a block's results (``rows``: a second dependency, so the run is never fused here)."""
    return result[i]


def _one_thread_in_worker_process(caller_pid: int) -> None:
    """A block running in another process than the one that made the graph runs in a worker
    process: its kernels get one thread, unless FASTRNN_NUM_THREADS is set there."""
    if os.getpid() != caller_pid and "FASTRNN_NUM_THREADS" not in os.environ and _fr.get_num_threads() != 1:
        _fr.set_num_threads(1)


def _run_block(box: _Cells, rows: np.ndarray, x: np.ndarray, lengths: Optional[np.ndarray], *leaves: np.ndarray,
               time_major: bool, counts: Tuple[int, ...], compute_dtype: np.dtype,
               caller_pid: int) -> Tuple[np.ndarray, ...]:
    """One batch block, one fastrnn call: ``(outputs..., final state leaves...)``."""
    _one_thread_in_worker_process(caller_pid)
    states: List[Any] = []
    for cell, count in zip(box.cells, counts):
        group, leaves = leaves[:count], leaves[count:]
        states.append(_pack(cell.state_size, group) if group else None)
    try:
        outs, finals = _call(box.cells, x, lengths, states, compute_dtype, time_major)
    except (ValueError, TypeError) as e:
        where = f"rows {rows[0]}-{rows[-1]}" if len(rows) else "an empty block"
        raise type(e)(f"{e} [fastrnn.dask: in the block of {where} of the batch; row numbers above count "
                      "from the block's first row]") from e
    return (*outs, *(leaf for state in finals for leaf in _flatten(state)))
