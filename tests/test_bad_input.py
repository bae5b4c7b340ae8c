"""Bad input gets a ValueError/TypeError naming the argument -- before any kernel runs."""
from __future__ import annotations

import contextlib
import re

import numpy as np
import pytest

import fastrnn
import fastrnn.reference as ref

from helpers import BIDI, DRIVERS, IMPLS, assert_close, drive


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


def test_nan_stays_in_its_row(kernel_calls):
    cell = fastrnn.BasicLSTMCell(4)
    x = np.random.default_rng(0).standard_normal((3, 5, 2))
    x[1, 2, 0] = np.nan
    x[2, 3:] = np.inf  # past row 2's length: must not reach its state
    out, st = fastrnn.dynamic_rnn(cell, x, sequence_length=[5, 5, 3])
    assert np.isnan(out[1, 2:]).all() and np.isfinite(out[[0, 2]]).all()
    assert np.isfinite(st.c[[0, 2]]).all()


# ---- every driver, the one-step call and set_weights: exact messages, no kernel call ----

@contextlib.contextmanager
def rejected(kernel_calls, exc, match):
    """``pytest.raises(exc, match=match)``, and no kernel ran before the error (``kernel_calls``:
    the fixture's list of kernel calls)."""
    before = len(kernel_calls)
    with pytest.raises(exc, match=match):
        yield
    assert len(kernel_calls) == before, "a kernel ran before validation rejected the arguments"


def state_name(driver, which="fw"):
    return f"initial_state_{which}" if driver in BIDI else "initial_state"


@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("lengths,exc,match", [
    ([4, 4], ValueError, r"sequence_length: expected 3 lengths \(one per batch row\), got 2"),
    ([[4, 4, 4]], ValueError, r"sequence_length: expected a 1-D vector of 3 lengths, got shape \(1, 3\)"),
    (4, ValueError, r"sequence_length: expected a 1-D vector of 3 lengths, got shape \(\)"),
    ([4, -1, 2], ValueError, r"sequence_length: lengths must be >= 0, got -1 at row 1"),
    ([4, 5, 2], ValueError, r"sequence_length: lengths must be <= the time axis \(4\), got 5 at row 1"),
    (np.array([4, 2**40, 0], np.uint64), ValueError, r"sequence_length: lengths must be <= the time axis \(4\), "
                                                      r"got 1099511627776 at row 1"),
    ([4.0, 1.5, 2.0], ValueError, r"sequence_length: expected integers, got non-integral values \[4.0, 1.5, 2.0\]"),
    ([4.0, np.nan, 2.0], ValueError, r"sequence_length: expected integers, got non-integral values \[4.0, nan"),
    ([4, None, 2], TypeError, r"sequence_length: expected an integer vector, got dtype object"),
    (np.array([1, 2, 3], np.complex64), TypeError, r"sequence_length: expected an integer vector, got dtype complex64"),
])
def test_bad_lengths_every_driver(m, driver, lengths, exc, match, kernel_calls):
    with rejected(kernel_calls, exc, match=match):
        drive(m, driver, X, m.GRUCell(3), lengths=lengths)


@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("driver", DRIVERS)
def test_bad_initial_state_every_driver(m, driver, kernel_calls):
    lstm = m.BasicLSTMCell(3)
    fw = state_name(driver, "fw")
    z = np.zeros((3, 3))
    # wrong structure: a flat array, a 3-tuple, a nested pair
    with rejected(kernel_calls, ValueError, match=rf"^{fw}: expected a state with the structure of state_size="
                                         r"LSTMStateTuple\(c=3, h=3\) \(2 arrays\), got array\(3, 3\)$"):
        drive(m, driver, X, lstm, state=z)
    with rejected(kernel_calls, ValueError, match=rf"^{fw}: .*\(2 arrays\), got \(array\(3, 3\), array\(3, 3\), array\(3, 3\)\)$"):
        drive(m, driver, X, lstm, state=(z, z, z))
    # wrong batch, wrong width, wrong dtype, wrong rank
    with rejected(kernel_calls, ValueError, match=rf"^{fw}\[0\] \(leaf 0 of state_size=LSTMStateTuple\(c=3, h=3\)\): "
                                         r"expected shape \(3, 3\), got \(2, 3\)$"):
        drive(m, driver, X, lstm, state=(np.zeros((2, 3)), z))
    with rejected(kernel_calls, ValueError, match=rf"^{fw}\[1\] .*: expected shape \(3, 3\), got \(3, 4\)$"):
        drive(m, driver, X, lstm, state=(z, np.zeros((3, 4))))
    with rejected(kernel_calls, TypeError, match=rf"^{fw}\[1\] .*: expected float32 or float64 values, got complex"):
        drive(m, driver, X, lstm, state=(z, z.astype(complex)))
    gru = m.GRUCell(3)
    with rejected(kernel_calls, ValueError, match=rf"^{fw}: expected shape \(3, 3\), got \(3,\)$"):
        drive(m, driver, X, gru, state=np.zeros(3))
    if driver in BIDI:  # the backward state is named as such, and checked against cell_bw
        with rejected(kernel_calls, ValueError, match=r"^initial_state_bw: expected shape \(3, 2\), got \(3, 3\)$"):
            drive(m, driver, X, gru, bw=m.GRUCell(2), state=z, state_bw=z)
        with rejected(kernel_calls, ValueError, match=r"^initial_state_bw\[1\] .*expected shape \(3, 3\), got \(1, 3\)$"):
            drive(m, driver, X, gru, bw=lstm, state_bw=(z, np.zeros((1, 3))))


@pytest.mark.parametrize("m", IMPLS)
def test_multi_rnn_state_structure_is_checked_not_just_counted(m, kernel_calls):
    cell = m.MultiRNNCell([m.BasicLSTMCell(3), m.BasicLSTMCell(3)])
    z = np.zeros((3, 3))
    with rejected(kernel_calls, ValueError, match=r"^initial_state: expected a state with the structure of state_size="
                                         r"\(LSTMStateTuple\(c=3, h=3\), LSTMStateTuple\(c=3, h=3\)\) \(4 arrays\), "
                                         r"got \(array\(3, 3\), array\(3, 3\), array\(3, 3\), array\(3, 3\)\)$"):
        m.dynamic_rnn(cell, X, initial_state=(z, z, z, z))
    flat = m.BasicLSTMCell(3, state_is_tuple=False)
    with rejected(kernel_calls, ValueError, match=r"^initial_state: .*state_size=6 \(1 array\), "
                                         r"got LSTMStateTuple\(array\(3, 3\), array\(3, 3\)\)$"):
        m.dynamic_rnn(flat, X, initial_state=m.LSTMStateTuple(z, z))
    # tuples, lists and LSTMStateTuples are interchangeable when they nest the same way
    m.dynamic_rnn(cell, X, initial_state=[[z, z], m.LSTMStateTuple(z, z)])


@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("dtype,match", [
    (np.int32, r"dtype: expected float32 or float64, got int32"),
    (np.float16, r"dtype: expected float32 or float64, got float16"),
    (np.complex128, r"dtype: expected float32 or float64, got complex128"),
    ("floaty", r"dtype: expected float32 or float64, got 'floaty'"),
])
def test_bad_dtype_argument_every_driver(m, driver, dtype, match, kernel_calls):
    with rejected(kernel_calls, TypeError, match=match):
        drive(m, driver, X, m.BasicRNNCell(3), dtype=dtype)


@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("values,kind", [
    (np.zeros((3, 4, 2), np.int64), r"integer \(int64\); pass dtype=np.float32 \(or np.float64\) to convert it"),
    (np.zeros((3, 4, 2), np.uint8), r"unsigned integer \(uint8\)"),
    (np.zeros((3, 4, 2), np.complex128), r"complex \(complex128\)"),
    (np.zeros((3, 4, 2), object), r"object \(object\)"),
    (np.full((3, 4, 2), "a"), r"string \(<U1\)"),
    (np.zeros((3, 4, 2), bool), r"boolean \(bool\)"),
])
def test_non_float_inputs_every_driver(m, driver, values, kind, kernel_calls):
    """Without dtype= nothing says what to compute in: only float32/float64 inputs (with dtype=, the
    real-valued ones are converted: tests/test_conversions.py)."""
    where = r"inputs\[0\]" if driver.startswith("static") else "inputs"
    with rejected(kernel_calls, TypeError, match=rf"^{where}: expected float32 or float64 values, got {kind}"):
        drive(m, driver, values, m.BasicLSTMCell(3))


@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("driver", DRIVERS)
def test_wrong_rank_and_depth_every_driver(m, driver, kernel_calls):
    static = driver.startswith("static")
    layout = r"\[time, batch, depth\]" if driver == "time_major" else r"\[batch, time, depth\]"
    if static:
        with rejected(kernel_calls, ValueError, match=r"^inputs\[1\]: expected a 2-D array \[batch, depth\], got shape \(3,\)$"):
            drive(m, driver, [np.zeros((3, 2)), np.zeros(3)], m.GRUCell(3))
        with rejected(kernel_calls, ValueError, match=r"^inputs\[0\]: expected depth >= 1 \(the last axis\), got shape \(3, 0\)$"):
            drive(m, driver, [np.zeros((3, 0))], m.GRUCell(3))
        with rejected(kernel_calls, ValueError, match=r"^inputs\[1\]: every step must have the shape of inputs\[0\] "
                                             r"\(3, 2\), got \(4, 2\)$"):
            drive(m, driver, [np.zeros((3, 2)), np.zeros((4, 2))], m.GRUCell(3))
        with rejected(kernel_calls, ValueError, match=r"^inputs: expected a non-empty list of \[batch, depth\] arrays, "
                                             r"got an empty list$"):
            drive(m, driver, [], m.GRUCell(3))
        with rejected(kernel_calls, TypeError, match=r"^inputs: expected a list of \[batch, depth\] arrays \(one per time "
                                            r"step\), got ndarray$"):
            drive(m, driver, X[:, 0], m.GRUCell(3))
    else:
        with rejected(kernel_calls, ValueError, match=rf"^inputs: expected a 3-D array {layout}, got shape \(3, 4\)$"):
            drive(m, driver, X[:, :, 0], m.GRUCell(3))
        with rejected(kernel_calls, ValueError, match=rf"^inputs: expected a 3-D array {layout}, got shape \(1, 3, 4, 2\)$"):
            drive(m, driver, X[None], m.GRUCell(3))
        with rejected(kernel_calls, ValueError, match=rf"^inputs: expected depth >= 1 \(the last axis of {layout}\), "
                                             r"got shape \((3, 4|4, 3), 0\)$"):
            drive(m, driver, X[:, :, :0], m.GRUCell(3))
        with rejected(kernel_calls, ValueError, match=r"^inputs: cannot be converted to an array"):
            drive(m, driver, [[[1.0, 2.0]], [[1.0]]], m.GRUCell(3))
    # a cell reused with another depth or dtype, and a MultiRNNCell whose inner cell was built elsewhere
    cell = m.GRUCell(3)
    drive(m, driver, X, cell)
    name = r"inputs\[0\]" if static else "inputs"
    with rejected(kernel_calls, ValueError, match=rf"^{name}: depth 5 does not match the input depth 2 that GRUCell "
                                         r"'gru_cell' was built for$" if not static else
                       r"^inputs: depth 5 does not match the input depth 2"):
        drive(m, driver, np.zeros((3, 4, 5), np.float32), cell)
    with rejected(kernel_calls, TypeError, match=r"^inputs: dtype float64 does not match the float32 weights of GRUCell "
                                        r"'gru_cell'; pass dtype=float32 or use a new cell$"):
        drive(m, driver, X.astype(np.float64), cell)
    inner = m.BasicLSTMCell(4)
    inner.build(5)
    with rejected(kernel_calls, ValueError, match=r"^cells\[1\] input \(cells\[0\] output\): depth 3 does not match the input "
                                         r"depth 5 that BasicLSTMCell 'basic_lstm_cell' was built for$"):
        drive(m, driver, X, m.MultiRNNCell([m.GRUCell(3), inner]))


@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("value", ["yes", 2, None, 1.0])
def test_time_major_must_be_a_bool(m, value, kernel_calls):
    with rejected(kernel_calls, TypeError, match=rf"^time_major: expected True or False, got {value!r} "
                                        rf"\({type(value).__name__}\)$"):
        m.dynamic_rnn(m.GRUCell(3), X, time_major=value)
    with rejected(kernel_calls, TypeError, match=r"^time_major: expected True or False"):
        m.bidirectional_dynamic_rnn(m.GRUCell(3), m.GRUCell(3), X, time_major=value)


@pytest.mark.parametrize("m", IMPLS)
def test_more_rows_than_the_kernels_take_is_refused_before_copying(m, kernel_calls):
    huge = np.broadcast_to(np.float32(0), (2**16, 2**15 + 1, 1))  # 8 GiB if it were materialized
    with rejected(kernel_calls, ValueError, match=r"^inputs: expected at most 2147483647 rows \(batch \* time\), "
                                         r"got shape \(65536, 32769, 1\)$"):
        m.dynamic_rnn(m.GRUCell(2), huge)


@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("kind", ["BasicRNNCell", "GRUCell", "BasicLSTMCell", "LSTMCell", "MultiRNNCell"])
def test_one_step_call(m, kind, kernel_calls):
    cell = m.MultiRNNCell([m.GRUCell(3), m.GRUCell(3)]) if kind == "MultiRNNCell" else getattr(m, kind)(3)
    good = cell.zero_state(2, np.float32)
    with rejected(kernel_calls, ValueError, match=r"^inputs: expected a 2-D array \[batch, depth\], got shape \(3,\)$"):
        cell(np.zeros(3, np.float32), good)
    with rejected(kernel_calls, ValueError, match=r"^inputs: expected depth >= 1 \(the last axis\), got shape \(2, 0\)$"):
        cell(np.zeros((2, 0), np.float32), good)
    with rejected(kernel_calls, TypeError, match=r"^inputs: expected float32 or float64 values, got integer"):
        cell(np.zeros((2, 3), np.int32), good)
    bad_batch = cell.zero_state(4, np.float32)
    leaf = r"state" if kind in ("BasicRNNCell", "GRUCell") else r"state\[0\] \(leaf 0 of state_size=.*\)"
    with rejected(kernel_calls, ValueError, match=rf"^{leaf}: expected shape \(2, 3\), got \(4, 3\)$"):
        cell(np.zeros((2, 3), np.float32), bad_batch)
    if kind in ("BasicRNNCell", "GRUCell"):
        with rejected(kernel_calls, TypeError, match=r"^state: expected an array of numbers, got None$"):
            cell(np.zeros((2, 3), np.float32), None)
    else:
        with rejected(kernel_calls, ValueError, match=r"^state: expected a state with the structure of state_size=.*, "
                                        r"got NoneType$"):
            cell(np.zeros((2, 3), np.float32), None)
    out, _ = cell(np.zeros((2, 3), np.float32), good)  # built now: depth and dtype are fixed
    with rejected(kernel_calls, ValueError, match=r"^inputs: depth 4 does not match the input depth 3"):
        cell(np.zeros((2, 4), np.float32), good)
    # the weights' dtype is the one the step's inputs are fed to (TF's feed rule): converted, not refused
    assert cell(np.zeros((2, 3)), good)[0].dtype == np.float32
    with rejected(kernel_calls, TypeError, match=r"^inputs: expected real values \(bool, integer or float\) to "
                                                 r"convert to float32, got complex \(complex128\)$"):
        cell(np.zeros((2, 3), complex), good)


@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("make,names", [
    (lambda m: m.BasicRNNCell(3), {"kernel": (5, 3), "bias": (3,)}),
    (lambda m: m.GRUCell(3), {"gates/kernel": (5, 6), "gates/bias": (6,), "candidate/kernel": (5, 3),
                              "candidate/bias": (3,)}),
    (lambda m: m.BasicLSTMCell(3), {"kernel": (5, 12), "bias": (12,)}),
    (lambda m: m.LSTMCell(3, use_peepholes=True, num_proj=2),
     {"kernel": (4, 12), "bias": (12,), "w_f_diag": (3,), "w_i_diag": (3,), "w_o_diag": (3,),
      "projection/kernel": (3, 2)}),
])
def test_set_weights_names_and_shapes(m, make, names, kernel_calls):
    cell = make(m)
    with rejected(kernel_calls, TypeError, match=r"^set_weights: expected a mapping of name -> array, got list$"):
        cell.set_weights([np.zeros(3)])
    with rejected(kernel_calls, ValueError, match=rf"^set_weights: unknown weight name\(s\) \['nope'\] for {type(cell).__name__} "
                                         rf"'{cell.name}'; expected names \["):
        cell.set_weights({"nope": np.zeros(3)})
    good = {k: np.full(s, 0.5, np.float32) for k, s in names.items()}
    for k, shape in names.items():
        bad = dict(good)
        bad[k] = np.zeros(shape[:-1] + (shape[-1] + 1,), np.float32)
        with rejected(kernel_calls, ValueError, match=rf"^set_weights\['{k}'\]: expected "):
            cell.set_weights(bad)
        with rejected(kernel_calls, TypeError, match=rf"^set_weights\['{k}'\]: expected float32 or float64 values, got integer"):
            cell.set_weights({**good, k: np.zeros(shape, np.int64)})
    assert not cell.built  # nothing half-applied by the failures above
    cell.set_weights(good)
    for k, shape in names.items():  # a built cell takes any subset, shapes still exact
        with rejected(kernel_calls, ValueError, match=rf"^set_weights\['{re.escape(k)}'\]: expected shape "
                                             rf"{re.escape(str(shape))}, got "):
            cell.set_weights({k: np.zeros(shape + (1,), np.float32)})
    np.testing.assert_array_equal(cell.weights[next(iter(names))], 0.5)


@pytest.mark.parametrize("m", IMPLS)
def test_constructor_arguments(m, kernel_calls):
    for kind in ("BasicRNNCell", "GRUCell", "BasicLSTMCell", "LSTMCell"):
        for bad in (0, -3):
            with rejected(kernel_calls, ValueError, match=rf"^num_units: expected a positive integer, got {bad}$"):
                getattr(m, kind)(bad)
        with rejected(kernel_calls, TypeError, match=r"^num_units: expected a positive integer, got '3' \(str\)$"):
            getattr(m, kind)("3")
        with rejected(kernel_calls, TypeError, match=r"^num_units: expected a positive integer, got True \(bool\)$"):
            getattr(m, kind)(True)
    with rejected(kernel_calls, ValueError, match=r"^num_proj: expected a positive integer, got 0$"):
        m.LSTMCell(3, num_proj=0)
    with rejected(kernel_calls, ValueError, match=r"^cell_clip: expected a non-negative number, got -1.0$"):
        m.LSTMCell(3, cell_clip=-1)
    with rejected(kernel_calls, ValueError, match=r"^cells: expected a non-empty list of RNN cells, got \[\]$"):
        m.MultiRNNCell([])
    with rejected(kernel_calls, ValueError, match=r"^cells: expected a non-empty list of RNN cells, got GRUCell"):
        m.MultiRNNCell(m.GRUCell(2))
    with rejected(kernel_calls, TypeError, match=r"^cells\[1\]: expected an RNN cell"):
        m.MultiRNNCell([m.GRUCell(2), 3])
    with rejected(kernel_calls, ValueError, match=r"^batch_size: expected a non-negative integer, got -1$"):
        m.GRUCell(2).zero_state(-1)
    with rejected(kernel_calls, TypeError, match=r"^dtype: expected float32 or float64, got int32$"):
        m.GRUCell(2).zero_state(2, np.int32)
    multi = m.MultiRNNCell([m.GRUCell(2), m.GRUCell(3)])
    with rejected(kernel_calls, ValueError, match=r"^set_weights: unknown weight name\(s\) \['foo'\]; expected names starting "
                                         r"with \['cell_0/gru_cell/', 'cell_1/gru_cell/'\]$"):
        multi.set_weights({"foo": np.zeros(2)})


@pytest.mark.parametrize("m", IMPLS)
def test_an_overridden_zero_state_is_checked_and_used(m):
    """RNNCell.zero_state's own zeros are used as they are; a cell that overrides zero_state
    gets its result checked like a caller's initial state, and used when it is right."""
    class Ones(m.BasicLSTMCell):
        def zero_state(self, batch_size, dtype=np.float32):
            return m.LSTMStateTuple(np.ones((batch_size, 3), dtype), np.ones((batch_size, 3), dtype))

    class Wrong(m.BasicLSTMCell):
        def zero_state(self, batch_size, dtype=np.float32):
            return np.zeros((batch_size, 6), dtype)

    x = np.random.default_rng(0).standard_normal((2, 4, 2)).astype(np.float32)
    with pytest.raises(ValueError, match=r"^cell\.zero_state\(\): expected a state with the structure of "
                                         r"state_size=LSTMStateTuple\(c=3, h=3\) \(2 arrays\), got array\(2, 6\)$"):
        m.dynamic_rnn(Wrong(3, seed=0), x)
    ones = np.ones((2, 3), np.float32)
    got = m.dynamic_rnn(Ones(3, seed=0), x)
    exp = m.dynamic_rnn(m.BasicLSTMCell(3, seed=0), x, initial_state=m.LSTMStateTuple(ones, ones))
    assert_close(got, exp, np.float32, "overridden zero_state")  # (a subclass takes the NumPy loop)
    assert m.dynamic_rnn(m.BasicLSTMCell(3, seed=0), x)[1].c.flags.c_contiguous


@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("driver", BIDI)
def test_each_cell_of_a_bidirectional_call_is_named(m, driver):
    good = m.GRUCell(3)
    with pytest.raises(TypeError, match=r"^cell_bw: expected an RNN cell \(state_size, output_size, zero_state, "
                                        r"__call__\), got object without"):
        drive(m, driver, X, good, bw=object())
    with pytest.raises(TypeError, match=r"^cell_fw: expected an RNN cell object, got the class GRUCell itself"):
        drive(m, driver, X, m.GRUCell, bw=good)

