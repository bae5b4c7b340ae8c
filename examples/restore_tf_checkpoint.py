"""Run a model restored from a TF1 checkpoint -- no TensorFlow needed.

The TF1 side (what ``tools/make_tf_checkpoints.py`` ran to write the checkpoint)::

    cell = tf.nn.rnn_cell.BasicLSTMCell(5)
    outputs, state = tf.nn.dynamic_rnn(cell, x, sequence_length=lengths, dtype=tf.float32)
    tf.train.Saver().save(sess, "basic_lstm")          # basic_lstm.index + basic_lstm.data-00000-of-00001

Here: read the checkpoint, list its variables, build the same cell, restore
its weights from the TF names (``rnn/basic_lstm_cell/kernel``, ...) and check
the outputs against those TensorFlow computed (stored next to the checkpoint).

Usage: ``python restore_tf_checkpoint.py [CHECKPOINT_PREFIX]`` (default: the
test fixture ``tests/fixtures/checkpoints/basic_lstm``).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import fastrnn as fr
from fastrnn import interop

DEFAULT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "checkpoints" / "basic_lstm"


def main(prefix: Path = DEFAULT) -> None:
    variables = interop.load_tf_checkpoint(prefix)
    for name, value in sorted(variables.items()):
        print(f"  {name:32s} {value.dtype} {value.shape}")

    cell = interop.restore_tf(fr.BasicLSTMCell(5), variables, scope="rnn")   # or restore_tf(cell, prefix)
    expected = Path(str(prefix) + ".npz")
    if not expected.exists():
        return
    with np.load(expected, allow_pickle=False) as tf_run:
        outputs, state = fr.dynamic_rnn(cell, tf_run["inputs"], sequence_length=tf_run["sequence_length"])
        np.testing.assert_allclose(outputs, tf_run["out"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(state.c, tf_run["state/0"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(state.h, tf_run["state/1"], rtol=1e-5, atol=1e-6)
    print(f"outputs {outputs.shape} and final state equal TensorFlow's")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT)
