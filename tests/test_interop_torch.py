"""PyTorch nn.LSTM / nn.GRU / nn.RNN <-> fastrnn: same numbers both ways.

Skipped when torch is not installed.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastrnn
from fastrnn import interop

from helpers import assert_close


torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")

MODULES = {
    "lstm": lambda **kw: torch.nn.LSTM(3, 5, **kw),
    "lstm_proj": lambda **kw: torch.nn.LSTM(3, 5, proj_size=2, **kw),
    "gru": lambda **kw: torch.nn.GRU(3, 5, **kw),
    "rnn_tanh": lambda **kw: torch.nn.RNN(3, 5, **kw),
    "rnn_relu": lambda **kw: torch.nn.RNN(3, 5, nonlinearity="relu", **kw),
    "lstm_nobias": lambda **kw: torch.nn.LSTM(3, 5, bias=False, **kw),
}


def make(kind, dtype, **kw):
    torch.manual_seed(7)
    net = MODULES[kind](**kw)
    with torch.no_grad():  # non-default, non-trivial biases too
        for p in net.parameters():
            p.uniform_(-0.6, 0.6)
    return net.to(torch.float64 if dtype == np.float64 else torch.float32).eval()


def run_fastrnn(cells, x, time_major=False, lengths=None):
    """fastrnn's output in PyTorch's form (directions concatenated)."""
    if isinstance(cells, tuple) and isinstance(cells[0], list):
        return interop.stack_bidirectional_dynamic_rnn(cells[0], cells[1], x, sequence_length=lengths,
                                                       time_major=time_major)[0]
    if isinstance(cells, tuple):
        (fw, bw), _ = fastrnn.bidirectional_dynamic_rnn(cells[0], cells[1], x, sequence_length=lengths,
                                                        time_major=time_major)
        return np.concatenate([fw, bw], axis=-1)
    return fastrnn.dynamic_rnn(cells, x, sequence_length=lengths, time_major=time_major)[0]


def torch_out(net, x):
    with torch.no_grad():
        return net(torch.from_numpy(x))[0].numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", sorted(MODULES))
@pytest.mark.parametrize("layers, bidirectional", [(1, False), (2, False), (1, True), (3, True)])
@pytest.mark.parametrize("batch_first", [True, False])
def test_from_torch_and_back(dtype, kind, layers, bidirectional, batch_first, rng):
    net = make(kind, dtype, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first)
    shape = (4, 6, 3) if batch_first else (6, 4, 3)
    x = rng.standard_normal(shape).astype(dtype)
    cells = interop.from_torch(net)
    want = torch_out(net, x)
    got = run_fastrnn(cells, x, time_major=not batch_first)
    assert_close(got, want, dtype, f"from_torch {kind}")
    back = interop.to_torch(cells, batch_first=batch_first)
    assert_close(torch_out(back, x), want, dtype, f"to_torch {kind}")


def test_final_state_and_state_dict(rng):
    net = make("lstm", np.float32, batch_first=True)
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    with torch.no_grad():
        _, (h, c) = net(torch.from_numpy(x))
    cell = interop.from_torch(net.state_dict())  # a plain state dict: kind read off the shapes
    assert isinstance(cell, fastrnn.BasicLSTMCell)
    _, state = fastrnn.dynamic_rnn(cell, x)
    assert_close([state.c, state.h], [c[0].numpy(), h[0].numpy()], np.float32, "final state")
    arrays = {k: v.numpy() for k, v in net.state_dict().items()}
    assert_close(fastrnn.dynamic_rnn(interop.from_torch(arrays), x)[0], torch_out(net, x), np.float32)


def test_packed_sequences_match_sequence_length(rng):
    net = make("gru", np.float64, bidirectional=True, batch_first=True)
    x = rng.standard_normal((4, 5, 3))
    lengths = np.array([5, 2, 3, 1])
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.from_numpy(x), torch.from_numpy(lengths),
                                                     batch_first=True, enforce_sorted=False)
    with torch.no_grad():
        out, _ = net(packed)
    want, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=5)
    got = run_fastrnn(interop.from_torch(net), x, lengths=lengths)
    assert_close(got, want.numpy(), np.float64, "packed bidirectional GRU")


def test_to_torch_folds_forget_bias_and_projection(rng):
    cell = fastrnn.LSTMCell(4, num_proj=2, forget_bias=1.0, seed=3)
    cell.build(3, np.float64)
    x = rng.standard_normal((2, 5, 3))
    assert_close(torch_out(interop.to_torch(cell), x), fastrnn.dynamic_rnn(cell, x)[0], np.float64)


def test_unsupported_conversions_are_clear():
    with pytest.raises(ValueError, match="reset_after=True"):
        c = fastrnn.GRUCell(3)
        c.build(2)
        interop.to_torch(c)
    with pytest.raises(ValueError, match="peepholes"):
        c = fastrnn.LSTMCell(3, use_peepholes=True)
        c.build(2)
        interop.to_torch(c)
    with pytest.raises(ValueError, match="one kind, size"):
        a, b = fastrnn.BasicLSTMCell(3), fastrnn.BasicLSTMCell(4)
        a.build(2)
        b.build(3)
        interop.to_torch(fastrnn.MultiRNNCell([a, b]))
    with pytest.raises(TypeError, match="torch.nn.LSTM"):
        interop.from_torch(torch.nn.Linear(2, 3))
    with pytest.raises(ValueError, match="weight_ih_l0"):
        interop.from_torch({"weight": np.zeros((2, 2), np.float32)})
    with pytest.raises(ValueError, match="nonlinearity"):
        interop.from_torch({}, nonlinearity="gelu")
