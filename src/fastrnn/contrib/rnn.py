"""TensorFlow-style alias module ``fastrnn.contrib.rnn`` (``tf.contrib.rnn``).

The TF1 tutorials write ``tf.contrib.rnn.BasicRNNCell(num_units)`` and
``tf.contrib.rnn.static_rnn(cell, inputs, dtype=tf.float32)``; these are the same
objects as ``fastrnn.BasicRNNCell`` and ``fastrnn.static_rnn``.  Only names that
``tf.contrib.rnn`` itself had are here (``dynamic_rnn`` is ``tf.nn``'s:
``fastrnn.nn.dynamic_rnn``).
"""
from typing import Any

from .. import (BasicLSTMCell, BasicRNNCell, GRUCell, LSTMCell, LSTMStateTuple, MultiRNNCell,  # noqa: F401
                RNNCell, static_bidirectional_rnn, static_rnn)

__all__ = ["RNNCell", "BasicRNNCell", "BasicLSTMCell", "LSTMCell", "GRUCell", "MultiRNNCell", "LSTMStateTuple",
           "static_rnn", "static_bidirectional_rnn", "stack_bidirectional_dynamic_rnn"]


def __getattr__(name: str) -> Any:
    # fastrnn.interop (its checkpoint readers) is imported only when this is asked for
    if name == "stack_bidirectional_dynamic_rnn":
        from ..interop import stack_bidirectional_dynamic_rnn
        return stack_bidirectional_dynamic_rnn
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
