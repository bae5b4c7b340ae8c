"""Bidirectional RNNs: bidirectional_dynamic_rnn and static_bidirectional_rnn.

Mirrors the "Bidirectional RNNs" section of "tf.nn.*rnn* APIs": separate forward
and backward cells, separate outputs and states.  The backward cell reads each
row reversed *within its own length*, and its outputs are put back in place,
so ``out_bw[b, t]`` belongs to step ``t`` -- checked here against running the
forward cell machinery on hand-reversed rows.
"""
from __future__ import annotations

import numpy as np

import fastrnn as fr


def main() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 4)).astype(np.float64)
    lengths = np.array([5, 3, 1])
    cell_fw, cell_bw = fr.LSTMCell(6, use_peepholes=True, seed=1), fr.GRUCell(4, seed=2)

    (out_fw, out_bw), (st_fw, st_bw) = fr.bidirectional_dynamic_rnn(cell_fw, cell_bw, x, sequence_length=lengths)
    print("out_fw", out_fw.shape, "out_bw", out_bw.shape, "-> concat:", np.concatenate([out_fw, out_bw], -1).shape)

    # the backward direction by hand: reverse each row within its length, run, reverse back
    for b, n in enumerate(lengths):
        rev = x[b:b + 1, :n][:, ::-1]
        out, state = fr.dynamic_rnn(cell_bw, rev)
        np.testing.assert_allclose(out_bw[b, :n], out[0, ::-1], rtol=1e-10)
        np.testing.assert_allclose(st_bw[b], state[0], rtol=1e-10)
        assert not out_bw[b, n:].any()
    print("backward outputs line up with the forward time axis: True")

    outputs, s_fw, s_bw = fr.static_bidirectional_rnn(cell_fw, cell_bw, list(x.transpose(1, 0, 2)),
                                                      sequence_length=lengths)
    print("static_bidirectional_rnn: a list of", len(outputs), "arrays of", outputs[0].shape)
    np.testing.assert_allclose(np.stack(outputs, 1), np.concatenate([out_fw, out_bw], -1), rtol=1e-10)


if __name__ == "__main__":
    main()
