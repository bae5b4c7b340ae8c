"""Structures and invariants users rely on, for the reference and the compiled API."""
from __future__ import annotations

import numpy as np
import pytest

import fastrnn
import fastrnn.reference as ref
from fastrnn import LSTMStateTuple

from helpers import IMPLS, assert_close, randomize


TUTORIAL_X = np.array([[[0, 1, 2], [9, 8, 7]], [[3, 4, 5], [5, 1, 9]],
                       [[6, 7, 8], [6, 5, 4]], [[9, 0, 1], [3, 2, 1]]], np.float32)
TUTORIAL_LEN = [2, 1, 2, 2]


def test_lstm_state_tuple():
    c, h = np.zeros((2, 3)), np.ones((2, 3))
    st = LSTMStateTuple(c, h)
    assert st.c is c and st.h is h and st[0] is c and st[1] is h
    assert st._fields == ("c", "h") and st.dtype == np.float64
    assert fastrnn.LSTMStateTuple is ref.LSTMStateTuple is fastrnn.nn.rnn_cell.LSTMStateTuple
    with pytest.raises(TypeError, match="Inconsistent"):
        LSTMStateTuple(np.zeros(2, np.float32), np.zeros(2)).dtype


def test_aliases():
    assert fastrnn.nn.dynamic_rnn is fastrnn.dynamic_rnn
    assert fastrnn.nn.rnn_cell.BasicLSTMCell is fastrnn.BasicLSTMCell
    from fastrnn.nn import rnn_cell
    assert rnn_cell.GRUCell is fastrnn.GRUCell
    for name in ref.__all__:
        assert hasattr(fastrnn, name), name


@pytest.mark.parametrize("m", IMPLS)
def test_tutorial_basic_rnn(m):
    cell = m.BasicRNNCell(5, seed=1)
    out, state = m.dynamic_rnn(cell, TUTORIAL_X, sequence_length=TUTORIAL_LEN,
                               initial_state=cell.zero_state(4, np.float32), dtype=np.float32)
    assert out.shape == (4, 2, 5) and state.shape == (4, 5) and out.dtype == np.float32
    assert cell.state_size == 5 and cell.output_size == 5
    np.testing.assert_array_equal(out[1, 1], 0)  # past row 1's length
    np.testing.assert_array_equal(state, out[np.arange(4), np.array(TUTORIAL_LEN) - 1])


@pytest.mark.parametrize("m", IMPLS)
def test_tutorial_lstm(m):
    cell = m.BasicLSTMCell(5, seed=1)
    out, state = m.dynamic_rnn(cell, TUTORIAL_X, sequence_length=TUTORIAL_LEN, dtype=np.float32)
    assert isinstance(state, LSTMStateTuple) and state.c.shape == state.h.shape == (4, 5)
    assert cell.state_size == LSTMStateTuple(5, 5) and cell.output_size == 5
    np.testing.assert_array_equal(state.h, out[np.arange(4), np.array(TUTORIAL_LEN) - 1])
    assert not np.allclose(state.c, state.h)


@pytest.mark.parametrize("m", IMPLS)
def test_tutorial_two_layer_lstm(m):
    cell = m.MultiRNNCell([m.BasicLSTMCell(4, seed=1), m.BasicLSTMCell(5, seed=2)])
    out, state = m.dynamic_rnn(cell, TUTORIAL_X, sequence_length=TUTORIAL_LEN, dtype=np.float32)
    assert out.shape == (4, 2, 5)
    assert isinstance(state, tuple) and len(state) == 2
    assert all(isinstance(s, LSTMStateTuple) for s in state)
    assert state[0].c.shape == (4, 4) and state[1].h.shape == (4, 5)
    assert cell.state_size == (LSTMStateTuple(4, 4), LSTMStateTuple(5, 5)) and cell.output_size == 5
    np.testing.assert_array_equal(state[1].h, out[np.arange(4), np.array(TUTORIAL_LEN) - 1])
    assert sorted(cell.weights) == ["cell_0/basic_lstm_cell/bias", "cell_0/basic_lstm_cell/kernel",
                                    "cell_1/basic_lstm_cell/bias", "cell_1/basic_lstm_cell/kernel"]
    assert cell.weights["cell_1/basic_lstm_cell/kernel"].shape == (4 + 5, 20)


CELLS = {
    "rnn": lambda m: m.BasicRNNCell(6),
    "rnn_relu": lambda m: m.BasicRNNCell(6, activation="relu"),
    "gru": lambda m: m.GRUCell(6),
    "lstm": lambda m: m.BasicLSTMCell(6),
    "lstm_flat": lambda m: m.BasicLSTMCell(6, state_is_tuple=False),
    "lstmcell_full": lambda m: m.LSTMCell(6, use_peepholes=True, cell_clip=0.8, num_proj=4, proj_clip=0.6),
}


@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("name", sorted(CELLS))
def test_final_state_is_last_valid_output_and_zeros_past_length(m, name, rng):
    cell = CELLS[name](m)
    lengths = np.array([5, 0, 3, 1, 5])
    x = rng.standard_normal((5, 5, 3))
    cell.build(3, np.float64)
    randomize(cell, rng)
    init = m.BasicRNNCell(1).zero_state(0, np.float64)  # zero_state of batch 0 works
    assert init.shape == (0, 1)
    init = fastrnn._structure.map_structure(lambda s: rng.uniform(-1, 1, (5, s)), cell.state_size)
    out, state = m.dynamic_rnn(cell, x, sequence_length=lengths, initial_state=init)
    for b, n in enumerate(lengths):
        np.testing.assert_array_equal(out[b, n:], 0)
    h = state if isinstance(state, np.ndarray) and name != "lstm_flat" else None
    if name == "lstm_flat":
        h = state[:, 6:]
    elif isinstance(state, LSTMStateTuple):
        h = state.h
    init_h = init[:, 6:] if name == "lstm_flat" else (init.h if isinstance(init, LSTMStateTuple) else init)
    for b, n in enumerate(lengths):
        expected = init_h[b] if n == 0 else out[b, n - 1]
        np.testing.assert_array_equal(h[b], expected)
    # a zero-length row keeps its whole initial state, c included
    for got, given in zip(fastrnn._structure.flatten(state), fastrnn._structure.flatten(init)):
        np.testing.assert_array_equal(got[1], given[1])


@pytest.mark.parametrize("m", IMPLS)
def test_static_rnn_lists(m, rng):
    cell = m.BasicLSTMCell(4)
    xs = [rng.standard_normal((3, 2)).astype(np.float32) for _ in range(5)]
    outs, state = m.static_rnn(cell, xs, dtype=np.float32, sequence_length=[5, 2, 0])
    assert isinstance(outs, list) and len(outs) == 5 and all(o.shape == (3, 4) for o in outs)
    dyn, dstate = m.dynamic_rnn(cell, np.stack(xs, 1), sequence_length=[5, 2, 0])
    np.testing.assert_array_equal(np.stack(outs, 1), dyn)
    np.testing.assert_array_equal(state.c, dstate.c)


@pytest.mark.parametrize("m", IMPLS)
def test_bidirectional_reverses_within_length(m, rng):
    fw, bw = m.GRUCell(3), m.BasicRNNCell(4)
    x = rng.standard_normal((3, 6, 2))
    lengths = np.array([6, 4, 0])
    (out_fw, out_bw), (st_fw, st_bw) = m.bidirectional_dynamic_rnn(fw, bw, x, sequence_length=lengths)
    assert out_fw.shape == (3, 6, 3) and out_bw.shape == (3, 6, 4)
    for b, n in enumerate(lengths):
        if n == 0:
            np.testing.assert_array_equal(out_bw[b], 0)
            continue
        rev = np.ascontiguousarray(x[b:b + 1, :n][:, ::-1])
        o, s = m.dynamic_rnn(bw, rev)
        assert_close(out_bw[b, :n], o[0, ::-1], np.float64, "bw")
        np.testing.assert_array_equal(out_bw[b, n:], 0)
        assert_close(st_bw[b], s[0], np.float64, "bw state")
    outs, s_fw, s_bw = m.static_bidirectional_rnn(fw, bw, list(x.transpose(1, 0, 2)), sequence_length=lengths)
    np.testing.assert_array_equal(np.stack(outs, 1), np.concatenate([out_fw, out_bw], -1))


class CountingCell(fastrnn.RNNCell):
    """A user's own cell: h' = 0.5 h + x, output 2 h'. Counts its calls."""

    def __init__(self, units):
        self.units, self.calls = units, 0

    @property
    def state_size(self):
        return self.units

    @property
    def output_size(self):
        return self.units

    def __call__(self, inputs, state, scope=None):
        self.calls += 1
        h = 0.5 * state + inputs
        return 2 * h, h


class DuckCell:
    """Not derived from anything: only the protocol."""
    state_size = (2, 3)
    output_size = 2

    def zero_state(self, batch_size, dtype):
        return (np.zeros((batch_size, 2), dtype), np.zeros((batch_size, 3), dtype))

    def __call__(self, inputs, state):
        a, b = state
        a = a + inputs[:, :2]
        return a * 1.0, (a, b + 1)


@pytest.mark.parametrize("m", IMPLS)
def test_user_cells_run_with_masking(m, rng):
    x = rng.standard_normal((3, 4, 2))
    cell = CountingCell(2)
    out, state = m.dynamic_rnn(cell, x, sequence_length=[4, 1, 0])
    assert cell.calls == 4
    h = np.zeros((3, 2))
    for t in range(4):
        new = 0.5 * h + x[:, t]
        keep = (t < np.array([4, 1, 0]))[:, None]
        np.testing.assert_allclose(out[:, t], np.where(keep, 2 * new, 0))
        h = np.where(keep, new, h)
    np.testing.assert_allclose(state, h)
    out, (a, b) = m.dynamic_rnn(DuckCell(), x, sequence_length=[4, 2, 0])
    np.testing.assert_array_equal(b[:, 0], [4, 2, 0])
    stacked = m.MultiRNNCell([m.GRUCell(3), CountingCell(3)])
    out, (s0, s1) = m.dynamic_rnn(stacked, x, sequence_length=[4, 1, 0])
    assert out.shape == (3, 4, 3) and s1.shape == (3, 3)


def test_initializers_follow_tf_defaults():
    cell = ref.GRUCell(7, seed=3)
    cell.build(5, np.float64)
    w = cell.weights
    np.testing.assert_array_equal(w["gates/bias"], 1.0)
    np.testing.assert_array_equal(w["candidate/bias"], 0.0)
    limit = np.sqrt(6 / (12 + 14))
    assert np.abs(w["gates/kernel"]).max() <= limit and np.abs(w["gates/kernel"]).max() > 0.8 * limit
    lstm = ref.LSTMCell(6, use_peepholes=True, num_proj=2, seed=1)
    lstm.build(3)
    assert lstm.dtype == np.float32
    assert np.abs(lstm.weights["w_f_diag"]).max() <= np.sqrt(6 / 12)
    np.testing.assert_array_equal(lstm.weights["bias"], 0)
    again = ref.LSTMCell(6, use_peepholes=True, num_proj=2, seed=1)
    again.build(3)
    for k, v in lstm.weights.items():
        np.testing.assert_array_equal(again.weights[k], v)
    custom = ref.LSTMCell(2, initializer=lambda shape, dtype: np.full(shape, 0.25, dtype))
    custom.build(1)
    np.testing.assert_array_equal(custom.weights["kernel"], 0.25)


@pytest.mark.parametrize("m", IMPLS)
def test_weights_are_copies_and_set_weights_builds(m, rng):
    cell = m.BasicLSTMCell(3)
    k = rng.standard_normal((5, 12)).astype(np.float32)
    b = rng.standard_normal(12).astype(np.float32)
    cell.set_weights({"kernel": k, "bias": b})
    assert cell.built and cell.input_depth == 2 and cell.dtype == np.float32
    k[:] = 0  # the cell holds its own copy
    assert cell.weights["kernel"].any()
    cell.weights["kernel"][:] = 0  # and hands out copies
    assert cell.weights["kernel"].any()
    out, state = m.dynamic_rnn(cell, rng.standard_normal((2, 3, 2)).astype(np.float32))
    assert not np.shares_memory(state.c, cell._weights["kernel"])


@pytest.mark.parametrize("m", IMPLS)
def test_one_step_call_matches_dynamic_rnn(m, rng):
    cell = m.LSTMCell(5, use_peepholes=True, num_proj=3)
    x = rng.standard_normal((4, 3, 2))
    out, state = m.dynamic_rnn(cell, x)
    st = cell.zero_state(4, np.float64)
    for t in range(3):
        o, st = cell(x[:, t], st)
        assert_close(o, out[:, t], np.float64, f"step {t}")
    assert_close(st, state, np.float64, "state")


@pytest.mark.parametrize("m", IMPLS)
def test_time_and_batch_zero(m):
    cell = m.BasicLSTMCell(3)
    out, state = m.dynamic_rnn(cell, np.zeros((2, 0, 4), np.float32))
    assert out.shape == (2, 0, 3) and state.c.shape == (2, 3) and not state.c.any()
    out, state = m.dynamic_rnn(cell, np.zeros((0, 5, 4), np.float32), sequence_length=[])
    assert out.shape == (0, 5, 3) and state.h.shape == (0, 3)
    out, state = m.dynamic_rnn(cell, np.zeros((0, 5, 4), np.float32), time_major=True)
    assert out.shape == (0, 5, 3) and state.h.shape == (5, 3)
