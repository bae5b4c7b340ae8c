"""PyTorch ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` <-> fastrnn cells.

Layouts.  PyTorch keeps ``weight_ih_l{k} [G*n, d]`` and ``weight_hh_l{k} [G*n, n]``
with gate blocks (LSTM) i, f, g, o and (GRU) r, z, n, and two biases.  TF1
keeps one ``kernel [d+n, G*n]`` (rows: inputs, then the recurrent state) with
LSTM gate columns i, j(=g), f, o and one bias.  So a kernel is the transposed
``[W_ih | W_hh]`` with its column blocks permuted, and LSTM/RNN biases are
``b_ih + b_hh`` (imported LSTMs get ``forget_bias=0``; exported ones fold
``forget_bias`` into the f block).  PyTorch's GRU applies the reset gate after
the recurrent product, i.e. ``GRUCell(reset_after=True)``; its candidate biases
stay apart (``candidate/bias = b_in``, ``candidate/recurrent_bias = b_hn``).
``proj_size`` maps to ``LSTMCell(num_proj=...)`` with ``projection/kernel = W_hr^T``.

torch is imported lazily: reading a ``state_dict`` of NumPy arrays needs no torch.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .. import _cells
from .. import _cellbase as _base

__all__ = ["from_torch", "to_torch"]

_LSTM_TO_TF = [0, 2, 1, 3]  # TF gate block k comes from PyTorch block _LSTM_TO_TF[k] (i, g, f, o)


def _blocks(a: np.ndarray, order: List[int], n: int) -> np.ndarray:
    return np.concatenate([a[k * n:(k + 1) * n] for k in order], axis=0)


def _numpy(v: Any, name: str) -> np.ndarray:
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    a = np.asarray(v)
    if a.dtype.kind != "f":
        raise TypeError(f"from_torch: {name} has dtype {a.dtype}; expected float32 or float64")
    return np.array(a, dtype=np.float64 if a.dtype == np.float64 else np.float32)


def _module_info(obj: Any) -> Tuple[Dict[str, np.ndarray], Optional[str], Optional[str]]:
    """``(state dict as arrays, mode 'LSTM'|'GRU'|'RNN_TANH'|'RNN_RELU' or None, where)``."""
    if isinstance(obj, Mapping):
        return {k: _numpy(v, k) for k, v in obj.items()}, None, "the state_dict"
    mode = getattr(obj, "mode", None)
    if mode not in ("LSTM", "GRU", "RNN_TANH", "RNN_RELU") or not hasattr(obj, "state_dict"):
        raise TypeError(f"from_torch: expected a torch.nn.LSTM, GRU or RNN module or its state_dict(), "
                        f"got {type(obj).__name__}")
    return {k: _numpy(v, k) for k, v in obj.state_dict().items()}, mode, type(obj).__name__


def _layer_cell(sd: Dict[str, np.ndarray], suffix: str, mode: Optional[str], nonlinearity: str) -> Any:
    w_ih, w_hh = sd[f"weight_ih{suffix}"], sd[f"weight_hh{suffix}"]
    dtype = w_ih.dtype
    gates_n, depth = w_ih.shape
    w_hr = sd.get(f"weight_hr{suffix}")  # [proj, n] with proj_size, and then weight_hh is [G*n, proj]
    n = w_hr.shape[1] if w_hr is not None else w_hh.shape[1]
    gates = gates_n // max(n, 1)
    if mode is None:
        mode = {4: "LSTM", 3: "GRU", 1: "RNN_RELU" if nonlinearity == "relu" else "RNN_TANH"}.get(gates)
    if mode is None or gates_n != n * gates or w_hh.shape[0] != gates_n:
        raise ValueError(f"from_torch: weight_ih{suffix} {w_ih.shape} and weight_hh{suffix} {w_hh.shape} are not "
                         "the weights of an LSTM, GRU or RNN layer")
    zeros = np.zeros(gates_n, dtype)
    b_ih, b_hh = sd.get(f"bias_ih{suffix}", zeros), sd.get(f"bias_hh{suffix}", zeros)
    if mode == "LSTM":
        p = w_hr.shape[0] if w_hr is not None else n
        kernel = np.concatenate([_blocks(w_ih, _LSTM_TO_TF, n), _blocks(w_hh, _LSTM_TO_TF, n)], axis=1).T
        weights = {"kernel": kernel, "bias": _blocks(b_ih + b_hh, _LSTM_TO_TF, n)}
        if w_hr is not None:
            cell: Any = _cells.LSTMCell(n, num_proj=p, forget_bias=0.0)
            weights["projection/kernel"] = w_hr.T
        else:
            cell = _cells.BasicLSTMCell(n, forget_bias=0.0)
    elif mode == "GRU":
        cell = _cells.GRUCell(n, reset_after=True)
        weights = {"gates/kernel": np.concatenate([w_ih[:2 * n], w_hh[:2 * n]], axis=1).T,
                   "gates/bias": b_ih[:2 * n] + b_hh[:2 * n],
                   "candidate/kernel": np.concatenate([w_ih[2 * n:], w_hh[2 * n:]], axis=1).T,
                   "candidate/bias": b_ih[2 * n:], "candidate/recurrent_bias": b_hh[2 * n:]}
    else:
        cell = _cells.BasicRNNCell(n, activation="relu" if mode == "RNN_RELU" else "tanh")
        weights = {"kernel": np.concatenate([w_ih, w_hh], axis=1).T, "bias": b_ih + b_hh}
    cell.set_weights({k: np.ascontiguousarray(v, dtype=dtype) for k, v in weights.items()})
    return cell


def from_torch(module_or_state_dict: Any, nonlinearity: str = "tanh") -> Any:
    """Convert a PyTorch ``nn.LSTM``, ``nn.GRU`` or ``nn.RNN`` (or its ``state_dict()``) to fastrnn cells.

    Parameters
    ----------
    module_or_state_dict : torch.nn.LSTM, GRU, RNN, or a mapping
        The module, or its ``state_dict()`` (tensors or NumPy arrays, keys
        ``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ... and ``_reverse``
        for the backward direction).  From a state dict the kind is read off the
        shapes (4 gate blocks: LSTM, 3: GRU, 1: RNN).
    nonlinearity : {"tanh", "relu"}
        For a vanilla RNN given as a state dict (a module says its own).

    Returns
    -------
    cell, MultiRNNCell, (cell_fw, cell_bw) or (cells_fw, cells_bw)
        - one layer: a ``BasicLSTMCell(forget_bias=0)`` (``LSTMCell(num_proj=...)``
          with ``proj_size``), ``GRUCell(reset_after=True)`` or ``BasicRNNCell``;
        - several layers: a ``MultiRNNCell`` of those;
        - ``bidirectional=True``, one layer: ``(cell_fw, cell_bw)`` for
          :func:`fastrnn.bidirectional_dynamic_rnn` (concatenate its two outputs
          on the last axis to get PyTorch's output);
        - bidirectional, several layers: ``(cells_fw, cells_bw)`` lists for
          :func:`stack_bidirectional_dynamic_rnn` -- each PyTorch layer reads the
          concatenation of both directions of the layer below, which no single
          TF1 cell expresses.

    The cells hold the module's dtype (float32 or float64).  PyTorch's
    ``batch_first`` only describes the input layout: call the drivers with
    ``time_major=not module.batch_first`` (fastrnn's default is batch-major).

    Examples
    --------
    >>> net = torch.nn.LSTM(3, 5, batch_first=True)                 # doctest: +SKIP
    >>> cell = fastrnn.interop.from_torch(net)                       # doctest: +SKIP
    >>> outputs, state = fastrnn.dynamic_rnn(cell, x)                # == net(torch.from_numpy(x))
    """
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
    sd, mode, where = _module_info(module_or_state_dict)
    layers = 0
    while f"weight_ih_l{layers}" in sd:
        layers += 1
    if layers == 0:
        raise ValueError(f"from_torch: {where} has no 'weight_ih_l0'; expected the parameters of a torch.nn.LSTM, "
                         f"GRU or RNN, got keys {sorted(sd)[:10]}")
    bidirectional = "weight_ih_l0_reverse" in sd
    fw = [_layer_cell(sd, f"_l{k}", mode, nonlinearity) for k in range(layers)]
    if not bidirectional:
        return fw[0] if layers == 1 else _cells.MultiRNNCell(fw)
    bw = [_layer_cell(sd, f"_l{k}_reverse", mode, nonlinearity) for k in range(layers)]
    return (fw[0], bw[0]) if layers == 1 else (fw, bw)


def _torch_layer(cell: Any) -> Tuple[str, int, int, Dict[str, np.ndarray], Dict[str, Any]]:
    """``(mode, hidden, depth, {suffix-less torch param: array}, module kwargs)`` of one fastrnn layer."""
    if not isinstance(cell, _base.LayerCell) or not cell.built:
        raise ValueError(f"to_torch: expected built fastrnn layer cells, got {cell!r}")
    act = getattr(cell.activation, "__name__", "")
    w, n, d = cell.weights, cell.num_units, int(cell.input_depth or 0)
    if isinstance(cell, _base.LSTMCellBase):
        if cell._use_peepholes or cell._cell_clip is not None or cell._proj_clip is not None or act != "tanh":
            raise ValueError("to_torch: torch.nn.LSTM has no peepholes, cell_clip, proj_clip or other activation "
                             f"than tanh; cannot convert {cell!r}")
        inv = np.argsort(_LSTM_TO_TF)
        bias = w["bias"].copy()
        bias[2 * n:3 * n] += cell._forget_bias  # TF f block; folded so torch needs no forget_bias
        kernel = w["kernel"].T
        params = {"weight_ih": _blocks(kernel[:, :d], list(inv), n), "weight_hh": _blocks(kernel[:, d:], list(inv), n),
                  "bias_ih": _blocks(bias, list(inv), n), "bias_hh": np.zeros_like(bias)}
        extra: Dict[str, Any] = {}
        if "projection/kernel" in w:
            params["weight_hr"] = w["projection/kernel"].T
            extra["proj_size"] = cell.output_size
        return "LSTM", n, d, params, extra
    if isinstance(cell, _base.GRUCellBase):
        if not cell.reset_after or act != "tanh":
            raise ValueError("to_torch: torch.nn.GRU is the reset_after=True GRU with tanh; convert a "
                             f"GRUCell(reset_after=True) (TF1's reset-before GRU has no torch equivalent), got {cell!r}")
        gk, ck = w["gates/kernel"].T, w["candidate/kernel"].T
        zeros = np.zeros(2 * n, gk.dtype)
        params = {"weight_ih": np.concatenate([gk[:, :d], ck[:, :d]]), "weight_hh": np.concatenate([gk[:, d:], ck[:, d:]]),
                  "bias_ih": np.concatenate([w["gates/bias"], w["candidate/bias"]]),
                  "bias_hh": np.concatenate([zeros, w["candidate/recurrent_bias"]])}
        return "GRU", n, d, params, {}
    if isinstance(cell, _base.BasicRNNCellBase) and act in ("tanh", "relu"):
        k = w["kernel"].T
        params = {"weight_ih": k[:, :d], "weight_hh": k[:, d:], "bias_ih": w["bias"],
                  "bias_hh": np.zeros_like(w["bias"])}
        return "RNN", n, d, params, {"nonlinearity": act}
    raise ValueError(f"to_torch: no torch.nn equivalent for {cell!r}")


def to_torch(cell: Any, batch_first: bool = True) -> Any:
    """Build a PyTorch module computing the same as fastrnn cell(s).

    Parameters
    ----------
    cell : cell, MultiRNNCell, (cell_fw, cell_bw) or (cells_fw, cells_bw)
        Built cells: ``BasicLSTMCell``/``LSTMCell`` (tanh, no peepholes or clipping;
        ``num_proj`` becomes ``proj_size``; ``forget_bias`` is folded into the bias),
        ``GRUCell(reset_after=True)``, ``BasicRNNCell`` (tanh or relu), a
        ``MultiRNNCell`` of one kind and size, or a bidirectional pair (as
        :func:`from_torch` returns them).
    batch_first : bool
        The module's ``batch_first`` (default True, like fastrnn's default layout).

    Returns
    -------
    torch.nn.LSTM, torch.nn.GRU or torch.nn.RNN
        In the cells' dtype, in eval mode, with ``bidirectional=True`` for a pair.
        Its output equals fastrnn's (for a pair: ``concat([out_fw, out_bw], -1)``).
    """
    import torch

    if isinstance(cell, tuple) and len(cell) == 2:
        fw = list(cell[0]) if isinstance(cell[0], (list, tuple)) else [cell[0]]
        bw = list(cell[1]) if isinstance(cell[1], (list, tuple)) else [cell[1]]
        if len(fw) != len(bw):
            raise ValueError(f"to_torch: {len(fw)} forward but {len(bw)} backward layers")
        directions = [fw, bw]
    else:
        directions = [cell.cells if isinstance(cell, _base.MultiRNNCellBase) else [cell]]
    layers = [[_torch_layer(c) for c in cells] for cells in directions]
    first = layers[0][0]
    mode, hidden, depth, _, extra = first
    for cells in layers:
        for k, (m, h, d, _, e) in enumerate(cells):
            want_d = depth if k == 0 else (len(directions) * extra.get("proj_size", hidden))
            if (m, h, e) != (mode, hidden, extra) or d != want_d:
                raise ValueError("to_torch: a torch RNN module needs every layer of one kind, size and options, "
                                 f"and layer k>0 reading layer k-1's output; layer {k} is {m} with {h} units and "
                                 f"input depth {d} (expected {mode}, {hidden}, {want_d})")
    cls = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "RNN": torch.nn.RNN}[mode]
    dtype = layers[0][0][3]["weight_ih"].dtype
    module = cls(depth, hidden, num_layers=len(layers[0]), batch_first=batch_first,
                 bidirectional=len(directions) == 2, **extra)
    module = module.to(torch.float64 if dtype == np.float64 else torch.float32)
    state = {}
    for direction, cells in enumerate(layers):
        for k, (_, _, _, params, _) in enumerate(cells):
            for name, value in params.items():
                state[f"{name}_l{k}{'_reverse' if direction else ''}"] = torch.from_numpy(np.ascontiguousarray(value))
    module.load_state_dict(state)
    return module.eval()
