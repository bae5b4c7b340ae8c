"""Property-based: random cells, sizes, lengths, layouts and dtypes, compiled vs reference."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import fastrnn
import fastrnn.reference as ref
from fastrnn import _options

from helpers import assert_close, layout, make_pair, random_state, specs


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
        "xproj": draw(st.sampled_from(["auto", "hoisted", "fused"])),  # the input projection forced
    }


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
    x_in = layout(x, p["layout"])
    init = random_state(cell, p["batch"], dtype, rng) if p["with_state"] else None
    with _options.override(xproj=p["xproj"]):
        got = _run(fastrnn, p, cell, x_in, init)
    exp = _run(ref, p, ref_cell, x, init)
    assert_close(got, exp, dtype, str(p))
    np.testing.assert_array_equal(x_in, x)
