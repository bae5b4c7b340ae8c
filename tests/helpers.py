"""What the tests share: building cells, comparing with the reference, cell configurations,
input layouts, driving every driver, hypothesis strategies.  Fixtures are in conftest.py.

Tests import the *installed* fastrnn (run pytest from the repository root: the src/
layout means only the installed copy is importable as ``fastrnn``).
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Dict

import numpy as np
import pytest
from hypothesis import strategies as st

import fastrnn
import fastrnn.reference as ref
from fastrnn._structure import flatten, map_structure

FIXTURES = Path(__file__).parent / "fixtures"

# Relative tolerance per dtype (the contract), with an absolute floor of
# the same order for elements near zero.  The floor is relative to the largest
# magnitude in the compared array (at least 1): in a recurrence the rounding
# error of an element follows the size of the terms it was summed from, and an
# unsquashed cell (linear, relu) can cancel large terms into a small result.
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-10}
ATOL = {np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-12}

CELL_TYPES = ("BasicRNNCell", "BasicLSTMCell", "LSTMCell", "GRUCell")
IMPLS = [pytest.param(ref, id="reference"), pytest.param(fastrnn, id="fastrnn")]
DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]


# ---- cells ------------------------------------------------------------------------------

def build_cell(module: Any, spec: Dict[str, Any], seed: int = 0) -> Any:
    """A cell of ``module`` (fastrnn or fastrnn.reference) from a JSON-able spec.

    ``{"type": "LSTMCell", "num_units": 5, "kwargs": {...}}`` or
    ``{"type": "MultiRNNCell", "cells": [spec, ...], "kwargs": {...}}``.
    """
    kwargs = dict(spec.get("kwargs", {}))
    if spec["type"] == "MultiRNNCell":
        cells = [build_cell(module, s, seed + 101 * (i + 1)) for i, s in enumerate(spec["cells"])]
        return module.MultiRNNCell(cells, **kwargs)
    return getattr(module, spec["type"])(spec["num_units"], seed=seed, **kwargs)


def twin(cell: Any) -> Any:
    """A reference cell with the same configuration and weights as a built fastrnn cell."""
    if isinstance(cell, fastrnn.MultiRNNCell):
        return ref.MultiRNNCell([twin(c) for c in cell.cells], state_is_tuple=cell.state_is_tuple)
    out = copy.copy(cell)  # configuration and weights (never the product's caches)
    out.__class__ = getattr(ref, type(cell).__name__)
    out._weights = cell.weights if cell.built else None
    return out


def randomize(cell: Any, rng: np.random.Generator, scale: float = 1.0) -> None:
    """Non-trivial weights: every entry (biases and peepholes too) random and non-zero."""
    new = {}
    for name, w in cell.weights.items():
        rows = w.shape[0] if w.ndim == 2 else 4
        new[name] = (rng.uniform(-1, 1, w.shape) * scale * (2.0 / np.sqrt(rows) if w.ndim == 2 else 0.5))
    cell.set_weights(new)


def lstmcell(n: int, **kw: Any) -> Dict[str, Any]:
    return {"type": "LSTMCell", "num_units": n, "kwargs": kw}


# Every option of every built-in cell, and stacks of them.
CONFIGS: Dict[str, Dict[str, Any]] = {
    "rnn_tanh": {"type": "BasicRNNCell", "num_units": 5},
    "rnn_relu": {"type": "BasicRNNCell", "num_units": 5, "kwargs": {"activation": "relu"}},
    "rnn_sigmoid": {"type": "BasicRNNCell", "num_units": 4, "kwargs": {"activation": "sigmoid"}},
    "rnn_linear": {"type": "BasicRNNCell", "num_units": 3, "kwargs": {"activation": "linear"}},
    "gru_tanh": {"type": "GRUCell", "num_units": 5},
    "gru_relu": {"type": "GRUCell", "num_units": 4, "kwargs": {"activation": "relu"}},
    "gru_reset_after": {"type": "GRUCell", "num_units": 5, "kwargs": {"reset_after": True}},
    "basic_lstm": {"type": "BasicLSTMCell", "num_units": 5},
    "basic_lstm_fb_flat": {"type": "BasicLSTMCell", "num_units": 4,
                           "kwargs": {"forget_bias": 0.3, "state_is_tuple": False}},
    "basic_lstm_relu": {"type": "BasicLSTMCell", "num_units": 3, "kwargs": {"activation": "relu"}},
    "lstm_plain": lstmcell(5),
    "lstm_peep": lstmcell(5, use_peepholes=True),
    "lstm_peep_clip": lstmcell(4, use_peepholes=True, cell_clip=0.4),
    "lstm_proj": lstmcell(6, num_proj=3),
    "lstm_proj_clip_all": lstmcell(5, use_peepholes=True, cell_clip=1.0, num_proj=2, proj_clip=0.3,
                                   forget_bias=0.0),
    "lstm_proj_flat": lstmcell(4, num_proj=3, state_is_tuple=False),
    "multi": {"type": "MultiRNNCell", "cells": [lstmcell(5, use_peepholes=True, num_proj=3),
                                                 {"type": "GRUCell", "num_units": 4},
                                                 {"type": "BasicRNNCell", "num_units": 3}]},
    "multi_flat": {"type": "MultiRNNCell", "kwargs": {"state_is_tuple": False},
                   "cells": [{"type": "GRUCell", "num_units": 3},
                             lstmcell(4, state_is_tuple=False, num_proj=2)]},
}


def with_units(spec: Dict[str, Any], units: int) -> Dict[str, Any]:
    """``spec`` with every layer's num_units (and num_proj, kept smaller) set from ``units``."""
    spec = dict(spec)
    if spec["type"] == "MultiRNNCell":
        spec["cells"] = [with_units(s, units + i) for i, s in enumerate(spec["cells"])]
        return spec
    spec["num_units"] = units
    kw = dict(spec.get("kwargs", {}))
    if "num_proj" in kw:
        kw["num_proj"] = max(1, units // 2 + 1)
    spec["kwargs"] = kw
    return spec


def make_pair(spec: Dict[str, Any], depth: int, dtype: Any, rng: np.random.Generator, seed: int = 0) -> Any:
    """A built fastrnn cell with random non-trivial weights, and its reference twin."""
    cell = build_cell(fastrnn, spec, seed)
    cell.build(depth, dtype)
    for c in getattr(cell, "cells", [cell]):
        randomize(c, rng)
    return cell, twin(cell)


def random_state(cell: Any, batch: int, dtype: Any, rng: np.random.Generator) -> Any:
    return map_structure(lambda s: rng.uniform(-1, 1, (batch, s)).astype(dtype), cell.state_size)


# ---- comparing --------------------------------------------------------------------------

def assert_close(actual: Any, expected: Any, dtype: Any, what: str = "") -> None:
    dtype = np.dtype(dtype)
    a_flat, e_flat = flatten(actual), flatten(expected)
    assert len(a_flat) == len(e_flat), f"{what}: structure differs ({len(a_flat)} vs {len(e_flat)} leaves)"
    for i, (a, e) in enumerate(zip(a_flat, e_flat)):
        a = np.asarray(a)
        assert a.dtype == dtype, f"{what}[{i}]: dtype {a.dtype}, expected {dtype}"
        e = np.asarray(e)
        finite = np.isfinite(e)
        scale = max(1.0, float(np.abs(e[finite]).max())) if finite.any() else 1.0
        np.testing.assert_allclose(a, e, rtol=RTOL[dtype], atol=ATOL[dtype] * scale, err_msg=f"{what} leaf {i}")


def assert_same_structure(actual: Any, expected: Any, what: str = "") -> None:
    assert type(actual) is type(expected), f"{what}: {type(actual).__name__} vs {type(expected).__name__}"
    if isinstance(expected, (tuple, list)):
        assert len(actual) == len(expected), what
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same_structure(a, e, f"{what}[{i}]")
    else:
        assert np.shape(actual) == np.shape(expected), f"{what}: {np.shape(actual)} vs {np.shape(expected)}"


def assert_identical(actual: Any, expected: Any, what: str = "") -> None:
    """Bit for bit the same leaves (NaN equal to NaN)."""
    a_flat, e_flat = flatten(actual), flatten(expected)
    assert len(a_flat) == len(e_flat), what
    for i, (a, e) in enumerate(zip(a_flat, e_flat)):
        a, e = np.asarray(a), np.asarray(e)
        assert a.dtype == e.dtype and a.shape == e.shape, f"{what} leaf {i}"
        assert a.tobytes() == e.tobytes(), f"{what} leaf {i}: not bitwise identical " \
                                           f"(max |diff| {np.nanmax(np.abs(a - e)) if a.size else 0})"


def assert_bf16_close(actual: Any, expected: Any, what: str = "", share: float = 0.0) -> None:
    """precision="bfloat16" against the reference's emulation: every element within 1e-2, and at least
    `share` of them within float32 accuracy (2e-5).  Both sides round the same operands; they sum in
    other orders, so a value that lands on a bfloat16 rounding boundary may round the other way and
    move what follows by ~2^-9 of a term -- rare, never systematic, but in a sequence it carries on
    along the rest of its row, so sequences are held to 1e-2 only (wrong weights, packing or gates
    give errors of order 1) and one-step calls, where nothing carries on, also to `share` = 0.98 of
    the elements at float32 accuracy (a missed or extra rounding fails most of them)."""
    a_flat, e_flat = flatten(actual), flatten(expected)
    assert len(a_flat) == len(e_flat), f"{what}: structure differs"
    for i, (a, e) in enumerate(zip(a_flat, e_flat)):
        a, e = np.asarray(a), np.asarray(e)
        assert a.dtype == np.float32 and a.shape == e.shape, f"{what} leaf {i}"
        scale = max(1.0, float(np.abs(e).max())) if e.size else 1.0
        np.testing.assert_allclose(a, e, rtol=1e-2, atol=1e-2 * scale, err_msg=f"{what} leaf {i}")
        if e.size:
            tight = np.abs(a - e) <= 2e-5 * np.abs(e) + 2e-6 * scale
            assert tight.mean() >= share, f"{what} leaf {i}: only {tight.mean():.4f} of the elements within " \
                                          f"float32 accuracy of the emulation"


def load_fixture(path: Path) -> Dict[str, Any]:
    with np.load(path, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    data["meta"] = json.loads(str(data["meta"]))
    return data


# ---- input layouts ----------------------------------------------------------------------

def misaligned(x: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of ``x`` whose data starts one byte past an aligned address."""
    x = np.ascontiguousarray(x)
    raw = np.zeros(x.nbytes + 1, np.uint8)
    y = np.frombuffer(raw.data, dtype=x.dtype, offset=1, count=x.size).reshape(x.shape)
    y[...] = x
    assert not y.flags.aligned or y.size == 0
    return y


def readonly(x: np.ndarray) -> np.ndarray:
    y = np.array(x)
    y.setflags(write=False)
    return y


LAYOUTS = {
    "C": np.ascontiguousarray,
    "F": np.asfortranarray,
    "strided": lambda x: np.repeat(x, 3, axis=-1)[..., 1::3],
    "reversed": lambda x: np.ascontiguousarray(x[::-1])[::-1],
    "readonly": readonly,
    "misaligned": misaligned,
    "list": lambda x: x.tolist(),
}


def layout(x: np.ndarray, kind: str) -> Any:
    """``x`` (same values) as a C-contiguous, Fortran-ordered, strided, reversed, read-only or
    misaligned array, or a nested list."""
    return LAYOUTS[kind](x)


def lengths_for(kind: str, batch: int, time: int, rng: np.random.Generator) -> Any:
    if kind == "none":
        return None
    if kind == "full":
        return np.full(batch, time, np.int32)
    if kind == "zeros":
        return np.zeros(batch, np.int64)
    lens = rng.integers(0, time + 1, batch)
    lens[0] = time
    if batch > 2:
        lens[-1] = 0
    return lens


# ---- drivers ----------------------------------------------------------------------------

DRIVERS = ["dynamic", "time_major", "static", "bidirectional", "static_bidirectional"]
BIDI = ("bidirectional", "static_bidirectional")


def drive(m: Any, driver: str, x: Any, cell: Any, bw: Any = None, lengths: Any = None, state: Any = None,
          state_bw: Any = None, dtype: Any = None, **kw: Any) -> Any:
    """Call ``driver`` of module ``m`` on batch-major ``x`` (a list of steps for the static ones);
    ``kw`` (e.g. precision) goes to the driver."""
    bw = bw if bw is not None else cell
    steps = list(np.swapaxes(x, 0, 1)) if isinstance(x, np.ndarray) and x.ndim == 3 else x
    if driver == "dynamic":
        return m.dynamic_rnn(cell, x, lengths, state, dtype, **kw)
    if driver == "time_major":
        xt = np.swapaxes(x, 0, 1) if isinstance(x, np.ndarray) and x.ndim == 3 else x
        return m.dynamic_rnn(cell, xt, lengths, state, dtype, time_major=True, **kw)
    if driver == "static":
        return m.static_rnn(cell, steps, state, dtype, lengths, **kw)
    if driver == "bidirectional":
        return m.bidirectional_dynamic_rnn(cell, bw, x, lengths, state, state_bw, dtype, **kw)
    return m.static_bidirectional_rnn(cell, bw, steps, state, state_bw, dtype, lengths, **kw)


# ---- hypothesis strategies --------------------------------------------------------------

ACTS = st.sampled_from(["tanh", "relu", "sigmoid", "linear"])


@st.composite
def layer_specs(draw: Any) -> Dict[str, Any]:
    kind = draw(st.sampled_from(["BasicRNNCell", "GRUCell", "BasicLSTMCell", "LSTMCell"]))
    units = draw(st.integers(1, 12))
    kw: Dict[str, Any] = {"activation": draw(ACTS)}
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
def specs(draw: Any) -> Dict[str, Any]:
    layers = draw(st.lists(layer_specs(), min_size=1, max_size=3))
    if len(layers) == 1 and draw(st.booleans()):
        return layers[0]  # type: ignore[no-any-return]
    flat = all(not s["kwargs"].get("state_is_tuple", False) for s in layers) and draw(st.booleans())
    return {"type": "MultiRNNCell", "cells": layers, "kwargs": {"state_is_tuple": not flat}}
