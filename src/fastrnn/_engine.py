"""The Stream's one contact with the compiled kernels: :class:`KernelEngine`.

It keeps a built-in cell's state the way the kernels read and write it -- per layer the
recurrent state ``h [batch, proj]`` and, for LSTMs, the cell state ``c [batch, units]``
(``layer_cell._split_state``) -- inside a ``_kernels.Stepper``, which owns those buffers
(twice: the state and the next one), the workspace and every kernel pointer, so that a
step is one GIL-free pass over the layers that allocates nothing (given ``out``).  A chunk
(:meth:`KernelEngine.advance`) runs the layers through :func:`fastrnn._compiled.run_sequence`
from the stepper's state and gives it the final one.  The stepper is made again, the state
carried over, when the cell's weights are set or the kernels' options or thread count
change.  Nothing else of ``fr.Stream`` (arguments, validation, the meaning of lengths,
locking: :mod:`fastrnn._stream`) sees the kernels.
"""
from __future__ import annotations

from typing import Any, List, Optional, Tuple

import numpy as np

from . import _cellbase as _base
from . import _compiled
from ._stream import Engine
from ._structure import flatten
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
        self._batch = int(flatten(state)[0].shape[0])
        self._stepper: Any = None
        self.set_state(state)

    def _current(self) -> Any:
        """The stepper for the cell's weights and the options now (made again when they changed)."""
        st = self._stepper
        if st is not None and st.fresh():
            return st
        generation = _compiled.require_kernels().generation()  # (read before the options)
        layers = _compiled.layers(self._cell)  # cached on the cell; new if its weights were set since
        if layers is None:
            raise RuntimeError(f"{type(self._cell).__name__} no longer runs on the compiled kernels")
        new = _compiled.require_kernels().Stepper([layer for _, layer in layers],
                                                  _compiled.kernel_options(self._precision, self._batch),
                                                  self._batch, [c for c, _ in layers],
                                                  _compiled._sources(layers), generation)
        if st is not None:
            new.set_state(*st.state())
        self._stepper = new
        # Stream.step's first try, bound to the stepper itself (no Python frame in between); a
        # stale stepper returns None, and the checked path comes here for a new one
        self.step_exact = new.step_exact  # type: ignore[method-assign]
        return new

    def set_state(self, state: Any) -> None:
        states = self._cell._layer_states(state) if self._multi else [state]
        hs, cs = [], []
        for layer_cell, layer_state in zip(self._layer_cells, states):
            h, c = layer_cell._split_state(layer_state)
            hs.append(h)
            cs.append(c)
        self._current().set_state(hs, cs)

    def get_state(self) -> Any:
        hs, cs = self._current().state()  # copies
        states = [layer_cell._join_state(h, c) for layer_cell, h, c in zip(self._layer_cells, hs, cs)]
        return self._cell._join_layer_states(states) if self._multi else states[0]

    def step(self, x: np.ndarray, out: Optional[np.ndarray]) -> np.ndarray:
        return self._current().step(x, out)  # type: ignore[no-any-return]


    def advance(self, x: np.ndarray, lengths: Optional[np.ndarray], time_major: bool) -> np.ndarray:
        stepper = self._current()
        time, batch = x.shape[:2] if time_major else x.shape[1::-1]
        run = Run(x, lengths, self.get_state(), self._dtype, time_major, batch, time, self._precision)
        outputs, final = _compiled.run_sequence(self._cell, [(c, layer) for c, layer in zip(self._layer_cells,
                                                                                       stepper.layers)], run)
        states = self._cell._layer_states(final) if self._multi else [final]
        split = [layer_cell._split_state(s) for layer_cell, s in zip(self._layer_cells, states)]
        stepper.set_state([h for h, _ in split], [c for _, c in split])  # only now: a call that raised changed nothing
        return outputs
