"""The four TF1 drivers, written once and bound to a *runner*.

A runner is ``runner(cell, run, reverse) -> (outputs, final_state)``: it runs
``cell`` over a validated :class:`fastrnn._validate.Run` (outputs in the run's
major order, zero past each row's length, state copied through), reading each
row backwards within its own length when ``reverse`` is true and writing the
outputs back at the original positions.  ``fastrnn.reference`` binds the
drivers to its generic NumPy loop; ``fastrnn`` binds them to a runner that takes
the compiled kernels for built-in cells.  Everything else -- argument order,
validation, reversal, concatenation, list outputs -- is shared here so the two
can never disagree.  Each module exports the bound methods of its own
:class:`Drivers` (``fastrnn.dynamic_rnn`` is ``Drivers(...).dynamic_rnn``), which
keep these signatures and docstrings for ``help()`` and type checkers.
"""
from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from . import _validate as _v
from ._cellbase import check_precision

Runner = Callable[[Any, _v.Run, bool], Tuple[np.ndarray, Any]]
Exact = Callable[[Any, Any, bool, Any], Optional[Tuple[np.ndarray, Any]]]  # (cell, inputs, time_major, initial_state)


class Drivers:
    """``dynamic_rnn``, ``static_rnn``, ``bidirectional_dynamic_rnn`` and
    ``static_bidirectional_rnn`` over one runner (see the module docstring)."""

    def __init__(self, runner: Runner, module: str, exact: Optional[Exact] = None) -> None:
        self._runner = runner
        self._module = module
        self._exact = exact  # dynamic_rnn's shortcut when nothing needs checking (None: always validate)

    def __repr__(self) -> str:
        return f"<TF1 drivers of {self._module}>"

    def dynamic_rnn(self, cell: Any, inputs: ArrayLike, sequence_length: Optional[ArrayLike] = None,
                    initial_state: Any = None, dtype: Optional[DTypeLike] = None, parallel_iterations: Optional[int] = None,
                    swap_memory: bool = False, time_major: bool = False, scope: Any = None, *,
                    precision: Optional[str] = None) -> Tuple[np.ndarray, Any]:
        """Run ``cell`` over a whole batch of sequences (``tf.nn.dynamic_rnn``).

        Parameters
        ----------
        cell : RNNCell
            A built-in cell, a ``MultiRNNCell``, or any object with ``state_size``,
            ``output_size``, ``zero_state`` and ``__call__``.
        inputs : array_like
            ``[batch, time, depth]``, or ``[time, batch, depth]`` with ``time_major=True``:
            float32 or float64, or with ``dtype`` given any bool, integer or float values
            (converted to ``dtype``, as TensorFlow converts what is fed to a placeholder).
        sequence_length : array_like of int, optional
            ``[batch]`` lengths in ``[0, time]``.  For ``t >= sequence_length[b]`` the
            output row is zero and the state is copied through, so the final state of
            row ``b`` is its state after step ``sequence_length[b] - 1``.
        initial_state : nested arrays, optional
            In the structure of ``cell.state_size``; zeros when omitted.  Converted to the
            dtype the run computes in (any real values when ``dtype`` is given, else float32
            or float64 values).
        dtype : float32 or float64, optional
            The dtype to compute in; defaults to the inputs' dtype, which must then be
            float32 or float64.
        parallel_iterations, swap_memory, scope
            Accepted for TensorFlow compatibility; they have no effect.
        time_major : bool
            Layout of ``inputs`` and ``outputs``.
        precision : None or "bfloat16", keyword-only
            ``None``: the dtype's own arithmetic.  ``"bfloat16"`` (float32 arrays only): the
            weights and every product's operands rounded to bfloat16, products accumulated
            in float32, gates and state in float32 (see the README, "bfloat16").

        Returns
        -------
        outputs : ndarray
            ``[batch, time, cell.output_size]`` (time-major if ``time_major``).
        state : nested ndarrays
            The final state, in the structure of ``cell.state_size``.
        """
        if self._exact is not None and sequence_length is None and dtype is None \
                and precision is None and (time_major is False or time_major is True):
            done = self._exact(cell, inputs, time_major, initial_state)
            if done is not None:
                return done
        run = _v.prepare(cell, inputs, sequence_length, initial_state, dtype, time_major, reduced=precision)
        check_precision(cell, run.precision)
        return self._runner(cell, run, False)

    def static_rnn(self, cell: Any, inputs: Sequence[ArrayLike], initial_state: Any = None,
                   dtype: Optional[DTypeLike] = None, sequence_length: Optional[ArrayLike] = None,
                   scope: Any = None, *, precision: Optional[str] = None) -> Tuple[List[np.ndarray], Any]:
        """Run ``cell`` over a list of per-step inputs (``tf.nn.static_rnn``).

        Parameters
        ----------
        cell : RNNCell
        inputs : list of array_like
            A non-empty list of ``[batch, depth]`` arrays, one per time step.
        initial_state, dtype, sequence_length, precision
            As in :func:`dynamic_rnn`.
        scope
            Accepted for TensorFlow compatibility; no effect.

        Returns
        -------
        outputs : list of ndarray
            One ``[batch, cell.output_size]`` array per step.
        state : nested ndarrays
            The final state.
        """
        x = _v.static_inputs(inputs, dtype=dtype)
        run = _v.prepare(cell, x, sequence_length, initial_state, dtype, True, reduced=precision)
        check_precision(cell, run.precision)
        out, state = self._runner(cell, run, False)
        return list(out), state

    def _both(self, cell_fw: Any, cell_bw: Any, x: Any, sequence_length: Any, init_fw: Any, init_bw: Any,
              dtype: Any, time_major: bool, precision: Optional[str]
              ) -> Tuple[Tuple[np.ndarray, Any], Tuple[np.ndarray, Any]]:
        run_fw = _v.prepare(cell_fw, x, sequence_length, init_fw, dtype, time_major,
                            state_name="initial_state_fw", reduced=precision, cell_name="cell_fw")
        run_bw = _v.prepare(cell_bw, x, sequence_length, init_bw, dtype, time_major,
                            state_name="initial_state_bw", reduced=precision, cell_name="cell_bw")
        check_precision(cell_fw, run_fw.precision, "cell_fw")
        check_precision(cell_bw, run_bw.precision, "cell_bw")
        return self._runner(cell_fw, run_fw, False), self._runner(cell_bw, run_bw, True)

    def bidirectional_dynamic_rnn(self, cell_fw: Any, cell_bw: Any, inputs: ArrayLike,
                                  sequence_length: Optional[ArrayLike] = None, initial_state_fw: Any = None,
                                  initial_state_bw: Any = None, dtype: Optional[DTypeLike] = None,
                                  parallel_iterations: Optional[int] = None, swap_memory: bool = False,
                                  time_major: bool = False, scope: Any = None, *, precision: Optional[str] = None
                                  ) -> Tuple[Tuple[np.ndarray, np.ndarray], Tuple[Any, Any]]:
        """Forward and backward RNN over the same inputs (``tf.nn.bidirectional_dynamic_rnn``).

        The backward cell reads each row reversed *within its own length* (TF's
        ``reverse_sequence``) and its outputs are reversed back, so
        ``output_bw[b, t]`` lines up with ``t``.  Arguments as in :func:`dynamic_rnn`
        (``precision`` too), one cell and one initial state per direction.

        Returns
        -------
        (output_fw, output_bw) : tuple of ndarray
            Each ``[batch, time, output_size]`` of its cell (time-major if ``time_major``).
        (state_fw, state_bw) : tuple
            The final states of the two directions.
        """
        x = _v.as_array(inputs, "inputs")  # converted once here, fed to each direction's run
        (out_fw, st_fw), (out_bw, st_bw) = self._both(cell_fw, cell_bw, x, sequence_length, initial_state_fw,
                                                      initial_state_bw, dtype, time_major, precision)
        return (out_fw, out_bw), (st_fw, st_bw)

    def static_bidirectional_rnn(self, cell_fw: Any, cell_bw: Any, inputs: Sequence[ArrayLike],
                                 initial_state_fw: Any = None, initial_state_bw: Any = None,
                                 dtype: Optional[DTypeLike] = None, sequence_length: Optional[ArrayLike] = None,
                                 scope: Any = None, *, precision: Optional[str] = None
                                 ) -> Tuple[List[np.ndarray], Any, Any]:
        """Bidirectional RNN over a list of per-step inputs (``tf.nn.static_bidirectional_rnn``).

        Arguments as in :func:`static_rnn` (``precision`` too), one cell and one initial
        state per direction.

        Returns
        -------
        outputs : list of ndarray
            One ``[batch, out_fw + out_bw]`` array per step: ``concat([fw, bw], -1)``.
        state_fw, state_bw
            The final states of the two directions.
        """
        x = _v.static_inputs(inputs, dtype=dtype)
        (out_fw, st_fw), (out_bw, st_bw) = self._both(cell_fw, cell_bw, x, sequence_length, initial_state_fw,
                                                      initial_state_bw, dtype, True, precision)
        return list(np.concatenate([out_fw, out_bw], axis=-1)), st_fw, st_bw
