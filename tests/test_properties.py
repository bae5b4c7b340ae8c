"""Property-based: random cells, sizes, lengths, layouts and dtypes, compiled vs reference."""
from __future__ import annotations

import contextlib
import os

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import fastrnn
import fastrnn.reference as ref

from cases import layout, make_pair, random_state
from conftest import assert_close

ACTS = st.sampled_from(["tanh", "relu", "sigmoid", "linear"])


@st.composite
def layer_specs(draw):
    kind = draw(st.sampled_from(["BasicRNNCell", "GRUCell", "BasicLSTMCell", "LSTMCell"]))
    units = draw(st.integers(1, 12))
    kw = {"activation": draw(ACTS)}
    if kind == "GRUCell":
        kw["reset_after"] = draw(st.booleans())
    if kind in ("BasicLSTMCell", "LSTMCell"):
        kw["forget_bias"] = draw(st.sampled_from([0.0, 1.0, -0.5]))
        kw["state_is_tuple"] = draw(st.booleans())
    if kind == "LSTMCell":
        kw["use_peepholes"] = draw(st.booleans())
        kw["cell_clip"] = draw(st.sampled_from([None, 0.2, 3.0]))
        if draw(st.booleans()):
            kw["num_proj"] = draw(st.integers(1, 8))
            kw["proj_clip"] = draw(st.sampled_from([None, 0.1, 2.0]))
    return {"type": kind, "num_units": units, "kwargs": kw}


@st.composite
def specs(draw):
    layers = draw(st.lists(layer_specs(), min_size=1, max_size=3))
    if len(layers) == 1 and draw(st.booleans()):
        return layers[0]
    flat = all(not s["kwargs"].get("state_is_tuple", False) for s in layers) and draw(st.booleans())
    return {"type": "MultiRNNCell", "cells": layers, "kwargs": {"state_is_tuple": not flat}}


@st.composite
def problems(draw):
    batch = draw(st.integers(0, 9))
    time = draw(st.integers(0, 9))
    depth = draw(st.integers(1, 10))
    lens = draw(st.one_of(st.none(), st.lists(st.integers(0, time), min_size=batch, max_size=batch)))
    return {
        "spec": draw(specs()), "batch": batch, "time": time, "depth": depth, "lengths": lens,
        "dtype": draw(st.sampled_from([np.float32, np.float64])),
        "time_major": draw(st.booleans()), "layout": draw(st.sampled_from(["C", "F", "strided", "readonly"])),
        "with_state": draw(st.booleans()), "driver": draw(st.sampled_from(["dynamic", "bidirectional"])),
        "seed": draw(st.integers(0, 2**31)),
        "xproj": draw(st.sampled_from(["auto", "hoisted", "fused"])),  # FASTRNN_XPROJ
    }


@contextlib.contextmanager
def xproj_mode(mode):
    """FASTRNN_XPROJ=mode for the block ("auto": unset, the kernels choose by batch size)."""
    old = os.environ.pop("FASTRNN_XPROJ", None)
    if mode != "auto":
        os.environ["FASTRNN_XPROJ"] = mode
    try:
        yield
    finally:
        os.environ.pop("FASTRNN_XPROJ", None)
        if old is not None:
            os.environ["FASTRNN_XPROJ"] = old


def _run(module, p, cell, x, init):
    """The problem's driver from ``module`` (fastrnn or fastrnn.reference)."""
    if p["driver"] == "dynamic":
        return module.dynamic_rnn(cell, x, p["lengths"], init, time_major=p["time_major"])
    return module.bidirectional_dynamic_rnn(cell, cell, x, p["lengths"], init, init,
                                            time_major=p["time_major"])


@settings(max_examples=120, deadline=None)
@given(problems())
def test_compiled_matches_reference(p):
    rng = np.random.default_rng(p["seed"])
    dtype = p["dtype"]
    cell, ref_cell = make_pair(p["spec"], p["depth"], dtype, rng)
    shape = (p["time"], p["batch"], p["depth"]) if p["time_major"] else (p["batch"], p["time"], p["depth"])
    x = rng.standard_normal(shape).astype(dtype)
    x_in = layout(x, p["layout"], rng)
    init = random_state(cell, p["batch"], dtype, rng) if p["with_state"] else None
    with xproj_mode(p["xproj"]):
        got = _run(fastrnn, p, cell, x_in, init)
    exp = _run(ref, p, ref_cell, x, init)
    assert_close(got, exp, dtype, str(p))
    np.testing.assert_array_equal(x_in, x)
