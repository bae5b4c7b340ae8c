"""Thread scaling: N calls in one thread vs the same N calls split over two threads.

    python -m pytest bench/test_threads_bench.py --benchmark-only --benchmark-group-by=param:case

The kernels release the GIL, so on two free cores the two-thread rounds should
take close to half the time of the one-thread rounds (reported as
``extra_info["speedup"]``, calls per second over one thread's).  Nothing is
asserted: timing depends on the machine.  The BLAS behind the input projection
may start its own threads inside a call; ``blas_threads`` pins it (through
threadpoolctl when installed) so that 2 Python threads x N BLAS threads do not
oversubscribe the cores -- compare the rows with ``blas_threads=1`` and ``None``
(the library's default) to see that effect.  Without threadpoolctl, run the
file twice, once with ``OPENBLAS_NUM_THREADS=1`` in the environment.  Measured
here (2 cores, SciPy's OpenBLAS): with BLAS threads on, two Python threads gave
no gain (LSTM 437 -> 420 calls/s) or lost half (GRU 18.8 -> 8.5); with
``OPENBLAS_NUM_THREADS=1`` the LSTM case scaled 420 -> 779 calls/s (1.86x).
"""
from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastrnn

CALLS = 32
CASES = {
    # small batch, long sequence: the per-step recurrence (fastrnn's own micro-kernel) dominates
    "lstm_b8_t100_h128": (fastrnn.BasicLSTMCell, 8, 100, 64, 128),
    # larger batch: the BLAS input projection is a bigger share
    "gru_b64_t50_h256": (fastrnn.GRUCell, 64, 50, 128, 256),
}


@contextlib.contextmanager
def blas_limit(threads):
    if threads is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        pytest.skip("threadpoolctl not installed: cannot pin the BLAS threads")
    with threadpool_limits(limits=threads, user_api="blas"):
        yield


def make(case):
    cls, batch, time, depth, units = CASES[case]
    cell = cls(units, seed=0)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((batch, time, depth)).astype(np.float32) for _ in range(CALLS)]
    cell.build(depth, np.float32)
    return cell, xs


@pytest.mark.parametrize("blas_threads", [1, None], ids=["blas1", "blas_default"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", list(CASES))
def test_thread_scaling(benchmark, case, threads, blas_threads):
    cell, xs = make(case)
    benchmark.group = f"{case} blas_threads={blas_threads}"
    with blas_limit(blas_threads), ThreadPoolExecutor(threads) as pool:
        def run():
            # the same CALLS calls, split over `threads` threads
            list(pool.map(lambda x: fastrnn.dynamic_rnn(cell, x), xs))

        benchmark.pedantic(run, rounds=10, warmup_rounds=2)
    per_second = CALLS / benchmark.stats.stats.mean
    benchmark.extra_info.update(case=case, threads=threads, blas_threads=str(blas_threads),
                                calls_per_second=per_second)
