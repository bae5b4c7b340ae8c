"""fastrnn: TensorFlow 1.x recurrent networks on fused C kernels, from NumPy.

>>> import numpy as np, fastrnn as fr
>>> cell = fr.BasicLSTMCell(5, seed=0)
>>> x = np.zeros((4, 2, 3), np.float32)
>>> outputs, state = fr.dynamic_rnn(cell, x, sequence_length=[2, 1, 2, 2])
>>> outputs.shape, state.c.shape, state.h.shape
((4, 2, 5), (4, 5), (4, 5))

The API and semantics are TF1's ``tf.nn.dynamic_rnn`` family (see the README);
:mod:`fastrnn.reference` is the same API in plain NumPy.
"""
from ._activations import linear, relu, sigmoid, tanh
from ._cells import BasicLSTMCell, BasicRNNCell, GRUCell, LSTMCell, MultiRNNCell, RNNCell
from ._rnn import Stream, bidirectional_dynamic_rnn, dynamic_rnn, static_bidirectional_rnn, static_rnn
from ._structure import LSTMStateTuple
from ._compiled import release_memory
from ._threads import get_num_threads, set_num_threads

__version__ = "0.1.0"

__all__ = [
    "RNNCell", "BasicRNNCell", "BasicLSTMCell", "LSTMCell", "GRUCell", "MultiRNNCell", "LSTMStateTuple",
    "dynamic_rnn", "static_rnn", "bidirectional_dynamic_rnn", "static_bidirectional_rnn", "Stream",
    "tanh", "sigmoid", "relu", "linear", "nn", "reference", "set_num_threads", "get_num_threads",
    "release_memory", "contrib",
]

from . import contrib, nn, reference  # noqa: E402  (the aliases need the names above)
