"""Threads: every driver from 4 threads at once gives the single-threaded answer; the GIL is released.

(``bench/test_threads_bench.py`` measures the throughput this allows.)
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastrnn
import fastrnn.reference as ref

from helpers import CONFIGS, DRIVERS, assert_close, drive, make_pair, random_state


THREADS = 4
STEP = "one-step"


def call(m, driver, cell, bw, x, lens, state):
    if driver == STEP:
        return cell(x[:, 0], state)
    return drive(m, driver, x, cell, bw, lens, state)


def run_together(jobs, fn):
    """Run ``fn(job)`` for every job on THREADS threads that start each round at the same moment."""
    barrier = threading.Barrier(THREADS)

    def worker(chunk):
        out = []
        for job in chunk:
            barrier.wait()
            out.append(fn(job))
        return out

    chunks = [jobs[i::THREADS] for i in range(THREADS)]
    assert len({len(c) for c in chunks}) == 1, "equal chunks, or the barrier would wait forever"
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(worker, chunks))
    return [results[i % THREADS][i // THREADS] for i in range(len(jobs))]


@pytest.mark.parametrize("m", [pytest.param(fastrnn, id="fastrnn"), pytest.param(ref, id="reference")])
@pytest.mark.parametrize("spec", ["rnn_relu", "gru_tanh", "basic_lstm_fb_flat", "lstm_proj_clip_all", "multi_flat"])
def test_every_driver_from_four_threads(m, spec, rng):
    dtype = np.float32 if spec.startswith(("rnn", "lstm")) else np.float64
    cell, twin = make_pair(CONFIGS[spec], 6, dtype, rng)
    bw, bw_twin = make_pair(CONFIGS["gru_relu"], 6, dtype, rng, seed=3)
    if m is ref:
        cell, bw = twin, bw_twin
    jobs = []
    for i, driver in enumerate((DRIVERS + [STEP]) * 4):
        batch = 1 + (7 * i) % 23
        x = rng.standard_normal((batch, 3 + i % 11, 6)).astype(dtype)
        jobs.append((driver, x, rng.integers(0, x.shape[1] + 1, batch), random_state(cell, batch, dtype, rng)))
    expected = [call(m, d, cell, bw, x, lens, st) for d, x, lens, st in jobs]
    got = run_together(jobs, lambda job: call(m, job[0], cell, bw, *job[1:]))
    for i, (g, e) in enumerate(zip(got, expected)):
        assert_close(g, e, dtype, f"job {i} ({jobs[i][0]}, {spec})")


def test_set_weights_while_other_threads_run(rng):
    """A run sees the weights before or after a concurrent set_weights, never a mix, never a crash."""
    cell = fastrnn.LSTMCell(8, use_peepholes=True, num_proj=5, seed=0)
    cell.build(4, np.float64)
    w1 = cell.weights
    w2 = {k: v * -0.5 + 0.1 for k, v in w1.items()}
    x = rng.standard_normal((9, 30, 4))
    lens = rng.integers(0, 31, 9)
    cell.set_weights(w2)
    out2 = fastrnn.dynamic_rnn(cell, x, lens)
    cell.set_weights(w1)
    out1 = fastrnn.dynamic_rnn(cell, x, lens)
    stop = threading.Event()

    def flip():
        while not stop.is_set():
            cell.set_weights(w2)
            cell.set_weights(w1)

    flipper = threading.Thread(target=flip)
    flipper.start()
    try:
        with ThreadPoolExecutor(3) as pool:
            results = list(pool.map(lambda _: fastrnn.dynamic_rnn(cell, x, lens), range(90)))
    finally:
        stop.set()
        flipper.join()
    for r in results:
        assert any(np.array_equal(r[0], o[0]) and np.array_equal(r[1].h, o[1].h) for o in (out1, out2))


@pytest.mark.parametrize("driver", ["dynamic", "bidirectional", "static"])
def test_the_gil_is_released_during_kernels(driver, rng):
    """While one thread is inside a long kernel call, another thread keeps running Python.

    No timing is asserted against a machine speed: a Python loop in the main
    thread records the longest gap between its iterations while a worker makes
    one large call.  If the kernel held the GIL, that gap would be about the
    whole call (the loop cannot run at all meanwhile); released, it stays well
    under a millisecond.  The bound is half the call's own time.  The kernel runs
    on one thread, so that the loop has a core of its own even on a 2-core machine:
    with the kernel on every core the loop waits for the OS scheduler instead (a
    stall of one time slice, ~10 ms, was seen that way), which says nothing about
    the GIL.
    """
    cell = fastrnn.BasicLSTMCell(256, seed=0)
    # 32 rows: the kernel's time (~40 ms) dwarfs the GIL-holding Python parts of a call,
    # e.g. static_rnn's checks of its 150 per-step arrays (a few ms)
    x = rng.standard_normal((32, 150, 16)).astype(np.float32)

    def one_call():
        call(fastrnn, driver, cell, cell, x, None, None)

    fastrnn.set_num_threads(1)
    try:
        one_call()  # build and warm up
        t0 = time.perf_counter()
        one_call()
        alone = time.perf_counter() - t0
        done = threading.Event()
        worker = threading.Thread(target=lambda: (one_call(), done.set()))
        longest, last = 0.0, time.perf_counter()
        worker.start()
        while not done.is_set():
            time.sleep(0)  # hand the GIL over at once, so the worker's own Python parts are not slowed down
            now = time.perf_counter()
            longest, last = max(longest, now - last), now
        worker.join()
    finally:
        fastrnn.set_num_threads(0)
    assert longest < alone / 2, (f"the main thread stalled {longest * 1e3:.0f} ms while a {alone * 1e3:.0f} ms "
                                 "kernel call ran: the GIL is held inside the kernel")
