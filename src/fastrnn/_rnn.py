"""The public drivers and Stream: the shared TF1 drivers bound to the compiled runner, the
shared Stream to the kernels' engine.

Built-in cells (and MultiRNNCells of them) run on the C kernels, layer by
layer over the whole sequence, backward directions reversed inside the kernel
(no copies); any other cell runs through the reference's generic loop (which
calls the cell's own ``__call__``).
"""
from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from . import _compiled
from . import reference as _ref
from ._cells import call_cell
from ._drivers import Drivers
from ._engine import KernelEngine
from ._stream import Engine, RunnerEngine, StreamBase
from ._validate import Run


def run(cell: Any, run: Run, reverse: bool = False) -> Tuple[np.ndarray, Any]:
    """The product's runner: the kernels for built-in cells, else the generic loop over the
    cell's own ``__call__`` (whose built-in layers, if any, still run compiled)."""
    cell_layers = _compiled.layers(cell)
    if cell_layers is None:
        return _ref.run_generic(cell, run, reverse, step=call_cell)
    return _compiled.run_sequence(cell, cell_layers, run, reverse)


_drivers = Drivers(run, "fastrnn", _compiled.exact_sequence)
dynamic_rnn = _drivers.dynamic_rnn
static_rnn = _drivers.static_rnn
bidirectional_dynamic_rnn = _drivers.bidirectional_dynamic_rnn
static_bidirectional_rnn = _drivers.static_bidirectional_rnn


class Stream(StreamBase):
    __doc__ = StreamBase.__doc__

    def _engine_for(self, state: Any) -> Engine:
        engine = KernelEngine.create(self._cell, state, self._dtype, self._precision)
        return engine if engine is not None else RunnerEngine(self._cell, state, self._dtype, self._precision, run)


Stream.__module__ = "fastrnn"
