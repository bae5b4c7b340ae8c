"""A long sequence fed in chunks, the state passed on as ``initial_state``: the same as one call.

Mirrors "Step by step example of RNN": "if you have very long sequences ... you
might split them in parts.  In that case you can pass the state of each run to
the next run of dynamic_rnn through the initial_state parameter."  Works for
ragged batches too: a row that has ended keeps its state through later chunks.
"""
from __future__ import annotations

from typing import Any, List

import numpy as np

import fastrnn as fr


def main() -> None:
    rng = np.random.default_rng(0)
    batch, time, depth, chunk = 3, 100, 4, 32
    x = rng.standard_normal((batch, time, depth)).astype(np.float32)
    lengths = np.array([100, 70, 5])
    cell = fr.MultiRNNCell([fr.LSTMCell(8, use_peepholes=True, seed=0), fr.GRUCell(6, seed=1)])

    whole, whole_state = fr.dynamic_rnn(cell, x, sequence_length=lengths)

    state: Any = cell.zero_state(batch, np.float32)
    pieces: List[np.ndarray] = []
    for start in range(0, time, chunk):
        part = x[:, start:start + chunk]
        # each row's length inside this chunk (0 once the row has ended)
        part_len = np.clip(lengths - start, 0, part.shape[1])
        out, state = fr.dynamic_rnn(cell, part, sequence_length=part_len, initial_state=state)
        pieces.append(out)
    chunked = np.concatenate(pieces, axis=1)

    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-6)
    for got, want in zip(_leaves(state), _leaves(whole_state)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    print(f"{time} steps in chunks of {chunk} == one call: outputs {chunked.shape}, final state equal")


def _leaves(state: Any) -> List[np.ndarray]:
    if isinstance(state, (tuple, list)):
        return [leaf for s in state for leaf in _leaves(s)]
    return [state]


if __name__ == "__main__":
    main()
