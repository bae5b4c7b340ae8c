"""TensorFlow's feed rule, one rule for every array a run is fed (issue 13, item 3).

With an explicit dtype (a driver's ``dtype=``; in a one-step call the cell's own dtype) any
real-valued array -- bool, integer, float16/32/64 -- is converted to it, as TF converts what is
fed to a placeholder; without one, inputs must be float32/float64 and the error says to pass
``dtype``.  Initial states are fed to the dtype the run computes in.  Complex, object and
string arrays are refused either way.  The caller's arrays are never modified.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastrnn
import fastrnn.reference as ref

from helpers import BIDI, DRIVERS, IMPLS, assert_identical, drive, make_pair, random_state

# the tutorials' batch: integers, fed to a float32 placeholder
X_BATCH = np.array([[[0, 1, 2], [9, 8, 7]], [[3, 4, 5], [5, 1, 9]], [[6, 7, 8], [6, 5, 4]], [[9, 0, 1], [3, 2, 1]]])
LENGTHS = np.array([2, 1, 2, 2])
REAL = [np.int64, np.int32, np.uint8, np.bool_, np.float16, np.float32, np.float64]
NOT_REAL = [(np.complex128, r"complex \(complex128\)"), (object, r"object \(object\)"), (str, r"string \(<U")]


def values_of(kind, rng, shape):
    if kind is np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    if np.dtype(kind).kind == "u":
        return rng.integers(0, 9, shape).astype(kind)
    if np.dtype(kind).kind == "i":
        return rng.integers(-9, 9, shape).astype(kind)
    return rng.uniform(-3, 3, shape).astype(kind)


def pair_of(m, spec, depth, dtype, rng):
    fr_cell, ref_cell = make_pair(spec, depth, dtype, rng)
    return fr_cell if m is fastrnn else ref_cell


LSTM = {"type": "LSTMCell", "num_units": 4, "kwargs": {"use_peepholes": True, "num_proj": 3}}


def test_the_tutorial_call_runs():
    """The issue's call: int64 inputs fed to float32 (was: 'TypeError: inputs: expected float32 ...')."""
    cell = fastrnn.BasicRNNCell(5, seed=0)
    outputs, state = fastrnn.dynamic_rnn(cell, X_BATCH, sequence_length=LENGTHS, dtype=np.float32)
    assert outputs.dtype == state.dtype == np.float32 and outputs.shape == (4, 2, 5)
    assert_identical((outputs, state), fastrnn.dynamic_rnn(cell, X_BATCH.astype(np.float32), LENGTHS))


@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("kind", REAL, ids=lambda k: np.dtype(k).name)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["to_float32", "to_float64"])
def test_real_inputs_are_converted_to_an_explicit_dtype(m, driver, kind, dtype, rng):
    cell = pair_of(m, LSTM, 3, dtype, rng)
    x = values_of(kind, rng, (4, 5, 3))
    before = x.copy()
    got = drive(m, driver, x, cell, lengths=[5, 0, 3, 5], dtype=dtype)
    want = drive(m, driver, x.astype(dtype), cell, lengths=[5, 0, 3, 5])
    assert_identical(got, want, f"{np.dtype(kind).name} inputs fed to {np.dtype(dtype).name}")
    np.testing.assert_array_equal(x, before)
    assert x.dtype == before.dtype


@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("kind", [np.int64, np.uint8, np.bool_, np.float16], ids=lambda k: np.dtype(k).name)
def test_without_dtype_only_float32_and_float64_inputs(m, driver, kind, rng):
    where = r"inputs\[0\]" if driver.startswith("static") else "inputs"
    what = r"float16" if kind is np.float16 else rf".* \({np.dtype(kind).name}\)"
    with pytest.raises(TypeError, match=rf"^{where}: expected float32 or float64 values, got {what}; "
                                        r"pass dtype=np.float32 \(or np.float64\) to convert it"):
        drive(m, driver, values_of(kind, rng, (4, 5, 3)), m.GRUCell(3))


@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("kind,what", NOT_REAL, ids=["complex", "object", "string"])
def test_values_that_are_not_real_are_refused_even_with_dtype(m, driver, kind, what):
    where = r"inputs\[0\]" if driver.startswith("static") else "inputs"
    x = np.zeros((4, 5, 3)).astype(kind)
    with pytest.raises(TypeError, match=rf"^{where}: expected real values \(bool, integer or float\) to convert to "
                                        rf"float32, got {what}"):
        drive(m, driver, x, m.GRUCell(3), dtype=np.float32)


@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("driver", DRIVERS)
def test_the_initial_state_is_fed_to_the_dtype_the_run_computes_in(m, driver, rng):
    """float32 state + float64 inputs computes in float64 (the state converted, as TF feeds a state
    placeholder of the run's dtype); dtype=float32 converts float64 inputs and states down; with an
    explicit dtype an integer state is converted too."""
    cell = pair_of(m, LSTM, 3, np.float64, rng)
    x = rng.standard_normal((4, 5, 3))
    st32 = random_state(cell, 4, np.float32, rng)
    bw = st32 if driver in BIDI else None
    got = drive(m, driver, x, cell, state=st32, state_bw=bw)
    st64 = random_state(cell, 4, np.float64, rng)
    for leaf_got, leaf_want in zip(st32, st64):  # the same values, in float64
        leaf_want[...] = leaf_got
    want = drive(m, driver, x, cell, state=st64, state_bw=st64 if bw is not None else None)
    assert_identical(got, want, "float32 state, float64 run")

    cell32 = pair_of(m, LSTM, 3, np.float32, rng)
    ints = fastrnn.LSTMStateTuple(rng.integers(-2, 3, (4, 4)), rng.integers(-2, 3, (4, 3)))
    got = drive(m, driver, x, cell32, state=ints, state_bw=ints if driver in BIDI else None, dtype=np.float32)
    as32 = fastrnn.LSTMStateTuple(*(a.astype(np.float32) for a in ints))
    want = drive(m, driver, x.astype(np.float32), cell32, state=as32, state_bw=as32 if driver in BIDI else None)
    assert_identical(got, want, "integer state fed to float32")

    name = "initial_state_fw" if driver in BIDI else "initial_state"
    with pytest.raises(TypeError, match=rf"^{name}\[0\] \(leaf 0 of state_size=LSTMStateTuple\(c=4, h=3\)\): "
                                        r"expected float32 or float64 values, got integer \(int64\); pass dtype="):
        drive(m, driver, x, cell, state=ints)
    with pytest.raises(TypeError, match=rf"^{name}\[1\] .*: expected real values \(bool, integer or float\) to "
                                        r"convert to float32, got complex"):
        drive(m, driver, x, cell32, state=(ints.c, ints.h.astype(complex)), dtype=np.float32)


@pytest.mark.parametrize("m", IMPLS)
def test_a_one_step_call_feeds_the_cells_dtype(m, rng):
    """cell(x, state) has no dtype argument: a cell's dtype (its weights', or the one it was
    constructed with) is the explicit dtype; a cell without one takes float32/float64 as they are."""
    cell = pair_of(m, LSTM, 3, np.float32, rng)
    state = random_state(cell, 4, np.float32, rng)
    for kind in REAL:
        x = values_of(kind, rng, (4, 3))
        got = cell(x, state)
        assert got[0].dtype == np.float32
        assert_identical(got, cell(x.astype(np.float32), state), f"{np.dtype(kind).name} inputs, float32 cell")
    int_state = fastrnn.LSTMStateTuple(np.ones((4, 4), np.int64), np.zeros((4, 3), bool))
    float_state = fastrnn.LSTMStateTuple(np.ones((4, 4), np.float32), np.zeros((4, 3), np.float32))
    assert_identical(cell(np.ones((4, 3), np.int8), int_state), cell(np.ones((4, 3), np.float32), float_state))
    declared = m.GRUCell(3, dtype=np.float64, seed=0)  # not built yet, but its dtype is known
    out, _ = declared(X_BATCH[:, 0], np.zeros((4, 3)))
    assert out.dtype == np.float64 and declared.dtype == np.float64
    stack = m.MultiRNNCell([m.GRUCell(3, dtype=np.float64, seed=0), m.BasicRNNCell(2, seed=1)])
    out, _ = stack(X_BATCH[:, 0], stack.zero_state(4, np.float64))  # fed to the first layer's dtype
    assert out.dtype == np.float64
    fresh = m.BasicLSTMCell(3)
    with pytest.raises(TypeError, match=r"^inputs: expected float32 or float64 values, got integer \(int64\); a "
                                        r"one-step call converts its inputs to the cell's dtype, which this cell does "
                                        r"not have yet: build it first"):
        fresh(X_BATCH[:, 0], fresh.zero_state(4, np.float32))
    assert not fresh.built


@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("call", ["dynamic", "static", "bidirectional", "step"])
@pytest.mark.parametrize("value,what", [(None, "None"), ({"x": 1}, "dict"), (fastrnn.GRUCell(2), "GRUCell")])
def test_inputs_that_are_no_array_are_named(m, call, value, what):
    """inputs=None used to say 'got object (object)'."""
    cell = m.GRUCell(3)
    if call == "dynamic":
        fn = lambda: m.dynamic_rnn(cell, value, dtype=np.float32)  # noqa: E731
    elif call == "bidirectional":
        fn = lambda: m.bidirectional_dynamic_rnn(cell, cell, value)  # noqa: E731
    elif call == "static":
        fn = lambda: m.static_rnn(cell, [np.zeros((2, 3)), value])  # noqa: E731
    else:
        fn = lambda: cell(value, np.zeros((2, 3), np.float32))  # noqa: E731
    name = r"inputs\[1\]" if call == "static" else "inputs"
    with pytest.raises(TypeError, match=rf"^{name}: expected an array of numbers, got {what}$"):
        fn()


@pytest.mark.parametrize("m", IMPLS)
def test_static_lists_of_integers(m, rng):
    """The tutorial's static_rnn(cell, [x0, x1], dtype=tf.float32) with integer batches."""
    cell = pair_of(m, {"type": "BasicRNNCell", "num_units": 5}, 3, np.float32, rng)
    x0 = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 0, 1]])
    x1 = np.array([[9, 8, 7], [0, 0, 0], [6, 5, 4], [3, 2, 1]])
    got = m.static_rnn(cell, [x0, x1], dtype=np.float32)
    assert_identical(got, m.static_rnn(cell, [x0.astype(np.float32), x1.astype(np.float32)]))
    assert_identical(got[1], got[0][1], "a BasicRNNCell's state is its last output")


def test_the_oracle_and_the_product_convert_alike(rng):
    cell, twin = make_pair(LSTM, 3, np.float64, rng)
    x = values_of(np.int16, rng, (3, 4, 3))
    a = fastrnn.dynamic_rnn(cell, x, [4, 2, 0], dtype=np.float64)
    b = ref.dynamic_rnn(twin, x, [4, 2, 0], dtype=np.float64)
    for got, want in zip(a[1], b[1]):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
