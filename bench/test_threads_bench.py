"""Concurrent callers: the same N calls from one Python thread, and split over 2 and 4.

    python -m pytest bench/test_threads_bench.py --benchmark-only --benchmark-group-by=group

The kernels release the GIL and share the machine's cores between concurrent calls: a call alone
takes every core it asks for; calls that overlap each take what the others leave (waiting for one
when none is free), so the cores are never oversubscribed and no call changes its schedule -- or
its bits -- because another is running.  What to expect, as calls per second against one caller
(``extra_info``: ``calls_per_second``; ``report.py`` prints the ratios):

* ``lstm_b16_t100_h256`` (a medium LSTM, each call on both cores when alone): two or four
  callers hold at least 0.95x of one caller's throughput (each call then runs on one core,
  where the tile has no step barrier to wait at);
* ``lstm_b8_t100_h128`` with one kernel thread per call (``fastrnn.set_num_threads(1)``) and
  ``gru_b2_t20_h64`` (small enough that the kernels run it on one thread anyway): two callers
  on two cores reach 1.8x or more.

Nothing is asserted: timing depends on the machine.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastrnn

CALLS = 32
CASES = {  # name: (cell class, batch, time, depth, units, kernel threads per call; 0 = default)
    "lstm_b16_t100_h256": (fastrnn.BasicLSTMCell, 16, 100, 256, 256, 0),
    "lstm_b8_t100_h128": (fastrnn.BasicLSTMCell, 8, 100, 64, 128, 1),
    "gru_b2_t20_h64": (fastrnn.GRUCell, 2, 20, 32, 64, 0),
}


def make(case):
    cls, batch, time, depth, units, _ = CASES[case]
    cell = cls(units, seed=0)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((batch, time, depth)).astype(np.float32) for _ in range(CALLS)]
    cell.build(depth, np.float32)
    return cell, xs


@pytest.mark.parametrize("callers", [1, 2, 4])
@pytest.mark.parametrize("case", list(CASES))
def test_concurrent_callers(benchmark, case, callers):
    cell, xs = make(case)
    kernel_threads = CASES[case][-1]
    benchmark.group = f"callers {case}"
    fastrnn.set_num_threads(kernel_threads)
    try:
        with ThreadPoolExecutor(callers) as pool:
            def run():
                # the same CALLS calls, split over `callers` Python threads
                list(pool.map(lambda x: fastrnn.dynamic_rnn(cell, x), xs))

            benchmark.pedantic(run, rounds=15, warmup_rounds=2)
    finally:
        fastrnn.set_num_threads(0)
    benchmark.extra_info.update(case=case, callers=callers, kernel_threads=kernel_threads,
                                calls_per_second=CALLS / benchmark.stats.stats.median)
