"""The public built-in cells: the shared configuration (fastrnn._cellbase) with a compiled step.

A cell's step runs on the C kernels whenever its activation has a kernel
implementation.  A cell with any other Python callable as activation runs the NumPy
step of :mod:`fastrnn.reference` (the one piece of math the product borrows from the
oracle: the kernels cannot call back into Python).

Subclasses: a subclass that overrides neither ``__call__`` nor ``_step`` still takes
the compiled path (overriding ``build``, ``zero_state``, properties or adding methods
is fine); one that overrides either runs through its own ``__call__`` in the generic
loop of the drivers.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from . import _cellbase as _base
from . import _compiled
from . import _validate as _v
from . import reference as _ref


class _CompiledStep:
    # cell(x, state) without validation when nothing needs it (one call, not a method calling it)
    _exact_call = _compiled.exact_step

    def _step(self, x: np.ndarray, state: Any, precision: Optional[str] = None) -> Tuple[np.ndarray, Any]:
        result = _compiled.step(self, x, state, precision)
        if result is not None:
            return result
        if isinstance(self, _base.MultiRNNCellBase):  # a layer without a kernel: one call per layer
            new_states = []
            for layer, st in zip(self._cells, self._layer_states(state)):
                x, st = call_cell(layer, x, st, precision)
                new_states.append(st)
            return x, self._join_layer_states(new_states)
        return _ref._textbook_step(self, x, state, precision)


def call_cell(cell: Any, x: np.ndarray, state: Any, precision: Optional[str]) -> Tuple[np.ndarray, Any]:
    """``cell(x, state)``, passing ``precision`` to a built-in cell (any other cell cannot honour it:
    an error when it is given)."""
    if precision is None:
        return cell(x, state)  # type: ignore[no-any-return]
    _v.check_precision_cell(cell, isinstance(cell, (_base.LayerCell, _base.MultiRNNCellBase)), precision)
    return cell(x, state, precision=precision)  # type: ignore[no-any-return]


class BasicRNNCell(_CompiledStep, _base.BasicRNNCellBase):
    __doc__ = _base.BasicRNNCellBase.__doc__


class GRUCell(_CompiledStep, _base.GRUCellBase):
    __doc__ = _base.GRUCellBase.__doc__


class BasicLSTMCell(_CompiledStep, _base.BasicLSTMCellBase):
    __doc__ = _base.BasicLSTMCellBase.__doc__


class LSTMCell(_CompiledStep, _base.FullLSTMCellBase):
    __doc__ = _base.FullLSTMCellBase.__doc__


class MultiRNNCell(_CompiledStep, _base.MultiRNNCellBase):
    __doc__ = _base.MultiRNNCellBase.__doc__


RNNCell = _base.RNNCell

for _cls in (BasicRNNCell, GRUCell, BasicLSTMCell, LSTMCell, MultiRNNCell):
    _cls.__module__ = "fastrnn"
