"""``Stream``: a cell fed step by step or chunk by chunk, its state kept inside.

Written once, like the drivers (:mod:`fastrnn._drivers`), and bound to an *engine* by each
module: ``fastrnn.Stream`` to the kernels' engine for built-in cells
(:mod:`fastrnn._engine`, the Stream's one contact with compiled code) and to the generic
loop for any other cell; ``fastrnn.reference.Stream`` to the oracle's NumPy loop.  This
module holds everything else -- arguments, validation, the meaning of a chunk's lengths,
locking -- and imports nothing compiled.

Design notes
------------
- *Exact arguments first.*  ``step`` first offers its arguments to the engine as they are
  (:meth:`Engine.step_exact`): the kernels' engine runs them at once when they are exactly
  the arrays it reads (checked in C), which is the streaming loop's usual case.
- *Validation once per input shape and dtype.*  Otherwise ``step`` checks its first input in full
  (the feed rule, rank, batch, depth; the cell built for it) and remembers the shape and
  dtype it accepted; a later ``ndarray`` of that same shape and dtype is only made
  C-contiguous in the stream's dtype.  Anything else is checked in full again, so bad
  input gets the drivers' errors whenever it comes.  ``run`` checks every chunk (one call
  per chunk: the checks are a small part of it).
- *Nothing changes on error.*  Everything is checked before the engine runs, and an engine
  replaces its state only once a step or chunk has completed.
- *Threads.*  One lock per stream serializes ``step``, ``run``, ``reset`` and reading
  ``state``, so a stream shared by threads advances one whole step or chunk at a time and
  never loses one; the kernels release the GIL, so distinct streams run in parallel.
- *Engines* (:class:`Engine`): ``advance`` a validated chunk, ``step`` one validated
  input, ``get_state`` / ``set_state`` in the cell's own structure.  :class:`RunnerEngine`
  drives any cell through a runner of the drivers (``runner(cell, run, reverse)``), keeping
  the state in the cell's structure.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Optional, Tuple

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from . import _cellbase as _base
from . import _validate as _v
from ._structure import map_structure

Runner = Callable[[Any, _v.Run, bool], Tuple[np.ndarray, Any]]


class Engine:
    """What a Stream needs from its arithmetic (validated arguments only)."""

    def advance(self, x: np.ndarray, lengths: Optional[np.ndarray], time_major: bool) -> np.ndarray:
        """Run a chunk ``x`` (C-contiguous, the stream's dtype) from the state, keep the final
        state; return the outputs in ``x``'s major order (zero past each row's length)."""
        raise NotImplementedError

    def step_exact(self, x: Any, out: Optional[np.ndarray]) -> Optional[np.ndarray]:
        """:meth:`step` when ``x`` (and ``out``) are exactly what the engine reads -- it checks
        that itself, cheaply -- else None, with nothing done (here: always None)."""
        return None

    def step(self, x: np.ndarray, out: Optional[np.ndarray]) -> np.ndarray:
        """One step of ``x [batch, depth]``; the output written to ``out`` when given (here: a
        one-step chunk; an engine may do better)."""
        y = self.advance(x[None], None, True)[0]
        if out is None:
            return y
        np.copyto(out, y)
        return out

    def get_state(self) -> Any:
        """A fresh copy of the state, in the cell's structure."""
        raise NotImplementedError

    def set_state(self, state: Any) -> None:
        """Take ``state`` (a validated fresh copy in the cell's structure; the engine may keep it)."""
        raise NotImplementedError


class RunnerEngine(Engine):
    """Any cell, through a runner of the drivers; the state in the cell's own structure."""

    def __init__(self, cell: Any, state: Any, dtype: np.dtype, precision: Optional[str], runner: Runner) -> None:
        self._cell, self._state, self._dtype, self._precision, self._runner = cell, state, dtype, precision, runner

    def advance(self, x: np.ndarray, lengths: Optional[np.ndarray], time_major: bool) -> np.ndarray:
        time, batch = x.shape[:2] if time_major else x.shape[1::-1]
        run = _v.Run(x, lengths, self._state, self._dtype, time_major, batch, time, self._precision)
        outputs, self._state = self._runner(self._cell, run, False)
        return outputs

    def get_state(self) -> Any:
        return map_structure(np.copy, self._state)

    def set_state(self, state: Any) -> None:
        self._state = state


def _built_depth(cell: Any) -> Optional[int]:
    """The input depth a built-in cell (or a stack whose first layer is one) was built for."""
    first = cell._cells[0] if isinstance(cell, _base.MultiRNNCellBase) else cell
    if isinstance(first, _base.LayerCell) and getattr(cell, "built", False):
        return first.input_depth
    return None


class StreamBase:
    """A recurrent cell run on a live sequence: the state is kept inside, between calls.

    ``step(x_t)`` feeds one time step, ``run(x_chunk)`` a chunk of steps; consecutive calls
    compute what one ``dynamic_rnn`` over the whole sequence computes (TF1's "chunked
    sequence, the state passed on as ``initial_state``", done for you).

    Parameters
    ----------
    cell : RNNCell
        Any cell.  ``fastrnn.Stream`` runs built-in cells and ``MultiRNNCell`` stacks of
        them on the compiled kernels, any other cell through its own ``__call__``;
        ``fastrnn.reference.Stream`` runs every cell in NumPy.  An unbuilt cell is built by
        the first input (for its depth and ``dtype``).
    batch_size : int
        Rows fed at each step (independent sequences advanced together).
    dtype : float32 or float64
        The dtype the stream computes in.  Inputs and states are fed to it as TF feeds a
        placeholder: any bool, integer or float values are converted.
    initial_state : nested arrays, optional
        In the structure of ``cell.state_size``, each ``[batch_size, size]``; zeros when
        omitted.  (``reset()`` starts over from zeros, ``reset(state)`` from ``state``.)
    precision : None or "bfloat16"
        As for :func:`fastrnn.dynamic_rnn` (float32 only; built-in cells only).

    Notes
    -----
    ``run``'s ``sequence_length`` counts steps *within that chunk*, exactly as the argument
    of ``dynamic_rnn`` does (values in ``[0, chunk time]``): row ``b`` runs the first
    ``sequence_length[b]`` steps of the chunk; past them its output is zero and its state is
    carried through, into the next chunk too.  That is what a TF1 program passing the state
    between chunks gives ``dynamic_rnn`` for each chunk (and what TF1's own state-saving
    batches hand to their RNN: the segment's length, not the sequence's).  A padded batch of
    total lengths ``L`` streamed in chunks starting at ``t0`` therefore passes
    ``np.clip(L - t0, 0, chunk_time)``, and the chunks then equal one ``dynamic_rnn(cell, x,
    sequence_length=L)`` (a row that has ended passes 0 and keeps its final state).  Live
    streams that receive a different number of new steps per row (left-aligned, padding
    after) are the same thing -- which lengths counted from the start of the stream could
    not express (a row that gets nothing new in one chunk and resumes in the next).

    One ``Stream`` may be used from several threads: its calls are serialized by a lock
    (each step or chunk is applied whole, in some order).  For throughput, give each
    thread its own ``Stream``; the kernels release the GIL.
    """

    def __init__(self, cell: Any, batch_size: int = 1, dtype: DTypeLike = np.float32, initial_state: Any = None,
                 precision: Optional[str] = None) -> None:
        _v.check_cell(cell, "cell")
        self._cell = cell
        self._batch = _v.non_negative_int(batch_size, "batch_size")
        self._dtype = _v.float_dtype(dtype)
        self._precision = _v.precision(precision, self._dtype)
        _base.check_precision(cell, self._precision)
        self._output_size = _v.output_size(cell)
        self._lock = threading.Lock()
        self._engine: Optional[Engine] = None
        self._out_checked: Optional[np.ndarray] = None  # the out array step() last checked in full
        self._depth: Optional[int] = None
        self._step_key: Optional[Tuple[Tuple[int, ...], np.dtype]] = None  # what step() last checked in full
        depth = _built_depth(cell)
        if depth is not None:  # a built cell of another dtype is refused now, not at the first input
            _v.ensure_built(cell, depth, self._dtype, "dtype")
        self._state0: Any = self._initial(initial_state, "initial_state")
        if depth is not None:
            self._start(depth)

    def _engine_for(self, state: Any) -> Engine:
        """The engine that runs this stream's cell, starting from ``state`` (set by each module)."""
        raise NotImplementedError

    # -- properties ------------------------------------------------------------------
    @property
    def cell(self) -> Any:
        return self._cell

    @property
    def batch_size(self) -> int:
        return self._batch

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def precision(self) -> Optional[str]:
        return self._precision

    @property
    def output_size(self) -> int:
        return self._output_size

    @property
    def state(self) -> Any:
        """A copy of the current state, in the structure of ``cell.state_size`` (what
        ``dynamic_rnn`` would return as the final state of everything fed so far)."""
        with self._lock:
            if self._engine is None:
                return map_structure(np.copy, self._state0)
            return self._engine.get_state()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self._cell!r}, batch_size={self._batch}, dtype={self._dtype.name}"
                f"{'' if self._precision is None else f', precision={self._precision!r}'})")

    # -- calls -------------------------------------------------------------------------
    def step(self, x_t: ArrayLike, out: Optional[np.ndarray] = None) -> np.ndarray:
        """Feed one time step; the state advances.

        Parameters
        ----------
        x_t : array_like
            ``[batch_size, depth]``, fed to the stream's dtype.
        out : ndarray, optional
            A writable C-contiguous ``[batch_size, output_size]`` array of the stream's dtype
            (not sharing memory with ``x_t``) to write the output to, instead of a new array.

        Returns
        -------
        ndarray
            ``[batch_size, output_size]``: ``out`` when given.
        """
        with self._lock:
            engine = self._engine
            if engine is not None:  # the engine's own exact-argument path, when it has one
                y = engine.step_exact(x_t, out)
                if y is not None:
                    return y
            x = self._step_input(x_t)
            if out is not None and out is not self._out_checked:
                self._check_out(out, x)  # in full for each new out array; then the engine's checks
                self._out_checked = out  # (dtype, size, layout, writable, overlap with x) guard it
            assert self._engine is not None  # started by _step_input
            try:
                return self._engine.step(x, out)
            except (TypeError, ValueError, BufferError):
                if out is not None:  # the out array changed since it was checked: say how, as the first time
                    self._out_checked = None
                    self._check_out(out, x)
                raise

    def run(self, x_chunk: ArrayLike, sequence_length: Optional[ArrayLike] = None) -> np.ndarray:
        """Feed a chunk of time steps; the state is carried on to the next call.

        Parameters
        ----------
        x_chunk : array_like
            ``[batch_size, time, depth]``, fed to the stream's dtype (``time`` may be 0).
        sequence_length : array_like of int, optional
            ``[batch_size]`` steps to run of this chunk, each in ``[0, time]`` (see the class
            notes); rows past theirs output zeros and keep their state.  None: every step.

        Returns
        -------
        ndarray
            ``[batch_size, time, output_size]``.
        """
        with self._lock:
            x = _v.sequence_inputs(x_chunk, self._dtype, False, "x_chunk")
            if x.shape[0] != self._batch:
                raise ValueError(f"x_chunk: expected {self._batch} rows (the stream's batch_size) in [batch, time, "
                                 f"depth], got shape {x.shape}")
            self._check_depth(x.shape[2], "x_chunk")
            lengths = _v.sequence_length(sequence_length, self._batch, x.shape[1])
            if x.shape[1] == 0:
                return np.zeros((self._batch, 0, self._output_size), self._dtype)
            assert self._engine is not None  # started by _check_depth
            return self._engine.advance(x, lengths, False)

    def reset(self, state: Any = None) -> None:
        """Start over from ``state`` (validated like ``initial_state``), or from zeros."""
        with self._lock:
            st = self._initial(state, "state")
            if self._engine is None:
                self._state0 = st
            else:
                self._engine.set_state(st)

    # -- helpers -----------------------------------------------------------------------
    def _initial(self, state: Any, name: str) -> Any:
        return _v.initial(self._cell, state, self._batch, self._dtype, True, name)

    def _start(self, depth: int) -> None:
        self._engine = self._engine_for(self._state0)
        self._depth, self._state0 = depth, None

    def _check_depth(self, depth: int, name: str) -> None:
        """The cell built for ``depth`` (the first input's, then fixed); the engine started."""
        if depth == self._depth:
            return
        _v.ensure_built(self._cell, depth, self._dtype, name)  # a built-in cell's own message
        if self._engine is None:
            self._start(depth)
        else:  # any other cell: the first input fixed the depth
            raise ValueError(f"{name}: expected depth {self._depth} (the depth of this stream's inputs), got {depth}")

    def _step_input(self, x_t: Any) -> np.ndarray:
        if type(x_t) is np.ndarray and (x_t.shape, x_t.dtype) == self._step_key:  # checked in full before
            return _v.c_array(x_t, self._dtype)
        x = _v.step_inputs(x_t, None, "x_t", self._dtype)
        if x.shape[0] != self._batch:
            raise ValueError(f"x_t: expected {self._batch} rows (the stream's batch_size) in [batch, depth], "
                             f"got shape {x.shape}")
        self._check_depth(x.shape[1], "x_t")
        if type(x_t) is np.ndarray:
            self._step_key = (x_t.shape, x_t.dtype)
        return _v.c_array(x, self._dtype)

    def _check_out(self, out: Any, x: np.ndarray) -> None:
        shape = (self._batch, self._output_size)
        if not isinstance(out, np.ndarray) or out.dtype != self._dtype:
            what = f"{out.dtype} array" if isinstance(out, np.ndarray) else type(out).__name__
            raise TypeError(f"out: expected a {self._dtype} array of shape {shape}, got {what}")
        if out.shape != shape:
            raise ValueError(f"out: expected shape {shape} (batch_size, output_size), got {out.shape}")
        if not (out.flags.writeable and out.flags.c_contiguous and out.flags.aligned):
            raise ValueError("out: expected a writable, C-contiguous, aligned array (the output is written to it "
                             "in place)")
        if np.may_share_memory(out, x):
            raise ValueError("out: shares memory with x_t; the output cannot overwrite the input it is computed from")
