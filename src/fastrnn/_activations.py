"""Activation functions of the built-in cells, in NumPy, and their kernel codes.

A cell's ``activation`` may be ``None`` (tanh, TF's default), a name
(``"tanh"``, ``"sigmoid"``, ``"relu"``, ``"linear"``), one of the functions here
(``fastrnn.tanh`` ...), ``np.tanh``, or any callable.  The named ones have a C
implementation (see ``fr_activation`` in csrc/fastrnn.h); any other callable
makes the cell run through the generic NumPy loop.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Union

import numpy as np

__all__ = ["tanh", "sigmoid", "relu", "linear", "get", "kernel_code"]

Activation = Callable[[np.ndarray], np.ndarray]


def tanh(x: np.ndarray) -> np.ndarray:
    """Hyperbolic tangent (TF's default RNN activation)."""
    return np.tanh(x)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic sigmoid ``1 / (1 + exp(-x))``, computed without overflow."""
    x = np.asarray(x)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def relu(x: np.ndarray) -> np.ndarray:
    """Rectified linear unit ``max(x, 0)``; NaN stays NaN."""
    x = np.asarray(x)
    return np.where(x < 0, np.zeros((), x.dtype), x)


def linear(x: np.ndarray) -> np.ndarray:
    """Identity."""
    return np.asarray(x)


_BY_NAME = {"tanh": tanh, "sigmoid": sigmoid, "relu": relu, "linear": linear}
# Codes of fr_activation in csrc/fastrnn.h.
_CODES = {tanh: 0, sigmoid: 1, relu: 2, linear: 3, np.tanh: 0}


def get(activation: Union[None, str, Activation], name: str = "activation") -> Activation:
    """Resolve ``activation`` to a callable (``None`` means tanh)."""
    if activation is None:
        return tanh
    if isinstance(activation, str):
        try:
            return _BY_NAME[activation]
        except KeyError:
            raise ValueError(
                f"{name}: unknown activation {activation!r}; expected one of {sorted(_BY_NAME)} or a callable"
            ) from None
    if callable(activation):
        return activation
    raise TypeError(f"{name}: expected None, a name or a callable, got {type(activation).__name__}")


def kernel_code(activation: Any) -> Optional[int]:
    """The C kernel's code for ``activation``, or None if it has none."""
    try:
        return _CODES.get(activation)
    except TypeError:  # unhashable callable
        return None
