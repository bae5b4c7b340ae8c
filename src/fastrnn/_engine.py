"""The Stream's one contact with the compiled kernels: :class:`KernelEngine`.

It keeps a built-in cell's state the way the kernels read and write it -- per layer the
recurrent state ``h [batch, proj]`` and, for LSTMs, the cell state ``c [batch, units]``
(``layer_cell._split_state``), C-contiguous in the stream's dtype -- and advances it
through :func:`fastrnn._compiled.run_sequence`, which gives a built-in cell's layers to
the kernels one after the other.  Nothing else of ``fr.Stream`` (arguments, validation,
the meaning of lengths, locking: :mod:`fastrnn._stream`) sees the kernels, so a faster
path -- one call that writes the output and the next ``h``/``c`` in place, without
allocating -- replaces the body of :meth:`KernelEngine.advance` and adds a ``step``
(today :meth:`Engine.step`, a one-step ``advance`` copied to ``out``), nothing else.  Today each call joins the layers' ``(h, c)``
into the cell's structure for ``run_sequence`` and splits its final state again (no
copies for tuple states; a ``state_is_tuple=False`` LSTM's concatenated state is copied).
"""
from __future__ import annotations

from typing import Any, List, Optional, Tuple

import numpy as np

from . import _cellbase as _base
from . import _compiled
from ._stream import Engine
from ._validate import Run

HC = Tuple[np.ndarray, Optional[np.ndarray]]


class KernelEngine(Engine):
    """A built-in cell (or a ``MultiRNNCell`` of them) on the kernels; see the module docstring."""

    @classmethod
    def create(cls, cell: Any, state: Any, dtype: np.dtype, precision: Optional[str]) -> Optional[KernelEngine]:
        """The engine for ``cell`` (built), or None when the cell does not run on the kernels."""
        if _compiled.layers(cell) is None:
            return None
        return cls(cell, state, dtype, precision)

    def __init__(self, cell: Any, state: Any, dtype: np.dtype, precision: Optional[str]) -> None:
        self._cell, self._dtype, self._precision = cell, dtype, precision
        self._multi = isinstance(cell, _base.MultiRNNCellBase)
        self._layer_cells: List[Any] = list(cell._cells) if self._multi else [cell]
        self._hc: List[HC] = []
        self.set_state(state)

    def set_state(self, state: Any) -> None:
        states = self._cell._layer_states(state) if self._multi else [state]
        hc = []
        for layer_cell, layer_state in zip(self._layer_cells, states):
            h, c = layer_cell._split_state(layer_state)
            hc.append((np.ascontiguousarray(h), None if c is None else np.ascontiguousarray(c)))
        self._hc = hc

    def _joined(self, copy: bool) -> Any:
        states = [layer_cell._join_state(h.copy() if copy else h, c.copy() if copy and c is not None else c)
                  for layer_cell, (h, c) in zip(self._layer_cells, self._hc)]
        return self._cell._join_layer_states(states) if self._multi else states[0]

    def get_state(self) -> Any:
        return self._joined(copy=True)

    def advance(self, x: np.ndarray, lengths: Optional[np.ndarray], time_major: bool) -> np.ndarray:
        layers = _compiled.layers(self._cell)  # cached on the cell; new if its weights were set since
        if layers is None:
            raise RuntimeError(f"{type(self._cell).__name__} no longer runs on the compiled kernels")
        time, batch = x.shape[:2] if time_major else x.shape[1::-1]
        run = Run(x, lengths, self._joined(copy=False), self._dtype, time_major, batch, time, self._precision)
        outputs, final = _compiled.run_sequence(self._cell, layers, run)
        self.set_state(final)  # only now: a call that raised left the state as it was
        return outputs

    # step(x, out): Engine's, a one-step advance (the place for a path that writes into out)
