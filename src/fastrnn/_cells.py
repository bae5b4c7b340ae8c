"""The public built-in cells: the reference cells with a compiled time step.

Configuration, weights, initializers and validation are inherited from
:mod:`fastrnn.reference`; only ``_step`` (one validated time step) changes, to
run on the C kernels whenever the activation has a kernel implementation (any
other callable keeps the NumPy step).
"""
from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from . import _compiled
from . import reference as _ref


class _CompiledStep:
    def _step(self, x: np.ndarray, state: Any) -> Tuple[np.ndarray, Any]:
        result = _compiled.step(self, x, state)
        return super()._step(x, state) if result is None else result  # type: ignore[misc]


class BasicRNNCell(_CompiledStep, _ref.BasicRNNCell):
    __doc__ = _ref.BasicRNNCell.__doc__


class BasicLSTMCell(_CompiledStep, _ref.BasicLSTMCell):
    __doc__ = _ref.BasicLSTMCell.__doc__


class LSTMCell(_CompiledStep, _ref.LSTMCell):
    __doc__ = _ref.LSTMCell.__doc__


class GRUCell(_CompiledStep, _ref.GRUCell):
    __doc__ = _ref.GRUCell.__doc__


for _cls in (BasicRNNCell, BasicLSTMCell, LSTMCell, GRUCell):
    _cls.__module__ = "fastrnn"
    _compiled.register(_cls, _cls.__mro__[2])

MultiRNNCell = _ref.MultiRNNCell
RNNCell = _ref.RNNCell
