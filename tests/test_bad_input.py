"""Bad input gets a ValueError/TypeError naming the argument -- before any kernel runs."""
from __future__ import annotations

import numpy as np
import pytest

import fastrnn
import fastrnn.reference as ref

IMPLS = [pytest.param(ref, id="reference"), pytest.param(fastrnn, id="fastrnn")]
X = np.zeros((3, 4, 2), np.float32)


@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("inputs,exc,match", [
    (np.zeros((3, 4)), ValueError, r"inputs: expected a 3-D array \[batch, time, depth\], got shape \(3, 4\)"),
    (np.zeros((3, 4, 2), np.int32), TypeError, r"inputs: expected float32 or float64 values, got integer"),
    (np.zeros((3, 4, 2), np.complex64), TypeError, r"inputs: .*complex"),
    (np.zeros((3, 4, 2), np.float16), TypeError, r"inputs: .*float16"),
    (np.array([["a"]]), TypeError, r"inputs: .*string"),
    ([[[1.0, 2.0]], [[1.0]]], ValueError, r"inputs: cannot be converted"),
])
def test_bad_inputs(m, inputs, exc, match):
    with pytest.raises(exc, match=match):
        m.dynamic_rnn(m.BasicLSTMCell(3), inputs)


@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("lengths,exc,match", [
    ([4, 4], ValueError, r"sequence_length: expected 3 lengths \(one per batch row\), got 2"),
    ([[4, 4, 4]], ValueError, r"sequence_length: expected a 1-D vector of 3 lengths, got shape \(1, 3\)"),
    ([4, -1, 2], ValueError, r"sequence_length: lengths must be >= 0, got -1 at row 1"),
    ([4, 5, 2], ValueError, r"sequence_length: lengths must be <= the time axis \(4\), got 5 at row 1"),
    ([4.0, 1.5, 2.0], ValueError, r"sequence_length: expected integers, got non-integral"),
    (np.array([True, False, True]), TypeError, r"sequence_length: expected an integer vector, got dtype bool"),
    (["a", "b", "c"], TypeError, r"sequence_length: expected an integer vector"),
])
def test_bad_sequence_length(m, lengths, exc, match):
    with pytest.raises(exc, match=match):
        m.dynamic_rnn(m.GRUCell(3), X, sequence_length=lengths)


@pytest.mark.parametrize("m", IMPLS)
def test_integral_float_and_any_int_lengths_work(m):
    cell = m.GRUCell(3)
    base, _ = m.dynamic_rnn(cell, X, sequence_length=[4, 0, 2])
    for lens in (np.array([4, 0, 2], np.uint8), np.array([4.0, 0.0, 2.0]), (4, 0, 2), np.array([4, 0, 2], np.int16)):
        np.testing.assert_array_equal(m.dynamic_rnn(cell, X, sequence_length=lens)[0], base)


@pytest.mark.parametrize("m", IMPLS)
def test_bad_initial_state(m):
    cell = m.BasicLSTMCell(3)
    with pytest.raises(ValueError, match=r"initial_state: expected a state with the structure of state_size="):
        m.dynamic_rnn(cell, X, initial_state=np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"initial_state\[1\] .*expected shape \(3, 3\), got \(2, 3\)"):
        m.dynamic_rnn(cell, X, initial_state=(np.zeros((3, 3)), np.zeros((2, 3))))
    with pytest.raises(ValueError, match=r"initial_state\[0\] .*expected shape \(3, 3\), got \(3, 4\)"):
        m.dynamic_rnn(cell, X, initial_state=(np.zeros((3, 4)), np.zeros((3, 3))))
    with pytest.raises(TypeError, match=r"initial_state\[0\] .*integer"):
        m.dynamic_rnn(cell, X, initial_state=(np.zeros((3, 3), int), np.zeros((3, 3))))
    # a plain (c, h) tuple is accepted and repacked as LSTMStateTuple
    _, st = m.dynamic_rnn(cell, X, initial_state=(np.zeros((3, 3)), np.zeros((3, 3))))
    assert isinstance(st, fastrnn.LSTMStateTuple)


@pytest.mark.parametrize("m", IMPLS)
def test_bad_cells_and_weights(m):
    with pytest.raises(ValueError, match=r"num_units: expected a positive integer, got 0"):
        m.BasicLSTMCell(0)
    with pytest.raises(TypeError, match=r"num_units: expected a positive integer, got 2.5"):
        m.GRUCell(2.5)
    with pytest.raises(ValueError, match=r"cells: expected a non-empty list"):
        m.MultiRNNCell([])
    with pytest.raises(ValueError, match=r"activation: unknown activation 'swish'"):
        m.BasicRNNCell(3, activation="swish")
    with pytest.raises(ValueError, match=r"state_is_tuple=False needs cells with flat states"):
        m.MultiRNNCell([m.BasicLSTMCell(2)], state_is_tuple=False)
    cell = m.BasicLSTMCell(3)
    with pytest.raises(ValueError, match=r"set_weights: unknown weight name\(s\) \['kernal'\]"):
        cell.set_weights({"kernal": np.zeros((5, 12))})
    with pytest.raises(ValueError, match=r"missing \['bias'\]"):
        cell.set_weights({"kernel": np.zeros((5, 12))})
    with pytest.raises(ValueError, match=r"set_weights\['bias'\]: expected shape \(12,\), got \(11,\)"):
        cell.set_weights({"kernel": np.zeros((5, 12)), "bias": np.zeros(11)})
    cell.set_weights({"kernel": np.zeros((5, 12)), "bias": np.zeros(12)})
    with pytest.raises(ValueError, match=r"inputs: depth 4 does not match the input depth 2"):
        m.dynamic_rnn(cell, np.zeros((1, 1, 4)))
    with pytest.raises(TypeError, match=r"inputs: dtype float32 does not match the float64 weights"):
        m.dynamic_rnn(cell, np.zeros((1, 1, 2), np.float32))
    with pytest.raises(ValueError, match=r"state: expected shape \(2, 3\), got \(3, 3\)|state\[0\]"):
        cell(np.zeros((2, 2)), (np.zeros((3, 3)), np.zeros((3, 3))))
    with pytest.raises(TypeError, match=r"cell: expected an RNN cell"):
        m.dynamic_rnn(object(), X)


@pytest.mark.parametrize("m", IMPLS)
def test_bad_static_inputs(m):
    cell = m.BasicRNNCell(2)
    with pytest.raises(ValueError, match=r"inputs: expected a non-empty list"):
        m.static_rnn(cell, [])
    with pytest.raises(TypeError, match=r"inputs: expected a list of \[batch, depth\] arrays"):
        m.static_rnn(cell, np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"inputs\[1\]: every step must have the shape of inputs\[0\]"):
        m.static_rnn(cell, [np.zeros((2, 3)), np.zeros((3, 3))])


def test_nan_stays_in_its_row():
    cell = fastrnn.BasicLSTMCell(4)
    x = np.random.default_rng(0).standard_normal((3, 5, 2))
    x[1, 2, 0] = np.nan
    x[2, 3:] = np.inf  # past row 2's length: must not reach its state
    out, st = fastrnn.dynamic_rnn(cell, x, sequence_length=[5, 5, 3])
    assert np.isnan(out[1, 2:]).all() and np.isfinite(out[[0, 2]]).all()
    assert np.isfinite(st.c[[0, 2]]).all()
