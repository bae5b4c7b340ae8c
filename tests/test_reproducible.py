"""The same inputs, weights and precision give the same bits in one process, whatever the thread
count, the thread schedule the kernels choose (or are forced to) and whatever other threads are
doing at the same time.

Every output element's sums run in one fixed order (over the input, then the state, in the packed
weights' order) however the rows and units of a call are dealt to threads, and a call that finds
the pool busy waits for cores instead of running on another schedule -- so nothing here is
compared within a tolerance.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, List, Tuple

import numpy as np
import pytest

import fastrnn
from fastrnn import _options

from helpers import CONFIGS, assert_identical, drive, make_pair, random_state, with_units

SPECS = ["basic_lstm", "lstm_proj_clip_all", "gru_tanh", "gru_reset_after", "rnn_relu", "multi"]


def make_jobs(count: int = 60, seed: int = 20261201) -> List[Tuple[Any, ...]]:
    """``count`` mixed calls: every cell kind and stacks, sizes that split unevenly between threads
    (batch 1 and 2 split by units, larger ones by rows), ragged lengths with zeros, float32 and
    float64, bfloat16, and one-step calls."""
    rng = np.random.default_rng(seed)
    jobs = []
    for i in range(count):
        spec = with_units(CONFIGS[SPECS[i % len(SPECS)]], (7, 33, 64, 130)[i % 4])
        dtype = np.float64 if i % 5 == 4 else np.float32
        depth = (3, 17, 64)[i % 3]
        cell, _ = make_pair(spec, depth, dtype, rng, seed=i)
        batch = (1, 2, 3, 5, 16, 37)[i % 6]
        steps = 1 + (7 * i) % 30
        x = rng.standard_normal((batch, steps, depth)).astype(dtype)
        lengths = rng.integers(0, steps + 1, batch)
        state = random_state(cell, batch, dtype, rng)
        kind = ("dynamic", "bidirectional", "time_major", "step")[i % 4]
        precision = "bfloat16" if (i % 7 == 3 and dtype == np.float32) else None
        jobs.append((kind, cell, x, lengths, state, precision))
    return jobs


def run(job: Tuple[Any, ...]) -> Any:
    kind, cell, x, lengths, state, precision = job
    if kind == "step":
        return cell(x[:, 0], state, precision=precision)
    return drive(fastrnn, kind, x, cell, cell, lengths, state, precision=precision)


@pytest.fixture(scope="module")
def jobs_and_answers() -> Tuple[List[Tuple[Any, ...]], List[Any]]:
    jobs = make_jobs()
    fastrnn.set_num_threads(1)
    try:
        return jobs, [run(job) for job in jobs]
    finally:
        fastrnn.set_num_threads(0)


@pytest.mark.parametrize("threads", [2, 3, 4])
def test_the_thread_count_changes_no_bit(jobs_and_answers, threads):
    jobs, expected = jobs_and_answers
    fastrnn.set_num_threads(threads)
    try:
        for i, job in enumerate(jobs):
            assert_identical(run(job), expected[i], f"job {i} ({job[0]}) on {threads} threads")
    finally:
        fastrnn.set_num_threads(0)


@pytest.mark.parametrize("schedule", ["columns", "rows"])
@pytest.mark.parametrize("xproj", ["auto", "hoisted", "fused"])
def test_the_schedule_changes_no_bit(jobs_and_answers, schedule, xproj):
    """Each schedule forced on 3 threads (columns: every step split by units, the threads meet at
    each step; rows: rows dealt to the threads, each running all its steps), in each input-projection
    mode: the same bits as one thread in that mode."""
    jobs, expected = jobs_and_answers
    if xproj != "auto":
        fastrnn.set_num_threads(1)
        try:
            with _options.override(xproj=xproj):
                expected = [run(job) for job in jobs]
        finally:
            fastrnn.set_num_threads(0)
    fastrnn.set_num_threads(3)
    try:
        with _options.override(schedule=schedule, xproj=xproj):
            for i, job in enumerate(jobs):
                assert_identical(run(job), expected[i], f"job {i} ({job[0]}), {schedule}, {xproj}")
    finally:
        fastrnn.set_num_threads(0)


@pytest.mark.parametrize("callers", [2, 4])
def test_concurrent_callers_change_no_bit(jobs_and_answers, callers):
    """``callers`` Python threads run every job at once, each round starting together so that
    calls find the pool busy: each gets the serial answer."""
    jobs, expected = jobs_and_answers
    barrier = threading.Barrier(callers)

    def worker(offset: int) -> List[Any]:
        out = []
        for k in range(len(jobs)):
            barrier.wait()
            out.append(run(jobs[(k + offset) % len(jobs)]))
        return out

    with ThreadPoolExecutor(callers) as pool:
        results = list(pool.map(worker, [7 * c for c in range(callers)]))
    for c, got in enumerate(results):
        for k, g in enumerate(got):
            i = (k + 7 * c) % len(jobs)
            assert_identical(g, expected[i], f"caller {c}, job {i} ({jobs[i][0]})")


def test_a_repeated_call_changes_no_bit(jobs_and_answers):
    """Warm caches, a re-used workspace and packed weights change nothing either."""
    jobs, expected = jobs_and_answers
    for i, job in enumerate(jobs[:20]):
        assert_identical(run(job), expected[i], f"job {i} again")
