"""TensorFlow-style alias package ``fastrnn.contrib`` (``tf.contrib``): see :mod:`fastrnn.contrib.rnn`."""
from . import rnn

__all__ = ["rnn"]
