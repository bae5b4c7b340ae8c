"""Nested state structures, as TensorFlow's ``nest`` sees them.

A recurrent state is a leaf (one ``[batch, size]`` array) or a tuple of states:
``LSTMStateTuple(c, h)`` for an LSTM with ``state_is_tuple=True``, one entry per
layer for a ``MultiRNNCell``.  ``state_size`` has the same structure with ints
at the leaves.  Only tuples and lists are sequences; everything else is a leaf.
"""
from __future__ import annotations

from collections import namedtuple
from typing import Any, Callable, List

import numpy as np

__all__ = ["LSTMStateTuple", "flatten", "pack_as", "map_structure"]


class LSTMStateTuple(namedtuple("LSTMStateTuple", ("c", "h"))):
    """State of an LSTM cell with ``state_is_tuple=True``: ``(c, h)``.

    ``c`` is the memory (cell) state ``[batch, num_units]``; ``h`` the output
    (hidden) state ``[batch, num_proj or num_units]``.  As in TensorFlow 1.x,
    ``state[0]`` is ``c`` and ``state[1]`` is ``h``.
    """

    __slots__ = ()

    @property
    def dtype(self) -> np.dtype:
        """The common dtype of ``c`` and ``h`` (TypeError if they differ)."""
        c, h = self
        c_dtype, h_dtype = np.asarray(c).dtype, np.asarray(h).dtype
        if c_dtype != h_dtype:
            raise TypeError(f"Inconsistent internal state: {c_dtype} vs {h_dtype}")
        return c_dtype


def is_sequence(x: Any) -> bool:
    return isinstance(x, (tuple, list))


def flatten(structure: Any) -> List[Any]:
    """The leaves of ``structure`` in depth-first order (``tf.nest.flatten``)."""
    if is_sequence(structure):
        return [leaf for item in structure for leaf in flatten(item)]
    return [structure]


def _rebuild(template: Any, items: List[Any]) -> Any:
    if isinstance(template, tuple) and hasattr(template, "_fields"):
        return type(template)(*items)
    return type(template)(items)


def pack_as(structure: Any, flat: List[Any]) -> Any:
    """Inverse of :func:`flatten`: ``flat`` laid out in the shape of ``structure``."""
    flat = list(flat)
    if len(flat) != len(flatten(structure)):
        raise ValueError(f"cannot pack {len(flat)} leaves into a structure of {len(flatten(structure))}")
    it = iter(flat)

    def build(s: Any) -> Any:
        if is_sequence(s):
            return _rebuild(s, [build(item) for item in s])
        return next(it)

    return build(structure)


def map_structure(fn: Callable[..., Any], structure: Any, *others: Any) -> Any:
    """Apply ``fn`` leaf-wise over ``structure`` and same-shaped ``others``."""
    if not others:  # (every zero state: one pass, no flattening)
        return _map_one(fn, structure)
    leaves = [flatten(structure)] + [flatten(o) for o in others]
    return pack_as(structure, [fn(*args) for args in zip(*leaves)])


def _map_one(fn: Callable[[Any], Any], s: Any) -> Any:
    if is_sequence(s):
        return _rebuild(s, [_map_one(fn, item) for item in s])
    return fn(s)
