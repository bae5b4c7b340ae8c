"""Assign cells' weights from TF1 variable names: checkpoints, SavedModels, frozen graphs, mappings.

Every TF1 artifact comes down to ``{variable name: array}``: a checkpoint's keys
are the variable names, a TF1 SavedModel's ``variables/variables`` checkpoint
too, and a frozen graph holds each variable as a ``Const`` node of its name.
:class:`_Source` gives the names (and shapes) up front and reads values on
demand, so restoring one cell from a large training checkpoint reads only its
few tensors.

What is under a cell's scope but not one of its weights:

- below one of its weights (``kernel/Adam``, ``kernel/Momentum``,
  ``kernel/ExponentialMovingAverage``, ...): optimizer slots and moving
  averages, which TF names ``<variable>/<slot>``; a weight is a leaf of the
  cell's scope, so nothing real lives below one.  Ignored (``ema=`` reads the
  moving average instead of the weight).
- a weight-like name (``kernel``, ``bias``, ``w_f_diag``, ``projection/kernel``,
  ``recurrent_kernel``, ``cell_2/...``): the TF cell was configured otherwise
  (a layer more, peepholes, a projection, a Keras layer).  An error.
- anything else (``Const_1``, ``add/y``: a frozen graph's other constants).
  Ignored.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from .. import _cellbase as _base
from ._checkpoint import _Bundle
from ._graphdef import load_tf_graph

__all__ = ["restore_tf", "tf_variable_names"]

Source = Union[str, "os.PathLike[str]", Mapping]

# The last path segment of every weight a TF1 rnn_cell (or a Keras RNN layer) creates.
WEIGHT_LEAVES = frozenset({"kernel", "bias", "w_f_diag", "w_i_diag", "w_o_diag", "recurrent_kernel",
                           "recurrent_bias"})
EMA_DEFAULT = "ExponentialMovingAverage"


# -- the cell classes: fastrnn's and fastrnn.reference's share these bases (_cellbase) --
LAYER_CLASSES = (_base.LayerCell,)
MULTI_CLASSES = (_base.MultiRNNCellBase,)


def _layer_names(cell: Any) -> List[str]:
    """Names of ``cell``'s variables below the driver scope (``basic_lstm_cell/kernel``, ...)."""
    if isinstance(cell, MULTI_CLASSES):
        return [f"{cell.name}/cell_{i}/{name}" for i, c in enumerate(cell.cells) for name in _layer_names(c)]
    if not isinstance(cell, LAYER_CLASSES):
        raise TypeError(f"cell: expected a fastrnn cell (BasicRNNCell, BasicLSTMCell, LSTMCell, GRUCell, "
                        f"MultiRNNCell) or a (cell_fw, cell_bw) pair, got {type(cell).__name__}")
    return [f"{cell.name}/{name}" for name in cell.weight_names()]


def _is_pair(cell: Any) -> bool:
    return isinstance(cell, tuple) and len(cell) == 2


def join(scope: str, name: str) -> str:
    """``scope/name``; the empty scope is the graph's root."""
    return f"{scope}/{name}" if scope else name


def _top_cells(cell: Any, scope: Optional[str]) -> List[Tuple[str, Any]]:
    """``(driver scope, cell)`` per top-level cell: one, or the pair's fw and bw."""
    if scope is not None and not isinstance(scope, str):
        raise TypeError(f"scope: expected a string or None, got {type(scope).__name__}")
    if _is_pair(cell):
        s = "bidirectional_rnn" if scope is None else scope.strip("/")
        return [(join(s, "fw"), cell[0]), (join(s, "bw"), cell[1])]
    return [("rnn" if scope is None else scope.strip("/"), cell)]


def tf_variable_names(cell: Any, scope: Optional[str] = None) -> List[str]:
    """The TF1 variable names that hold ``cell``'s weights.

    Parameters
    ----------
    cell : cell or (cell_fw, cell_bw)
        A fastrnn cell, a ``MultiRNNCell``, or a bidirectional pair.
    scope : str, optional
        The driver's variable scope: ``"rnn"`` (``dynamic_rnn``/``static_rnn``'s
        default) for a cell, ``"bidirectional_rnn"`` for a pair; ``""`` for
        weights at the graph's root.

    Returns
    -------
    list of str
        E.g. ``["rnn/basic_lstm_cell/kernel", "rnn/basic_lstm_cell/bias"]`` or
        ``["bidirectional_rnn/fw/lstm_cell/kernel", ..., "bidirectional_rnn/bw/gru_cell/gates/kernel", ...]``.
    """
    return [join(s, n) for s, c in _top_cells(cell, scope) for n in _layer_names(c)]


class MissingAverage(ValueError):
    """``restore_tf(ema=...)``: a weight has no moving average in the source."""


# -- sources ----------------------------------------------------------------
@dataclass
class _Source:
    """Variables by TF1 name: names, shapes and dtypes up front, values read on demand."""

    where: str  # "checkpoint '...'", "SavedModel '...'", "frozen graph '...'", "the mapping"
    shapes: Dict[str, Tuple[int, ...]]
    dtypes: Dict[str, Optional[np.dtype]]  # None: a tensor the reader does not decode (strings, ...)
    read: Callable[[List[str]], Dict[str, Any]]


def _is_graph_path(p: str) -> bool:
    """A path to read as a frozen GraphDef rather than as a checkpoint or SavedModel."""
    base = os.path.basename(p)
    if os.path.isdir(p) or base in ("saved_model.pb", "saved_model.pbtxt", "checkpoint") \
            or p.endswith((".index", ".meta")) or ".data-" in base:
        return False
    return p.endswith(".pb") or (os.path.isfile(p) and not os.path.exists(p + ".index"))


def open_source(source: Any, arg: str = "source") -> _Source:
    """A :class:`_Source` for a checkpoint / SavedModel / frozen graph path or a mapping."""
    if isinstance(source, _Source):
        return source
    if isinstance(source, Mapping):
        values = {(k[:-2] if k.endswith(":0") else k): v for k, v in source.items() if isinstance(k, str)}
        shapes: Dict[str, Tuple[int, ...]] = {}
        dtypes: Dict[str, Optional[np.dtype]] = {}
        for k, v in values.items():
            try:
                a = np.asarray(v)
            except (ValueError, TypeError):  # ragged lists: set_weights names the weight if it is one
                shapes[k], dtypes[k] = (), None
            else:
                shapes[k], dtypes[k] = a.shape, a.dtype
        return _Source("the mapping", shapes, dtypes, lambda names: {n: values[n] for n in names})
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"{arg}: expected a checkpoint prefix, a SavedModel directory, a frozen graph (.pb) or a "
                        f"mapping of TF variable names to arrays, got {type(source).__name__}")
    p = os.fspath(source)
    if isinstance(p, bytes):
        p = os.fsdecode(p)
    if _is_graph_path(p):
        try:
            consts = load_tf_graph(p)
        except ValueError as e:
            if p.endswith(".pb"):
                raise
            raise ValueError(f"{e}; nor is it a TensorFlow V2 checkpoint (there is no {p + '.index'!r})") from None
        return _Source(f"frozen graph {p!r}", {k: v.shape for k, v in consts.items()},
                       {k: v.dtype for k, v in consts.items()}, lambda names: {n: consts[n] for n in names})
    bundle = _Bundle(p)
    saved_model = os.path.basename(bundle.prefix) == "variables" and any(
        os.path.isfile(os.path.join(os.path.dirname(os.path.dirname(bundle.prefix)), f))
        for f in ("saved_model.pb", "saved_model.pbtxt"))
    return _Source(f"{'SavedModel' if saved_model else 'checkpoint'} {p!r}",
                   {k: e.shape for k, e in bundle.entries.items()},
                   {k: bundle.dtype(k) for k in bundle.entries}, bundle.read)


def ema_name(ema: Any) -> Optional[str]:
    """The moving-average suffix ``restore_tf(ema=...)`` reads, or None."""
    if ema is None or ema is False:
        return None
    if ema is True:
        return EMA_DEFAULT
    if isinstance(ema, str) and ema.strip("/"):
        return ema.strip("/")
    raise TypeError(f"ema: expected True, False or the name of the ExponentialMovingAverage "
                    f"(default {EMA_DEFAULT!r}), got {ema!r}")


def is_auxiliary(name: str, weights: Any) -> bool:
    """True if ``name`` lies below one of ``weights`` (an optimizer slot or a moving average)."""
    parts = name.split("/")
    return any("/".join(parts[:k]) in weights for k in range(1, len(parts)))


def weight_like(name: str) -> bool:
    return name.rsplit("/", 1)[-1] in WEIGHT_LEAVES


def _unused_weights(own: str, expected: Any, names: Any) -> List[str]:
    """Weight-like names under the scope ``own`` that are neither ``expected`` nor below one of them."""
    return sorted(n for n in names if n.startswith(own) and n not in expected and weight_like(n)
                  and not is_auxiliary(n, expected))


def _missing_message(src: _Source, missing: List[str], expected: List[str]) -> str:
    top = expected[0].split("/")[0]
    weights = sorted(n for n in src.shapes if weight_like(n))
    near = [n for n in weights if n.startswith(top + "/")]
    hint = ""
    if any("/.ATTRIBUTES/" in n for n in src.shapes):
        hint = ("; its keys are object paths ('.../.ATTRIBUTES/VARIABLE_VALUE'): a TF2 object-based checkpoint, "
                "which does not store TF1 variable names")
    return (f"restore_tf: {src.where} has no variable(s) {missing}; under {top + '/'!r} it has "
            f"{near or 'nothing'} (weights in it: {weights[:20]}{' ...' if len(weights) > 20 else ''}){hint}; "
            "check the cell classes, their options and the scope (interop.find_tf_cells lists the RNNs it holds)")


def restore_tf(cell: Any, source: Source, scope: Optional[str] = None, ema: Union[bool, str] = False) -> Any:
    """Assign a cell's weights from a TF1 checkpoint, SavedModel, frozen graph or ``{name: array}`` mapping.

    The names are TF1's: ``<scope>/<cell scope>/<weight>``, e.g.
    ``rnn/basic_lstm_cell/kernel``, ``rnn/multi_rnn_cell/cell_1/lstm_cell/w_f_diag``,
    and for a ``(cell_fw, cell_bw)`` pair ``bidirectional_rnn/fw/...`` and
    ``bidirectional_rnn/bw/...``.  The cell must be configured as in the TF
    model (same cell classes, ``num_units``, ``num_proj``, peepholes, layer
    count); it may be unbuilt (it is then built from the stored shapes and dtype)
    or built (values are cast to its dtype, shapes must match).
    :func:`find_tf_cells` builds the cells for you.

    Parameters
    ----------
    cell : cell, MultiRNNCell, or (cell_fw, cell_bw)
    source : str, path-like or mapping
        A checkpoint (prefix, ``.index``, shard, ``.meta``, or a directory with
        a ``checkpoint`` file; see :func:`load_tf_checkpoint`), a SavedModel
        directory, a frozen GraphDef file (``frozen_model.pb``; see
        :func:`load_tf_graph`), or a mapping of TF variable names (a trailing
        ``:0`` is ignored) to arrays.  Only the cell's tensors are read.
    scope : str, optional
        The scope the driver created the variables in: default ``"rnn"`` for a
        cell, ``"bidirectional_rnn"`` for a pair (pass yours if the model used
        ``tf.variable_scope``/``scope=``, e.g. ``"encoder/rnn"``; ``""`` for
        weights at the root).
    ema : bool or str
        True: restore each weight's ``ExponentialMovingAverage`` shadow
        (``<weight>/ExponentialMovingAverage``) instead of the weight, as TF1's
        ``Saver(ema.variables_to_restore())`` does; a string: the name given to
        ``tf.train.ExponentialMovingAverage(name=...)``.

    Returns
    -------
    The same ``cell`` (or pair), for chaining.

    Raises
    ------
    ValueError
        A needed variable is missing (the message lists the weights the source
        has under the scope), a moving average is missing (``ema``; the message
        names the weight), the source has weights under the cell's scope that
        the cell does not use (a layer more, peepholes, a projection), a shape
        differs, or a file is unreadable, truncated or corrupted (named).
        Optimizer slots (``kernel/Adam``, ``kernel/Momentum``, ...) and moving
        averages are not a mismatch.
    TypeError
        ``cell``, ``source``, ``scope`` or ``ema`` of the wrong type.
    """
    tf_variable_names(cell, scope)  # a wrong cell or scope is a TypeError before any file is read
    ema_name(ema)
    return restore(cell, open_source(source), scope, ema)


def restore(cell: Any, src: _Source, scope: Optional[str], ema: Union[bool, str]) -> Any:
    """:func:`restore_tf` from an opened source."""
    expected = tf_variable_names(cell, scope)
    suffix = ema_name(ema)
    names = src.shapes
    missing = [n for n in expected if n not in names]
    shadow = {n: f"{n}/{suffix}" if suffix else n for n in expected}
    no_shadow = [n for n in expected if shadow[n] not in names]
    if missing and (not suffix or no_shadow):
        raise ValueError(_missing_message(src, missing, expected))
    if no_shadow:
        have = sorted(n for n in names if is_auxiliary(n, set(expected)))
        others = f" (nor of {no_shadow[1:]})" if len(no_shadow) > 1 else ""
        raise MissingAverage(
            f"restore_tf(ema={ema!r}): {src.where} has no moving average {shadow[no_shadow[0]]!r} of weight "
            f"{no_shadow[0]!r}{others}; below the cell's weights it has {have[:10] or 'nothing'}"
            f"{' ...' if len(have) > 10 else ''}: pass ema='<name>' if the ExponentialMovingAverage had another "
            "name, or ema=False for the trained weights")
    expected_set = set(expected)
    tops = [(join(s, c.name) + "/", c) for s, c in _top_cells(cell, scope)]
    for own, c in tops:
        extra = _unused_weights(own, expected_set, names)
        if extra:
            raise ValueError(f"restore_tf: {src.where} has variable(s) {extra} under {own!r} that "
                             f"{type(c).__name__} does not use; the TF model's cell was configured differently")
    values = src.read([shadow[n] for n in expected])
    for own, c in tops:
        c.set_weights({n[len(own):]: _float(values[shadow[n]]) for n in expected if n.startswith(own)})
    return cell


def _float(value: Any) -> Any:
    """A float16 weight (mixed-precision training) as float32, exactly; anything else as it is."""
    if isinstance(value, np.ndarray) and value.dtype == np.float16:
        return value.astype(np.float32)
    return value
