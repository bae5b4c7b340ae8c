"""Fixtures: a per-test RNG, the kernel modes forced in turn, a kernel-call spy, and the
check that every test starts (and leaves the process) on the defaults.

The modes (instruction set, input projection, thread schedule, GEMM) are forced with
``fastrnn._options.override``, which restores the previous options whatever happens;
the thread count with ``fastrnn.set_num_threads``, restored here too.  Shared helpers
(cells, comparisons, layouts, drivers) are in ``helpers.py``.
"""
from __future__ import annotations

import os
import zlib
from typing import Any, Iterator, List

import numpy as np
import pytest

import fastrnn
from fastrnn import _kernels, _options


@pytest.fixture(autouse=True)
def _starts_on_the_defaults() -> Iterator[None]:
    """Every test starts on the product's defaults -- the packed GEMM, automatic choices, no
    FASTRNN_* variable, the default thread count -- so that no test passes because an
    earlier one changed a mode and forgot to restore it."""
    leftovers = sorted(k for k in os.environ if k.startswith("FASTRNN_"))
    assert not leftovers, f"FASTRNN_* variables set for the test run: {leftovers}"
    assert _options.current() == _options.Options(), f"options left changed: {_options.current()}"
    assert fastrnn._threads._requested == 0, "a thread count was left set"
    yield
    assert _options.current() == _options.Options(), "the test left the options changed"
    assert fastrnn._threads._requested == 0, "the test left a thread count set"


@pytest.fixture
def rng(request: Any) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


ISAS = _kernels.available_isas()


@pytest.fixture(params=ISAS)
def isa(request: Any) -> Iterator[str]:
    """Run the test once per instruction set the CPU has."""
    with _options.override(isa=request.param):
        yield request.param


@pytest.fixture(params=["hoisted", "fused"])
def xproj(request: Any) -> Iterator[str]:
    """Run the test once per input-projection mode of the kernels: hoisted (one GEMM for all
    steps before the recurrence; the default below 4 rows) and fused (each step's product is
    [x_t | h] . kernel; the default from 4 rows on)."""
    with _options.override(xproj=request.param):
        yield request.param


@pytest.fixture(params=["columns", "rows"])
def schedule(request: Any) -> Iterator[str]:
    """Run the test once per thread schedule of the recurrence, forced on 3 threads whatever
    the problem's size: columns (each step split by panels of units, the threads meet at every
    step) and rows (rows dealt to 3 groups, each running all its steps)."""
    fastrnn.set_num_threads(3)
    try:
        with _options.override(schedule=request.param):
            yield request.param
    finally:
        fastrnn.set_num_threads(0)


@pytest.fixture(params=[1, 2, 3, 4, 5, 6, 8])
def tile_rows(request: Any) -> Iterator[int]:
    """Run the test once per height of the packed GEMM's largest register tile (rows a tile
    takes at most; heights above what the instruction set's registers hold are capped)."""
    with _options.override(tile_rows=request.param):
        yield request.param


@pytest.fixture(params=["blas", "portable"])
def other_gemm(request: Any) -> Iterator[str]:
    """Run the test on SciPy's BLAS and on the portable C GEMM instead of the packed GEMM
    (cross-checks of the packed GEMM and of the operand conventions)."""
    pytest.importorskip("scipy", reason="the BLAS cross-check needs SciPy (in the test extra)")
    with _options.override(gemm=request.param):
        yield request.param


BF16_PATHS = ["portable", "avx512_bf16", "amx"]
BF16_NEEDS = {"avx512_bf16": "a CPU with AVX512-BF16 (vdpbf16ps) and fastrnn's AVX-512 kernels",
              "amx": "a CPU with AMX tiles (amx-tile, amx-bf16), the OS's permission for their state "
                     "(arch_prctl ARCH_REQ_XCOMP_PERM) and fastrnn's AVX-512 kernels"}


@pytest.fixture(params=BF16_PATHS)
def bf16_path(request: Any) -> Iterator[str]:
    """Run the test once per bfloat16 path, forced; a path this machine cannot run is skipped with
    what it lacks (the portable path runs everywhere)."""
    if request.param not in _kernels.available_bf16_paths():
        pytest.skip(f"bfloat16 path {request.param!r} needs {BF16_NEEDS[request.param]}: not here")
    with _options.override(bf16_path=request.param):
        yield request.param


@pytest.fixture
def kernel_calls(monkeypatch: Any) -> List[int]:
    """The cell kind (``_kernels.CELL_*``) of every kernel call made during the test (sequences:
    ``layer_forward``; one-step calls: ``CallPlan.step``/``sequence``; streams' steps:
    ``Stepper.step``/``step_exact``).  Cells made before the test keep the plans made before it:
    give the test its own cells."""
    calls: List[int] = []
    real = _kernels.layer_forward

    def spy(layer: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(layer.cell)
        return real(layer, *args, **kwargs)

    class SpyStepper(_kernels.Stepper):  # fr.Stream's steps: one kernel call per layer
        def step(self, x: Any, out: Any = None) -> Any:
            calls.extend(layer.cell for layer in self.layers)
            return super().step(x, out)

        def step_exact(self, x: Any, out: Any = None) -> Any:
            result = super().step_exact(x, out)
            if result is not None:
                calls.extend(layer.cell for layer in self.layers)
            return result

    class SpyPlan(_kernels.CallPlan):  # cell(x, state) and one-step sequences: one call per layer
        def __init__(self, layers: Any, *args: Any) -> None:
            super().__init__(layers, *args)
            self.kinds = [layer.cell for layer in layers]

        def step(self, x: Any, state: Any) -> Any:
            result = super().step(x, state)
            if result is not None:
                calls.extend(self.kinds)
            return result

        def sequence(self, x: Any, time_major: bool, state: Any = None) -> Any:
            result = super().sequence(x, time_major, state)
            if result is not None:
                calls.extend(self.kinds)
            return result

    monkeypatch.setattr(_kernels, "layer_forward", spy)
    monkeypatch.setattr(_kernels, "Stepper", SpyStepper)
    monkeypatch.setattr(_kernels, "CallPlan", SpyPlan)
    return calls
