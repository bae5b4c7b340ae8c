"""dynamic_rnn's ``outputs`` vs ``state`` for an RNN, an LSTM and a stacked LSTM, with ragged lengths.

Mirrors the tutorial "tf.nn.dynamic_rnn in depth": the same batch of 4 sequences
(2 steps, depth 3, lengths [2, 1, 2, 2]) through BasicRNNCell(5),
BasicLSTMCell(5) and MultiRNNCell([BasicLSTMCell(5)] * 2), showing that

- ``outputs`` holds every step's output and is zero past a row's length;
- ``state`` holds each row's state after its *own* last step, so for the short
  row it is ``outputs[1, 0]``, not ``outputs[1, -1]``;
- an LSTM's state is ``LSTMStateTuple(c, h)`` with ``h`` the last output; a
  stack's state has one entry per layer.
"""
from __future__ import annotations

import numpy as np

import fastrnn as fr

X = np.array([[[0, 1, 2], [9, 8, 7]],
              [[3, 4, 5], [0, 0, 0]],   # length 1: its second step is padding
              [[6, 7, 8], [6, 5, 4]],
              [[9, 0, 1], [3, 2, 1]]], dtype=np.float32)
LENGTHS = np.array([2, 1, 2, 2])
LAST = LENGTHS - 1


def main() -> None:
    rnn = fr.BasicRNNCell(5, seed=0)
    outputs, state = fr.dynamic_rnn(rnn, X, sequence_length=LENGTHS, dtype=np.float32)
    print("BasicRNNCell: outputs", outputs.shape, "state", state.shape)
    assert not outputs[1, 1].any(), "padding steps give zero outputs"
    assert np.array_equal(state, outputs[np.arange(4), LAST]), "state = output at each row's last step"

    lstm = fr.BasicLSTMCell(5, seed=0)
    outputs, lstm_state = fr.dynamic_rnn(lstm, X, sequence_length=LENGTHS, dtype=np.float32)
    print("BasicLSTMCell: outputs", outputs.shape, "state.c", lstm_state.c.shape, "state.h", lstm_state.h.shape)
    assert np.array_equal(lstm_state.h, outputs[np.arange(4), LAST]), "h is the last valid output"
    assert not np.array_equal(lstm_state.c, lstm_state.h), "c is the memory outputs never show"

    stack = fr.MultiRNNCell([fr.BasicLSTMCell(5, seed=1), fr.BasicLSTMCell(5, seed=2)])
    outputs, layers = fr.dynamic_rnn(stack, X, sequence_length=LENGTHS, dtype=np.float32)
    print("MultiRNNCell: outputs", outputs.shape, "state: one LSTMStateTuple per layer:", len(layers))
    assert np.array_equal(layers[-1].h, outputs[np.arange(4), LAST]), "outputs are the top layer's h"
    print("row 1 outputs (second step is padding):\n", outputs[1])


if __name__ == "__main__":
    main()
