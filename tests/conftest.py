"""Shared helpers: build cells from specs, compare against the reference.

Tests import the *installed* fastrnn (run pytest from anywhere; pyproject sets
``--import-mode=importlib`` so the source tree never shadows the install).
"""
from __future__ import annotations

import copy
import json
import zlib
from pathlib import Path
from typing import Any, Dict

import numpy as np
import pytest

import fastrnn
import fastrnn.reference as ref
from fastrnn._structure import flatten

FIXTURES = Path(__file__).parent / "fixtures"

# Relative tolerance per dtype (the contract), with an absolute floor of
# the same order for elements near zero.  The floor is relative to the largest
# magnitude in the compared array (at least 1): in a recurrence the rounding
# error of an element follows the size of the terms it was summed from, and an
# unsquashed cell (linear, relu) can cancel large terms into a small result.
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-10}
ATOL = {np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-12}

CELL_TYPES = ("BasicRNNCell", "BasicLSTMCell", "LSTMCell", "GRUCell")


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
    if isinstance(cell, ref.MultiRNNCell):
        return ref.MultiRNNCell([twin(c) for c in cell.cells], state_is_tuple=cell._state_is_tuple)
    out = copy.copy(cell)
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


def load_fixture(path: Path) -> Dict[str, Any]:
    with np.load(path, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    data["meta"] = json.loads(str(data["meta"]))
    return data


def available_isas() -> list:
    """The instruction sets the kernels can be forced to here (FASTRNN_ISA), worst to best."""
    import os
    from fastrnn import _kernels
    found = []
    for isa in ("generic", "avx2", "avx512"):
        os.environ["FASTRNN_ISA"] = isa
        try:
            if _kernels.isa() == isa:
                found.append(isa)
        finally:
            del os.environ["FASTRNN_ISA"]
    return found


ISAS = available_isas()


@pytest.fixture(params=ISAS)
def isa(request: Any, monkeypatch: Any) -> str:
    """Run the test once per instruction set, forced through FASTRNN_ISA."""
    from fastrnn import _kernels
    monkeypatch.setenv("FASTRNN_ISA", request.param)
    assert _kernels.isa() == request.param
    return request.param


@pytest.fixture(params=["hoisted", "fused"])
def xproj(request: Any, monkeypatch: Any) -> str:
    """Run the test once per input-projection mode of the kernels, forced through FASTRNN_XPROJ:
    hoisted (one GEMM for all steps before the recurrence; the default below 4 rows) and fused
    (each step's product is [x_t | h] . kernel; the default from 4 rows on)."""
    monkeypatch.setenv("FASTRNN_XPROJ", request.param)
    return request.param


@pytest.fixture(params=["columns", "rows"])
def schedule(request: Any, monkeypatch: Any) -> str:
    """Run the test once per thread schedule of the recurrence, forced through FASTRNN_SCHEDULE on
    3 threads whatever the problem's size: columns (each step split by panels of units, the
    threads meet at every step) and rows (rows dealt to 3 groups, each running all its steps)."""
    import fastrnn
    monkeypatch.setenv("FASTRNN_SCHEDULE", request.param)
    fastrnn.set_num_threads(3)
    yield request.param
    fastrnn.set_num_threads(0)


@pytest.fixture
def rng(request: Any) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))
