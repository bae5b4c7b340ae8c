"""Assign cells' weights from TF1 variable names (a checkpoint or a mapping)."""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, List, Optional, Tuple, Union

import numpy as np

from .. import _cellbase as _base
from ._checkpoint import load_tf_checkpoint

__all__ = ["restore_tf", "tf_variable_names"]


def _layer_names(cell: Any) -> List[str]:
    """Names of ``cell``'s variables below the driver scope (``basic_lstm_cell/kernel``, ...)."""
    if isinstance(cell, _base.MultiRNNCellBase):
        return [f"{cell.name}/cell_{i}/{name}" for i, c in enumerate(cell.cells) for name in _layer_names(c)]
    if not isinstance(cell, _base.LayerCell):
        raise TypeError(f"cell: expected a fastrnn cell (BasicRNNCell, BasicLSTMCell, LSTMCell, GRUCell, "
                        f"MultiRNNCell) or a (cell_fw, cell_bw) pair, got {type(cell).__name__}")
    return [f"{cell.name}/{name}" for name in cell.weight_names()]


def _is_pair(cell: Any) -> bool:
    return isinstance(cell, tuple) and len(cell) == 2


def tf_variable_names(cell: Any, scope: Optional[str] = None) -> List[str]:
    """The TF1 variable names that hold ``cell``'s weights.

    Parameters
    ----------
    cell : cell or (cell_fw, cell_bw)
        A fastrnn cell, a ``MultiRNNCell``, or a bidirectional pair.
    scope : str, optional
        The driver's variable scope: ``"rnn"`` (``dynamic_rnn``/``static_rnn``'s
        default) for a cell, ``"bidirectional_rnn"`` for a pair.

    Returns
    -------
    list of str
        E.g. ``["rnn/basic_lstm_cell/kernel", "rnn/basic_lstm_cell/bias"]`` or
        ``["bidirectional_rnn/fw/lstm_cell/kernel", ..., "bidirectional_rnn/bw/gru_cell/gates/kernel", ...]``.
    """
    if _is_pair(cell):
        scope = "bidirectional_rnn" if scope is None else scope
        return [f"{scope}/{d}/{n}" for d, c in zip(("fw", "bw"), cell) for n in _layer_names(c)]
    scope = "rnn" if scope is None else scope
    return [f"{scope}/{n}" for n in _layer_names(cell)]


def restore_tf(cell: Any, checkpoint_or_mapping: Union[str, "os.PathLike[str]", Mapping],
               scope: Optional[str] = None) -> Any:
    """Assign a cell's weights from a TF1 checkpoint or a ``{TF variable name: array}`` mapping.

    The names are TF1's: ``<scope>/<cell scope>/<weight>``, e.g.
    ``rnn/basic_lstm_cell/kernel``, ``rnn/multi_rnn_cell/cell_1/lstm_cell/w_f_diag``,
    and for a ``(cell_fw, cell_bw)`` pair ``bidirectional_rnn/fw/...`` and
    ``bidirectional_rnn/bw/...``.  The cell must be configured as in the TF
    model (same cell classes, ``num_units``, ``num_proj``, peepholes, layer
    count); it may be unbuilt (it is then built from the stored shapes and dtype)
    or built (values are cast to its dtype, shapes must match).

    Parameters
    ----------
    cell : cell, MultiRNNCell, or (cell_fw, cell_bw)
    checkpoint_or_mapping : str, path-like or mapping
        A checkpoint prefix (see :func:`load_tf_checkpoint`) or a mapping of TF
        variable names (a trailing ``:0`` is ignored) to arrays.
    scope : str, optional
        The scope the driver created the variables in: default ``"rnn"`` for a
        cell, ``"bidirectional_rnn"`` for a pair (pass yours if the model used
        ``tf.variable_scope``/``scope=``, e.g. ``"encoder/rnn"``).

    Returns
    -------
    The same ``cell`` (or pair), for chaining.

    Raises
    ------
    ValueError
        A needed variable is missing (the message lists what the checkpoint has
        under the scope), the checkpoint has more variables under the cell's
        scope than the cell uses (e.g. a third layer), a shape differs, or the
        checkpoint file is unreadable.
    """
    expected = tf_variable_names(cell, scope)
    if isinstance(checkpoint_or_mapping, Mapping):
        source = {(k[:-2] if isinstance(k, str) and k.endswith(":0") else k): v
                  for k, v in checkpoint_or_mapping.items()}
        where = "the mapping"
    elif isinstance(checkpoint_or_mapping, (str, os.PathLike)):
        source = load_tf_checkpoint(checkpoint_or_mapping)
        where = f"checkpoint {os.fspath(checkpoint_or_mapping)!r}"
    else:
        raise TypeError(f"checkpoint_or_mapping: expected a checkpoint path or a mapping of TF variable names "
                        f"to arrays, got {type(checkpoint_or_mapping).__name__}")
    missing = [n for n in expected if n not in source]
    if missing:
        top = expected[0].split("/")[0]
        near = sorted(k for k in source if isinstance(k, str) and k.startswith(top + "/"))
        raise ValueError(f"restore_tf: {where} has no variable(s) {missing}; under {top + '/'!r} it has "
                         f"{near or 'nothing'} (all names: {sorted(map(str, source))[:20]}); check the cell "
                         "classes, their options and the scope")
    cells: List[Tuple[str, Any]]
    if _is_pair(cell):
        s = "bidirectional_rnn" if scope is None else scope
        cells = [(f"{s}/fw/", cell[0]), (f"{s}/bw/", cell[1])]
    else:
        cells = [(("rnn" if scope is None else scope) + "/", cell)]
    for prefix, c in cells:
        own = prefix + c.name + "/"
        extra = sorted(k for k in source if isinstance(k, str) and k.startswith(own) and k not in expected)
        if extra:
            raise ValueError(f"restore_tf: {where} has variable(s) {extra} under {own!r} that "
                             f"{type(c).__name__} does not use; the TF model's cell was configured differently")
    for prefix, c in cells:
        own = prefix + c.name + "/"
        c.set_weights({k[len(own):]: np.asarray(source[k]) for k in expected if k.startswith(own)})
    return cell
