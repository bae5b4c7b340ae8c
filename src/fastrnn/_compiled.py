"""The compiled path: built-in cells -> C kernel layers (csrc/ via _kernels).

:func:`layers` says whether a cell runs on the kernels -- a built-in layer cell (of
``fastrnn`` or ``fastrnn.reference``, or a subclass that keeps the built-in step) with
a named activation, or a ``MultiRNNCell`` of those -- and gives each layer's typed
description (``_kernels.Layer``, cached on the cell until its weights change, with
its weights packed once per instruction set).  Anything else returns None and takes
the generic NumPy loop.  :func:`run_sequence` runs the layers one after the other
over the whole sequence (one kernel call per layer) with the state unpacked to the
kernels' ``(h, c)`` arrays and packed back into the cell's own structure.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from . import _cellbase as _base
from . import _options, _threads
from ._activations import kernel_name
from ._validate import Run, c_array, is_c_array

try:
    from . import _kernels
except ImportError as e:  # pragma: no cover - only without a build
    _kernels = None  # type: ignore[assignment]
    _IMPORT_ERROR: Optional[ImportError] = e
else:
    _IMPORT_ERROR = None
    _options.on_change(_kernels.options_changed)  # what was made for the options is made again
    _isa = _options.default().isa
    if _isa != "auto" and _isa not in _kernels.available_isas():
        raise ValueError(f"{_options.ENVIRONMENT['isa']}={_isa!r}: this CPU (or this build) cannot run it; "
                         f"available: {', '.join(_kernels.available_isas())}")
    _bf16 = _options.default().bf16_path
    if _bf16 != "auto":
        try:
            _kernels.resolve_bf16(_bf16, _isa, 1 << 20)
        except ValueError as e:
            raise ValueError(f"{_options.ENVIRONMENT['bf16_path']}={_bf16!r}: {e}") from None

BUILTIN_MODULES = _base.BUILTIN_MODULES  # whose cells' steps are the package's own


def require_kernels() -> Any:
    if _kernels is None:
        raise ImportError(f"fastrnn's compiled extension is not available: {_IMPORT_ERROR}")
    return _kernels


_options_cache: Dict[Tuple[Any, ...], Any] = {}


def kernel_options(precision: Optional[str] = None, batch: int = 1) -> Any:
    """The ``_kernels.Options`` a call runs with now: the current options, the thread count,
    and for ``precision="bfloat16"`` the path a batch of ``batch`` rows takes (resolved here,
    so that the weights are packed once per path)."""
    current, threads = _options.current(), _threads.get_num_threads()
    path = "auto"
    if precision is not None:
        path = require_kernels().resolve_bf16(current.bf16_path, current.isa, batch)
    key = (current, threads, precision, path)
    opts = _options_cache.get(key)
    if opts is None:
        k = require_kernels()
        opts = k.Options(isa=current.isa, xproj=current.xproj, schedule=current.schedule, gemm=current.gemm,
                         nthreads=threads, tile_rows=current.tile_rows,
                         precision="native" if precision is None else precision, bf16_path=path)
        if len(_options_cache) > 64:  # tests cycle through many; a program uses a few
            _options_cache.clear()
        _options_cache[key] = opts
    return opts


def _layer(cell: Any, any_step: bool = False) -> Any:
    """The kernels' description of a built, built-in layer cell, or None if it has none.
    ``any_step``: also for a subclass that overrides the step (asked from the built-in
    step itself, e.g. through ``super()._step``)."""
    if not isinstance(cell, _base.LayerCell):
        return None
    if not any_step and not _base.is_builtin_step(cell, BUILTIN_MODULES):
        return None
    act = kernel_name(cell.activation)
    weights = cell._weights
    if act is None or weights is None:
        return None
    cached = cell._cache
    if cached is not None and cached[0] is weights:
        return cached[1]
    k = require_kernels()
    kind = {"rnn": k.CELL_RNN, "lstm": k.CELL_LSTM, "gru": k.CELL_GRU}[cell.kind]
    lstm = cell if isinstance(cell, _base.LSTMCellBase) else None
    gru = cell.kind == "gru"
    layer = k.Layer(
        cell=kind,
        dtype=k.FLOAT32 if cell.dtype == np.float32 else k.FLOAT64,
        activation=k.ACTIVATIONS[act],
        depth=cell.input_depth,
        units=cell.num_units,
        proj=cell.output_size,
        kernel=weights["gates/kernel" if gru else "kernel"],
        bias=weights["gates/bias" if gru else "bias"],
        cand_kernel=weights["candidate/kernel"] if gru else None,
        cand_bias=weights["candidate/bias"] if gru else None,
        cand_recurrent_bias=weights.get("candidate/recurrent_bias"),
        w_i_diag=weights.get("w_i_diag"),
        w_f_diag=weights.get("w_f_diag"),
        w_o_diag=weights.get("w_o_diag"),
        proj_kernel=weights.get("projection/kernel"),
        forget_bias=lstm.forget_bias if lstm else None,
        cell_clip=lstm.cell_clip if lstm else None,
        proj_clip=lstm.proj_clip if lstm else None,
    )
    cell._cache = (weights, layer)
    return layer


def layers(cell: Any, any_step: bool = False) -> Optional[List[Tuple[Any, Any]]]:
    """``[(layer_cell, Layer), ...]`` if ``cell`` (built) runs on the kernels, else None.
    ``any_step``: the cell itself may override the step (see :func:`_layer`)."""
    if isinstance(cell, _base.MultiRNNCellBase):
        if not any_step and not _base.is_builtin_step(cell, BUILTIN_MODULES):
            return None
        cells, any_step = cell._cells, False
    else:
        cells = [cell]
    out = []
    for c in cells:
        layer = _layer(c, any_step)
        if layer is None:
            return None
        out.append((c, layer))
    return out


def release_memory() -> None:
    """Free the memory fastrnn keeps between calls: every idle kernel workspace.

    Calls keep a few workspaces (at most 64 MiB each) for the next calls, so that those
    do not fault in fresh pages; this frees all that no call is using now.  Weights
    packed for the kernels stay with their cells (they go with the cell).
    """
    if _kernels is not None:
        _kernels.release_memory()


def _contiguous(a: Optional[np.ndarray], dtype: np.dtype) -> Optional[np.ndarray]:
    return None if a is None else c_array(a, dtype)


def _forward(cell: Any, cell_layers: List[Tuple[Any, Any]], opts: Any, x: np.ndarray, lengths: Optional[np.ndarray],
             hcs: List[Tuple[np.ndarray, Optional[np.ndarray]]], time_major: bool, reverse: bool, batch: int,
             time: int) -> Tuple[np.ndarray, Any]:
    """The layers one after the other from each layer's C-contiguous ``(h, c)``: ``(outputs,
    final state in the cell's structure)``."""
    finals = []
    for (layer_cell, layer), (h0, c0) in zip(cell_layers, hcs):
        x, h, c = _kernels.layer_forward(layer, opts, x, lengths, h0, c0, time_major, reverse, batch, time)
        finals.append(layer_cell._join_state(h, c))
    return x, (cell._join_layer_states(finals) if isinstance(cell, _base.MultiRNNCellBase) else finals[0])


def run_sequence(cell: Any, cell_layers: List[Tuple[Any, Any]], run: Run,
                 reverse: bool = False) -> Tuple[np.ndarray, Any]:
    """Run ``cell_layers`` (from :func:`layers`) over ``run``; returns ``(outputs, final_state)``."""
    require_kernels()
    states = cell._layer_states(run.state) if isinstance(cell, _base.MultiRNNCellBase) else [run.state]
    hcs = []
    for (layer_cell, _), state in zip(cell_layers, states):
        h0, c0 = layer_cell._split_state(state)
        hcs.append((c_array(h0, run.dtype), _contiguous(c0, run.dtype)))
    return _forward(cell, cell_layers, kernel_options(run.precision, run.batch), run.x, run.lengths, hcs,
                    run.time_major, reverse, run.batch, run.time)


def step(cell: Any, x: np.ndarray, state: Any, precision: Optional[str] = None) -> Optional[Tuple[np.ndarray, Any]]:
    """The built-in step of ``cell`` on the kernels (a 1-step sequence), or None when the cell
    cannot run on them (an activation without a kernel)."""
    cell_layers = layers(cell, any_step=True)
    if cell_layers is None:
        return None
    run = Run(x[None], None, state, x.dtype, True, x.shape[0], 1, precision)
    out, new_state = run_sequence(cell, cell_layers, run)
    return out[0], new_state


# ---- the calls that need no validation ------------------------------------------------------
# A one-step call or a one-shot dynamic_rnn whose arguments are already exactly what the kernels
# read -- a built, built-in cell; C-contiguous aligned arrays of its dtype and shapes; no lengths,
# no conversion -- skips the general validation (~10 us of Python per call, more than a small
# step's arithmetic).  Whatever is not that returns None, and the caller validates in full: the
# results are the same, and so is every error.  A single step (``cell(x, state)``, a one-step
# dynamic_rnn) runs on a ``_kernels.CallPlan`` cached on the cell (:func:`_plan`): its arrays are
# checked and allocated in C, the layers' descriptions, packed weights and options set once.

def _run_exact(cell: Any, cell_layers: List[Tuple[Any, Any]], x: np.ndarray,
               hcs: List[Tuple[np.ndarray, Optional[np.ndarray]]], batch: int, time: int,
               time_major: bool) -> Tuple[np.ndarray, Any]:
    return _forward(cell, cell_layers, kernel_options(None, batch), x, None, hcs, time_major, False, batch, time)


def _exact_cell(cell: Any, x: Any, ndim: int) -> Optional[List[Tuple[Any, Any]]]:
    if type(x) is not np.ndarray or x.ndim != ndim:
        return None
    cell_layers = layers(cell)
    if cell_layers is None:
        return None
    first_cell, first = cell_layers[0]
    if x.shape[-1] != first.depth or not is_c_array(x, first_cell.dtype):
        return None
    return cell_layers


_STALE = object()  # the weights of a Layer no longer cached on its cell: never any cell's


def _sources(cell_layers: List[Tuple[Any, Any]]) -> List[Any]:
    """The weights (dict) each ``Layer`` was made from (:func:`_layer` caches the pair on the
    cell; if another thread has set new weights since, a marker no cell's weights are)."""
    return [c._cache[0] if c._cache is not None and c._cache[1] is layer else _STALE for c, layer in cell_layers]


def _plan(cell: Any, batch: int) -> Any:
    """The ``_kernels.CallPlan`` of ``cell`` (built, built-in) for ``batch`` rows under the
    options now, or None when the cell does not run on the kernels or its state has no plan
    (an LSTM with ``state_is_tuple=False``, a stack without tuple states, over 16 layers).
    Kept on the cell, a few batch sizes at a time; made again when the options, the thread
    count or any layer's weights changed (the cell's layers are cached the same way)."""
    cell_layers = layers(cell)
    if cell_layers is None or len(cell_layers) > _kernels.MAX_PLAN_LAYERS:
        return None
    plans = cell.__dict__.get("_plans")  # (a built-in cell: layers() said so)
    plan = plans.get(batch) if isinstance(plans, dict) else None
    if isinstance(plan, _kernels.CallPlan) and plan.fresh(cell):
        return plan
    multi = isinstance(cell, _base.MultiRNNCellBase)
    if multi and not cell._state_is_tuple:
        return None
    if any(isinstance(c, _base.LSTMCellBase) and not c._state_is_tuple for c, _ in cell_layers):
        return None
    generation = _kernels.generation()  # (read before the options the plan is made for)
    plan = _kernels.CallPlan([layer for _, layer in cell_layers], kernel_options(None, batch), batch,
                             _base.LSTMStateTuple, multi, _sources(cell_layers), generation)
    if not isinstance(plans, dict) or len(plans) >= 4:  # a program calls with a few batch sizes
        plans = cell.__dict__["_plans"] = {}
    plans[batch] = plan
    return plan


def exact_step(cell: Any, x: Any, state: Any) -> Optional[Tuple[np.ndarray, Any]]:
    """``cell(x, state)`` when nothing needs checking or converting (see above), else None."""
    if _kernels is None:
        return None
    done = _kernels.plan_step(cell, x, state)
    if done is not _kernels.NO_PLAN:
        return done  # type: ignore[no-any-return]
    if type(x) is not np.ndarray or x.ndim != 2 or not x.shape[0]:
        return None
    plan = _plan(cell, x.shape[0])
    if plan is None:
        return None
    return plan.step(x, state)  # type: ignore[no-any-return]


def exact_sequence(cell: Any, x: Any, time_major: bool, state: Any = None) -> Optional[Tuple[np.ndarray, Any]]:
    """``dynamic_rnn(cell, x, initial_state=state, time_major=time_major)`` when nothing needs
    checking or converting (see above), else None: from the zero state (None), or for one step
    from a ``state`` as a one-step call takes it."""
    if _kernels is None:
        return None
    if state is not None:
        done = _kernels.plan_sequence(cell, x, time_major, state)
        if done is not _kernels.NO_PLAN:
            return done  # type: ignore[no-any-return]
    if type(x) is not np.ndarray or x.ndim != 3:
        return None
    if state is None and not getattr(getattr(type(cell), "zero_state", None), "exact_zeros", False):
        return None  # a zero state of the cell's own
    time, batch = x.shape[:2] if time_major else x.shape[1::-1]
    if time == 0 or batch == 0:
        return None
    if time == 1:  # a step: the cached plan (a cell whose state has none runs as any sequence)
        plan = _plan(cell, batch)
        if plan is not None:
            return plan.sequence(x, time_major, state)  # type: ignore[no-any-return]
    if state is not None:
        return None
    cell_layers = _exact_cell(cell, x, 3)
    if cell_layers is None:
        return None
    hcs = [(np.zeros((batch, layer.proj), x.dtype),
            np.zeros((batch, layer.units), x.dtype) if layer.cell == _kernels.CELL_LSTM else None)
           for _, layer in cell_layers]
    return _run_exact(cell, cell_layers, x, hcs, batch, time, time_major)
