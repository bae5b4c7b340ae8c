"""fastrnn.interop: bring trained weights from TensorFlow 1.x, PyTorch and Keras.

- Every TF1 artifact, without TensorFlow or protobuf: :func:`load_tf_checkpoint`
  reads a TF V2 checkpoint (``.index`` + ``.data-*``; also a SavedModel's
  ``variables/``) into ``{variable name: ndarray}``, every checksum verified;
  :func:`load_tf_graph` reads a frozen GraphDef's constants.
  :func:`restore_tf` assigns a cell's weights from those TF1 names
  (``rnn/basic_lstm_cell/kernel``, ``bidirectional_rnn/fw/...``), skipping
  optimizer slots (or reading the moving averages, ``ema=True``);
  :func:`find_tf_cells` finds, builds and restores every RNN in a file
  (``python -m fastrnn inspect PATH`` prints what it found).
- :func:`from_torch` / :func:`to_torch`: ``torch.nn.LSTM``, ``GRU``, ``RNN``
  <-> fastrnn cells, same numbers both ways.
- :func:`from_keras`: Keras ``LSTM``, ``GRU`` (both ``reset_after``), ``SimpleRNN``.
- :func:`stack_bidirectional_dynamic_rnn`: TF1 contrib's stacked bidirectional
  RNN (what a multi-layer bidirectional PyTorch RNN computes).

torch and Keras are optional and imported only when a function needs them.
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from .._rnn import bidirectional_dynamic_rnn
from ._checkpoint import checkpoint_prefix, crc32c, load_tf_checkpoint
from ._discover import TFCells, TFLayer, find_tf_cells
from ._graphdef import load_tf_graph
from ._keras import from_keras
from ._tf import restore_tf, tf_variable_names
from ._torch import from_torch, to_torch

__all__ = ["load_tf_checkpoint", "load_tf_graph", "checkpoint_prefix", "crc32c", "restore_tf", "tf_variable_names",
           "find_tf_cells", "TFCells", "TFLayer", "from_torch", "to_torch", "from_keras",
           "stack_bidirectional_dynamic_rnn"]


def stack_bidirectional_dynamic_rnn(cells_fw: Sequence[Any], cells_bw: Sequence[Any], inputs: Any,
                                    initial_states_fw: Optional[Sequence[Any]] = None,
                                    initial_states_bw: Optional[Sequence[Any]] = None, dtype: Any = None,
                                    sequence_length: Any = None, time_major: bool = False
                                    ) -> Tuple[np.ndarray, Tuple[Any, ...], Tuple[Any, ...]]:
    """Stacked bidirectional RNN (``tf.contrib.rnn.stack_bidirectional_dynamic_rnn``).

    Layer ``k`` runs :func:`fastrnn.bidirectional_dynamic_rnn` with
    ``cells_fw[k]``, ``cells_bw[k]`` over the concatenation ``[out_fw, out_bw]``
    of layer ``k - 1`` (layer 0 over ``inputs``).  This is what a PyTorch RNN
    with ``num_layers > 1, bidirectional=True`` computes; :func:`from_torch`
    returns its ``(cells_fw, cells_bw)``.

    Parameters
    ----------
    cells_fw, cells_bw : sequences of cells
        One forward and one backward cell per layer.
    inputs : array_like
        ``[batch, time, depth]`` (``[time, batch, depth]`` with ``time_major``).
    initial_states_fw, initial_states_bw : sequences of states, optional
        One per layer; zeros when omitted.
    dtype, sequence_length, time_major
        As for :func:`fastrnn.bidirectional_dynamic_rnn`.

    Returns
    -------
    outputs : ndarray
        ``[batch, time, out_fw + out_bw]`` of the last layer.
    states_fw, states_bw : tuples
        The final state of each layer in each direction.
    """
    if len(cells_fw) == 0 or len(cells_fw) != len(cells_bw):
        raise ValueError(f"cells_fw, cells_bw: expected two non-empty lists of the same length, got "
                         f"{len(cells_fw)} and {len(cells_bw)}")
    layers = len(cells_fw)
    inits_fw: List[Any] = list(initial_states_fw) if initial_states_fw is not None else [None] * layers
    inits_bw: List[Any] = list(initial_states_bw) if initial_states_bw is not None else [None] * layers
    if len(inits_fw) != layers or len(inits_bw) != layers:
        raise ValueError(f"initial_states_fw/bw: expected {layers} states each")
    x, states_fw, states_bw = inputs, [], []
    for k in range(layers):
        (out_fw, out_bw), (st_fw, st_bw) = bidirectional_dynamic_rnn(
            cells_fw[k], cells_bw[k], x, sequence_length=sequence_length, initial_state_fw=inits_fw[k],
            initial_state_bw=inits_bw[k], dtype=dtype, time_major=time_major)
        x = np.concatenate([out_fw, out_bw], axis=-1)
        states_fw.append(st_fw)
        states_bw.append(st_bw)
    return x, tuple(states_fw), tuple(states_bw)
