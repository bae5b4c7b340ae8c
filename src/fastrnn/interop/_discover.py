"""find_tf_cells: every RNN in a TF1 artifact, built and restored, without being told the cells.

TF1's ``rnn_cell`` classes name their scopes after themselves (``basic_rnn_cell``,
``basic_lstm_cell``, ``lstm_cell``, ``gru_cell``), ``MultiRNNCell`` puts layer
``i`` under ``multi_rnn_cell/cell_<i>/`` and ``bidirectional_dynamic_rnn``
puts its two cells under ``<scope>/fw/`` and ``<scope>/bw/``.  The weights'
shapes give the rest: ``num_units`` from the kernel's columns, the input depth
from its rows, peepholes from ``w_*_diag``, ``num_proj`` from
``projection/kernel``.  What no weight records -- ``forget_bias``,
``cell_clip``, ``proj_clip``, the activation, ``state_is_tuple`` -- takes TF's
default and is listed in :attr:`TFLayer.assumed`.

A group of weights that does not make a consistent cell (a missing bias, a
Keras layer's ``recurrent_kernel``, layers that do not chain) is reported in
:attr:`TFCells.skipped` with the reason, never half-restored.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set, Tuple, Union

import numpy as np

from .. import BasicLSTMCell, BasicRNNCell, GRUCell, LSTMCell, MultiRNNCell
from ._tf import (MissingAverage, Source, _Source, ema_name, is_auxiliary, join, open_source, restore,
                  tf_variable_names)

__all__ = ["find_tf_cells", "TFCells", "TFLayer"]

# cell scope -> (class, the weight names it may have below its scope)
_CELL_SCOPES: Dict[str, Tuple[Any, Tuple[str, ...]]] = {
    "basic_rnn_cell": (BasicRNNCell, ("kernel", "bias")),
    "basic_lstm_cell": (BasicLSTMCell, ("kernel", "bias")),
    "lstm_cell": (LSTMCell, ("kernel", "bias", "w_f_diag", "w_i_diag", "w_o_diag", "projection/kernel")),
    "gru_cell": (GRUCell, ("gates/kernel", "gates/bias", "candidate/kernel", "candidate/bias",
                           "candidate/recurrent_bias")),
}
_WEIGHT = re.compile(r"^(?:(.*)/)?(basic_rnn_cell|basic_lstm_cell|lstm_cell|gru_cell)/(.+)$")
_STACK_LAYER = re.compile(r"^(?:(.*)/)?multi_rnn_cell/cell_(\d+)$")

# What a TF1 file does not record, per class: TF's defaults, which the built cells take.
_ASSUMED: Dict[str, Dict[str, Any]] = {
    "BasicRNNCell": {"activation": "tanh"},
    "BasicLSTMCell": {"forget_bias": 1.0, "activation": "tanh", "state_is_tuple": True},
    "LSTMCell": {"forget_bias": 1.0, "cell_clip": None, "activation": "tanh", "state_is_tuple": True},
    "GRUCell": {"activation": "tanh"},
}


class _Skip(Exception):
    """A group of weights that is not a consistent cell; the message says why."""


@dataclass
class TFLayer:
    """One cell layer found in a TF1 artifact: what its weights told, and what was assumed.

    Attributes
    ----------
    scope : str
        The layer's TF scope, e.g. ``"rnn/multi_rnn_cell/cell_0/lstm_cell"``.
    cell_class : str
        ``"BasicRNNCell"``, ``"BasicLSTMCell"``, ``"LSTMCell"`` or ``"GRUCell"`` (from the scope name).
    num_units, input_depth : int
    dtype : str
        ``"float32"`` or ``"float64"``.
    options : dict
        Constructor options read off the weights (``use_peepholes``, ``num_proj``, ``reset_after``).
    assumed : dict
        Constructor options no weight records, at TF's defaults (``forget_bias``,
        ``cell_clip``, ``proj_clip``, ``activation``, ``state_is_tuple``).
    """

    scope: str
    cell_class: str
    num_units: int
    input_depth: int
    dtype: str
    options: Dict[str, Any] = field(default_factory=dict)
    assumed: Dict[str, Any] = field(default_factory=dict)

    @property
    def constructor(self) -> str:
        """The fastrnn call that builds this cell, e.g. ``fr.LSTMCell(5, use_peepholes=True, num_proj=3)``."""
        args = [str(self.num_units)] + [f"{k}={v!r}" for k, v in self.options.items()]
        return f"fr.{self.cell_class}({', '.join(args)})"

    def make(self) -> Any:
        cls = _CELL_SCOPES[self.scope.rsplit("/", 1)[-1]][0]
        cell = cls(self.num_units, dtype=self.dtype, **self.options)
        cell.build(self.input_depth, self.dtype)
        return cell

    @property
    def output_size(self) -> int:
        return int(self.options.get("num_proj") or self.num_units)


Unit = Union[TFLayer, List[TFLayer]]  # a cell, or a MultiRNNCell's layers


class TFCells(Dict[str, Any]):
    """``{scope: cell or (cell_fw, cell_bw)}`` found by :func:`find_tf_cells`, with how each was read.

    Attributes
    ----------
    source : str
        What was read (``"checkpoint '...'"``, ``"frozen graph '...'"``, ...).
    layers : dict of str -> list of (str, TFLayer)
        Per scope, each layer with its role: ``""`` (a lone cell), ``"cell_<i>"``
        (a MultiRNNCell layer), ``"fw"``/``"bw"`` (``"fw cell_<i>"`` ...).
    constructors : dict of str -> str
        Per scope, the fastrnn expression that builds the same cell(s), e.g.
        ``"fr.MultiRNNCell([fr.LSTMCell(5, use_peepholes=True), fr.GRUCell(3)])"``.
    skipped : dict of str -> str
        Groups of RNN-like weights that make no consistent cell, with the reason.
    ignored : list of str
        Every other name in the source: non-RNN variables (dense layers,
        ``global_step``), optimizer slots, moving averages, a graph's other
        constants.
    """

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source
        self.layers: Dict[str, List[Tuple[str, TFLayer]]] = {}
        self.constructors: Dict[str, str] = {}
        self.skipped: Dict[str, str] = {}
        self.ignored: List[str] = []

    def describe(self) -> str:
        """A table of what was found, what was assumed, what was skipped or ignored."""
        lines = [f"TF1 RNNs in {self.source}:"]
        if not self:
            lines.append("  none found (no variables under basic_rnn_cell/, basic_lstm_cell/, lstm_cell/ or "
                         "gru_cell/ scopes)")
            if any("/.ATTRIBUTES/" in n for n in self.ignored):
                lines.append("  its keys are object paths ('.../.ATTRIBUTES/VARIABLE_VALUE'): a TF2 object-based "
                             "checkpoint, which does not store TF1 variable names")
        else:
            rows = [("scope", "layer", "TF variable scope", "fastrnn cell", "depth", "dtype")]
            for scope in sorted(self):
                for i, (role, lay) in enumerate(self.layers[scope]):
                    rows.append((repr(scope) if i == 0 else "", role or "-", lay.scope, lay.constructor,
                                 str(lay.input_depth), lay.dtype))
            widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
            for r in rows:
                lines.append("  " + "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
            assumed: Dict[str, Any] = {}
            for roles in self.layers.values():
                for _, lay in roles:
                    assumed.update(lay.assumed)
            lines.append("assumed (a TF1 file does not record them; TF's defaults): "
                         + ", ".join(f"{k}={v!r}" for k, v in assumed.items()))
            lines.append("restore it yourself with, e.g.:")
            for scope in sorted(self):
                lines.append(f"  interop.restore_tf({self.constructors[scope]}, PATH, scope={scope!r})")
        for scope, why in sorted(self.skipped.items()):
            lines.append(f"skipped {scope!r}: {why}")
        used = {n for roles in self.layers.values() for _, lay in roles for n in _names_of(lay)}
        aux = [n for n in self.ignored if is_auxiliary(n, used)]
        aux_set = set(aux)
        other = [n for n in self.ignored if n not in aux_set]
        if aux:
            lines.append(f"ignored: {len(aux)} optimizer slot(s) / moving average(s) of these weights "
                         f"({', '.join(sorted({n.rsplit('/', 1)[-1] for n in aux}))})")
        if other:
            shown = ", ".join(other[:8]) + (f", ... ({len(other) - 8} more)" if len(other) > 8 else "")
            lines.append(f"ignored: {len(other)} other name(s): {shown}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.describe()


def _names_of(layer: TFLayer) -> List[str]:
    return [join(layer.scope, w) for w in _CELL_SCOPES[layer.scope.rsplit("/", 1)[-1]][1]]


def _infer_layer(scope: str, weights: Dict[str, Tuple[int, ...]], dtype: Any) -> TFLayer:
    """A layer's configuration from its weights' shapes (``scope`` ends in the cell's scope name)."""
    cell_scope = scope.rsplit("/", 1)[-1]
    cls = _CELL_SCOPES[cell_scope][0]
    kernel_name = "gates/kernel" if cell_scope == "gru_cell" else "kernel"
    gates = {"basic_rnn_cell": 1, "basic_lstm_cell": 4, "lstm_cell": 4, "gru_cell": 2}[cell_scope]
    kernel = weights.get(kernel_name)
    if kernel is None:
        raise _Skip(f"has {sorted(weights)} but no {kernel_name!r}")
    if len(kernel) != 2 or kernel[1] < gates or kernel[1] % gates:
        raise _Skip(f"{kernel_name!r} has shape {list(kernel)}, not [depth + units, {gates} * units]")
    units = kernel[1] // gates
    options: Dict[str, Any] = {}
    width = units  # kernel rows that multiply the recurrent state
    if cell_scope == "lstm_cell":
        if any(w in weights for w in ("w_f_diag", "w_i_diag", "w_o_diag")):
            options["use_peepholes"] = True
        proj = weights.get("projection/kernel")
        if proj is not None:
            if len(proj) != 2 or proj[1] < 1:
                raise _Skip(f"'projection/kernel' has shape {list(proj)}, not [units, num_proj]")
            options["num_proj"] = width = proj[1]
    if cell_scope == "gru_cell" and "candidate/recurrent_bias" in weights:
        options["reset_after"] = True
    depth = kernel[0] - width
    if depth < 1:
        raise _Skip(f"{kernel_name!r} has shape {list(kernel)}: {kernel[0]} rows leave no input rows after "
                    f"{width} recurrent ones")
    assumed = dict(_ASSUMED[cls.__name__])
    if "num_proj" in options:
        assumed["proj_clip"] = None
    return TFLayer(scope, cls.__name__, units, depth, np.dtype(dtype).name, options, assumed)


def _groups(src: _Source) -> Dict[str, Dict[str, Tuple[int, ...]]]:
    """Cell scope (``rnn/lstm_cell``) -> {weight name below it: shape}, for every float tensor named like a weight."""
    groups: Dict[str, Dict[str, Tuple[int, ...]]] = {}
    for name, shape in src.shapes.items():
        m = _WEIGHT.match(name)
        dtype = src.dtypes.get(name)
        if m and m.group(3) in _CELL_SCOPES[m.group(2)][1] and dtype is not None and dtype.kind == "f":
            groups.setdefault(join(m.group(1) or "", m.group(2)), {})[m.group(3)] = shape
    return groups


def _units(groups: Dict[str, Dict[str, Tuple[int, ...]]], dtypes: Dict[str, Any], skipped: Dict[str, str]
           ) -> Dict[str, Unit]:
    """Driver scope -> a cell's layer, or a MultiRNNCell's layers, from the weight groups."""
    singles: Dict[str, List[TFLayer]] = {}
    stacks: Dict[str, Dict[int, List[TFLayer]]] = {}
    for scope in sorted(groups):
        kernel = join(scope, "gates/kernel" if scope.endswith("gru_cell") else "kernel")
        try:
            layer = _infer_layer(scope, groups[scope], np.float64 if dtypes.get(kernel) == np.float64 else np.float32)
        except _Skip as e:
            skipped[scope] = str(e)
            continue
        prefix = scope.rsplit("/", 1)[0] if "/" in scope else ""
        m = _STACK_LAYER.match(prefix)
        if m:
            stacks.setdefault(m.group(1) or "", {}).setdefault(int(m.group(2)), []).append(layer)
        else:
            singles.setdefault(prefix, []).append(layer)
    units: Dict[str, Unit] = {}
    for prefix, found in singles.items():
        if len(found) > 1:
            skipped[prefix] = f"several cells in one scope: {[lay.scope for lay in found]}"
        else:
            units[prefix] = found[0]
    for head, by_index in stacks.items():
        indices = sorted(by_index)
        if head in units or head in skipped:
            skipped[join(head, "multi_rnn_cell")] = f"a MultiRNNCell and another cell share the scope {head!r}"
        elif indices != list(range(len(indices))) or any(len(v) > 1 for v in by_index.values()):
            skipped[join(head, "multi_rnn_cell")] = (f"layers cell_{indices} with "
                                                     f"{[len(by_index[i]) for i in indices]} cell(s) each; "
                                                     "expected one cell in each of cell_0 .. cell_<n-1>")
        else:
            layers = [by_index[i][0] for i in indices]
            for i in range(1, len(layers)):
                if layers[i].input_depth != layers[i - 1].output_size:
                    skipped[join(head, "multi_rnn_cell")] = (
                        f"layer cell_{i} takes depth {layers[i].input_depth}, layer cell_{i - 1} gives "
                        f"{layers[i - 1].output_size}")
                    break
            else:
                units[head] = layers
    return units


def _build(unit: Unit) -> Any:
    if isinstance(unit, TFLayer):
        return unit.make()
    return MultiRNNCell([lay.make() for lay in unit])


def _code(unit: Unit) -> str:
    if isinstance(unit, TFLayer):
        return unit.constructor
    return f"fr.MultiRNNCell([{', '.join(lay.constructor for lay in unit)}])"


def _roles(unit: Unit, direction: str = "") -> List[Tuple[str, TFLayer]]:
    if isinstance(unit, TFLayer):
        return [(direction, unit)]
    return [(f"{direction} cell_{i}".strip(), lay) for i, lay in enumerate(unit)]


def _keras_hint(message: str) -> str:
    if "recurrent_kernel" in message:
        return message + " (kernel, recurrent_kernel, bias are a Keras layer's weights: use interop.from_keras)"
    return message


def find_tf_cells(source: Source, ema: Union[bool, str] = False) -> TFCells:
    """Find every RNN in a TF1 checkpoint, SavedModel, frozen graph or mapping, built and restored.

    Parameters
    ----------
    source : str, path-like or mapping
        Anything :func:`restore_tf` takes.
    ema : bool or str
        Restore the ``ExponentialMovingAverage`` shadows instead of the weights
        (as for :func:`restore_tf`).

    Returns
    -------
    TFCells
        A dict ``{scope: cell}``: the key is the scope :func:`restore_tf` would
        take (``"rnn"``, ``"encoder/rnn"``, ``"decoder"``, ``""`` for weights at
        the root); the value a built, restored cell -- a ``MultiRNNCell`` for a
        ``multi_rnn_cell/cell_<i>`` stack, a ``(cell_fw, cell_bw)`` pair keyed by
        the parent scope for ``<scope>/fw`` + ``<scope>/bw``.  Class, units,
        input depth, peepholes, ``num_proj`` and dtype come from the variables;
        ``forget_bias``, clips, activation and ``state_is_tuple`` take TF's
        defaults (``result.layers[scope]`` says which, ``result.describe()`` /
        ``repr(result)`` prints the table).  Variables of other layers (dense,
        embeddings, ``global_step``), optimizer slots and moving averages are
        ignored (``result.ignored``); RNN-like weights that make no consistent
        cell are in ``result.skipped`` with the reason.

    Raises
    ------
    ValueError
        A file is unreadable, truncated or corrupted (named), or ``ema`` is set
        and a found cell's weight has no moving average.
    TypeError
        ``source`` or ``ema`` of the wrong type.

    Examples
    --------
    >>> cells = interop.find_tf_cells("model.ckpt-1000")         # doctest: +SKIP
    >>> outputs, state = fr.dynamic_rnn(cells["rnn"], x)          # doctest: +SKIP
    """
    suffix = ema_name(ema)  # a bad value is a TypeError before any file is read
    src = open_source(source)
    result = TFCells(src.where)
    groups = _groups(src)
    # Read every candidate weight (and average) up front: a damaged file is an error, never a skipped cell;
    # what restore_tf then refuses is a configuration that does not fit.
    wanted = [join(scope, w) for scope, weights in groups.items() for w in weights]
    if suffix:
        wanted += [f"{n}/{suffix}" for n in wanted if f"{n}/{suffix}" in src.shapes]
    values = src.read(wanted)
    src = _Source(src.where, src.shapes, src.dtypes, lambda names: {n: values[n] for n in names})
    units = _units(groups, src.dtypes, result.skipped)
    entries: Dict[str, Tuple[Unit, Optional[Unit]]] = {}
    paired: Set[str] = set()
    for key in sorted(units):
        if key == "fw" or key.endswith("/fw"):
            parent = key[:-2].rstrip("/")
            bw = join(parent, "bw")
            if bw in units and parent not in units:
                entries[parent] = (units[key], units[bw])
                paired.update((key, bw))
    for key in sorted(units):
        if key not in paired:
            entries[key] = (units[key], None)
    used: List[str] = []
    for key, (unit, bw_unit) in sorted(entries.items()):
        cell = _build(unit) if bw_unit is None else (_build(unit), _build(bw_unit))
        try:
            restore(cell, src, key, ema)
        except MissingAverage:
            raise  # asked for moving averages that are not there: not a reason to skip a cell silently
        except ValueError as e:
            result.skipped[key] = _keras_hint(str(e))
            continue
        result[key] = cell
        if bw_unit is None:
            result.layers[key], result.constructors[key] = _roles(unit), _code(unit)
        else:
            result.layers[key] = _roles(unit, "fw") + _roles(bw_unit, "bw")
            result.constructors[key] = f"({_code(unit)}, {_code(bw_unit)})"
        used += tf_variable_names(cell, key)
    consumed = set(used) | ({f"{n}/{suffix}" for n in used} if suffix else set())
    result.ignored = sorted(n for n in src.shapes if n not in consumed)
    return result
