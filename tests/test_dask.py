"""fastrnn.dask: the drivers over Dask arrays, on the threaded scheduler and a real LocalCluster.

Each result is compared with one in-process fastrnn call on the same (computed) arrays:
outputs and final states, ragged lengths with zeros, both drivers, time-major, stacks,
float32 and float64.  Blocks of different sizes may take different kernel paths (the
input projection and thread schedule are chosen per call from the row count), so the
comparison is at the suite's per-dtype tolerance, not bit for bit.

The cluster is two worker processes with one thread each, started once for the module;
the tests show the blocks spread over both and that each worker receives the cell once.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from typing import Any, Iterator

import numpy as np
import pytest

import dask
import dask.array as da
from dask.core import get_dependencies
from distributed import Client, LocalCluster, get_task_stream

import fastrnn
import fastrnn.dask as frd

from helpers import CONFIGS, assert_close, assert_same_structure, build_cell, randomize

DTYPES = [np.float32, np.float64]


def _leaves(state: Any) -> list:
    return [x for s in state for x in _leaves(s)] if isinstance(state, (tuple, list)) else [state]


def _cell(config: str, depth: int, dtype: Any, seed: int = 0) -> Any:
    cell = build_cell(fastrnn, CONFIGS[config], seed)
    cell.build(depth, dtype)
    randomize(cell, np.random.default_rng(seed + 11))
    return cell


def _data(batch: int, time: int, depth: int, dtype: Any, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, time, depth)).astype(dtype)
    lengths = rng.integers(0, time + 1, batch)
    lengths[:: 5] = 0  # rows of length 0 keep their initial state
    lengths[1:: 7] = time
    return x, lengths


def _random_state(cell: Any, batch: int, dtype: Any, seed: int) -> Any:
    rng = np.random.default_rng(seed)
    zeros = cell.zero_state(batch, dtype)
    flat = [rng.uniform(-0.5, 0.5, z.shape).astype(dtype) for z in _leaves(zeros)]
    return frd._pack(zeros, flat)


def _assert_matches(got: Any, want: Any, dtype: Any, what: str) -> None:
    """``got`` (dask results, computed) equals ``want`` (one in-process call): values and structure."""
    assert_same_structure(got, want, what)
    assert_close(got, want, dtype, what)


# -- the cluster ------------------------------------------------------------------

@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    """Two worker processes, one thread each; closed (with a timeout) when the module is done."""
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=logging.ERROR)
    c = Client(cluster, timeout="60s")
    try:
        c.wait_for_workers(2, timeout=60)
        yield c
    finally:
        c.close(timeout=30)
        cluster.close(timeout=30)


@pytest.fixture
def threaded() -> Iterator[None]:
    with dask.config.set(scheduler="threads"):
        yield


# -- equal to one in-process call ---------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("time_major", [False, True], ids=["batch_major", "time_major"])
@pytest.mark.parametrize("config", ["rnn_relu", "gru_reset_after", "basic_lstm_fb_flat", "lstm_proj_clip_all",
                                    "multi", "multi_flat"])
def test_dynamic_rnn_threaded(threaded, config, time_major, dtype):
    x, lengths = _data(37, 9, 4, dtype)
    cell = _cell(config, 4, dtype)
    init = _random_state(cell, 37, dtype, 1)
    xt = x.transpose(1, 0, 2) if time_major else x
    dx = da.from_array(xt, chunks=(9, 8, 4) if time_major else (8, 9, 4))
    want = fastrnn.dynamic_rnn(cell, xt, sequence_length=lengths, initial_state=init, time_major=time_major)
    got = dask.compute(frd.dynamic_rnn(cell, dx, sequence_length=da.from_array(lengths, chunks=10),
                                       initial_state=init, time_major=time_major))[0]
    _assert_matches(got, want, dtype, config)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("time_major", [False, True], ids=["batch_major", "time_major"])
def test_bidirectional_threaded(threaded, time_major, dtype):
    x, lengths = _data(29, 7, 3, dtype, seed=2)
    fw, bw = _cell("multi", 3, dtype, seed=1), _cell("lstm_proj_clip_all", 3, dtype, seed=2)
    init_bw = _random_state(bw, 29, dtype, 3)
    xt = x.transpose(1, 0, 2) if time_major else x
    want = fastrnn.bidirectional_dynamic_rnn(fw, bw, xt, sequence_length=lengths, initial_state_bw=init_bw,
                                             time_major=time_major)
    dx = da.from_array(xt, chunks=(3, 6, 3) if time_major else (6, 3, 3))  # chunked along time too
    init_dask = frd._pack(init_bw, [da.from_array(a, chunks=(4, -1)) for a in _leaves(init_bw)])
    got = dask.compute(frd.bidirectional_dynamic_rnn(fw, bw, dx, sequence_length=lengths,
                                                     initial_state_bw=init_dask, time_major=time_major))[0]
    _assert_matches(got, want, dtype, "bidirectional")


def test_dtype_argument_and_numpy_inputs(threaded):
    """``dtype`` converts as in fastrnn; NumPy inputs are accepted (split into batch blocks)."""
    x, lengths = _data(12, 5, 3, np.float32)
    cell = _cell("basic_lstm", 3, np.float64)
    out, state = frd.dynamic_rnn(cell, x, sequence_length=lengths, dtype=np.float64)
    assert out.dtype == np.float64 and state.h.dtype == np.float64
    want = fastrnn.dynamic_rnn(cell, x, sequence_length=lengths, dtype=np.float64)
    _assert_matches(dask.compute((out, state))[0], want, np.float64, "dtype=float64 on float32 inputs")


def test_the_feed_rule_as_in_fastrnn(threaded):
    """Integer inputs and initial states with dtype= are converted (TF's feed rule), as fastrnn does;
    without dtype they are refused with fastrnn's message."""
    rng = np.random.default_rng(4)
    x = rng.integers(-3, 4, (10, 5, 3))
    state = fastrnn.LSTMStateTuple(rng.integers(-1, 2, (10, 5)), rng.integers(-1, 2, (10, 5)))
    cell = _cell("basic_lstm", 3, np.float32)
    got = dask.compute(frd.dynamic_rnn(cell, da.from_array(x, chunks=4), initial_state=state, dtype=np.float32))[0]
    want = fastrnn.dynamic_rnn(cell, x, initial_state=state, dtype=np.float32)
    _assert_matches(got, want, np.float32, "integer inputs and state, dtype=float32")
    with pytest.raises(TypeError, match=r"initial_state\[0\] .*got integer \(int64\); pass dtype="):
        frd.dynamic_rnn(cell, x.astype(np.float32), initial_state=state)


def test_unbuilt_cell_is_built_before_the_graph(threaded):
    """A lazily built cell would draw its weights wherever it first ran -- on every worker anew.
    fastrnn.dask builds it in the caller's process, as an in-process call would."""
    x, lengths = _data(10, 4, 3, np.float32)
    cell = fastrnn.MultiRNNCell([fastrnn.GRUCell(4, seed=5), fastrnn.BasicLSTMCell(3, seed=6)])
    out, state = frd.dynamic_rnn(cell, da.from_array(x, chunks=5), sequence_length=lengths)
    assert cell.built
    twin = fastrnn.MultiRNNCell([fastrnn.GRUCell(4, seed=5), fastrnn.BasicLSTMCell(3, seed=6)])
    want = fastrnn.dynamic_rnn(twin, x, sequence_length=lengths)
    _assert_matches(dask.compute((out, state))[0], want, np.float32, "unbuilt cell")


@pytest.mark.parametrize("shape", [(0, 5, 3), (6, 0, 3)], ids=["batch_0", "time_0"])
def test_empty_batch_or_time(threaded, shape):
    x = np.zeros(shape, np.float32)
    cell = _cell("basic_lstm", 3, np.float32)
    got = dask.compute(frd.dynamic_rnn(cell, da.from_array(x)))[0]
    _assert_matches(got, fastrnn.dynamic_rnn(cell, x), np.float32, f"shape {shape}")


def test_user_cell_runs_through_the_generic_loop(threaded):
    class Doubler(fastrnn.RNNCell):
        state_size = 3
        output_size = 3

        def __call__(self, inputs, state, scope=None):
            h = np.tanh(inputs[:, :3] + 2 * state)
            return h, h

    x, lengths = _data(9, 4, 3, np.float64)
    got = dask.compute(frd.dynamic_rnn(Doubler(), da.from_array(x, chunks=4), sequence_length=lengths))[0]
    _assert_matches(got, fastrnn.dynamic_rnn(Doubler(), x, sequence_length=lengths), np.float64, "user cell")


# -- the graph ------------------------------------------------------------------------

def _graph(*collections: Any) -> dict:
    """The graph dask runs for ``collections`` computed together (optimized together, merged)."""
    graph: dict = {}
    for c in _leaves(dask.optimize(*collections)):
        graph.update(c.__dask_graph__())
    return graph


def _key_name(key: Any) -> str:
    return key[0] if isinstance(key, tuple) else key


def test_cell_is_one_key_every_block_refers_to():
    import cloudpickle
    _, lengths = _data(64, 6, 16, np.float32)
    x = da.random.default_rng(0).standard_normal((64, 6, 16), chunks=(8, 6, 16), dtype=np.float32)
    cell = fastrnn.MultiRNNCell([fastrnn.LSTMCell(64, num_proj=32, seed=0), fastrnn.GRUCell(32, seed=1)])
    out, state = frd.dynamic_rnn(cell, x, sequence_length=lengths)  # builds the cell
    weights = sum(w.nbytes for w in cell.weights.values())  # 83 kB
    dsk = _graph(out, state)
    runs = [k for k in dsk if _key_name(k).startswith("fastrnn-dask-rnn")]
    assert len(runs) == 8  # one task per batch block
    # exactly one value in the graph is as large as the weights: the cell's key
    heavy = [k for k, v in dsk.items() if len(cloudpickle.dumps(v)) >= weights // 2]
    assert len(heavy) == 1, f"the cell's weights are held by {len(heavy)} keys: {heavy}"
    for k in runs:
        assert heavy[0] in get_dependencies(dsk, k), f"{k} does not refer to the cell's key"
        assert len(cloudpickle.dumps(dsk[k])) < weights // 10, f"{k} carries the weights itself"


def test_outputs_and_state_computed_together_run_each_block_once(threaded, monkeypatch):
    calls = []
    real = fastrnn.dynamic_rnn

    def counting(cell, inputs, *args, **kwargs):
        calls.append(np.shape(inputs)[0])
        return real(cell, inputs, *args, **kwargs)

    x, lengths = _data(40, 5, 3, np.float32)
    cell = _cell("multi", 3, np.float32)
    out, state = frd.dynamic_rnn(cell, da.from_array(x, chunks=(10, 5, 3)), sequence_length=lengths)
    monkeypatch.setattr(fastrnn, "dynamic_rnn", counting)
    # however they are computed together: optimizing them apart (dask.optimize does) must not
    # fuse a copy of the run into each
    for how, run in [("dask.compute", lambda: dask.compute(out, state)),
                     ("dask.persist", lambda: dask.persist(out, state)),
                     ("dask.optimize", lambda: dask.compute(*dask.optimize(out, state)))]:
        calls.clear()
        run()
        assert sorted(calls) == [10, 10, 10, 10], f"{how}: fastrnn calls with these batch sizes: {calls}"
    # the graph agrees: one run task per block, shared by the outputs and every state leaf
    dsk = _graph(out, state)
    assert len([k for k in dsk if _key_name(k).startswith("fastrnn-dask-rnn")]) == 4


def test_blocks_hold_whole_sequences():
    x = da.zeros((30, 12, 4), chunks=(10, 5, 2), dtype=np.float32)
    cell = _cell("basic_lstm", 4, np.float32)
    out, state = frd.dynamic_rnn(cell, x)
    assert out.chunks == ((10, 10, 10), (12,), (5,)) and state.c.chunks == ((10, 10, 10), (5,))
    # a block of whole sequences larger than Dask's chunk size is split along the batch
    with dask.config.set({"array.chunk-size": "2KiB"}):  # one row: 12 steps x (4 + 5) x 4 bytes = 432 B
        out, _ = frd.dynamic_rnn(cell, x)
    assert out.chunks[0] == (4, 4, 2, 4, 4, 2, 4, 4, 2)
    # already whole sequences: the caller's batch chunks stand, whatever their size
    with dask.config.set({"array.chunk-size": "2KiB"}):
        out, _ = frd.dynamic_rnn(cell, x.rechunk((15, 12, 4)))
    assert out.chunks[0] == (15, 15)


def test_importing_fastrnn_does_not_import_dask():
    code = ("import sys, numpy as np, fastrnn\n"
            "fastrnn.dynamic_rnn(fastrnn.GRUCell(3), np.zeros((2, 3, 4), np.float32))\n"
            "assert not [m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')], 'dask imported'\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd="/")
    assert res.returncode == 0, res.stderr


# -- on a real cluster: worker processes -------------------------------------------------

def test_dynamic_rnn_on_cluster(client):
    x, lengths = _data(96, 8, 6, np.float64, seed=4)
    cell = _cell("multi", 6, np.float64, seed=3)
    init = _random_state(cell, 96, np.float64, 5)
    want = fastrnn.dynamic_rnn(cell, x, sequence_length=lengths, initial_state=init)
    out, state = frd.dynamic_rnn(cell, da.from_array(x, chunks=(12, 4, 6)), sequence_length=lengths,
                                 initial_state=init)
    with get_task_stream(client) as stream:
        got = tuple(client.compute((out, state), sync=True))
    _assert_matches(got, want, np.float64, "on the cluster")
    runs = [t["worker"] for t in stream.data if _key_name(t["key"]).startswith("fastrnn-dask-rnn")]
    # one run per block, though the client optimizes the outputs and the state tuple apart
    assert len(runs) == 8, f"{len(runs)} block runs for 8 blocks"
    assert set(runs) == set(client.scheduler_info()["workers"]), f"the blocks ran on {set(runs)} only"


def test_bidirectional_on_cluster_time_major(client):
    x, lengths = _data(50, 6, 5, np.float32, seed=6)
    fw, bw = _cell("gru_reset_after", 5, np.float32, seed=7), _cell("lstm_proj_flat", 5, np.float32, seed=8)
    xt = x.transpose(1, 0, 2)
    want = fastrnn.bidirectional_dynamic_rnn(fw, bw, xt, sequence_length=lengths, time_major=True)
    lazy = frd.bidirectional_dynamic_rnn(fw, bw, da.from_array(xt, chunks=(6, 10, 5)),
                                         sequence_length=da.from_array(lengths, chunks=25), time_major=True)
    got = tuple(tuple(part) for part in client.compute(lazy, sync=True))
    _assert_matches(got, want, np.float32, "bidirectional on the cluster")


def test_each_worker_receives_the_cell_once(client):
    def count_unpickling() -> None:  # runs on each worker: count _Cells boxes unpickled there
        import fastrnn.dask as mod
        box = mod._Cells
        if not hasattr(box, "received"):
            restore = box.__setstate__

            def counting(self: Any, cells: Any) -> None:
                type(self).received += 1
                restore(self, cells)

            box.__setstate__ = counting
        box.received = 0

    client.run(count_unpickling)
    x, _ = _data(160, 5, 8, np.float32)
    cell = _cell("lstm_proj_clip_all", 8, np.float32)
    out, state = frd.dynamic_rnn(cell, da.from_array(x, chunks=(10, 5, 8)))
    with get_task_stream(client) as stream:
        client.compute((out, state), sync=True)
    runs = [t["worker"] for t in stream.data if _key_name(t["key"]).startswith("fastrnn-dask-rnn")]
    assert len(runs) == 16
    received = client.run(lambda: __import__("fastrnn.dask").dask._Cells.received)
    for worker, n in received.items():
        blocks = runs.count(worker)
        assert n == (1 if blocks else 0), f"{worker} ran {blocks} blocks and unpickled the cell {n} times"


def test_workers_run_their_kernels_on_one_thread(client):
    """In a worker process each block's kernels get one thread (the workers' threads are the
    parallelism); the caller's own setting is left alone."""
    before = fastrnn.get_num_threads()
    x, _ = _data(8, 3, 2, np.float32)
    client.compute(frd.dynamic_rnn(_cell("rnn_tanh", 2, np.float32), da.from_array(x, chunks=4))[0], sync=True)
    assert set(client.run(fastrnn.get_num_threads).values()) == {1}
    assert fastrnn.get_num_threads() == before


def test_error_in_a_block_names_its_rows(client):
    x, lengths = _data(20, 4, 3, np.float32)
    lengths[13] = 9  # longer than the time axis: only the block can see it (lazy lengths)
    out, _ = frd.dynamic_rnn(_cell("gru_tanh", 3, np.float32), da.from_array(x, chunks=5),
                             sequence_length=da.from_array(lengths, chunks=5))
    with pytest.raises(ValueError, match=r"sequence_length: .*<= the time axis \(4\).* rows 10-14 of the batch"):
        client.compute(out, sync=True)


def test_example_against_the_cluster(client):
    """The example, pointed at this cluster's scheduler address as at a real one."""
    path = os.path.join(os.path.dirname(__file__), "..", "examples", "dask_batch_inference.py")
    res = subprocess.run([sys.executable, path, client.scheduler.address], capture_output=True, text=True,
                         timeout=180, cwd="/")
    assert res.returncode == 0, f"{res.stdout}\n{res.stderr}"
    assert "both workers" in res.stdout


# -- bad input: clear errors before any graph is made ---------------------------------------

def _bad(**overrides: Any) -> dict:
    cell = _cell("basic_lstm", 3, np.float32)
    args = dict(cell=cell, inputs=da.zeros((6, 4, 3), chunks=3, dtype=np.float32))
    args.update(overrides)
    return args


@pytest.mark.parametrize("args, error, match", [
    (lambda: _bad(inputs=da.zeros((6, 4), dtype=np.float32)), ValueError, r"inputs: expected a 3-D array"),
    (lambda: _bad(inputs=da.zeros((6, 4, 0), dtype=np.float32)), ValueError, r"inputs: expected depth >= 1"),
    (lambda: _bad(inputs=da.zeros((6, 4, 3), dtype=np.int32)), TypeError, r"inputs: expected float32 or float64"),
    (lambda: _bad(inputs=da.zeros((6, 4, 5), dtype=np.float32)), ValueError, r"inputs: depth 5 does not match"),
    (lambda: _bad(inputs=da.zeros((6, 4, 3), dtype=np.float32)[da.arange(6) > 2]), ValueError,
     r"inputs: .*unknown sizes.*compute_chunk_sizes"),
    (lambda: _bad(cell=object()), TypeError, r"cell: expected an RNN cell"),
    (lambda: _bad(dtype=np.int64), TypeError, r"dtype: expected float32 or float64"),
    (lambda: _bad(time_major="yes"), TypeError, r"time_major: expected True or False"),
    (lambda: _bad(sequence_length=[1, 2, 3]), ValueError, r"sequence_length: expected a 1-D vector of 6 lengths"),
    (lambda: _bad(sequence_length=da.zeros((6, 1), dtype=int)), ValueError, r"sequence_length: .*got shape"),
    (lambda: _bad(sequence_length=np.array([1, 2, 3, 4, 5, 6])), ValueError,
     r"sequence_length: expected integers in \[0, 4\].*got 5 at row 4"),
    (lambda: _bad(sequence_length=[0, 1, -1, 2, 3, 4]), ValueError, r"got -1 at row 2"),
    (lambda: _bad(sequence_length=[0, 1, 1.5, 2, 3, 4]), ValueError, r"got 1.5 at row 2"),
    (lambda: _bad(sequence_length=np.array(["a"] * 6)), TypeError, r"sequence_length: expected an integer vector"),
    (lambda: _bad(initial_state=np.zeros((6, 5), np.float32)), ValueError,
     r"initial_state: expected a state with the structure of state_size=LSTMStateTuple"),
    (lambda: _bad(initial_state=(np.zeros((6, 5)), np.zeros((5, 5)))), ValueError,
     r"initial_state\[1\] .*expected shape \(6, 5\), got \(5, 5\)"),
    (lambda: _bad(initial_state=(np.zeros((6, 5)), da.zeros((6, 5), dtype=int))), TypeError,
     r"initial_state\[1\] .*expected float32 or float64"),
])
def test_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        frd.dynamic_rnn(**args())


def test_bad_input_bidirectional():
    cell = _cell("gru_tanh", 3, np.float32)
    x = da.zeros((4, 2, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"initial_state_bw: expected shape \(4, 5\), got \(4, 6\)"):
        frd.bidirectional_dynamic_rnn(cell, cell, x, initial_state_bw=np.zeros((4, 6), np.float32))
    with pytest.raises(TypeError, match=r"cell_bw: expected an RNN cell"):
        frd.bidirectional_dynamic_rnn(cell, None, x)


def test_a_sequence_too_long_for_one_block_is_refused():
    x = da.zeros((4, 1000, 64), chunks=(4, 100, 64), dtype=np.float32)
    cell = _cell("basic_lstm", 64, np.float32)
    with dask.config.set({"array.chunk-size": "64KiB"}):
        with pytest.raises(ValueError, match=r"inputs: chunked along the time axis .*whole sequences.*"
                                             r"larger than Dask's array.chunk-size \(64.00 kiB\)"):
            frd.dynamic_rnn(cell, x)
