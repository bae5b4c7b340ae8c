"""The compiled kernels are what the public API runs for built-in cells."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastrnn
import fastrnn.reference as ref
from fastrnn import _compiled, _kernels

from helpers import CONFIGS, assert_close, make_pair, misaligned



def test_tests_run_against_the_installed_package():
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    assert not os.path.abspath(fastrnn.__file__).startswith(os.path.join(here, "src")), fastrnn.__file__
    assert _compiled._kernels is _kernels


def test_builtin_cells_reach_the_kernel(kernel_calls, rng):
    x = rng.standard_normal((2, 3, 4))
    for cell, kinds in [(fastrnn.BasicRNNCell(3), [0]), (fastrnn.GRUCell(3), [2]),
                        (fastrnn.BasicLSTMCell(3), [1]), (fastrnn.LSTMCell(3, num_proj=2), [1]),
                        (fastrnn.MultiRNNCell([fastrnn.GRUCell(3), fastrnn.BasicLSTMCell(2)]), [2, 1])]:
        kernel_calls.clear()
        fastrnn.dynamic_rnn(cell, x)
        assert kernel_calls == kinds, type(cell).__name__
    kernel_calls.clear()
    cell = fastrnn.GRUCell(3)
    cell(x[:, 0], cell.zero_state(2, np.float64))
    assert kernel_calls == [2]
    kernel_calls.clear()
    fastrnn.bidirectional_dynamic_rnn(fastrnn.GRUCell(2), fastrnn.BasicRNNCell(2), x)
    assert kernel_calls == [2, 0]


def test_other_cells_take_the_generic_loop(kernel_calls, rng):
    x = rng.standard_normal((2, 3, 4))
    cell = fastrnn.BasicRNNCell(3, activation=lambda v: np.sin(v))
    out, _ = fastrnn.dynamic_rnn(cell, x)
    assert kernel_calls == []
    twin = ref.BasicRNNCell(3, activation=np.sin)
    twin.set_weights(cell.weights)
    assert_close(out, ref.dynamic_rnn(twin, x)[0], np.float64, "callable activation")
    # a stack with one layer the kernels cannot run: the others still run compiled, step by step
    stack = fastrnn.MultiRNNCell([fastrnn.GRUCell(3), fastrnn.BasicRNNCell(3, activation=np.sin)])
    fastrnn.dynamic_rnn(stack, x)
    assert kernel_calls == [_kernels.CELL_GRU] * 3


def test_kernel_rejects_what_memory_safety_depends_on():
    cell = fastrnn.BasicRNNCell(3)
    cell.build(4, np.float64)
    ((_, layer),) = _compiled.layers(cell)
    opts = _compiled.kernel_options()
    x = np.zeros((2, 5, 4))
    h0 = np.zeros((2, 3))
    with pytest.raises(ValueError, match="x: expected 48 elements, got 40"):
        _kernels.layer_forward(layer, opts, x, None, h0, None, False, False, 2, 6)
    with pytest.raises(TypeError, match="x: expected float64"):
        _kernels.layer_forward(layer, opts, x.astype(np.float32), None, h0, None, False, False, 2, 5)
    with pytest.raises(ValueError, match="contiguous"):
        _kernels.layer_forward(layer, opts, np.asfortranarray(x), None, h0, None, False, False, 2, 5)
    with pytest.raises(ValueError, match="rejected its arguments"):
        _kernels.layer_forward(layer, opts, x, np.array([9, 1]), h0, None, False, False, 2, 5)
    with pytest.raises(ValueError, match="x: data at a misaligned address"):
        _kernels.layer_forward(layer, opts, misaligned(x), None, h0, None, False, False, 2, 5)


DRIVERS = ["dynamic", "time_major", "static", "bidirectional", "static_bidirectional", "step"]


def _call(module, driver, cell, bw, x, lengths):
    if driver == "dynamic":
        return module.dynamic_rnn(cell, x, lengths)
    if driver == "time_major":
        return module.dynamic_rnn(cell, x.transpose(1, 0, 2), lengths, time_major=True)
    if driver == "static":
        return module.static_rnn(cell, list(x.transpose(1, 0, 2)), sequence_length=lengths)
    if driver == "bidirectional":
        return module.bidirectional_dynamic_rnn(cell, bw, x, lengths)
    if driver == "static_bidirectional":
        return module.static_bidirectional_rnn(cell, bw, list(x.transpose(1, 0, 2)), sequence_length=lengths)
    return cell(x[:, 0], cell.zero_state(x.shape[0], x.dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_threads(dtype, rng):
    """Every driver from 4 threads at once, different inputs each, equal to single-threaded runs."""
    cell, _ = make_pair(CONFIGS["multi"], 5, dtype, rng)
    bw, _ = make_pair(CONFIGS["lstm_proj_clip_all"], 5, dtype, rng, seed=4)
    jobs = []
    for i in range(48):
        batch = 1 + i % 9
        x = rng.standard_normal((batch, 12 + i % 5, 5)).astype(dtype)
        lengths = rng.integers(0, x.shape[1] + 1, batch)
        jobs.append((DRIVERS[i % len(DRIVERS)], x, lengths))
    expected = [_call(fastrnn, d, cell, bw, x, lens) for d, x, lens in jobs]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda job: _call(fastrnn, job[0], cell, bw, job[1], job[2]), jobs * 3))
    for i, g in enumerate(got):
        assert_close(g, expected[i % len(jobs)], dtype, f"job {i % len(jobs)} ({jobs[i % len(jobs)][0]})")


def test_set_num_threads():
    rng = np.random.default_rng(7)
    try:
        cell = fastrnn.BasicLSTMCell(64)
        x = rng.standard_normal((8, 40, 64)).astype(np.float32)  # enough work to use threads
        lengths = rng.integers(0, 41, 8)
        results = []
        for n in (1, 2, 3):
            fastrnn.set_num_threads(n)
            assert fastrnn.get_num_threads() == n
            results.append(fastrnn.dynamic_rnn(cell, x, sequence_length=lengths))
        for r in results[1:]:  # the thread count changes the schedule, never the answer
            assert_close(r, results[0], np.float32, "threads")
        with pytest.raises(ValueError, match="n: expected a non-negative integer, got -1"):
            fastrnn.set_num_threads(-1)
        with pytest.raises(TypeError, match="n: expected a non-negative integer"):
            fastrnn.set_num_threads(1.5)
        fastrnn.set_num_threads(0)
        assert fastrnn.get_num_threads() >= 1
    finally:
        fastrnn.set_num_threads(0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_kernels_work_in_a_forked_child(rng):
    """The kernels' thread pool does not survive fork(); the child must start a new one, not hang."""
    cell = fastrnn.BasicLSTMCell(64, seed=0)
    x = rng.standard_normal((8, 50, 64)).astype(np.float32)
    expected, _ = fastrnn.dynamic_rnn(cell, x)  # the parent's pool is running now
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        got, _ = fastrnn.dynamic_rnn(cell, x)
        os._exit(0 if np.array_equal(got, expected) else 3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_packed_weights_are_cached_and_follow_set_weights(rng):
    """Built-in cells describe their layer (and pack its weights) once per (weights, instruction
    set) and reuse it; set_weights makes a new one.  (The C tests check that the kernels ignore
    weights packed for another layer or instruction set.)"""
    cell = fastrnn.LSTMCell(9, use_peepholes=True, num_proj=4)
    x = rng.standard_normal((3, 5, 6))
    out1, _ = fastrnn.dynamic_rnn(cell, x)
    ((_, layer),) = _compiled.layers(cell)
    packed = layer.packed_for(_compiled.kernel_options())
    fastrnn.dynamic_rnn(cell, x)
    assert _compiled.layers(cell)[0][1] is layer  # reused, not rebuilt
    assert layer.packed_for(_compiled.kernel_options()) is packed  # not re-packed
    new = {k: v * 0.5 for k, v in cell.weights.items()}
    cell.set_weights(new)
    out2, _ = fastrnn.dynamic_rnn(cell, x)
    assert _compiled.layers(cell)[0][1] is not layer
    twin = ref.LSTMCell(9, use_peepholes=True, num_proj=4)
    twin.set_weights(new)
    assert_close(out2, ref.dynamic_rnn(twin, x)[0], np.float64, "after set_weights")
    assert not np.allclose(out1, out2)


@pytest.mark.parametrize("threads", [1, 2])
def test_denormals_are_flushed_inside_the_kernels_only(threads):
    """Like TensorFlow's CPU kernels, the kernels flush denormals to zero (a state decaying to
    zero costs no microcode assists), and they leave the caller's floating-point state as it was."""
    tiny = np.finfo(np.float32).tiny  # the smallest normal float32
    half = np.float32(0.5)
    assert half * tiny != 0  # this thread makes subnormals before the call ...
    cell = fastrnn.BasicRNNCell(64, activation="linear", seed=0)
    ref_cell = ref.BasicRNNCell(64, activation="linear", seed=0)
    cell.build(64)
    ref_cell.build(64)
    weights = {"kernel": cell.weights["kernel"] * np.float32(0.05), "bias": cell.weights["bias"] * 0}
    cell.set_weights(weights)  # with zero inputs, h shrinks ~10x per step
    ref_cell.set_weights(weights)
    x = np.zeros((4, 60, 64), np.float32)
    h0 = np.random.default_rng(0).standard_normal((4, 64)).astype(np.float32) * np.float32(1e-30)
    fastrnn.set_num_threads(threads)
    try:
        out, _ = fastrnn.dynamic_rnn(cell, x, initial_state=h0)
    finally:
        fastrnn.set_num_threads(0)
    exp_out, _ = ref.dynamic_rnn(ref_cell, x, initial_state=h0)
    assert ((exp_out != 0) & (np.abs(exp_out) < tiny)).any()  # NumPy keeps subnormals ...
    assert not ((out != 0) & (np.abs(out) < tiny)).any()  # ... the kernels flush them to zero
    # each of a step's 64 + 64 products may be flushed, so near the flush point an output
    # may differ by up to that many times the smallest normal (which build reaches it first
    # depends on its order of operations)
    np.testing.assert_allclose(out, exp_out, rtol=1e-5, atol=128 * tiny)
    assert half * tiny != 0  # ... and this thread makes them after the call
