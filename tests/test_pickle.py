"""Cells pickle with their configuration and weights, never their compiled caches.

Black-box against the public API: ``pickle`` (also protocol 5's out-of-band buffers at
any address, as ``dask.distributed`` delivers them), ``copy.deepcopy``, and a round trip
through a ``multiprocessing`` worker (spawn: a fresh interpreter, as a Dask worker
or a process pool gets), also one whose kernels run another instruction set
(``FASTRNN_ISA=generic``).  Every built-in cell and option (``cases.CONFIGS``), in
float32 and float64, built and unbuilt.

That no packed-weight or kernel cache rides along is shown three ways: a cell's
pickle is the same bytes before and after it has run (running only fills caches);
the pickle is about the size of the weights (the packed copy would double it); and
``copy.deepcopy`` allocates about the weights' size (``tracemalloc`` sees NumPy's
buffers).
"""
from __future__ import annotations

import copy
import multiprocessing
import pickle
import tracemalloc
from typing import Any, Iterator

import numpy as np
import pytest

import fastrnn
from fastrnn import _options

from helpers import CONFIGS, assert_close, build_cell, lstmcell, randomize

DTYPES = [np.float32, np.float64]
BATCH, TIME, DEPTH = 6, 5, 3
LENGTHS = np.array([5, 0, 3, 5, 1, 4])

# Cells large enough that their weights dwarf the pickle's fixed overhead (names, config).
LARGE = {
    "basic_lstm": {"type": "BasicLSTMCell", "num_units": 64},
    "lstm_peep_proj": lstmcell(64, use_peepholes=True, num_proj=32, cell_clip=3.0, proj_clip=2.0),
    "gru_reset_after": {"type": "GRUCell", "num_units": 64, "kwargs": {"reset_after": True}},
    "rnn": {"type": "BasicRNNCell", "num_units": 64},
    "multi": {"type": "MultiRNNCell", "cells": [lstmcell(64, num_proj=48), {"type": "GRUCell", "num_units": 48}]},
}


def _cell(spec: Any, dtype: Any, rng: np.random.Generator, depth: int = DEPTH) -> Any:
    """A built cell with random non-trivial weights that has run once (so any cache is filled)."""
    cell = build_cell(fastrnn, spec)
    cell.build(depth, dtype)
    randomize(cell, rng)
    fastrnn.dynamic_rnn(cell, _inputs(dtype, depth), sequence_length=LENGTHS)
    return cell


def _inputs(dtype: Any, depth: int = DEPTH) -> np.ndarray:
    return np.random.default_rng(7).standard_normal((BATCH, TIME, depth)).astype(dtype)


def _run(cell: Any, dtype: Any, depth: int = DEPTH) -> Any:
    return fastrnn.dynamic_rnn(cell, _inputs(dtype, depth), sequence_length=LENGTHS)


def _assert_identical(got: Any, want: Any, what: str) -> None:
    (out_g, st_g), (out_w, st_w) = got, want
    np.testing.assert_array_equal(out_g, out_w, err_msg=f"{what}: outputs")
    assert type(st_g) is type(st_w), f"{what}: state structure {type(st_g).__name__} vs {type(st_w).__name__}"
    for i, (a, b) in enumerate(zip(_leaves(st_g), _leaves(st_w))):
        np.testing.assert_array_equal(a, b, err_msg=f"{what}: state leaf {i}")


def _leaves(state: Any) -> list:
    return [x for s in state for x in _leaves(s)] if isinstance(state, (tuple, list)) else [state]


def _assert_same_cell(got: Any, want: Any) -> None:
    assert type(got) is type(want)
    assert got.state_size == want.state_size and got.output_size == want.output_size
    assert got.built == want.built
    w_got, w_want = got.weights, want.weights
    assert list(w_got) == list(w_want)
    for name in w_want:
        assert w_got[name].dtype == w_want[name].dtype, name
        np.testing.assert_array_equal(w_got[name], w_want[name], err_msg=name)


def _weight_bytes(cell: Any) -> int:
    return sum(w.nbytes for w in cell.weights.values())


# -- pickle and deepcopy in one process ------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("how", ["pickle", "pickle_protocol_2", "deepcopy"])
def test_round_trip_gives_identical_outputs(config, dtype, how, rng):
    cell = _cell(CONFIGS[config], dtype, rng)
    want = _run(cell, dtype)
    if how == "deepcopy":
        other = copy.deepcopy(cell)
    else:
        other = pickle.loads(pickle.dumps(cell, protocol=2 if how.endswith("2") else pickle.HIGHEST_PROTOCOL))
    _assert_same_cell(other, cell)
    _assert_identical(_run(other, dtype), want, f"{config} after {how}")
    # one step through __call__ too
    x = _inputs(dtype)[:, 0]
    state = cell.zero_state(BATCH, dtype)
    _assert_identical(other(x, state), cell(x, state), f"{config} one step after {how}")


@pytest.mark.parametrize("config", list(CONFIGS))
def test_copies_are_independent(config, rng):
    cell = _cell(CONFIGS[config], np.float32, rng)
    want = _run(cell, np.float32)
    for other in (copy.deepcopy(cell), pickle.loads(pickle.dumps(cell))):
        randomize(other, rng)  # new weights on the copy ...
        _assert_identical(_run(cell, np.float32), want, f"{config}: the original after changing the copy")
        with pytest.raises(AssertionError):  # ... change the copy's outputs only
            _assert_identical(_run(other, np.float32), want, config)


@pytest.mark.parametrize("config", ["basic_lstm", "lstm_proj_clip_all", "gru_reset_after", "rnn_relu", "multi",
                                    "multi_flat"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_unbuilt_cell_round_trip(config, dtype):
    """An unbuilt cell keeps its configuration (seed, dtype given at construction) and builds the
    same weights on first use as the original."""
    spec = CONFIGS[config]
    cell = build_cell(fastrnn, spec)
    for other in (pickle.loads(pickle.dumps(cell)), copy.deepcopy(cell)):
        assert not other.built
        assert other.state_size == cell.state_size and other.output_size == cell.output_size
        fresh = build_cell(fastrnn, spec)
        _assert_identical(_run(other, dtype), _run(fresh, dtype), f"{config} unbuilt")
        _assert_same_cell(other, fresh)
    assert not cell.built  # the copies were built, not the original


def test_unbuilt_cell_keeps_its_construction_dtype():
    cell = fastrnn.LSTMCell(4, num_proj=2, dtype=np.float64, seed=3)
    other = pickle.loads(pickle.dumps(cell))
    assert other.dtype == np.float64
    other.build(3)  # dtype from construction
    cell.build(3)
    _assert_same_cell(other, cell)


@pytest.mark.parametrize("config", ["basic_lstm", "lstm_proj_clip_all", "gru_reset_after", "rnn_relu", "multi"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_out_of_band_buffers_at_any_address(config, dtype, rng):
    """Pickle protocol 5 with out-of-band buffers, as dask.distributed moves objects: the
    receiver's buffers may sit at any address (here: one byte off), and the unpickled cell
    must still run -- and give the same outputs."""
    cell = _cell(CONFIGS[config], dtype, rng)
    buffers: list = []
    data = pickle.dumps(cell, protocol=5, buffer_callback=buffers.append)
    shifted = []
    for buf in buffers:
        raw = buf.raw()
        block = bytearray(raw.nbytes + 1)
        block[1:] = raw
        shifted.append(memoryview(block)[1:])
    other = pickle.loads(data, buffers=shifted)
    _assert_same_cell(other, cell)
    _assert_identical(_run(other, dtype), _run(cell, dtype), f"{config} from misaligned out-of-band buffers")


# -- no cache rides along ---------------------------------------------------------

@pytest.mark.parametrize("config", list(LARGE))
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_pickle_does_not_depend_on_having_run(config, dtype, rng):
    """Running a cell only fills caches (packed weights), so its pickle must not change."""
    cell = build_cell(fastrnn, LARGE[config])
    cell.build(32, dtype)
    randomize(cell, rng)
    before = pickle.dumps(cell)
    _run(cell, dtype, depth=32)
    assert pickle.dumps(cell) == before, (
        f"{config}: the pickle changed after a run ({len(before)} -> {len(pickle.dumps(cell))} bytes): "
        "a cache filled by the run rides along")


@pytest.mark.parametrize("config", list(LARGE))
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_pickle_is_about_the_size_of_the_weights(config, dtype, rng):
    cell = _cell(LARGE[config], dtype, rng, depth=32)
    weights, size = _weight_bytes(cell), len(pickle.dumps(cell))
    assert size <= 1.1 * weights + 4096, (
        f"{config}: pickle of {size} bytes for {weights} bytes of weights: the packed weights ride along")


@pytest.mark.parametrize("config", list(LARGE))
def test_deepcopy_copies_only_the_weights(config, rng):
    cell = _cell(LARGE[config], np.float32, rng, depth=32)
    weights = _weight_bytes(cell)
    tracemalloc.start()
    try:
        other = copy.deepcopy(cell)
        allocated, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert other.built
    assert allocated <= 1.1 * weights + 16384, (
        f"{config}: deepcopy allocated {allocated} bytes for {weights} bytes of weights: a cache was copied")


# -- through a multiprocessing worker (a fresh interpreter) -----------------------

def _spawn_pool(isa: Any = None) -> Iterator[Any]:
    ctx = multiprocessing.get_context("spawn")
    with pytest.MonkeyPatch.context() as mp:
        if isa is not None:
            mp.setenv("FASTRNN_ISA", isa)  # the worker starts with it; this process is left as it was
        pool = ctx.Pool(1)
    try:
        yield pool
    finally:
        pool.terminate()
        pool.join()


@pytest.fixture(scope="module")
def worker() -> Iterator[Any]:
    yield from _spawn_pool()


@pytest.fixture(scope="module")
def generic_worker() -> Iterator[Any]:
    yield from _spawn_pool("generic")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("config", ["basic_lstm_fb_flat", "lstm_proj_clip_all", "gru_reset_after", "rnn_relu",
                                    "multi", "multi_flat"])
def test_multiprocessing_worker_round_trip(worker, config, dtype, rng):
    cell = _cell(CONFIGS[config], dtype, rng)
    want = _run(cell, dtype)
    x = _inputs(dtype)
    # the cell is pickled to the worker, run there, and its results pickled back (compared within
    # the suite's tolerance: the worker's kernels follow its own settings, which another test may
    # have changed in this process -- e.g. the GEMM choice) ...
    out, state = worker.apply(fastrnn.dynamic_rnn, (cell, x), {"sequence_length": LENGTHS})
    assert_close(out, want[0], dtype, f"{config} outputs run in a worker process")
    assert_close(state, want[1], dtype, f"{config} state run in a worker process")
    # ... and the cell itself makes the round trip, there and back
    back = worker.apply(copy.deepcopy, (cell,))
    _assert_same_cell(back, cell)
    _assert_identical(_run(back, dtype), want, f"{config} back from a worker process")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("config", list(LARGE))
def test_worker_on_another_instruction_set(generic_worker, config, dtype, rng):
    """A cell pickled here (its weights packed for this CPU's kernels) runs on a worker whose
    kernels use another instruction set: the packed weights are rebuilt there."""
    assert generic_worker.apply(_options.current).isa == "generic"
    cell = _cell(LARGE[config], dtype, rng, depth=32)
    x = _inputs(dtype, 32)
    out, state = generic_worker.apply(fastrnn.dynamic_rnn, (cell, x), {"sequence_length": LENGTHS})
    want_out, want_state = fastrnn.dynamic_rnn(cell, x, sequence_length=LENGTHS)
    assert_close(out, want_out, dtype, f"{config} outputs on the generic kernels")
    assert_close(state, want_state, dtype, f"{config} state on the generic kernels")
