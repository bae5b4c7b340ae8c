"""Awkward but valid input works and is right; nothing the caller owns is modified or aliased.

The compiled path is compared with the reference (``fastrnn.reference``) on
Python lists, odd memory layouts (Fortran, strided, reversed, read-only,
misaligned), every integer dtype for lengths, all-zero lengths, empty batch and
time axes, a very large batch, and NaN/inf values.  Then every public function
of both modules is called with read-only arguments and its results are checked
for aliasing of any input, state or weight array.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastrnn
import fastrnn.reference as ref
from fastrnn import _options
from fastrnn._structure import flatten, map_structure

from helpers import CONFIGS, DRIVERS, DTYPES, IMPLS, LAYOUTS, assert_close, drive, make_pair, random_state, readonly


CELLS = ["rnn_tanh", "gru_tanh", "basic_lstm_fb_flat", "lstm_proj_clip_all", "multi", "multi_flat"]


def both(spec, depth, dtype, rng):
    """A compiled cell with random weights, its reference twin, and a second pair for backward runs."""
    cell, twin = make_pair(CONFIGS[spec], depth, dtype, rng)
    bw, bw_twin = make_pair(CONFIGS["lstm_peep"], depth, dtype, rng, seed=7)
    return (cell, bw), (twin, bw_twin)


KINDS = [k for k in LAYOUTS if k != "C"] + ["broadcast"]  # broadcast: a zero-stride view, built below


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("driver", DRIVERS)
def test_layouts_give_the_reference_answer(driver, kind, dtype, rng):
    (cell, bw), (twin, bw_twin) = both("multi", 4, dtype, rng)
    x = rng.standard_normal((5, 6, 4)).astype(dtype)
    if kind == "broadcast":
        x = np.broadcast_to(x[:, :1], x.shape).copy()
        given = np.broadcast_to(x[:, :1], x.shape)
    else:
        given = LAYOUTS[kind](x)
    lens = [6, 0, 3, 6, 1]
    state = random_state(cell, 5, dtype, rng)
    if kind == "list":  # drive() only re-lays-out arrays: give lists in the driver's own layout
        lens, state_in = list(lens), map_structure(lambda a: a.tolist(), state)
        if driver == "time_major" or driver.startswith("static"):
            given = np.swapaxes(x, 0, 1).tolist()
    else:
        state_in = map_structure(LAYOUTS[kind] if kind != "broadcast" else np.asfortranarray, state)
    got = drive(fastrnn, driver, given, cell, bw, lens, state_in, None, dtype)
    exp = drive(ref, driver, x, twin, bw_twin, lens, state, None)
    assert_close(got, exp, dtype, f"{driver}/{kind}")


@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("lens_dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
                                        np.uint64, "list", "tuple", "float_integral", "readonly", "strided"])
def test_any_integer_lengths(m, lens_dtype, rng):
    cell = m.BasicLSTMCell(3, seed=1)
    x = rng.standard_normal((4, 5, 2))
    base = [5, 0, 2, 4]
    expected = m.dynamic_rnn(cell, x, np.array(base, np.int64))
    if lens_dtype == "list":
        lens = list(base)
    elif lens_dtype == "tuple":
        lens = tuple(np.int32(v) for v in base)
    elif lens_dtype == "float_integral":
        lens = np.array(base, np.float32)
    elif lens_dtype == "readonly":
        lens = readonly(np.array(base))
    elif lens_dtype == "strided":
        lens = np.repeat(np.array(base, np.int16), 3)[::3]
    else:
        lens = np.array(base, lens_dtype)
    got = m.dynamic_rnn(cell, x, lens)
    assert_close(got, expected, np.float64, str(lens_dtype))


@pytest.mark.parametrize("spec", CELLS)
@pytest.mark.parametrize("driver", DRIVERS)
def test_all_zero_lengths_copy_the_state_through(driver, spec, rng):
    (cell, bw), _ = both(spec, 3, np.float64, rng)
    x = rng.standard_normal((4, 5, 3))
    init = random_state(cell, 4, np.float64, rng)
    got = drive(fastrnn, driver, x, cell, bw, np.zeros(4, np.uint8), init)
    outputs = [a for a in flatten(got[0])] if driver != "static_bidirectional" else got[0]
    assert all(not np.asarray(o).any() for o in outputs), "outputs past a row's length must be zero"
    final = got[1][0] if driver == "bidirectional" else got[1]
    for a, e in zip(flatten(final), flatten(init)):
        np.testing.assert_array_equal(a, e)


@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("batch,time", [(0, 4), (3, 0), (0, 0)])
def test_empty_batch_or_time(m, driver, batch, time):
    cell = m.MultiRNNCell([m.BasicLSTMCell(3, seed=1), m.GRUCell(2, seed=2)])
    x = np.zeros((batch, time, 2), np.float32)
    if driver.startswith("static") and time == 0:
        with pytest.raises(ValueError, match=r"^inputs: expected a non-empty list"):
            drive(m, driver, x, cell)  # TF's static_rnn needs at least one step too
        return
    init = map_structure(lambda a: a + 0.5, cell.zero_state(batch, np.float32))
    out, st = drive(m, driver, x, cell, None, np.zeros(batch, np.int32), init)[:2]
    if driver in ("dynamic", "time_major"):
        assert out.shape == ((batch, time, 2) if driver == "dynamic" else (time, batch, 2))
        assert out.dtype == np.float32
        for a in flatten(st):
            assert a.shape[0] == batch and (a == 0.5).all()
    else:
        assert len(out) == (2 if driver == "bidirectional" else time)


@pytest.mark.parametrize("spec", ["gru_tanh", "lstm_proj_clip_all", "rnn_relu"])
def test_very_large_batch(spec, rng):
    (cell, _), (twin, _) = both(spec, 3, np.float32, rng)
    batch = 60_000
    x = rng.standard_normal((batch, 3, 3)).astype(np.float32)
    lens = rng.integers(0, 4, batch)
    assert_close(fastrnn.dynamic_rnn(cell, x, lens), ref.dynamic_rnn(twin, x, lens), np.float32, spec)


# ---- NaN / inf: IEEE arithmetic, and a bad row never reaches another row ----

NAN_DRIVERS = ["dynamic", "time_major", "bidirectional"]


@pytest.mark.parametrize("gemm", ["packed", "blas", "portable"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", CELLS + ["lstm_peep", "gru_relu", "rnn_linear"])
@pytest.mark.parametrize("driver", NAN_DRIVERS)
def test_nan_and_inf_stay_in_their_row(driver, spec, dtype, gemm, rng):
    (cell, bw), (twin, bw_twin) = both(spec, 3, dtype, rng)
    batch, time = 19, 6  # more rows than one SIMD/packed block, so bad rows share blocks with good ones
    x = rng.standard_normal((batch, time, 3)).astype(dtype)
    init = random_state(cell, batch, dtype, rng)
    lens = rng.integers(1, time + 1, batch)
    lens[[4, 11]] = [6, 3]
    bad = x.copy()
    bad[4, 2, 1] = np.nan            # NaN input in row 4
    bad[11, 3:] = np.inf              # inf past row 11's length (3): must change nothing
    bad[11, 3:, 0] = np.nan
    init_bad = map_structure(lambda a: a.copy(), init)
    flatten(init_bad)[0][7, 0] = np.nan  # NaN state in row 7
    with _options.override(gemm=gemm):
        got = drive(fastrnn, driver, bad, cell, bw, lens, init_bad)
    exp = drive(ref, driver, x, twin, bw_twin, lens, init)   # clean inputs, same answer for good rows
    tainted = [4, 7]
    keep = np.setdiff1d(np.arange(batch), tainted)
    out_axis = 1 if driver == "time_major" else 0
    for a, e in zip(flatten(got[0]), flatten(exp[0])):
        a, e = np.take(a, keep, axis=out_axis), np.take(e, keep, axis=out_axis)
        assert np.isfinite(a).all(), f"NaN/inf leaked into the outputs of other rows ({driver}, {spec})"
        assert_close(a, e, dtype, "outputs of clean rows")
    for a, e in zip(flatten(got[1]), flatten(exp[1])):
        assert np.isfinite(a[keep]).all(), f"NaN/inf leaked into the final state of other rows ({driver}, {spec})"
        assert_close(a[keep], e[keep], dtype, "final state of clean rows")
    row4 = np.take(flatten(got[0])[0], 4, axis=out_axis)
    assert np.isnan(row4).any(), "a NaN input must show up in its own row (IEEE arithmetic)"


def test_inf_weights_and_clip_values_do_not_crash(rng):
    cell = fastrnn.LSTMCell(4, cell_clip=float("inf"), num_proj=2, proj_clip=0.0, forget_bias=float("inf"), seed=3)
    x = rng.standard_normal((3, 4, 2))
    out, st = fastrnn.dynamic_rnn(cell, x)
    twin = ref.LSTMCell(4, cell_clip=float("inf"), num_proj=2, proj_clip=0.0, forget_bias=float("inf"), seed=3)
    assert_close((out, st), ref.dynamic_rnn(twin, x), np.float64, "inf options")
    w = cell.weights
    w["bias"][0] = np.inf
    cell.set_weights(w)
    out, _ = fastrnn.dynamic_rnn(cell, x)  # IEEE arithmetic all the way, no exception, no crash
    assert out.shape == (3, 4, 2)


# ---- nothing the caller owns is modified, nothing returned aliases it ----

def _frozen(tree):
    """Read-only copies of every array in ``tree`` (and pristine copies to compare with)."""
    ro = map_structure(lambda a: readonly(np.array(a)), tree)
    return ro, map_structure(np.copy, ro)


def _all_arrays(obj):
    if isinstance(obj, dict):
        return [a for v in obj.values() for a in _all_arrays(v)]
    if isinstance(obj, (list, tuple)):
        return [a for v in obj for a in _all_arrays(v)]
    return [obj] if isinstance(obj, np.ndarray) else []


def _cell_weights(cell):
    """The cell's own weight arrays (inside, not the copies ``weights`` hands out)."""
    layers = cell.cells if hasattr(cell, "cells") else [cell]
    return [w for c in layers for w in (c._weights or {}).values()]


def _check_call(label, fn, owned, cell):
    """Call ``fn``; the owned arrays keep their values, no result aliases them or the weights."""
    owned_arrays = _all_arrays(owned)
    before = [a.copy() for a in owned_arrays]
    weights = _cell_weights(cell)
    weights_before = [w.copy() for w in weights]
    for w in weights:  # a write into the weights would now raise instead of passing silently
        w.setflags(write=False)
    result = fn()
    for a, b in zip(owned_arrays, before):
        np.testing.assert_array_equal(a, b, err_msg=f"{label}: modified an argument")
    for w, b in zip(weights, weights_before):
        np.testing.assert_array_equal(w, b, err_msg=f"{label}: modified the cell's weights")
    for r in _all_arrays(result):
        for a in owned_arrays + _cell_weights(cell):
            assert not np.shares_memory(r, a), f"{label}: a returned array aliases an argument or weight"
    return result


@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("spec", CELLS + ["lstm_peep", "basic_lstm"])
@pytest.mark.parametrize("time", [5, 0])
def test_no_public_function_modifies_or_aliases_its_arguments(m, spec, time, rng):
    (cell, bw), (twin, bw_twin) = both(spec, 3, np.float64, rng)
    if m is ref:
        cell, bw = twin, bw_twin
    batch = 4
    x, _ = _frozen(rng.standard_normal((batch, time, 3)))
    steps = [readonly(np.array(s)) for s in np.swapaxes(x, 0, 1)]
    lens = readonly(np.array([time, 0, time // 2, 1 if time else 0]))
    init, _ = _frozen(random_state(cell, batch, np.float64, rng))
    init_bw, _ = _frozen(random_state(bw, batch, np.float64, rng))
    owned = [x, steps, lens, init, init_bw]
    calls = {
        "dynamic_rnn": lambda: m.dynamic_rnn(cell, x, lens, init),
        "dynamic_rnn time_major": lambda: m.dynamic_rnn(cell, np.swapaxes(x, 0, 1), lens, init, time_major=True),
        "dynamic_rnn no length": lambda: m.dynamic_rnn(cell, x, None, init),
        "bidirectional_dynamic_rnn": lambda: m.bidirectional_dynamic_rnn(cell, bw, x, lens, init, init_bw),
        "zero_state": lambda: cell.zero_state(batch, np.float64),
        "weights": lambda: cell.weights,
    }
    if time:
        calls.update({
            "static_rnn": lambda: m.static_rnn(cell, steps, init, sequence_length=lens),
            "static_bidirectional_rnn": lambda: m.static_bidirectional_rnn(cell, bw, steps, init, init_bw,
                                                                           sequence_length=lens),
            "cell.__call__": lambda: cell(steps[0], init),
        })
    for label, fn in calls.items():
        _check_call(f"{m.__name__}.{label} ({spec})", fn, owned, cell)
    # set_weights copies what it is given; weights hands out copies
    given = {k: readonly(v) for k, v in cell.weights.items()}
    pristine = {k: v.copy() for k, v in given.items()}
    _check_call("set_weights", lambda: cell.set_weights(given), [given], cell)
    for a in _cell_weights(cell):
        assert not any(np.shares_memory(a, g) for g in given.values()), "set_weights kept the caller's array"
    handed = cell.weights
    for a in handed.values():
        a[...] = 7.0
    for k, v in cell.weights.items():
        np.testing.assert_array_equal(v, pristine[k], err_msg="writing to cell.weights changed the cell")
