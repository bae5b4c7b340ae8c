"""The compiled path: built-in cells -> C kernel layers (csrc/ via _kernels).

``layer_specs(cell)`` says whether a cell can run on the kernels (an exact
built-in cell type with a named activation, or a MultiRNNCell of those) and
describes each layer for ``_kernels.layer_forward``; anything else returns None
and takes the generic NumPy loop.  ``run_sequence`` runs the layers one after
the other over the whole sequence (one kernel call per layer) with the state
unpacked to the kernels' ``(h, c)`` arrays and packed back into the cell's own
structure.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from . import reference as _ref
from ._activations import kernel_code
from ._validate import Run, c_array

try:
    from . import _kernels
except ImportError as e:  # pragma: no cover - only without a build
    _kernels = None  # type: ignore[assignment]
    _IMPORT_ERROR: Optional[ImportError] = e
else:
    _IMPORT_ERROR = None

RNN, LSTM, GRU = 0, 1, 2
_KIND = {_ref.BasicRNNCell: RNN, _ref.BasicLSTMCell: LSTM, _ref.LSTMCell: LSTM, _ref.GRUCell: GRU}


def register(cls: type, base: type) -> None:
    """Let the public subclass ``cls`` of reference cell ``base`` take the compiled path."""
    _KIND[cls] = _KIND[base]


def _layer_spec(cell: Any) -> Optional[Dict[str, Any]]:
    """The kernel spec of a built-in layer cell, with its weights packed once for the
    current instruction set; cached on the cell until its weights change (or the
    instruction set does, through FASTRNN_ISA)."""
    kind = _KIND.get(type(cell))
    act = kernel_code(getattr(cell, "_activation", None))
    if kind is None or act is None or not cell.built:
        return None
    k = _require_kernels()
    key = (cell._version, k.isa())
    cached = cell.__dict__.get("_kernel_spec")
    if cached is not None and cached[0] == key:
        return cached[1]
    w = cell._weights
    spec = {"cell": kind, "dtype": 0 if cell.dtype == np.float32 else 1, "activation": act,
            "depth": cell.input_depth, "units": cell.num_units, "proj": cell.output_size}
    if kind == GRU:
        spec.update(kernel=w["gates/kernel"], bias=w["gates/bias"], cand_kernel=w["candidate/kernel"],
                    cand_bias=w["candidate/bias"], cand_recurrent_bias=w.get("candidate/recurrent_bias"))
    else:
        spec.update(kernel=w["kernel"], bias=w["bias"])
    if kind == LSTM:
        spec.update(forget_bias=cell._forget_bias, cell_clip=cell._cell_clip, proj_clip=cell._proj_clip,
                    w_i_diag=w.get("w_i_diag"), w_f_diag=w.get("w_f_diag"), w_o_diag=w.get("w_o_diag"),
                    proj_kernel=w.get("projection/kernel"))
    spec["packed"] = k.pack_weights(spec)
    cell._kernel_spec = (key, spec)
    return spec


def layer_specs(cell: Any) -> Optional[List[Tuple[Any, Dict[str, Any]]]]:
    """``[(layer_cell, spec), ...]`` if ``cell`` (built) runs on the kernels, else None."""
    layers = cell._cells if type(cell) is _ref.MultiRNNCell else [cell]
    out = []
    for layer in layers:
        spec = _layer_spec(layer)
        if spec is None:
            return None
        out.append((layer, spec))
    return out


def _require_kernels() -> Any:
    if _kernels is None:
        raise ImportError(f"fastrnn's compiled extension is not available: {_IMPORT_ERROR}")
    return _kernels


def _contiguous(a: Optional[np.ndarray], dtype: np.dtype) -> Optional[np.ndarray]:
    return None if a is None else c_array(a, dtype)


def run_sequence(cell: Any, layers: List[Tuple[Any, Dict[str, Any]]], run: Run,
                 reverse: bool = False) -> Tuple[np.ndarray, Any]:
    """Run ``layers`` (from :func:`layer_specs`) over ``run``; returns ``(outputs, final_state)``."""
    k = _require_kernels()
    multi = type(cell) is _ref.MultiRNNCell
    states = cell._layer_states(run.state) if multi else [run.state]
    x, finals = run.x, []
    for (layer_cell, spec), state in zip(layers, states):
        h0, c0 = layer_cell._split_state(state)
        x, h, c = k.layer_forward(spec, x, run.lengths, _contiguous(h0, run.dtype), _contiguous(c0, run.dtype),
                                  run.time_major, reverse, run.batch, run.time)
        finals.append(layer_cell._join_state(h, c))
    return x, (cell._join_layer_states(finals) if multi else finals[0])


def step(cell: Any, x: np.ndarray, state: Any) -> Optional[Tuple[np.ndarray, Any]]:
    """One time step of a built-in layer cell on the kernels (a 1-step sequence), or None
    when the cell cannot run on them (its activation has no kernel)."""
    layers = layer_specs(cell)
    if layers is None:
        return None
    run = Run(x[None], None, state, x.dtype, True, x.shape[0], 1)
    out, new_state = run_sequence(cell, layers, run)
    return out[0], new_state
