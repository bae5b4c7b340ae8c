"""fastrnn.reference -- the whole fastrnn API in plain NumPy: the oracle.

Same names and semantics as :mod:`fastrnn` (TensorFlow 1.x ``tf.nn.dynamic_rnn``
and friends), written for clarity, not speed: each cell's step is the textbook
equation on ``concat([inputs, h]) @ kernel`` (:func:`rnn_step`, :func:`lstm_step`,
:func:`gru_step`), and every driver is the generic per-step loop with TF's masked
copy-through (:func:`run_generic`).  ``precision="bfloat16"`` is emulated: every
product's operands rounded to bfloat16 (:func:`bfloat16_round`), sums in float32.

It never reaches compiled code, whatever cell it is given: it imports nothing
compiled, and a built-in cell of :mod:`fastrnn` handed to these drivers runs the
NumPy step here, not its own compiled one (:func:`numpy_step`).  Only the cells'
configuration, weights and state layout are shared with the product
(``fastrnn._cellbase``); the math is this module's alone.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Tuple

import numpy as np

from . import _cellbase as _base
from . import _stream
from . import _validate as _v
from ._activations import linear, relu, sigmoid, tanh
from ._drivers import Drivers
from ._structure import LSTMStateTuple, map_structure

__all__ = [
    "RNNCell", "BasicRNNCell", "BasicLSTMCell", "LSTMCell", "GRUCell", "MultiRNNCell", "LSTMStateTuple",
    "dynamic_rnn", "static_rnn", "bidirectional_dynamic_rnn", "static_bidirectional_rnn", "Stream",
    "tanh", "sigmoid", "relu", "linear",
]

RNNCell = _base.RNNCell


# ---- reduced precision ------------------------------------------------------------------

def bfloat16_round(a: Any) -> np.ndarray:
    """``a`` rounded to bfloat16 (round to nearest, ties to even), as float32 values.

    The hardware's rounding (``vcvtneps2bf16``): a subnormal becomes a zero of its sign, a
    NaN stays a quiet NaN with its sign and top payload bits, an overflow becomes infinity.
    """
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    rounded = ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)) << np.uint32(16)
    subnormal = (u & np.uint32(0x7F800000)) == 0
    nan = (u & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    out = np.where(subnormal, u & np.uint32(0x80000000), rounded)
    out = np.where(nan, (u & np.uint32(0xFFFF0000)) | np.uint32(0x00400000), out)
    return out.astype(np.uint32).view(np.float32)


def product(a: np.ndarray, w: np.ndarray, precision: Optional[str] = None) -> np.ndarray:
    """``a @ w``; with ``precision="bfloat16"`` both operands rounded to bfloat16 first and the
    products summed in float32 (what the kernels' bfloat16 paths compute, up to the order of
    the float32 sums)."""
    if precision is None:
        return a @ w  # type: ignore[no-any-return]
    return bfloat16_round(a) @ bfloat16_round(w)  # type: ignore[no-any-return]


# ---- the textbook steps (x: [batch, depth]; weights by their TF1 names) -------------
# Every matrix product goes through `product`, so that precision="bfloat16" rounds exactly
# the operands the kernels round: the weights and each product's left operand ([x, h], the
# GRU candidate's [x, r*h] or x and h, a projected LSTM's m); gates, state and outputs stay
# float32.

def rnn_step(cell: _base.BasicRNNCellBase, x: np.ndarray, h: np.ndarray,
             precision: Optional[str] = None) -> Tuple[np.ndarray, Any]:
    """``h' = act([x, h] @ kernel + bias)``; output and state are ``h'``."""
    w = cell.built_weights()
    new_h = cell.activation(product(np.concatenate([x, h], axis=1), w["kernel"], precision) + w["bias"])
    return new_h, new_h


def gru_step(cell: _base.GRUCellBase, x: np.ndarray, h: np.ndarray,
             precision: Optional[str] = None) -> Tuple[np.ndarray, Any]:
    """TF1's GRU (reset before the candidate's product), or the reset-after variant."""
    w, n = cell.built_weights(), cell.num_units
    ru = sigmoid(product(np.concatenate([x, h], axis=1), w["gates/kernel"], precision) + w["gates/bias"])
    r, u = ru[:, :n], ru[:, n:]
    if cell.reset_after:
        wc, depth = w["candidate/kernel"], x.shape[1]
        rec = product(h, wc[depth:], precision) + w["candidate/recurrent_bias"]
        cand = cell.activation(product(x, wc[:depth], precision) + w["candidate/bias"] + r * rec)
    else:
        cand = cell.activation(product(np.concatenate([x, r * h], axis=1), w["candidate/kernel"], precision)
                               + w["candidate/bias"])
    new_h = u * h + (1 - u) * cand
    return new_h, new_h


def lstm_step(cell: _base.LSTMCellBase, x: np.ndarray, state: Any,
              precision: Optional[str] = None) -> Tuple[np.ndarray, Any]:
    """TF1's LSTMCell: gates i, j, f, o; peepholes, cell clip and projection when configured."""
    w, act = cell.built_weights(), cell.activation
    h, c = cell._split_state(state)
    z = product(np.concatenate([x, h], axis=1), w["kernel"], precision) + w["bias"]
    i, j, f, o = np.split(z, 4, axis=1)
    fb = np.asarray(cell.forget_bias, dtype=z.dtype)
    if cell.use_peepholes:
        new_c = c * sigmoid(f + fb + w["w_f_diag"] * c) + sigmoid(i + w["w_i_diag"] * c) * act(j)
    else:
        new_c = c * sigmoid(f + fb) + sigmoid(i) * act(j)
    if cell.cell_clip is not None:
        new_c = np.clip(new_c, -cell.cell_clip, cell.cell_clip)
    if cell.use_peepholes:
        m = sigmoid(o + w["w_o_diag"] * new_c) * act(new_c)
    else:
        m = sigmoid(o) * act(new_c)
    if cell.num_proj is not None:
        m = product(m, w["projection/kernel"], precision)
        if cell.proj_clip is not None:
            m = np.clip(m, -cell.proj_clip, cell.proj_clip)
    return m, cell._join_state(m, new_c)


_MODULES = _base.BUILTIN_MODULES  # the built-in cells of the product and of this module


def _textbook_step(cell: Any, x: np.ndarray, state: Any, precision: Optional[str] = None) -> Tuple[np.ndarray, Any]:
    """The step of a built-in cell on validated arguments, by its family."""
    if isinstance(cell, _base.MultiRNNCellBase):
        new_states = []
        for layer, st in zip(cell._cells, cell._layer_states(state)):
            x, st = numpy_step(layer, x, st, precision)
            new_states.append(st)
        return x, cell._join_layer_states(new_states)
    if isinstance(cell, _base.LSTMCellBase):
        return lstm_step(cell, x, state, precision)
    if isinstance(cell, _base.GRUCellBase):
        return gru_step(cell, x, state, precision)
    return rnn_step(cell, x, state, precision)


def numpy_step(cell: Any, x: np.ndarray, state: Any, precision: Optional[str] = None) -> Tuple[np.ndarray, Any]:
    """One step of ``cell`` in NumPy: the textbook step of a built-in cell (of either module,
    and of each layer of a ``MultiRNNCell``), else the cell's own ``__call__`` (a user's cell,
    or a subclass that overrides the step; those cannot run in reduced precision)."""
    builtin = isinstance(cell, (_base.LayerCell, _base.MultiRNNCellBase)) and _base.is_builtin_step(cell, _MODULES)
    if builtin:
        x, st, prec = _v.step_call(cell, x, state, precision)
        return _textbook_step(cell, x, st, prec)
    _v.check_precision_cell(cell, False, precision)
    return cell(x, state)  # type: ignore[no-any-return]


# ---- the cells: the shared configuration with the NumPy step ------------------------

class _NumpyStep:
    def _step(self, x: np.ndarray, state: Any, precision: Optional[str] = None) -> Tuple[np.ndarray, Any]:
        return _textbook_step(self, x, state, precision)


class BasicRNNCell(_NumpyStep, _base.BasicRNNCellBase):
    __doc__ = _base.BasicRNNCellBase.__doc__


class GRUCell(_NumpyStep, _base.GRUCellBase):
    __doc__ = _base.GRUCellBase.__doc__


class BasicLSTMCell(_NumpyStep, _base.BasicLSTMCellBase):
    __doc__ = _base.BasicLSTMCellBase.__doc__


class LSTMCell(_NumpyStep, _base.FullLSTMCellBase):
    __doc__ = _base.FullLSTMCellBase.__doc__


class MultiRNNCell(_NumpyStep, _base.MultiRNNCellBase):
    __doc__ = _base.MultiRNNCellBase.__doc__


# ---- the generic loop -----------------------------------------------------------------

def _reverse_rows(x: np.ndarray, lengths: Optional[np.ndarray]) -> np.ndarray:
    """Reverse time-major ``x [time, batch, ...]`` per row within its length (``reverse_sequence``)."""
    if lengths is None:
        return x[::-1]
    t = np.arange(x.shape[0])[:, None]
    idx = np.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)
    return np.take_along_axis(x, idx.reshape(idx.shape + (1,) * (x.ndim - 2)), axis=0)


Step = Callable[[Any, np.ndarray, Any, Optional[str]], Tuple[np.ndarray, Any]]


def run_generic(cell: Any, run: _v.Run, reverse: bool = False, step: Step = numpy_step) -> Tuple[np.ndarray, Any]:
    """TF's dynamic_rnn loop: one ``step(cell, x_t, state, precision)`` per time step (here the
    NumPy step, :func:`numpy_step`), with masked copy-through: past a row's length its output is
    zero and its state is carried unchanged."""
    size = _v.output_size(cell)
    x = run.x if run.time_major else run.x.transpose(1, 0, 2)
    if reverse:
        x = _reverse_rows(x, run.lengths)
    outputs = np.zeros((run.time, run.batch, size), run.dtype)
    state = run.state
    for t in range(run.time):
        out, new_state = step(cell, x[t], state, run.precision)
        out = _v.cell_output(out, run.batch, size)
        new_state = _v.state(new_state, cell.state_size, run.batch, run.dtype, "new state returned by the cell")
        if run.lengths is not None:
            keep = (t < run.lengths)[:, None]
            out = np.where(keep, out, 0)
            new_state = map_structure(lambda new, old: np.where(keep, new, old), new_state, state)
        outputs[t] = out
        state = new_state
    if reverse:
        outputs = _reverse_rows(outputs, run.lengths)
    if not run.time_major:
        outputs = outputs.transpose(1, 0, 2)
    return np.ascontiguousarray(outputs), state


_drivers = Drivers(run_generic, __name__)
dynamic_rnn = _drivers.dynamic_rnn
static_rnn = _drivers.static_rnn
bidirectional_dynamic_rnn = _drivers.bidirectional_dynamic_rnn
static_bidirectional_rnn = _drivers.static_bidirectional_rnn


class Stream(_stream.StreamBase):
    __doc__ = _stream.StreamBase.__doc__

    def _engine_for(self, state: Any) -> _stream.Engine:
        return _stream.RunnerEngine(self._cell, state, self._dtype, self._precision, run_generic)
