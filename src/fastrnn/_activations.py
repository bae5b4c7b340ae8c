"""Activation functions of the built-in cells, in NumPy, and their kernel codes.

A cell's ``activation`` may be ``None`` (tanh, TF's default), a name
(``"tanh"``, ``"sigmoid"``, ``"relu"``, ``"linear"``), one of the functions here
(``fastrnn.tanh`` ...), ``np.tanh``, or any callable.  The named ones have a C
implementation (``fr_activation`` in csrc/fastrnn.h; :func:`kernel_name` gives the
name, fastrnn._compiled maps it to the header's code); any other callable makes the
cell run through the generic NumPy loop.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Union

import numpy as np

__all__ = ["tanh", "sigmoid", "relu", "linear", "get", "kernel_name"]

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
# The activations the C kernels implement, by the name of their fr_activation code.
_KERNEL_NAMES = {tanh: "tanh", sigmoid: "sigmoid", relu: "relu", linear: "linear", np.tanh: "tanh"}


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


def kernel_name(activation: Any) -> Optional[str]:
    """The name of the C kernels' implementation of ``activation``, or None if they have none."""
    try:
        return _KERNEL_NAMES.get(activation)
    except TypeError:  # unhashable callable
        return None
