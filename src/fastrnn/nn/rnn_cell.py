"""TensorFlow-style alias module ``fastrnn.nn.rnn_cell`` (``tf.nn.rnn_cell``)."""
from .. import (BasicLSTMCell, BasicRNNCell, GRUCell, LSTMCell, LSTMStateTuple, MultiRNNCell,  # noqa: F401
                RNNCell)

__all__ = ["RNNCell", "BasicRNNCell", "BasicLSTMCell", "LSTMCell", "GRUCell", "MultiRNNCell", "LSTMStateTuple"]
