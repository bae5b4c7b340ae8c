"""Fuzzing: awkward inputs on every driver, compiled vs reference; bad inputs never crash.

Extends ``test_properties.py`` (shapes, lengths, cell options and dtypes) with
what real callers pass: Python lists, Fortran/strided/reversed/read-only/
misaligned arrays, lengths of any integer dtype, NaN rows, a ``dtype``
argument that differs from the inputs', and the static drivers and one-step
call.  A second property feeds arbitrary (often wrong) shapes for inputs,
lengths and state: the compiled path must then raise exactly the reference's
ValueError/TypeError -- or give its answer.
"""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastrnn
import fastrnn.reference as ref
from fastrnn._structure import flatten, map_structure

from helpers import DRIVERS, assert_close, drive, layout, make_pair, random_state, specs


STEP = "one-step"
LAYOUT_NAMES = ["C", "F", "strided", "reversed", "readonly", "misaligned", "list"]  # helpers.LAYOUTS
LENGTH_KINDS = ["none", "int8", "uint8", "int16", "uint32", "int64", "uint64", "list", "float_integral"]


def lengths_as(lens, kind):
    if kind == "none":
        return None
    if kind == "list":
        return [int(v) for v in lens]
    if kind == "float_integral":
        return np.asarray(lens, np.float64)
    return np.asarray(lens, kind)


@st.composite
def awkward(draw):
    batch = draw(st.integers(0, 11))
    time = draw(st.integers(1, 8))
    return {
        "spec": draw(specs()), "batch": batch, "time": time, "depth": draw(st.integers(1, 7)),
        "lengths": draw(st.lists(st.integers(0, time), min_size=batch, max_size=batch)),
        "lengths_kind": draw(st.sampled_from(LENGTH_KINDS)),
        "dtype": draw(st.sampled_from([np.float32, np.float64])),
        "given_dtype": draw(st.sampled_from([None, np.float32, np.float64])),
        "driver": draw(st.sampled_from(DRIVERS + [STEP])),
        "layout": draw(st.sampled_from(LAYOUT_NAMES)),
        "state_layout": draw(st.sampled_from(LAYOUT_NAMES)),
        "with_state": draw(st.booleans()),
        "nan_row": draw(st.one_of(st.none(), st.integers(0, max(batch - 1, 0)))),
        "seed": draw(st.integers(0, 2**31)),
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(awkward())
def test_awkward_inputs_match_the_reference(p):
    rng = np.random.default_rng(p["seed"])
    if "list" in (p["layout"], p["state_layout"]):  # lists convert to float64 and cannot hold an empty batch
        if p["driver"] == STEP and p["layout"] == "list":
            p["dtype"], p["given_dtype"] = np.float64, None
        p["batch"] = max(p["batch"], 1)
        p["lengths"] = (p["lengths"] + [p["time"]])[:p["batch"]]
        p["nan_row"] = None if p["nan_row"] is None else min(p["nan_row"], p["batch"] - 1)
        p["given_dtype"] = p["given_dtype"] or p["dtype"]
    compute = np.dtype(p["given_dtype"] or p["dtype"])
    cell, twin = make_pair(p["spec"], p["depth"], compute, rng)
    bw, bw_twin = make_pair({"type": "GRUCell", "num_units": 3}, p["depth"], compute, rng, seed=5)
    x = rng.standard_normal((p["batch"], p["time"], p["depth"])).astype(p["dtype"])
    if p["nan_row"] is not None and p["batch"]:
        x[p["nan_row"], rng.integers(0, p["time"])] = np.nan
    init = random_state(cell, p["batch"], p["dtype"], rng) if p["with_state"] or p["driver"] == STEP else None
    lens = lengths_as(p["lengths"], p["lengths_kind"])
    if p["driver"] == STEP:
        x0 = x[:, 0].astype(compute)  # a cell call has no dtype argument: the inputs' dtype is the weights'
        got = cell(layout(x0, p["layout"]), map_structure(lambda a: layout(a, p["state_layout"]), init))
        exp = twin(x0, init)
    else:
        major = p["driver"] == "time_major" or p["driver"].startswith("static")
        given_x = x if p["layout"] != "list" else (np.swapaxes(x, 0, 1) if major else x).tolist()
        if p["layout"] not in ("list", "C"):
            given_x = layout(x, p["layout"])
        given_state = None if init is None else map_structure(lambda a: layout(a, p["state_layout"]), init)
        got = drive(fastrnn, p["driver"], given_x, cell, bw, lens, given_state, None, p["given_dtype"])
        exp = drive(ref, p["driver"], x, twin, bw_twin, lens, init, None, p["given_dtype"])
    assert_close(got, exp, compute, str(p))
    if p["nan_row"] is not None and p["batch"] > 1:  # the NaN row never reaches the others
        others = np.arange(p["batch"]) != p["nan_row"]
        finals = got[1] if p["driver"] != "static_bidirectional" else got[1:]
        for a in flatten(finals):
            assert np.isfinite(np.asarray(a)[others]).all(), str(p)


SHAPES = st.lists(st.integers(0, 4), min_size=0, max_size=4).map(tuple)


@st.composite
def maybe_wrong(draw):
    batch, time, depth = draw(st.integers(0, 4)), draw(st.integers(0, 4)), draw(st.integers(0, 4))
    return {
        "spec": draw(specs()),
        "x_shape": draw(st.one_of(st.just((batch, time, depth)), SHAPES)),
        "x_dtype": draw(st.sampled_from([np.float32, np.float64, np.int32, np.complex64, np.bool_, np.float16])),
        "lengths": draw(st.one_of(st.none(), st.lists(st.integers(-1, 5), min_size=0, max_size=5),
                                  st.lists(st.floats(-1, 5), min_size=batch, max_size=batch))),
        "state_shape": draw(st.one_of(st.none(), st.just("ok"), SHAPES)),
        "dtype": draw(st.sampled_from([None, np.float32, np.float64, np.int64, "float16"])),
        "driver": draw(st.sampled_from(DRIVERS)),
        "seed": draw(st.integers(0, 2**31)),
    }


def _outcome(fn):
    try:
        return "ok", fn()
    except (ValueError, TypeError) as e:
        return type(e).__name__, str(e)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(maybe_wrong())
def test_bad_input_fails_like_the_reference(p):
    """Arbitrary shapes and dtypes: the compiled path raises what the reference raises, or agrees with it."""
    rng = np.random.default_rng(p["seed"])
    cell = fastrnn_cell = make_pair(p["spec"], 2, np.float64, rng)[0]
    x = rng.standard_normal(p["x_shape"]).astype(p["x_dtype"]) if p["x_shape"] else np.float64(1.0)
    batch = p["x_shape"][1 if p["driver"] == "time_major" else 0] if len(p["x_shape"]) >= 2 else 1
    if p["state_shape"] is None:
        state = None
    elif p["state_shape"] == "ok":
        state = random_state(cell, batch, np.float64, rng)
    else:
        state = map_structure(lambda s: rng.standard_normal(p["state_shape"]), cell.state_size)
    from helpers import twin
    ref_cell = twin(fastrnn_cell)
    got = _outcome(lambda: drive(fastrnn, p["driver"], x, fastrnn_cell, None, p["lengths"], state, None, p["dtype"]))
    exp = _outcome(lambda: drive(ref, p["driver"], x, ref_cell, None, p["lengths"], state, None, p["dtype"]))
    assert got[0] == exp[0], f"{p}: fastrnn {got} vs reference {exp}"
    if got[0] == "ok":
        dt = np.dtype(p["dtype"] or p["x_dtype"])
        assert_close(got[1], exp[1], dt, str(p))
    else:
        assert got[1] == exp[1], p
