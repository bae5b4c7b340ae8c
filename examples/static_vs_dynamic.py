"""static_rnn (a Python list of steps) vs dynamic_rnn (one [batch, time, depth] array): same numbers.

Mirrors "tf.nn.*rnn* APIs" (static_rnn vs. dynamic_rnn) and the
"tensorflow_RNN_LSTM_basic" notebook, which unrolls a BasicRNNCell over two
steps ``[x0, x1]`` with ``static_rnn`` and then with ``dynamic_rnn``.  In TF1 the
difference was graph building; here both run the same kernels, and ``static_rnn``
just takes and returns per-step lists.
"""
from __future__ import annotations

from typing import List

import numpy as np

import fastrnn as fr

X0 = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 0, 1]], dtype=np.float32)  # t = 0
X1 = np.array([[9, 8, 7], [0, 0, 0], [6, 5, 4], [3, 2, 1]], dtype=np.float32)  # t = 1


def main() -> None:
    cell = fr.BasicRNNCell(5, seed=0)
    output_seqs, states = fr.static_rnn(cell, [X0, X1], dtype=np.float32)
    steps: List[np.ndarray] = output_seqs
    print("static_rnn: a list of", len(steps), "outputs, each", steps[0].shape, "; state", states.shape)

    outputs, state = fr.dynamic_rnn(cell, np.stack([X0, X1], axis=1), dtype=np.float32)
    print("dynamic_rnn: outputs", outputs.shape, "; state", state.shape)
    np.testing.assert_allclose(np.stack(steps, axis=1), outputs, rtol=1e-6)
    np.testing.assert_allclose(states, state, rtol=1e-6)

    # the same with sequence lengths, and by hand: one cell call per step
    lengths = [2, 1, 2, 2]
    _, st_static = fr.static_rnn(cell, [X0, X1], sequence_length=lengths, dtype=np.float32)
    h = cell.zero_state(4, np.float32)
    for x in (X0, X1):
        out, h = cell(x, h)
    assert np.allclose(h[[0, 2, 3]], st_static[[0, 2, 3]], rtol=1e-6)
    print("static_rnn == dynamic_rnn == a loop of cell(x_t, h): True")


if __name__ == "__main__":
    main()
