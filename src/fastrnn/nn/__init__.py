"""TensorFlow-style aliases: ``fastrnn.nn.dynamic_rnn``, ``fastrnn.nn.rnn_cell.BasicLSTMCell`` ..."""
from .. import bidirectional_dynamic_rnn, dynamic_rnn, static_bidirectional_rnn, static_rnn
from . import rnn_cell

__all__ = ["dynamic_rnn", "static_rnn", "bidirectional_dynamic_rnn", "static_bidirectional_rnn", "rnn_cell"]
