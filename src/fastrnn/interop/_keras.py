"""Keras ``LSTM`` / ``GRU`` / ``SimpleRNN`` weights -> fastrnn cells.

Keras keeps ``kernel [d, G*n]``, ``recurrent_kernel [n, G*n]`` and ``bias``
(``[G*n]``, or ``[2, 3n]`` -- input and recurrent rows -- for a GRU with
``reset_after=True``), gate blocks LSTM i, f, c, o and GRU z, r, h.  A TF1
kernel is ``[kernel; recurrent_kernel]`` with its column blocks permuted (LSTM
i, j(=c), f, o; GRU gates r, u(=z) then the candidate).  Keras's ``z`` plays
TF's ``u``: ``h' = z * h + (1 - z) * hh`` in both.  Keras is never imported.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .. import _cells

__all__ = ["from_keras"]


def _name(fn: Any) -> Optional[str]:
    if fn is None:
        return None
    return fn if isinstance(fn, str) else getattr(fn, "__name__", None)


def from_keras(layer_or_weights: Any, activation: Optional[str] = None) -> Any:
    """Convert a Keras ``LSTM``, ``GRU`` or ``SimpleRNN`` layer (or its weight list) to a fastrnn cell.

    Parameters
    ----------
    layer_or_weights : Keras layer or sequence of arrays
        A layer (its ``get_weights()``, ``activation`` and ``recurrent_activation``
        are read), or the list ``[kernel, recurrent_kernel(, bias)]`` as
        ``layer.get_weights()`` returns it.  The kind is read off the shapes
        (4 gate blocks: LSTM, 3: GRU, 1: SimpleRNN) and a GRU's ``reset_after``
        off its bias (``[2, 3n]``: True).
    activation : str, optional
        The layer's ``activation`` when only weights are given (default tanh);
        the recurrent activation must be Keras 2's default, sigmoid.

    Returns
    -------
    BasicLSTMCell(forget_bias=0), GRUCell(reset_after=...) or BasicRNNCell
        With the weights in the arrays' dtype.  Run it with
        :func:`fastrnn.dynamic_rnn`; ``outputs`` is Keras's
        ``return_sequences=True`` output and the final state its ``return_state``
        states (LSTM: ``state.h``, ``state.c``).  ``go_backwards`` layers read the
        sequence reversed: reverse the inputs yourself.
    """
    if hasattr(layer_or_weights, "get_weights"):
        layer = layer_or_weights
        weights = layer.get_weights()
        if activation is None:
            activation = _name(getattr(layer, "activation", None))
        rec_act = _name(getattr(layer, "recurrent_activation", "sigmoid"))
        if rec_act not in (None, "sigmoid"):
            raise ValueError(f"from_keras: recurrent_activation {rec_act!r} is not supported (only sigmoid)")
    else:
        weights = layer_or_weights
    if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence) or len(weights) not in (2, 3):
        raise TypeError("from_keras: expected a Keras LSTM/GRU/SimpleRNN layer or its weight list "
                        f"[kernel, recurrent_kernel, bias], got {type(weights).__name__}")
    kernel, rec = np.asarray(weights[0]), np.asarray(weights[1])
    if kernel.dtype.kind != "f" or kernel.ndim != 2 or rec.ndim != 2 or rec.shape[1] != kernel.shape[1] \
            or kernel.shape[1] % max(rec.shape[0], 1):
        raise ValueError(f"from_keras: kernel {kernel.shape} and recurrent_kernel {rec.shape} are not the weights "
                         "of a Keras LSTM, GRU or SimpleRNN layer")
    dtype, n = kernel.dtype, rec.shape[0]
    gates = kernel.shape[1] // n
    bias = np.asarray(weights[2], dtype) if len(weights) == 3 else np.zeros(gates * n, dtype)
    act = activation or "tanh"
    full = np.concatenate([kernel, rec], axis=0).astype(dtype)

    def cols(*blocks: int) -> np.ndarray:
        return np.concatenate([full[:, b * n:(b + 1) * n] for b in blocks], axis=1)

    def vec(b: np.ndarray, *blocks: int) -> np.ndarray:
        return np.concatenate([b[k * n:(k + 1) * n] for k in blocks])

    if gates == 4:
        cell: Any = _cells.BasicLSTMCell(n, forget_bias=0.0, activation=act)
        cell.set_weights({"kernel": cols(0, 2, 1, 3), "bias": vec(bias.reshape(-1), 0, 2, 1, 3)})
    elif gates == 3:
        reset_after = bias.ndim == 2
        if bias.shape not in ((3 * n,), (2, 3 * n)):
            raise ValueError(f"from_keras: GRU bias of shape {bias.shape}; expected ({3 * n},) or (2, {3 * n})")
        cell = _cells.GRUCell(n, activation=act, reset_after=reset_after)
        b_in, b_rec = (bias[0], bias[1]) if reset_after else (bias, np.zeros_like(bias))
        w = {"gates/kernel": cols(1, 0), "gates/bias": vec(b_in + b_rec, 1, 0),
             "candidate/kernel": cols(2), "candidate/bias": vec(b_in, 2)}
        if reset_after:
            w["candidate/recurrent_bias"] = vec(b_rec, 2)
        cell.set_weights(w)
    elif gates == 1:
        cell = _cells.BasicRNNCell(n, activation=act)
        cell.set_weights({"kernel": full, "bias": bias.reshape(-1)})
    else:
        raise ValueError(f"from_keras: {gates} gate blocks in kernel {kernel.shape}; expected 4 (LSTM), "
                         "3 (GRU) or 1 (SimpleRNN)")
    return cell
