"""Keras LSTM / GRU (both reset_after) / SimpleRNN weights -> fastrnn.

Fixtures from real Keras (tools/make_tf_checkpoints.py): the layer's
get_weights() list, inputs, and Keras's return_sequences / return_state output.
Keras itself is not needed.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import fastrnn
from fastrnn import interop

from helpers import assert_close


CKPTS = Path(__file__).parent / "fixtures" / "checkpoints"


def load(case):
    with np.load(CKPTS / f"keras_{case}.npz", allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    count = sum(k.startswith("weights/") for k in data)
    return json.loads(str(data["meta"])), [data[f"weights/{i}"] for i in range(count)], data


@pytest.mark.parametrize("case, kind", [("lstm", fastrnn.BasicLSTMCell), ("gru_reset_after", fastrnn.GRUCell),
                                        ("gru_reset_before", fastrnn.GRUCell), ("simple_rnn", fastrnn.BasicRNNCell)])
def test_keras_weights_reproduce_keras(case, kind):
    meta, weights, data = load(case)
    cell = interop.from_keras(weights)
    assert type(cell) is kind and cell.num_units == meta["units"]
    if kind is fastrnn.GRUCell:
        assert cell.reset_after == meta["config"]["reset_after"]
    out, state = fastrnn.dynamic_rnn(cell, data["inputs"])
    assert_close(out, data["out"], np.float32, f"keras {case} outputs")
    if kind is fastrnn.BasicLSTMCell:  # Keras returns [h, c]
        assert_close([state.h, state.c], [data["state/0"], data["state/1"]], np.float32, "state")
    else:
        assert_close(state, data["state/0"], np.float32, "state")


class FakeLayer:
    """Quacks like a Keras layer: get_weights(), activation, recurrent_activation."""

    def __init__(self, weights, activation="tanh", recurrent_activation="sigmoid"):
        self._w, self.activation, self.recurrent_activation = weights, activation, recurrent_activation

    def get_weights(self):
        return self._w


def test_layer_object_and_errors():
    meta, weights, data = load("gru_reset_after")
    cell = interop.from_keras(FakeLayer(weights))
    assert_close(fastrnn.dynamic_rnn(cell, data["inputs"])[0], data["out"], np.float32)
    with pytest.raises(ValueError, match="recurrent_activation 'hard_sigmoid'"):
        interop.from_keras(FakeLayer(weights, recurrent_activation="hard_sigmoid"))
    with pytest.raises(TypeError, match="weight list"):
        interop.from_keras("lstm")
    with pytest.raises(ValueError, match="not the weights"):
        interop.from_keras([np.zeros((3, 8), np.float32), np.zeros((3, 4), np.float32)])
    no_bias = interop.from_keras(weights[:2])
    assert not no_bias.reset_after and not no_bias.weights["candidate/bias"].any()
