"""Thread scaling: N calls in one Python thread vs the same N calls split over two.

    python -m pytest bench/test_threads_bench.py --benchmark-only --benchmark-group-by=group

The kernels release the GIL, so with each call on one core (``fastrnn.set_num_threads(1)``)
two Python threads on two free cores should finish a round of calls in close to half the
time of one thread.  With the default (each call may use every core), a second concurrent
caller finds the kernels' pool busy and runs on its own thread, so the cores are never
oversubscribed.  Nothing is asserted: timing depends on the machine; the calls per second
are in ``extra_info``.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastrnn

CALLS = 32
CASES = {
    "lstm_b8_t100_h128": (fastrnn.BasicLSTMCell, 8, 100, 64, 128),
    "gru_b64_t50_h256": (fastrnn.GRUCell, 64, 50, 128, 256),
}


def make(case):
    cls, batch, time, depth, units = CASES[case]
    cell = cls(units, seed=0)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((batch, time, depth)).astype(np.float32) for _ in range(CALLS)]
    cell.build(depth, np.float32)
    return cell, xs


@pytest.mark.parametrize("kernel_threads", [1, 0], ids=["per_call_1", "per_call_default"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", list(CASES))
def test_thread_scaling(benchmark, case, threads, kernel_threads):
    cell, xs = make(case)
    benchmark.group = f"{case} kernel threads per call={kernel_threads or 'default'}"
    fastrnn.set_num_threads(kernel_threads)
    try:
        with ThreadPoolExecutor(threads) as pool:
            def run():
                # the same CALLS calls, split over `threads` Python threads
                list(pool.map(lambda x: fastrnn.dynamic_rnn(cell, x), xs))

            benchmark.pedantic(run, rounds=10, warmup_rounds=2)
    finally:
        fastrnn.set_num_threads(0)
    benchmark.extra_info.update(case=case, threads=threads, kernel_threads=kernel_threads,
                                calls_per_second=CALLS / benchmark.stats.stats.median)
