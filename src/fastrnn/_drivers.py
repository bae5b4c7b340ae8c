"""The four TF1 drivers, written once and bound to a *runner*.

A runner is ``runner(cell, run, reverse) -> (outputs, final_state)``: it runs
``cell`` over a validated :class:`fastrnn._validate.Run` (outputs in the run's
major order, zero past each row's length, state copied through), reading each
row backwards within its own length when ``reverse`` is true and writing the
outputs back at the original positions.  ``fastrnn.reference`` binds the
drivers to the generic NumPy loop; ``fastrnn`` binds them to a runner that
takes the compiled kernels for built-in cells.  Everything else -- argument
order, validation, reversal, concatenation, list outputs -- is shared here so
the two can never disagree.
"""
from __future__ import annotations

from typing import Any, Callable, List, Tuple

import numpy as np

from . import _validate as _v

Runner = Callable[[Any, _v.Run, bool], Tuple[np.ndarray, Any]]


def make_drivers(runner: Runner, module: str):
    """Return ``(dynamic_rnn, static_rnn, bidirectional_dynamic_rnn, static_bidirectional_rnn)``."""

    def dynamic_rnn(cell, inputs, sequence_length=None, initial_state=None, dtype=None,
                    parallel_iterations=None, swap_memory=False, time_major=False, scope=None):
        """Run ``cell`` over a whole batch of sequences (``tf.nn.dynamic_rnn``).

        Parameters
        ----------
        cell : RNNCell
            A built-in cell, a ``MultiRNNCell``, or any object with ``state_size``,
            ``output_size``, ``zero_state`` and ``__call__``.
        inputs : array_like, float32 or float64
            ``[batch, time, depth]``, or ``[time, batch, depth]`` with ``time_major=True``.
        sequence_length : array_like of int, optional
            ``[batch]`` lengths in ``[0, time]``.  For ``t >= sequence_length[b]`` the
            output row is zero and the state is copied through, so the final state of
            row ``b`` is its state after step ``sequence_length[b] - 1``.
        initial_state : nested arrays, optional
            In the structure of ``cell.state_size``; zeros when omitted.
        dtype : float32 or float64, optional
            The dtype to compute in; defaults to the inputs' float dtype.
        parallel_iterations, swap_memory, scope
            Accepted for TensorFlow compatibility; they have no effect.
        time_major : bool
            Layout of ``inputs`` and ``outputs``.

        Returns
        -------
        outputs : ndarray
            ``[batch, time, cell.output_size]`` (time-major if ``time_major``).
        state : nested ndarrays
            The final state, in the structure of ``cell.state_size``.
        """
        run = _v.prepare(cell, inputs, sequence_length, initial_state, dtype, time_major)
        return runner(cell, run, False)

    def static_rnn(cell, inputs, initial_state=None, dtype=None, sequence_length=None, scope=None):
        """Run ``cell`` over a list of per-step inputs (``tf.nn.static_rnn``).

        Parameters
        ----------
        cell : RNNCell
        inputs : list of array_like
            A non-empty list of ``[batch, depth]`` arrays, one per time step.
        initial_state, dtype, sequence_length
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
        x = _v.static_inputs(inputs)
        run = _v.prepare(cell, x, sequence_length, initial_state, dtype, True)
        out, state = runner(cell, run, False)
        return list(out), state

    def _both(cell_fw, cell_bw, x, sequence_length, init_fw, init_bw, dtype, time_major):
        run_fw = _v.prepare(cell_fw, x, sequence_length, init_fw, dtype, time_major,
                            state_name="initial_state_fw")
        run_bw = _v.prepare(cell_bw, x, sequence_length, init_bw, dtype, time_major,
                            state_name="initial_state_bw")
        return runner(cell_fw, run_fw, False), runner(cell_bw, run_bw, True)

    def bidirectional_dynamic_rnn(cell_fw, cell_bw, inputs, sequence_length=None, initial_state_fw=None,
                                  initial_state_bw=None, dtype=None, parallel_iterations=None,
                                  swap_memory=False, time_major=False, scope=None):
        """Forward and backward RNN over the same inputs (``tf.nn.bidirectional_dynamic_rnn``).

        The backward cell reads each row reversed *within its own length* (TF's
        ``reverse_sequence``) and its outputs are reversed back, so
        ``output_bw[b, t]`` lines up with ``t``.

        Returns
        -------
        (output_fw, output_bw) : tuple of ndarray
            Each ``[batch, time, output_size]`` of its cell (time-major if ``time_major``).
        (state_fw, state_bw) : tuple
            The final states of the two directions.
        """
        x = _v.float_array(inputs, "inputs")
        (out_fw, st_fw), (out_bw, st_bw) = _both(cell_fw, cell_bw, x, sequence_length,
                                                 initial_state_fw, initial_state_bw, dtype, time_major)
        return (out_fw, out_bw), (st_fw, st_bw)

    def static_bidirectional_rnn(cell_fw, cell_bw, inputs, initial_state_fw=None, initial_state_bw=None,
                                 dtype=None, sequence_length=None, scope=None):
        """Bidirectional RNN over a list of per-step inputs (``tf.nn.static_bidirectional_rnn``).

        Returns
        -------
        outputs : list of ndarray
            One ``[batch, out_fw + out_bw]`` array per step: ``concat([fw, bw], -1)``.
        state_fw, state_bw
            The final states of the two directions.
        """
        x = _v.static_inputs(inputs)
        (out_fw, st_fw), (out_bw, st_bw) = _both(cell_fw, cell_bw, x, sequence_length,
                                                 initial_state_fw, initial_state_bw, dtype, True)
        return list(np.concatenate([out_fw, out_bw], axis=-1)), st_fw, st_bw

    drivers = (dynamic_rnn, static_rnn, bidirectional_dynamic_rnn, static_bidirectional_rnn)
    for fn in drivers:
        fn.__module__ = module
        fn.__qualname__ = fn.__name__
    return drivers
