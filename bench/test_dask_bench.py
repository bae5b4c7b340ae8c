"""fastrnn.dask on a LocalCluster against one in-process call: what Dask costs over the kernels.

    pip install '.[dask]' pytest-benchmark
    python -m pytest bench/test_dask_bench.py --benchmark-only -s

A batch of 8,192 sequences (BasicLSTMCell, 256 units, 100 steps, depth 256, float32:
839 MB of inputs and as much of outputs):

- **in-process**: one ``fastrnn.dynamic_rnn`` call with 2 kernel threads
  (``fastrnn.set_num_threads(2)``), the inputs already in memory;
- **dask**: ``fastrnn.dask.dynamic_rnn`` on a ``LocalCluster`` of 2 worker processes
  with one thread each, 16 blocks of 512 rows; the inputs already on the workers
  (made there and persisted, as data loaded by the workers would be), outputs and
  final state persisted on the workers (not gathered: moving 839 MB to the client
  is not the RNN's cost).  Timed from building the graph to the last block done,
  so it includes shipping the cell, scheduling and the per-block calls.

The two alternate round by round (the machine's speed drifts); medians of the rounds.
The issue's bound: Dask's overhead over the raw kernels below 15% (wall-time ratio < 1.15).
Also reported: the CPU seconds each spends (this process -- kernels' pool, client,
scheduler -- plus the workers), which other load on the machine disturbs far less than
the wall time.
"""
from __future__ import annotations

import logging
import statistics
import time
from typing import Any, Dict, List

import numpy as np
import pytest

import fastrnn

dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")
import dask.array as da  # noqa: E402
import fastrnn.dask as frd  # noqa: E402

BATCH, TIME, DEPTH, UNITS, BLOCK = 8192, 100, 256, 256, 512
ROUNDS = 7


def test_dask_overhead_over_one_in_process_call(benchmark):
    cell = fastrnn.BasicLSTMCell(UNITS, seed=0)
    cell.build(DEPTH, np.float32)
    x_local = np.random.default_rng(0).standard_normal((BATCH, TIME, DEPTH), dtype=np.float32)
    times: Dict[str, List[float]] = {"in_process": [], "dask": []}
    cpu_times: Dict[str, List[float]] = {"in_process": [], "dask": []}

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=logging.ERROR) as cluster, distributed.Client(cluster) as client:
        x = da.random.default_rng(0).standard_normal((BATCH, TIME, DEPTH), chunks=(BLOCK, TIME, DEPTH),
                                                      dtype=np.float32).persist()
        distributed.wait(x)
        placed = client.who_has(x)

        def in_process() -> None:
            fastrnn.set_num_threads(2)
            try:
                fastrnn.dynamic_rnn(cell, x_local)
            finally:
                fastrnn.set_num_threads(0)

        def on_cluster() -> None:
            outputs, state = frd.dynamic_rnn(cell, x)
            futures = client.persist([outputs, state.c, state.h])
            distributed.wait(futures)
            del futures  # released on the workers

        def cpu_seconds() -> float:
            """CPU time of this process (the kernels' pool, the client and the scheduler) and the workers."""
            return time.process_time() + sum(client.run(time.process_time).values())

        def one_round() -> None:
            for name, fn in (("in_process", in_process), ("dask", on_cluster)):
                cpu, start = cpu_seconds(), time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
                cpu_times[name].append(cpu_seconds() - cpu)

        one_round()  # warm-up: workers import fastrnn, first-touch of the buffers
        for v in [*times.values(), *cpu_times.values()]:
            v.clear()
        benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
        workers = client.scheduler_info()["workers"]
        blocks_per_worker = sorted(sum(1 for who in placed.values() if w in who) for w in workers)

    median = {k: statistics.median(v) for k, v in times.items()}
    cpu = {k: statistics.median(v) for k, v in cpu_times.items()}
    ratio = median["dask"] / median["in_process"]
    benchmark.extra_info.update({f"{k}_median_s": v for k, v in median.items()})
    benchmark.extra_info.update({f"{k}_cpu_median_s": v for k, v in cpu.items()})
    benchmark.extra_info.update(ratio=ratio, cpu_ratio=cpu["dask"] / cpu["in_process"], rounds=ROUNDS,
                                in_process_s=times["in_process"], dask_s=times["dask"],
                                in_process_cpu_s=cpu_times["in_process"], dask_cpu_s=cpu_times["dask"],
                                input_blocks_per_worker=blocks_per_worker)
    print(f"\nLSTM {UNITS} units, batch {BATCH}, {TIME} steps, depth {DEPTH}, float32; {ROUNDS} rounds, medians:\n"
          f"  in-process, 2 kernel threads:        {median['in_process'] * 1e3:8.1f} ms  "
          f"{_spread(times['in_process'])}  CPU {cpu['in_process']:.2f} s\n"
          f"  fastrnn.dask, 2 workers x 1 thread:  {median['dask'] * 1e3:8.1f} ms  {_spread(times['dask'])}  "
          f"CPU {cpu['dask']:.2f} s\n"
          f"  ratio dask / in-process: {ratio:.3f} wall, {cpu['dask'] / cpu['in_process']:.3f} CPU "
          f"(input blocks per worker: {blocks_per_worker})")
    assert ratio < 1.15, f"Dask's overhead over one in-process call is {100 * (ratio - 1):.1f}% (bound: 15%)"


def _spread(values: List[Any]) -> str:
    return f"(min {min(values) * 1e3:.1f}, max {max(values) * 1e3:.1f})"
