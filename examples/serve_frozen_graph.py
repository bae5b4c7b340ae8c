"""Serve a frozen TF1 graph (``frozen_model.pb``) without TensorFlow.

The usual way TF1 models were shipped: variables folded into ``Const`` nodes by
``convert_variables_to_constants`` / ``freeze_graph``, then served like this::

    graph_def = tf.GraphDef()
    graph_def.ParseFromString(open("frozen_model.pb", "rb").read())
    tf.import_graph_def(graph_def, name="")
    outputs = sess.run("outputs:0", {"inputs:0": x, "lengths:0": lengths})

Here: ``interop.find_tf_cells`` reads the graph's constants, finds the RNN in it
(a three-layer ``MultiRNNCell`` under ``rnn/``), builds the cells and restores
their weights; ``fr.dynamic_rnn`` then gives TensorFlow's outputs.  Requests of
any batch size are served, one call each, and a long sequence can be served
in chunks by passing the state along.

Usage: ``python serve_frozen_graph.py [FROZEN_GRAPH.pb]`` (default: the test
fixture ``tests/fixtures/artifacts/frozen_stack.pb``, written by
``tools/make_tf_artifacts.py``; its ``.npz`` holds what TensorFlow computed).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import fastrnn as fr
from fastrnn import interop

DEFAULT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "artifacts" / "frozen_stack.pb"


def main(path: Path = DEFAULT) -> None:
    constants = interop.load_tf_graph(path)              # {node name: ndarray}, the graph's float constants
    print(f"{path.name}: {len(constants)} float constants")

    cells = interop.find_tf_cells(path)                  # {scope: built, restored cell}
    print(cells.describe())
    scope, cell = next(iter(cells.items()))

    expected = path.with_suffix(".npz")
    if not expected.exists():
        return
    with np.load(expected, allow_pickle=False) as tf_run:
        x, lengths = tf_run["inputs"], tf_run["sequence_length"]
        outputs, state = fr.dynamic_rnn(cell, x, sequence_length=lengths)
        np.testing.assert_allclose(outputs, tf_run["out"], rtol=1e-5, atol=1e-6)
        # the state: one entry per layer (an LSTMStateTuple(c, h) for the LSTM), flattened as TF's fetches were
        leaves = [a for layer in state for a in (layer if isinstance(layer, tuple) else (layer,))]
        for i, leaf in enumerate(leaves):
            np.testing.assert_allclose(leaf, tf_run[f"state/{i}"], rtol=1e-5, atol=1e-6)
    print(f"scope {scope!r}: outputs {outputs.shape} and final state equal TensorFlow's run of the frozen graph")

    # Serving: each request its own batch; a long stream in chunks, the state carried over.
    for batch in (1, 7):
        request = np.random.default_rng(batch).standard_normal((batch, 5, x.shape[2])).astype(np.float32)
        out, _ = fr.dynamic_rnn(cell, request)
        print(f"request of batch {batch}: outputs {out.shape}")
    stream = np.random.default_rng(0).standard_normal((2, 12, x.shape[2])).astype(np.float32)
    whole, _ = fr.dynamic_rnn(cell, stream)
    chunks, carried = [], None
    for start in range(0, 12, 4):
        out, carried = fr.dynamic_rnn(cell, stream[:, start:start + 4], initial_state=carried)
        chunks.append(out)
    np.testing.assert_allclose(np.concatenate(chunks, axis=1), whole, rtol=1e-5, atol=1e-6)
    print("a 12-step stream in 3 chunks of 4, state carried over: same outputs as one call")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT)
