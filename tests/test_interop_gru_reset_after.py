"""GRUCell(reset_after=True): the Keras-2 / PyTorch / cuDNN GRU.

The public cell runs it on the C kernels (the candidate's recurrent product comes
before the reset gate); these tests pin its equations (against a hand-written step
and against PyTorch when installed) and the kernels' agreement with the reference.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastrnn
import fastrnn.reference as ref

from helpers import assert_close, lengths_for, make_pair, random_state


SPEC = {"type": "GRUCell", "num_units": 5, "kwargs": {"reset_after": True}}


def test_weights_and_defaults():
    cell = fastrnn.GRUCell(4, reset_after=True, seed=0)
    cell.build(3)
    w = cell.weights
    assert sorted(w) == ["candidate/bias", "candidate/kernel", "candidate/recurrent_bias", "gates/bias",
                         "gates/kernel"]
    assert w["candidate/recurrent_bias"].shape == (4,) and not w["candidate/recurrent_bias"].any()
    assert cell.reset_after and not fastrnn.GRUCell(4).reset_after
    with pytest.raises(TypeError, match="reset_after"):
        fastrnn.GRUCell(4, reset_after="yes")
    with pytest.raises(ValueError, match="unknown weight name"):
        fastrnn.GRUCell(4).set_weights({"candidate/recurrent_bias": np.zeros(4)})


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_step_equations(dtype, rng):
    cell, _ = make_pair(SPEC, 3, dtype, rng)
    w, n, d = cell.weights, 5, 3
    x = rng.standard_normal((4, d)).astype(dtype)
    h = rng.uniform(-1, 1, (4, n)).astype(dtype)
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    ru = sig(np.concatenate([x, h], 1) @ w["gates/kernel"] + w["gates/bias"])
    r, u = ru[:, :n], ru[:, n:]
    wc = w["candidate/kernel"]
    c = np.tanh(x @ wc[:d] + w["candidate/bias"] + r * (h @ wc[d:] + w["candidate/recurrent_bias"]))
    out, new_h = cell(x, h)
    assert_close(out, u * h + (1 - u) * c, dtype, "reset_after step")
    assert_close(new_h, out, dtype)
    # and it differs from the reset-before GRU with the same weights
    before = fastrnn.GRUCell(n)
    before.set_weights({k: v for k, v in w.items() if k != "candidate/recurrent_bias"})
    assert not np.allclose(before(x, h)[0], out)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lengths", ["none", "ragged"])
@pytest.mark.parametrize("multi", [False, True])
def test_fastrnn_matches_reference(dtype, lengths, multi, rng):
    spec = {"type": "MultiRNNCell", "cells": [SPEC, {"type": "GRUCell", "num_units": 3}]} if multi else SPEC
    cell, twin = make_pair(spec, 4, dtype, rng)
    x = rng.standard_normal((6, 7, 4)).astype(dtype)
    lens = lengths_for(lengths, 6, 7, rng)
    init = random_state(cell, 6, dtype, rng)
    got = fastrnn.dynamic_rnn(cell, x, sequence_length=lens, initial_state=init)
    want = ref.dynamic_rnn(twin, x, sequence_length=lens, initial_state=init)
    assert_close(got, want, dtype, "dynamic_rnn")
    got = fastrnn.bidirectional_dynamic_rnn(cell, twin, x, sequence_length=lens)
    want = ref.bidirectional_dynamic_rnn(twin, twin, x, sequence_length=lens)
    assert_close(got, want, dtype, "bidirectional_dynamic_rnn")


def test_matches_torch_gru(rng):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.GRU(3, 4, batch_first=True).double()
    sd = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    n = 4
    cell = ref.GRUCell(n, reset_after=True)
    w_ih, w_hh, b_ih, b_hh = sd["weight_ih_l0"], sd["weight_hh_l0"], sd["bias_ih_l0"], sd["bias_hh_l0"]
    # by hand, PyTorch's rows r, z, n -> gates (r, u=z), candidate
    cell.set_weights({"gates/kernel": np.concatenate([w_ih[:2 * n], w_hh[:2 * n]], 1).T,
                      "gates/bias": b_ih[:2 * n] + b_hh[:2 * n],
                      "candidate/kernel": np.concatenate([w_ih[2 * n:], w_hh[2 * n:]], 1).T,
                      "candidate/bias": b_ih[2 * n:], "candidate/recurrent_bias": b_hh[2 * n:]})
    x = rng.standard_normal((2, 5, 3))
    with torch.no_grad():
        want, _ = net(torch.from_numpy(x))
    assert_close(ref.dynamic_rnn(cell, x)[0], want.numpy(), np.float64, "torch GRU")


def test_reset_after_runs_on_the_kernels(monkeypatch, rng):
    from fastrnn import _kernels
    layers = []
    real = _kernels.layer_forward
    monkeypatch.setattr(_kernels, "layer_forward", lambda layer, *a: layers.append(layer) or real(layer, *a))
    fastrnn.dynamic_rnn(fastrnn.GRUCell(5, reset_after=True), rng.standard_normal((2, 3, 4)))
    assert len(layers) == 1 and layers[0].arrays[4] is not None  # cand_recurrent_bias
